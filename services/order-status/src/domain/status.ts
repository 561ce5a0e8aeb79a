import type {
  Address,
  CancellationReason,
  Currency,
  OrderingEvent,
  OrderLine,
  OrderStatus,
  OrderView,
  RefundReason,
} from '@orderflow/contracts';

/*
 * The order-status projection as pure functions. An order's record keeps, next to the view, the few
 * facts each applied event contributed, keyed by the event's stream sequence. The view is always the
 * fold of those facts in sequence order, so applying an event is:
 * - idempotent: a sequence already in the record changes nothing (redelivery, a second replica);
 * - order-independent: an event that arrives after a later one (two replicas handle two events of one
 *   order at once; per-key order only holds within a process) is slotted in by its sequence and the
 *   view is folded again, instead of being dropped or overwriting newer state.
 * On a broker without stream sequences (RabbitMQ: every sequence is 0) the event's id (`ce-id`) is its
 * key and its time (`ce-time`) its place in the fold: the producers' clocks order an order's events,
 * which are causally chained (each step is published after the one it reacts to was handled).
 */

/** What one event says about an order (only what the view needs; no contact data, no card token). */
export type Fact =
  | {
      kind: 'placed';
      customerId: string;
      lines: OrderLine[];
      currency: Currency;
      total: number;
      shippingAddress: Address;
      placedAt: string;
    }
  | { kind: 'payment_authorized'; paymentId: string }
  | { kind: 'payment_declined'; code: string }
  | { kind: 'payment_refunded'; paymentId: string; refundId: string }
  | { kind: 'invoice_created'; invoiceNumber: string }
  | { kind: 'credit_note_issued'; creditNoteNumber: string }
  | { kind: 'delivery_assigned'; courierId: string; courierName: string }
  | { kind: 'delivery_unavailable' }
  | { kind: 'delivery_released'; courierId: string }
  | { kind: 'step_failed'; code: string }
  | { kind: 'cancel_requested'; reason: RefundReason }
  | { kind: 'confirmed'; paymentId: string; invoiceNumber: string; courierId: string }
  | { kind: 'cancelled'; reason: CancellationReason };

/** A fact as applied: the event's stream sequence, `ce-id`, `ce-type` and `ce-time`. */
export interface AppliedFact {
  /** 0 on a broker without stream sequences. */
  readonly seq: number;
  /** `ce-id` (absent in the records of versions that did not keep it, all with sequences). */
  readonly id?: string;
  readonly type: string;
  readonly at: string;
  readonly fact: Fact;
}

/** What the KV bucket holds per order. `view` is `null` until `order.placed` was applied. */
export interface StatusRecord {
  readonly facts: readonly AppliedFact[];
  readonly view: OrderView | null;
}

/** The order an event is about and its fact; `undefined` for events that are not about an order. */
export function factOf(event: OrderingEvent): { orderId: string; fact: Fact } | undefined {
  switch (event.type) {
    case 'customer.registered':
      return undefined;
    case 'order.placed': {
      const d = event.data;
      return {
        orderId: d.orderId,
        fact: {
          kind: 'placed',
          customerId: d.customer.customerId,
          lines: d.lines,
          currency: d.currency,
          total: d.total,
          shippingAddress: d.shippingAddress,
          placedAt: d.placedAt,
        },
      };
    }
    case 'order.cancel-requested':
      return { orderId: event.data.orderId, fact: { kind: 'cancel_requested', reason: event.data.reason } };
    case 'order.confirmed': {
      const d = event.data;
      return {
        orderId: d.orderId,
        fact: {
          kind: 'confirmed',
          paymentId: d.paymentId,
          invoiceNumber: d.invoiceNumber,
          courierId: d.courierId,
        },
      };
    }
    case 'order.cancelled':
      return { orderId: event.data.orderId, fact: { kind: 'cancelled', reason: event.data.reason } };
    case 'payment.authorized':
      return {
        orderId: event.data.orderId,
        fact: { kind: 'payment_authorized', paymentId: event.data.paymentId },
      };
    case 'payment.declined':
      return { orderId: event.data.orderId, fact: { kind: 'payment_declined', code: event.data.code } };
    case 'payment.refunded':
      return {
        orderId: event.data.orderId,
        fact: { kind: 'payment_refunded', paymentId: event.data.paymentId, refundId: event.data.refundId },
      };
    case 'invoice.created':
      return {
        orderId: event.data.orderId,
        fact: { kind: 'invoice_created', invoiceNumber: event.data.invoiceNumber },
      };
    case 'credit-note.issued':
      return {
        orderId: event.data.orderId,
        fact: { kind: 'credit_note_issued', creditNoteNumber: event.data.creditNoteNumber },
      };
    case 'delivery.assigned':
      return {
        orderId: event.data.orderId,
        fact: {
          kind: 'delivery_assigned',
          courierId: event.data.courierId,
          courierName: event.data.courierName,
        },
      };
    case 'delivery.unavailable':
      return { orderId: event.data.orderId, fact: { kind: 'delivery_unavailable' } };
    case 'delivery.released':
      return {
        orderId: event.data.orderId,
        fact: { kind: 'delivery_released', courierId: event.data.courierId },
      };
    case 'payment.failed':
    case 'invoice.failed':
    case 'delivery.failed':
      return { orderId: event.data.orderId, fact: { kind: 'step_failed', code: event.data.code } };
    default:
      return event satisfies never;
  }
}

const TERMINAL: ReadonlySet<OrderStatus> = new Set(['confirmed', 'cancelled']);

type Draft = { -readonly [K in keyof OrderView]: OrderView[K] };

/** Changes `view` by one fact (other than `placed`). Statuses never leave `confirmed` or `cancelled`. */
function evolve(view: Draft, fact: Exclude<Fact, { kind: 'placed' }>): void {
  switch (fact.kind) {
    case 'payment_authorized':
      // Replicas of payment-processor publish independently: a refund can be stored before the
      // authorization it undoes, and it stays the payment's last word.
      if (view.payment?.status !== 'refunded')
        view.payment = { status: 'authorized', paymentId: fact.paymentId };
      if (view.status === 'placed') view.status = 'paid';
      return;
    case 'payment_declined':
      // The status follows with order.cancelled{payment_declined} from order-storage.
      view.payment = { status: 'declined', declineCode: fact.code };
      return;
    case 'payment_refunded':
      view.payment = { status: 'refunded', paymentId: fact.paymentId, refundId: fact.refundId };
      return;
    case 'invoice_created':
      view.invoiceNumber = fact.invoiceNumber;
      return;
    case 'credit_note_issued':
      view.creditNoteNumber = fact.creditNoteNumber;
      return;
    case 'delivery_assigned':
      // An assignment is decided once per order, and its event is published again on every delivery
      // of the authorization: one that failed to publish can be stored after the release it precedes
      // (assign-delivery handled the cancellation meanwhile). A release stays the courier's last word.
      view.courier = {
        courierId: fact.courierId,
        courierName: fact.courierName,
        released: view.courier?.courierId === fact.courierId && view.courier.released,
      };
      return;
    case 'delivery_unavailable':
      // No courier: order-storage cancels after the refund; until then the cancellation is under way.
      if (!TERMINAL.has(view.status)) {
        view.status = 'cancellation_requested';
        view.cancellationReason = 'delivery_unavailable';
      }
      return;
    case 'delivery_released':
      view.courier = view.courier
        ? { ...view.courier, released: true }
        : { courierId: fact.courierId, released: true };
      return;
    case 'step_failed':
      // order-storage decides: order.cancel-requested or order.cancelled follows with the reason.
      return;
    case 'cancel_requested':
      if (!TERMINAL.has(view.status)) {
        view.status = 'cancellation_requested';
        view.cancellationReason = fact.reason;
      }
      return;
    case 'confirmed':
      if (view.status !== 'cancelled') view.status = 'confirmed';
      view.invoiceNumber ??= fact.invoiceNumber;
      view.courier ??= { courierId: fact.courierId, released: false };
      view.payment ??= { status: 'authorized', paymentId: fact.paymentId };
      return;
    case 'cancelled':
      view.status = 'cancelled';
      view.cancellationReason = fact.reason;
      return;
    default:
      return fact satisfies never;
  }
}

/** The view of an order from its facts (any order; folded by sequence). `null` without `placed`. */
export function project(orderId: string, facts: readonly AppliedFact[]): OrderView | null {
  const sorted = [...facts].sort(byPosition);
  const placed = sorted.find((f) => f.fact.kind === 'placed');
  if (!placed || placed.fact.kind !== 'placed') return null;
  const last = sorted[sorted.length - 1] ?? placed;
  const p = placed.fact;
  const view: Draft = {
    orderId,
    customerId: p.customerId,
    status: 'placed',
    lines: p.lines,
    currency: p.currency,
    total: p.total,
    shippingAddress: p.shippingAddress,
    payment: null,
    invoiceNumber: null,
    creditNoteNumber: null,
    courier: null,
    cancellationReason: null,
    placedAt: p.placedAt,
    updatedAt: last.at,
    version: sorted.length,
    ...(last.seq > 0 && { lastSequence: last.seq }),
  };
  for (const applied of sorted) {
    if (applied.fact.kind !== 'placed') evolve(view, applied.fact);
  }
  return view;
}

/** Outcome of applying one event to an order's record. */
export type Applied =
  | { readonly changed: false }
  | { readonly changed: true; readonly record: StatusRecord; readonly previous: OrderView | null };

/** Fold order: by stream sequence; without sequences (all 0) by time, ties in arrival order. */
function byPosition(a: AppliedFact, b: AppliedFact): number {
  return a.seq - b.seq || a.at.localeCompare(b.at);
}

/** Whether two applied facts are the same event: the same sequence, or without sequences the same id. */
function sameEvent(a: AppliedFact, b: AppliedFact): boolean {
  return b.seq > 0 ? a.seq === b.seq : a.id !== undefined && a.id === b.id;
}

/**
 * Applies a fact to the record of `orderId` (`undefined` when there is none yet). An event that is
 * already in the record (its sequence; without sequences, its id) changes nothing.
 */
export function applyFact(orderId: string, record: StatusRecord | undefined, applied: AppliedFact): Applied {
  const facts = record?.facts ?? [];
  if (facts.some((f) => sameEvent(f, applied))) return { changed: false };
  const next = [...facts, applied].sort(byPosition);
  return {
    changed: true,
    previous: record?.view ?? null,
    record: { facts: next, view: project(orderId, next) },
  };
}
