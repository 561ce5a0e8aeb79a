import {
  eventIdFor,
  ignore,
  OrderCancelled,
  OrderCancelRequested,
  OrderConfirmed,
  OrderingErrorCode,
  OrderPlaced,
  OrderPlacedV1,
  PaymentAuthorized,
  PaymentDeclined,
  PaymentFailed,
  PaymentRefunded,
  stepFailure,
  type OrderingTopology,
  type RefundReason,
} from '@orderflow/contracts';
import {
  on,
  PermanentError,
  RemoteError,
  type ConsumerSpec,
  type Envelope,
  type HandlerContext,
  type PayloadOf,
  type Requester,
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
 *   - `order.placed` → asks order-storage for the order's payment token (`order.get-payment-token`; it is
 *     on no stream), charges the total, idempotency key = order id → publishes `payment.authorized` |
 *     `payment.declined`; a token that is gone (410) means the outcome is recorded already: nothing to do.
 *     `order.placed.v1` (placed before v2) carries its token and is charged with it.
 *   - `order.cancel-requested` → refund the charge once (key `refund-<orderId>`) → publishes `payment.refunded`
 *   - ignores `order.confirmed`, `order.cancelled`
 * (`delivery.unavailable` needs no consumer here: order-storage answers it with
 * `order.cancel-requested{delivery_unavailable}`, which the orders consumer refunds.)
 *
 * Serves no endpoints. Every effect is idempotent at the PSP, and every event has a deterministic id
 * (`eventIdFor(contract, orderId)`), so redelivery, retries and concurrent replicas make one charge,
 * one refund, and (within the stream's duplicate window) one event each.
 * PSP timeouts and 5xx throw a retryable error (paced redelivery); PSP refusals dead-letter.
 * A charge that is dead-lettered (refused, or out of attempts) publishes `payment.failed` when the PSP
 * holds no succeeded charge for the order (else `payment.authorized`), so order-storage cancels it.
 */
export interface PaymentProcessorOptions {
  topology: OrderingTopology;
  psp: PaymentGateway;
  /** Asks order-storage for payment tokens (`transport` of the service). */
  requester: Requester;
  /** Handlers at once per consumer in this replica (default 16). */
  concurrency?: number;
  /** Attempts before dead-lettering (default 8). */
  maxDeliver?: number;
  /** Should exceed the PSP timeout (default 30 000 ms). */
  ackWaitMs?: number;
  retry?: Partial<RetryPolicy>;
}

export function paymentProcessorConsumers(options: PaymentProcessorOptions): ConsumerSpec[] {
  const { topology, psp, requester } = options;
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

  /**
   * The charge of an order was dead-lettered: say how the payment step ended, so the order does not wait
   * forever. The PSP's record decides: a succeeded charge (made by an attempt whose answer was lost) is
   * `payment.authorized`, else `payment.failed` (nothing charged). A refund that cannot be made is not
   * reported: it stays a dead letter for an operator (redrive is safe, the refund key is per order).
   */
  async function chargeGaveUp(event: Envelope, error: unknown, context: HandlerContext): Promise<void> {
    if (event.type !== OrderPlaced.type && event.type !== OrderPlacedV1.type) return;
    const order = event.data as PayloadOf<typeof OrderPlaced>;
    const target = { subject: topology.subjects.payment(order.orderId), about: order.orderId };
    const charged = refundableCharge(await psp.chargesFor(order.orderId));
    if (charged) {
      const result = chargeResult(order, {
        kind: 'authorized',
        chargeId: charged.id,
        created: charged.created,
      });
      if (result.kind === 'authorized') {
        await context.publish(PaymentAuthorized, result.event, {
          ...target,
          id: eventIdFor(PaymentAuthorized, order.orderId),
        });
      }
      return;
    }
    await context.publish(PaymentFailed, stepFailure(order.orderId, event.type, error, new Date()), {
      ...target,
      id: eventIdFor(PaymentFailed, order.orderId),
    });
  }

  /** The order's token from order-storage; `undefined` once its payment outcome is recorded (410). */
  async function tokenOf(event: Envelope<PayloadOf<typeof OrderPlaced>>): Promise<string | undefined> {
    const { orderId } = event.data;
    try {
      return (await requester.request(topology.endpoints.getPaymentToken, { orderId }, { causedBy: event }))
        .token;
    } catch (error) {
      if (error instanceof RemoteError && error.code === OrderingErrorCode.PaymentTokenGone) return undefined;
      if (error instanceof RemoteError && error.status === 404) {
        throw new PermanentError(`no payment token for order ${orderId}`, { cause: error, code: error.code });
      }
      throw error; // order-storage unavailable (no responders, timeout): retried in place
    }
  }

  async function charge(
    order: PayloadOf<typeof OrderPlaced>,
    token: string,
    context: HandlerContext,
  ): Promise<void> {
    const result = chargeResult(order, await psp.charge(chargeFor(order, token)));
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
  }

  return [
    {
      ...topology.consumers.paymentProcessor.orders,
      ...tuning,
      handlers: [
        on(OrderPlaced, async (event, context) => {
          const token = await tokenOf(event);
          if (token === undefined) {
            context.logger.info({ orderId: event.data.orderId }, 'payment outcome recorded already');
            return;
          }
          await charge(event.data, token, context);
        }),
        on(OrderPlacedV1, (event, context) => charge(event.data, event.data.payment.token, context)),
        on(OrderCancelRequested, (event, context) => refund(event.data.orderId, event.data.reason, context)),
        ...ignore(OrderConfirmed, OrderCancelled),
      ],
      onDeadLetter: chargeGaveUp,
    },
  ];
}

/** Starts the consumers on a running service (see `main.ts`). */
export async function startPaymentProcessor(
  context: ServiceContext,
  options: Omit<PaymentProcessorOptions, 'requester'>,
): Promise<void> {
  const consumers = paymentProcessorConsumers({ ...options, requester: context.transport });
  for (const spec of consumers) await context.transport.consume(spec);
}
