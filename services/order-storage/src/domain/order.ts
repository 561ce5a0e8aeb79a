import {
  OrderCancelled,
  OrderCancelRequested,
  OrderConfirmed,
  OrderingErrorCode,
  OrderPlaced,
  OrderPlacedV1,
  priceItems,
  sourceOf,
  type Address,
  type CancellationReason,
  type Currency,
  type CustomerRef,
  type Money,
  type OrderItem,
  type OrderLine,
  type OrderStatus,
  type RefundReason,
} from '@orderflow/contracts';
import {
  defineUpcaster,
  DomainError,
  type AggregateDefinition,
  type DecideContext,
  type EventOf,
} from '@orderflow/eventstore';

/*
 * The Order aggregate: pure decide/evolve over the events of `orders.<orderId>`.
 *
 * Facts that other services own (the charge, the invoice, the courier) live in their own subjects; the
 * commands that depend on them carry them (`confirm` carries the payment, invoice and courier, a
 * customer's `request-cancel` says whether a courier is assigned). Decisions on one order are
 * serialised by optimistic concurrency on its subject, so e.g. a confirmation and a cancellation can
 * never both be appended.
 */

/** Events of the Order aggregate (their contracts' unversioned names). */
export type OrderEvent = EventOf<
  typeof OrderPlaced | typeof OrderCancelRequested | typeof OrderConfirmed | typeof OrderCancelled
>;

export const ORDER_EVENT_CONTRACTS = [OrderPlaced, OrderCancelRequested, OrderConfirmed, OrderCancelled];

/** Orders placed before v2 are read without the payment token they carried. */
export const ORDER_UPCASTERS = [
  defineUpcaster(OrderPlacedV1, OrderPlaced, ({ payment: _token, ...placed }) => placed),
];

/** Where an order is in its own log; `new` = no event yet. `paid` is not an order event (see {@link statusOf}). */
export type OrderLifecycle = 'new' | 'placed' | 'cancellation_requested' | 'confirmed' | 'cancelled';

export interface OrderState {
  readonly status: OrderLifecycle;
  readonly orderId: string;
  readonly customerId: string;
  readonly currency: Currency | undefined;
  readonly total: number;
  /** Why the cancellation was requested (while `cancellation_requested`). */
  readonly requestedReason: RefundReason | undefined;
  readonly cancellationReason: CancellationReason | undefined;
}

export type OrderCommand =
  /** Place a new order; placing an order that exists changes nothing (idempotent). */
  | {
      readonly type: 'place';
      readonly orderId: string;
      readonly customer: CustomerRef;
      readonly items: readonly OrderItem[];
      readonly currency: Currency;
      readonly shippingAddress: Address;
    }
  /** Payment authorized, invoice created and courier assigned: confirm unless it is being cancelled. */
  | {
      readonly type: 'confirm';
      readonly paymentId: string;
      readonly invoiceNumber: string;
      readonly courierId: string;
    }
  /**
   * The customer asks to cancel; refused once a courier is assigned. With `customerId`, an order of
   * another customer is not found (checked first: no answer reveals that it exists).
   */
  | { readonly type: 'request-cancel'; readonly courierAssigned: boolean; readonly customerId?: string }
  /** No courier could be found (`delivery.unavailable`): the order is cancelled once refunded. */
  | { readonly type: 'report-no-courier' }
  /** The charge was declined (`payment.declined`). */
  | { readonly type: 'record-decline' }
  /** The charge was refunded (`payment.refunded`). */
  | { readonly type: 'record-refund'; readonly reason: RefundReason; readonly amount: Money }
  /** The payment step failed permanently and nothing was charged (`payment.failed`). */
  | { readonly type: 'record-payment-failure' }
  /**
   * A step after the charge failed permanently (`invoice.failed`, `delivery.failed`): the order
   * cannot be confirmed, so it is cancelled once what was charged is refunded.
   */
  | { readonly type: 'report-step-failure'; readonly reason: 'invoice_failed' | 'delivery_failed' };

export const initialOrderState = (): OrderState => ({
  status: 'new',
  orderId: '',
  customerId: '',
  currency: undefined,
  total: 0,
  requestedReason: undefined,
  cancellationReason: undefined,
});

export function evolve(state: OrderState, event: OrderEvent): OrderState {
  switch (event.type) {
    case 'order.placed':
      return {
        ...state,
        status: 'placed',
        orderId: event.data.orderId,
        customerId: event.data.customer.customerId,
        currency: event.data.currency,
        total: event.data.total,
      };
    case 'order.cancel-requested':
      return { ...state, status: 'cancellation_requested', requestedReason: event.data.reason };
    case 'order.confirmed':
      return { ...state, status: 'confirmed' };
    case 'order.cancelled':
      return { ...state, status: 'cancelled', cancellationReason: event.data.reason };
    default:
      return event satisfies never;
  }
}

const notFound = () => new DomainError(OrderingErrorCode.OrderNotFound, 'no such order');

/**
 * The lines and total of an order, or the rule it breaks: a total above the limit
 * (`ORDER_REJECTED`), or a total of 0 (`ORDER_TOTAL_ZERO`: charging nothing is not a sale, and the
 * PSP refuses it). Free items are fine in an order that costs something.
 */
export function priceOrder(items: readonly OrderItem[]): { lines: OrderLine[]; total: number } {
  let priced;
  try {
    priced = priceItems(items);
  } catch (error) {
    throw new DomainError(OrderingErrorCode.Rejected, (error as Error).message, { cause: error });
  }
  if (priced.total === 0) {
    throw new DomainError(OrderingErrorCode.ZeroTotal, 'the order total is 0: there is nothing to sell');
  }
  return priced;
}

export function decide(command: OrderCommand, state: OrderState, context: DecideContext): OrderEvent[] {
  const now = context.now.toISOString();
  if (command.type !== 'place' && state.status === 'new') throw notFound();
  switch (command.type) {
    case 'place': {
      if (state.status !== 'new') return [];
      const priced = priceOrder(command.items);
      return [
        {
          type: 'order.placed',
          data: {
            orderId: command.orderId,
            customer: command.customer,
            lines: priced.lines,
            currency: command.currency,
            total: priced.total,
            shippingAddress: command.shippingAddress,
            placedAt: now,
          },
        },
      ];
    }
    case 'confirm':
      // A cancellation that got in first wins; a confirmed order stays confirmed.
      if (state.status !== 'placed') return [];
      return [
        {
          type: 'order.confirmed',
          data: {
            orderId: state.orderId,
            paymentId: command.paymentId,
            invoiceNumber: command.invoiceNumber,
            courierId: command.courierId,
            confirmedAt: now,
          },
        },
      ];
    case 'request-cancel':
      if (command.customerId !== undefined && command.customerId !== state.customerId) throw notFound();
      switch (state.status) {
        case 'confirmed':
          throw new DomainError(
            OrderingErrorCode.CancelTooLate,
            'the order is confirmed: a courier is assigned',
          );
        case 'cancellation_requested':
        case 'cancelled':
          throw new DomainError(OrderingErrorCode.AlreadyCancelled, `the order is ${state.status} already`);
        case 'placed':
          if (command.courierAssigned) {
            throw new DomainError(OrderingErrorCode.CancelTooLate, 'a courier is assigned to the order');
          }
          return [cancelRequested(state, 'customer_request', now)];
        case 'new':
          throw notFound();
        default:
          return state.status satisfies never;
      }
    case 'report-no-courier':
      return state.status === 'placed' ? [cancelRequested(state, 'delivery_unavailable', now)] : [];
    case 'record-decline':
      // Nothing was charged, so nothing will be refunded: cancel now, also when a cancel was requested.
      return state.status === 'placed' || state.status === 'cancellation_requested'
        ? [cancelled(state, 'payment_declined', now)]
        : [];
    case 'record-refund':
      return state.status === 'placed' || state.status === 'cancellation_requested'
        ? [cancelled(state, command.reason, now, command.amount)]
        : [];
    case 'record-payment-failure':
      // Nothing was charged: cancel now, as for a decline.
      return state.status === 'placed' || state.status === 'cancellation_requested'
        ? [cancelled(state, 'payment_failed', now)]
        : [];
    case 'report-step-failure':
      // Also with a courier assigned: without its invoice or courier the order cannot be confirmed.
      return state.status === 'placed' ? [cancelRequested(state, command.reason, now)] : [];
    default:
      return command satisfies never;
  }
}

function cancelRequested(state: OrderState, reason: RefundReason, now: string): OrderEvent {
  return { type: 'order.cancel-requested', data: { orderId: state.orderId, reason, requestedAt: now } };
}

function cancelled(state: OrderState, reason: CancellationReason, now: string, refunded?: Money): OrderEvent {
  return {
    type: 'order.cancelled',
    data: { orderId: state.orderId, reason, ...(refunded && { refunded }), cancelledAt: now },
  };
}

/** The customer-facing status: the order's own lifecycle, `paid` once the charge is known. */
export function statusOf(state: OrderState, facts: { paymentId: string | null }): OrderStatus {
  switch (state.status) {
    case 'new':
    case 'placed':
      return facts.paymentId ? 'paid' : 'placed';
    case 'cancellation_requested':
    case 'confirmed':
    case 'cancelled':
      return state.status;
    default:
      return state.status satisfies never;
  }
}

/**
 * The aggregate's definition on `stream`, one subject per order under `subjectPrefix`
 * (`orders`, or `<namespace>.orders`).
 */
export function orderDefinition(
  stream: string,
  subjectPrefix: string,
): AggregateDefinition<OrderState, OrderCommand, OrderEvent> {
  return {
    name: 'order',
    stream,
    subjectPrefix,
    events: ORDER_EVENT_CONTRACTS,
    upcasters: ORDER_UPCASTERS,
    // Only order-storage appends to `orders.<id>`: anything else there is not the order's.
    producer: sourceOf('order-storage'),
    snapshotVersion: 1,
    initialState: initialOrderState,
    evolve,
    decide,
  };
}
