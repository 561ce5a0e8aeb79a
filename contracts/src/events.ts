import { defineEvent, type MessageContract } from '@orderflow/messaging';
import { Type, type Static } from '@sinclair/typebox';
import {
  Address,
  AmountMinor,
  CancellationReason,
  Currency,
  CustomerId,
  CustomerRef,
  Email,
  Money,
  OrderId,
  OrderLine,
  OrderStatus,
  RefundReason,
  StepFailure,
  Timestamp,
} from './schemas.ts';

/*
 * The ordering domain's events. Each is published on the subject its producer owns (see
 * `OrderingTopology.subjects`), with `ce-subject` = the order id (the customer id for customer events),
 * which is the ordering key consumers use. Payloads are closed objects (`additionalProperties: false`):
 * a new field is a new version.
 */

const closed = { additionalProperties: false } as const;

// ───────────────────────────── customers.<customerId> (order-storage) ─────────────────────────────

export const CustomerRegistered = defineEvent({
  name: 'customer.registered',
  description: 'A customer account was created.',
  schema: Type.Object(
    {
      customerId: CustomerId,
      email: Email,
      name: Type.String({ minLength: 1, maxLength: 200 }),
      registeredAt: Timestamp,
    },
    closed,
  ),
});

// ───────────────────────────── orders.<orderId> (order-storage: the Order aggregate's log) ─────────────

const orderPlacedFields = {
  orderId: OrderId,
  /** Contact for the mails and the invoice (email-notify, create-invoice). */
  customer: CustomerRef,
  lines: Type.Array(OrderLine, { minItems: 1, maxItems: 100 }),
  currency: Currency,
  /** Sum of `lineTotal`, in minor units of `currency`. */
  total: AmountMinor,
  /** Invoice address (create-invoice), courier country (assign-delivery), the customer's view (order-status). */
  shippingAddress: Address,
  placedAt: Timestamp,
};

/**
 * An order was accepted. No payment token: order-storage keeps it in its own store and gives it only to
 * payment-processor, at charge time (`order.get-payment-token`).
 */
export const OrderPlaced = defineEvent({
  name: 'order.placed',
  version: 2,
  description:
    'An order was accepted. Carries what downstream needs (customer contact, lines, totals, address); the payment token stays with order-storage.',
  schema: Type.Object(orderPlacedFields, closed),
});

/**
 * Version 1 carried the PSP token to every reader of the stream. Still read (orders placed before v2):
 * payment-processor charges such an order with its token; everyone else reads it as v2 (a superset).
 */
export const OrderPlacedV1 = defineEvent({
  name: 'order.placed',
  version: 1,
  description: 'Superseded by order.placed.v2 (no payment token). Read, never written.',
  schema: Type.Object(
    {
      ...orderPlacedFields,
      /** PSP card token (never card data). */
      payment: Type.Object({ token: Type.String({ minLength: 1, maxLength: 200 }) }, closed),
    },
    closed,
  ),
});

export const OrderCancelRequested = defineEvent({
  name: 'order.cancel-requested',
  description:
    'Cancellation of an order that may have been paid was accepted; compensation (refund, courier release) follows, then order.cancelled.',
  schema: Type.Object({ orderId: OrderId, reason: RefundReason, requestedAt: Timestamp }, closed),
});

export const OrderConfirmed = defineEvent({
  name: 'order.confirmed',
  description: 'Payment authorized, invoice created and courier assigned: the order will ship. Terminal.',
  schema: Type.Object(
    {
      orderId: OrderId,
      paymentId: Type.String({ minLength: 1 }),
      invoiceNumber: Type.String({ minLength: 1 }),
      courierId: Type.String({ minLength: 1 }),
      confirmedAt: Timestamp,
    },
    closed,
  ),
});

export const OrderCancelled = defineEvent({
  name: 'order.cancelled',
  description: 'The order was cancelled, after any refund. Terminal.',
  schema: Type.Object(
    {
      orderId: OrderId,
      reason: CancellationReason,
      /** Refunded amount, when a payment had been taken. */
      refunded: Type.Optional(Money),
      cancelledAt: Timestamp,
    },
    closed,
  ),
});

// ───────────────────────────── payments.<orderId> (payment-processor) ─────────────────────────────

export const PaymentAuthorized = defineEvent({
  name: 'payment.authorized',
  description: 'The PSP charged the order total (one charge per order: the order id is the idempotency key).',
  schema: Type.Object(
    {
      orderId: OrderId,
      /** The PSP's charge id. */
      paymentId: Type.String({ minLength: 1, maxLength: 100 }),
      amount: Money,
      authorizedAt: Timestamp,
    },
    closed,
  ),
});

export const PaymentDeclined = defineEvent({
  name: 'payment.declined',
  description: 'The PSP refused the charge. The order is cancelled with reason payment_declined.',
  schema: Type.Object(
    {
      orderId: OrderId,
      /** The PSP's decline code, e.g. `card_declined`. */
      code: Type.String({ minLength: 1, maxLength: 100 }),
      message: Type.String({ maxLength: 500 }),
      declinedAt: Timestamp,
    },
    closed,
  ),
});

export const PaymentRefunded = defineEvent({
  name: 'payment.refunded',
  description: 'The charge of a cancelled order was refunded (once per order).',
  schema: Type.Object(
    {
      orderId: OrderId,
      paymentId: Type.String({ minLength: 1, maxLength: 100 }),
      refundId: Type.String({ minLength: 1, maxLength: 100 }),
      amount: Money,
      reason: RefundReason,
      refundedAt: Timestamp,
    },
    closed,
  ),
});

export const PaymentFailed = defineEvent({
  name: 'payment.failed',
  description:
    'The charge of an order failed permanently (the PSP refused the request, or every attempt failed) and ' +
    'the PSP holds no succeeded charge for it: nothing was charged. The order is cancelled with reason payment_failed.',
  schema: StepFailure,
});

// ───────────────────────────── invoices.<orderId> (create-invoice) ─────────────────────────────

export const InvoiceCreated = defineEvent({
  name: 'invoice.created',
  description: 'An invoice with a gapless number per year was issued; its PDF is in the object store.',
  schema: Type.Object(
    {
      orderId: OrderId,
      /** `<year>-<sequence, 6 digits>`, e.g. `2026-000042`. */
      invoiceNumber: Type.String({ pattern: '^[0-9]{4}-[0-9]{6,}$' }),
      year: Type.Integer({ minimum: 2000, maximum: 9999 }),
      sequence: Type.Integer({ minimum: 1 }),
      total: Money,
      /** Where the PDF is: JetStream object store bucket and object name. */
      pdf: Type.Object(
        {
          bucket: Type.String({ minLength: 1 }),
          name: Type.String({ minLength: 1 }),
          size: Type.Integer({ minimum: 0 }),
        },
        closed,
      ),
      issuedAt: Timestamp,
    },
    closed,
  ),
});

export const InvoiceFailed = defineEvent({
  name: 'invoice.failed',
  description:
    'The order could not be invoiced (its event was dead-lettered by create-invoice). The order is ' +
    'cancelled with reason invoice_failed, after a refund of what was charged.',
  schema: StepFailure,
});

export const CreditNoteIssued = defineEvent({
  name: 'credit-note.issued',
  description:
    "The invoice of a refunded order was cancelled by a credit note with a gapless number per year (its own series); its PDF is in the object store. Once per order, after the order's invoice.created.",
  schema: Type.Object(
    {
      orderId: OrderId,
      /** `CN-<year>-<sequence, 6 digits>`, e.g. `CN-2026-000007`. */
      creditNoteNumber: Type.String({ pattern: '^CN-[0-9]{4}-[0-9]{6,}$' }),
      year: Type.Integer({ minimum: 2000, maximum: 9999 }),
      sequence: Type.Integer({ minimum: 1 }),
      /** The invoice this credit note cancels. */
      invoiceNumber: Type.String({ pattern: '^[0-9]{4}-[0-9]{6,}$' }),
      /** Amount credited: the invoice's total. */
      total: Money,
      reason: RefundReason,
      /** The PSP's refund id (`payment.refunded`). */
      refundId: Type.String({ minLength: 1, maxLength: 100 }),
      /** Where the PDF is: JetStream object store bucket and object name. */
      pdf: Type.Object(
        {
          bucket: Type.String({ minLength: 1 }),
          name: Type.String({ minLength: 1 }),
          size: Type.Integer({ minimum: 0 }),
        },
        closed,
      ),
      issuedAt: Timestamp,
    },
    closed,
  ),
});

// ───────────────────────────── deliveries.<orderId> (assign-delivery) ─────────────────────────────

export const DeliveryAssigned = defineEvent({
  name: 'delivery.assigned',
  description: 'A courier from the pool was reserved for the order (one courier per order).',
  schema: Type.Object(
    {
      orderId: OrderId,
      courierId: Type.String({ minLength: 1, maxLength: 100 }),
      courierName: Type.String({ minLength: 1, maxLength: 200 }),
      assignedAt: Timestamp,
    },
    closed,
  ),
});

export const DeliveryUnavailable = defineEvent({
  name: 'delivery.unavailable',
  description: 'No courier had capacity; the order is cancelled after its payment is refunded.',
  schema: Type.Object(
    { orderId: OrderId, reason: Type.String({ minLength: 1, maxLength: 500 }), at: Timestamp },
    closed,
  ),
});

export const DeliveryReleased = defineEvent({
  name: 'delivery.released',
  description: "The courier's capacity was given back because the order was cancelled.",
  schema: Type.Object(
    { orderId: OrderId, courierId: Type.String({ minLength: 1, maxLength: 100 }), releasedAt: Timestamp },
    closed,
  ),
});

export const DeliveryFailed = defineEvent({
  name: 'delivery.failed',
  description:
    'No courier could be assigned because handling the order failed (its event was dead-lettered by ' +
    'assign-delivery). The order is cancelled with reason delivery_failed, after a refund of what was charged.',
  schema: StepFailure,
});

// ───────────────────────────── notifications (core NATS fan-out, not stored) ─────────────────────────

export const OrderStatusChanged = defineEvent({
  name: 'order.status-changed',
  description:
    'Best-effort live notification from order-status (not persisted): the status of an order changed.',
  schema: Type.Object(
    {
      orderId: OrderId,
      /** The order's customer: the gateway streams a customer only their own orders' changes. */
      customerId: CustomerId,
      status: OrderStatus,
      previousStatus: Type.Optional(OrderStatus),
      /** `ce-type` of the event that caused the change. */
      cause: Type.String({ minLength: 1 }),
      /** Number of events applied to this order so far (lets a live view drop stale notifications). */
      version: Type.Integer({ minimum: 1 }),
      changedAt: Timestamp,
    },
    closed,
  ),
});

// ───────────────────────────── unions ─────────────────────────────

/** Events of the Order aggregate, in `orders.<orderId>`. */
export const OrderEvents = [OrderPlaced, OrderCancelRequested, OrderConfirmed, OrderCancelled] as const;
export const CustomerEvents = [CustomerRegistered] as const;
export const PaymentEvents = [PaymentAuthorized, PaymentDeclined, PaymentRefunded, PaymentFailed] as const;
export const InvoiceEvents = [InvoiceCreated, CreditNoteIssued, InvoiceFailed] as const;
export const DeliveryEvents = [
  DeliveryAssigned,
  DeliveryUnavailable,
  DeliveryReleased,
  DeliveryFailed,
] as const;

/** Older versions still read from the stream (never written). */
export const LegacyOrderingEvents = [OrderPlacedV1] as const;

/** Every event stored in the ORDERING stream (not the notification), in its current version. */
export const OrderingEvents = [
  ...CustomerEvents,
  ...OrderEvents,
  ...PaymentEvents,
  ...InvoiceEvents,
  ...DeliveryEvents,
] as const satisfies readonly MessageContract[];

/** `{ type, data }` discriminated union of the stored events, keyed by contract name. */
export type OrderingEvent = {
  [K in (typeof OrderingEvents)[number] as K['name']]: {
    readonly type: K['name'];
    readonly data: Static<K['schema']>;
  };
}[(typeof OrderingEvents)[number]['name']];

export type OrderingEventName = OrderingEvent['type'];
