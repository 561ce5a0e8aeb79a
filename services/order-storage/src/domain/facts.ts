import { OrderingErrorCode, type Money, type RefundReason } from '@orderflow/contracts';
import { DomainError } from '@orderflow/eventstore';
import type { OrderState } from './order.ts';

/** What order-storage learned about an order from the services that own those facts. */
export interface OrderFacts {
  readonly orderId: string;
  readonly paymentId: string | null;
  readonly declined: boolean;
  readonly refundId: string | null;
  readonly invoiceNumber: string | null;
  /** The credit note that cancelled the invoice (the order was refunded). */
  readonly creditNoteNumber: string | null;
  readonly courierId: string | null;
  readonly courierReleased: boolean;
  readonly deliveryUnavailable: boolean;
}

/** A fact to record; each is set once (recording it again writes the same value). */
export type OrderFact =
  | { readonly kind: 'payment'; readonly paymentId: string }
  | { readonly kind: 'declined' }
  | { readonly kind: 'refund'; readonly refundId: string }
  | { readonly kind: 'invoice'; readonly invoiceNumber: string }
  | { readonly kind: 'credit-note'; readonly creditNoteNumber: string }
  | { readonly kind: 'courier'; readonly courierId: string }
  | { readonly kind: 'courier-released' }
  | { readonly kind: 'delivery-unavailable' };

/** An event of another service about an order, as far as {@link admitFact} judges it. */
export type ReportedFact =
  | { readonly kind: 'payment'; readonly paymentId: string; readonly amount: Money }
  | { readonly kind: 'declined' }
  | {
      readonly kind: 'refund';
      readonly refundId: string;
      readonly paymentId: string;
      readonly reason: RefundReason;
    }
  | { readonly kind: 'invoice'; readonly invoiceNumber: string }
  | { readonly kind: 'credit-note'; readonly creditNoteNumber: string }
  | { readonly kind: 'courier'; readonly courierId: string }
  | { readonly kind: 'courier-released'; readonly courierId: string }
  | { readonly kind: 'delivery-unavailable' };

/** The set-once fact a reported one is stored as. */
export function storedFact(fact: ReportedFact): OrderFact {
  switch (fact.kind) {
    case 'payment':
      return { kind: 'payment', paymentId: fact.paymentId };
    case 'refund':
      return { kind: 'refund', refundId: fact.refundId };
    case 'invoice':
      return { kind: 'invoice', invoiceNumber: fact.invoiceNumber };
    case 'courier':
      return { kind: 'courier', courierId: fact.courierId };
    case 'courier-released':
      return { kind: 'courier-released' };
    case 'credit-note':
    case 'declined':
    case 'delivery-unavailable':
      return fact;
    default:
      return fact satisfies never;
  }
}

const reject = (code: OrderingErrorCode, message: string): never => {
  throw new DomainError(code, message);
};
const conflict = (what: string, known: string, reported: string): never =>
  reject(OrderingErrorCode.FactConflict, `${what} ${known} is recorded; the event reports ${reported}`);

/**
 * Whether {@link admitFact}'s verdict on a fact of this kind depends on the order's current status
 * beyond its having been placed. For the kinds where it does not (an invoice, a courier, no courier),
 * the verdict reads only the recorded facts and whether the order exists; an order never returns to
 * `new`, so any state of the order seen since it was placed gives the verdict its current state gives.
 */
export function verdictNeedsCurrentStatus(kind: ReportedFact['kind']): boolean {
  switch (kind) {
    case 'invoice':
    case 'courier':
    case 'delivery-unavailable':
      return false;
    case 'payment':
    case 'declined':
    case 'refund':
    case 'credit-note':
    case 'courier-released':
      return true;
    default:
      return kind satisfies never;
  }
}

/**
 * Whether an event another service reports about an order can be true, given the order's own state
 * and the facts recorded so far. Returns normally when it can — a repeat of a recorded fact too (a
 * redelivery must finish what the first delivery started) — and throws a {@link DomainError} with a
 * stable code when it cannot; the consumer dead-letters such an event with that code.
 *
 * Facts of different services reach order-storage through different consumers, so their order is not
 * the flow's order: an invoice or a courier may come before the payment, a refund before the
 * authorization it undoes (two payment-processor replicas), a courier after the cancellation it raced
 * (assign-delivery releases it). Those are admitted. What no interleaving explains is refused:
 * - any fact about an order that was never placed: `ORDER_NOT_FOUND`;
 * - a second value of a set-once fact (another charge, invoice, courier, refund): `ORDER_FACT_CONFLICT`;
 * - an authorization for another amount or currency than the order's total: `ORDER_PAYMENT_MISMATCH`;
 * - a refund, invoice or courier of an order whose payment was declined: `ORDER_NOT_CHARGED`;
 * - authorized after declined (or the reverse), a declined, refunded or released confirmed order, a
 *   customer refund nobody requested, no courier after a courier: `ORDER_IMPOSSIBLE_TRANSITION`.
 */
export function admitFact(state: OrderState, known: OrderFacts | undefined, fact: ReportedFact): void {
  if (state.status === 'new') reject(OrderingErrorCode.OrderNotFound, 'no such order');
  const k: OrderFacts = known ?? {
    orderId: state.orderId,
    paymentId: null,
    declined: false,
    refundId: null,
    invoiceNumber: null,
    creditNoteNumber: null,
    courierId: null,
    courierReleased: false,
    deliveryUnavailable: false,
  };
  const impossible = (message: string): never => reject(OrderingErrorCode.ImpossibleTransition, message);
  const notCharged = (what: string): never =>
    reject(OrderingErrorCode.NotCharged, `${what} for an order whose payment was declined`);
  switch (fact.kind) {
    case 'payment':
      if (k.paymentId !== null && k.paymentId !== fact.paymentId) {
        conflict('charge', k.paymentId, fact.paymentId);
      }
      if (k.declined) impossible('payment authorized after it was declined');
      if (fact.amount.amount !== state.total || fact.amount.currency !== state.currency) {
        reject(
          OrderingErrorCode.PaymentMismatch,
          `authorized ${fact.amount.amount} ${fact.amount.currency}, the order's total is ${state.total} ${state.currency}`,
        );
      }
      if (state.status === 'cancelled' && k.refundId === null && k.paymentId === null) {
        impossible('payment authorized for a cancelled order that was never refunded');
      }
      return;
    case 'declined':
      if (k.declined) return;
      if (k.paymentId !== null) impossible('payment declined after it was authorized');
      if (k.refundId !== null) impossible('payment declined after it was refunded');
      if (state.status === 'confirmed') impossible('payment declined for a confirmed order');
      return;
    case 'refund':
      if (k.refundId !== null && k.refundId !== fact.refundId) conflict('refund', k.refundId, fact.refundId);
      if (k.declined) notCharged('a refund');
      if (k.paymentId !== null && k.paymentId !== fact.paymentId) {
        conflict('charge', k.paymentId, `a refund of ${fact.paymentId}`);
      }
      if (state.status === 'confirmed') impossible('a refund for a confirmed order');
      if (state.status === 'placed' && fact.reason === 'customer_request' && k.refundId === null) {
        impossible('a customer refund the customer never requested');
      }
      return;
    case 'invoice':
      if (k.invoiceNumber !== null && k.invoiceNumber !== fact.invoiceNumber) {
        conflict('invoice', k.invoiceNumber, fact.invoiceNumber);
      }
      if (k.declined) notCharged('an invoice');
      return;
    case 'credit-note':
      if (k.creditNoteNumber !== null && k.creditNoteNumber !== fact.creditNoteNumber) {
        conflict('credit note', k.creditNoteNumber, fact.creditNoteNumber);
      }
      if (k.declined) notCharged('a credit note');
      if (state.status === 'confirmed') impossible('a credit note for a confirmed order');
      return;
    case 'courier':
      if (k.courierId !== null && k.courierId !== fact.courierId) {
        conflict('courier', k.courierId, fact.courierId);
      }
      if (k.declined) notCharged('a courier');
      if (k.deliveryUnavailable) impossible('a courier assigned after none was available');
      return;
    case 'delivery-unavailable':
      if (k.courierId !== null) impossible('no courier available after one was assigned');
      if (k.declined) notCharged('a delivery');
      return;
    case 'courier-released':
      if (k.courierId !== null && k.courierId !== fact.courierId) {
        conflict('courier', k.courierId, `a release of ${fact.courierId}`);
      }
      if (state.status === 'confirmed') impossible('the courier of a confirmed order released');
      return;
    default:
      return fact satisfies never;
  }
}
