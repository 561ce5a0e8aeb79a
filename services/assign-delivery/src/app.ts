import {
  DeliveryAssigned,
  DeliveryFailed,
  DeliveryReleased,
  DeliveryUnavailable,
  eventIdFor,
  ignoringOthers,
  OrderCancelled,
  OrderCancelRequested,
  onOrderPlaced,
  OrderPlaced,
  PaymentAuthorized,
  stepFailure,
  type OrderingTopology,
} from '@orderflow/contracts';
import {
  on,
  type ConsumerSpec,
  type HandlerContext,
  type RetryPolicy,
  type ServiceContext,
} from '@orderflow/messaging';
import type { SqlDispatch } from './adapters/sql-dispatch.ts';

/**
 * assign-delivery — table of contents.
 *
 * Consumes `assign-delivery-all` (every event of the ORDERING stream, per-order ordering in a replica,
 * so an order's placed, authorized and cancellation arrive in append order):
 * - `order.placed` → keeps the shipping country
 * - `payment.authorized` → reserves a courier of that country with capacity → publishes
 *   `delivery.assigned`, or `delivery.unavailable` (country not served, every courier full);
 *   nothing when the order was cancelled before
 * - `order.cancel-requested`, `order.cancelled` → releases the order's courier (capacity back, once)
 *   → publishes `delivery.released`; an order not yet assigned will not be
 * - ignores every other event.
 * A dead-lettered `order.placed` or `payment.authorized` publishes `delivery.failed` (the order is then
 * cancelled with reason `delivery_failed`, after a refund).
 * Serves no endpoints.
 *
 * The decision commits with the inbox record (see `SqlDispatch`); the event is published after the
 * commit and before the ack, on every delivery, with a deterministic id and the stored timestamps, so a
 * crash after the commit still ends in exactly one event (stream de-duplication).
 */
export interface AssignDeliveryOptions {
  topology: OrderingTopology;
  dispatch: SqlDispatch;
  concurrency?: number;
  /** Attempts before dead-lettering (default 10). */
  maxDeliver?: number;
  retry?: Partial<RetryPolicy>;
}

export function assignDeliveryConsumer(options: AssignDeliveryOptions): ConsumerSpec {
  const { topology, dispatch } = options;
  const target = (orderId: string) => ({ subject: topology.subjects.delivery(orderId), about: orderId });

  async function release(orderId: string, at: string, context: HandlerContext): Promise<void> {
    const outcome = await dispatch.release(orderId, new Date(at));
    if (outcome.kind === 'nothing_to_release') return;
    await context.publish(
      DeliveryReleased,
      { orderId, courierId: outcome.courierId, releasedAt: outcome.at },
      { ...target(orderId), id: eventIdFor(DeliveryReleased, orderId) },
    );
  }

  return {
    ...topology.consumers.assignDelivery.all,
    ...(options.concurrency !== undefined && { concurrency: options.concurrency }),
    maxDeliver: options.maxDeliver ?? 10,
    ...(options.retry && { retry: options.retry }),
    handlers: ignoringOthers([
      ...onOrderPlaced((event) =>
        dispatch.rememberOrder(event.data.orderId, event.data.shippingAddress.country),
      ),
      on(PaymentAuthorized, async (event, context) => {
        const { orderId } = event.data;
        const outcome = await dispatch.assign(orderId, event.id);
        switch (outcome.kind) {
          case 'assigned':
            await context.publish(
              DeliveryAssigned,
              {
                orderId,
                courierId: outcome.courierId,
                courierName: outcome.courierName,
                assignedAt: outcome.at,
              },
              { ...target(orderId), id: eventIdFor(DeliveryAssigned, orderId) },
            );
            return;
          case 'unavailable':
            await context.publish(
              DeliveryUnavailable,
              { orderId, reason: outcome.reason, at: outcome.at },
              { ...target(orderId), id: eventIdFor(DeliveryUnavailable, orderId) },
            );
            return;
          case 'skipped_cancelled':
            context.logger.info({ orderId }, 'order cancelled before a courier was assigned: none assigned');
            return;
          default:
            return outcome satisfies never;
        }
      }),
      on(OrderCancelRequested, (event, context) =>
        release(event.data.orderId, event.data.requestedAt, context),
      ),
      on(OrderCancelled, (event, context) => release(event.data.orderId, event.data.cancelledAt, context)),
    ]),
    // No courier can be assigned to the order: order-storage cancels it (and payment-processor refunds).
    onDeadLetter: async (event, error, context) => {
      if (event.type !== OrderPlaced.type && event.type !== PaymentAuthorized.type) return;
      const { orderId } = event.data as { orderId: string };
      await context.publish(DeliveryFailed, stepFailure(orderId, event.type, error, new Date()), {
        ...target(orderId),
        id: eventIdFor(DeliveryFailed, orderId),
      });
    },
  };
}

/** Starts the consumer on a running service (see `main.ts`). */
export async function startAssignDelivery(
  context: ServiceContext,
  options: AssignDeliveryOptions,
): Promise<void> {
  await context.transport.consume(assignDeliveryConsumer(options));
}
