import {
  DeliveryAssigned,
  DeliveryReleased,
  DeliveryUnavailable,
  eventIdFor,
  ignore,
  OrderCancelled,
  OrderCancelRequested,
  OrderConfirmed,
  OrderPlaced,
  PaymentAuthorized,
  PaymentDeclined,
  PaymentRefunded,
  type OrderingTopology,
  type RefundReason,
} from '@orderflow/contracts';
import {
  on,
  type ConsumerSpec,
  type HandlerContext,
  type RetryPolicy,
  type ServiceContext,
} from '@orderflow/messaging';
import {
  chargeFor,
  chargeResult,
  paymentKeys,
  refundableCharge,
  refundedEvent,
  type PaymentGateway,
} from './domain/payments.ts';
import { ChargePendingError } from './errors.ts';

/**
 * payment-processor — table of contents.
 *
 * Consumes (durable consumers shared by every replica, per-order ordering):
 * - `payment-processor-orders` (`orders.*`):
 *   - `order.placed` → charge the total, idempotency key = order id → publishes `payment.authorized` | `payment.declined`
 *   - `order.cancel-requested` → refund the charge once (key `refund-<orderId>`) → publishes `payment.refunded`
 *   - ignores `order.confirmed`, `order.cancelled`
 * - `payment-processor-deliveries` (`deliveries.*`):
 *   - `delivery.unavailable` → refund as above → publishes `payment.refunded`
 *   - ignores `delivery.assigned`, `delivery.released`
 *
 * Serves no endpoints. Every effect is idempotent at the PSP, and every event has a deterministic id
 * (`eventIdFor(contract, orderId)`), so redelivery, retries and concurrent replicas make one charge,
 * one refund, and (within the stream's duplicate window) one event each.
 * PSP timeouts and 5xx throw a retryable error (paced redelivery); PSP refusals dead-letter.
 */
export interface PaymentProcessorOptions {
  topology: OrderingTopology;
  psp: PaymentGateway;
  /** Handlers at once per consumer in this replica (default 16). */
  concurrency?: number;
  /** Attempts before dead-lettering (default 8). */
  maxDeliver?: number;
  /** Should exceed the PSP timeout (default 30 000 ms). */
  ackWaitMs?: number;
  retry?: Partial<RetryPolicy>;
}

export function paymentProcessorConsumers(options: PaymentProcessorOptions): ConsumerSpec[] {
  const { topology, psp } = options;
  const tuning = {
    ...(options.concurrency !== undefined && { concurrency: options.concurrency }),
    maxDeliver: options.maxDeliver ?? 8,
    ackWaitMs: options.ackWaitMs ?? 30_000,
    ...(options.retry && { retry: options.retry }),
  };

  async function refund(orderId: string, reason: RefundReason, context: HandlerContext): Promise<void> {
    const charges = await psp.chargesFor(orderId);
    // No charge at all yet: the charge for `order.placed` may be in flight on another replica.
    if (charges.length === 0) throw new ChargePendingError(orderId);
    const charge = refundableCharge(charges);
    if (!charge) {
      context.logger.info({ orderId, reason }, 'nothing to refund: the charge did not succeed');
      return;
    }
    const made = await psp.refund({ chargeId: charge.id, idempotencyKey: paymentKeys.refund(orderId) });
    await context.publish(PaymentRefunded, refundedEvent(orderId, reason, made), {
      subject: topology.subjects.payment(orderId),
      about: orderId,
      id: eventIdFor(PaymentRefunded, orderId),
    });
  }

  return [
    {
      ...topology.consumers.paymentProcessor.orders,
      ...tuning,
      handlers: [
        on(OrderPlaced, async (event, context) => {
          const order = event.data;
          const result = chargeResult(order, await psp.charge(chargeFor(order)));
          const options = { subject: topology.subjects.payment(order.orderId), about: order.orderId };
          switch (result.kind) {
            case 'authorized':
              await context.publish(PaymentAuthorized, result.event, {
                ...options,
                id: eventIdFor(PaymentAuthorized, order.orderId),
              });
              return;
            case 'declined':
              await context.publish(PaymentDeclined, result.event, {
                ...options,
                id: eventIdFor(PaymentDeclined, order.orderId),
              });
              return;
            default:
              return result satisfies never;
          }
        }),
        on(OrderCancelRequested, (event, context) => refund(event.data.orderId, event.data.reason, context)),
        ...ignore(OrderConfirmed, OrderCancelled),
      ],
    },
    {
      ...topology.consumers.paymentProcessor.deliveries,
      ...tuning,
      handlers: [
        on(DeliveryUnavailable, (event, context) =>
          refund(event.data.orderId, 'delivery_unavailable', context),
        ),
        ...ignore(DeliveryAssigned, DeliveryReleased),
      ],
    },
  ];
}

/** Starts the consumers on a running service (see `main.ts`). */
export async function startPaymentProcessor(
  context: ServiceContext,
  options: PaymentProcessorOptions,
): Promise<void> {
  for (const spec of paymentProcessorConsumers(options)) await context.transport.consume(spec);
}
