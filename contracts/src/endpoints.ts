import { defineCommand, defineEvent } from '@orderflow/messaging';
import { Type, type Static } from '@sinclair/typebox';
import {
  Address,
  AmountMinor,
  CancellationReason,
  Currency,
  CustomerId,
  Email,
  OrderId,
  OrderItem,
  OrderLine,
  OrderStatus,
  Timestamp,
} from './schemas.ts';

/*
 * Request and response contracts of the request-reply endpoints. Their subjects come from
 * `OrderingTopology.endpoints` (outside every stream's subjects). Errors are `EndpointError`s with a
 * code from `OrderingErrorCode`.
 */

const closed = { additionalProperties: false } as const;

/**
 * `customerId` on a request about one order: the customer the caller acts for. Given, the order must be
 * theirs, else the answer is 404 ORDER_NOT_FOUND, as for an order that does not exist (its existence is
 * not revealed). Absent: any order (operators).
 */
const OwnerId = CustomerId;

// ───────────────────────────── customer.register (order-storage) ─────────────────────────────

export const RegisterCustomer = defineCommand({
  name: 'customer.register',
  description: 'Create a customer. 409 CUSTOMER_EMAIL_TAKEN when the e-mail is registered already.',
  schema: Type.Object({ email: Email, name: Type.String({ minLength: 1, maxLength: 200 }) }, closed),
});
export const CustomerRegisteredReply = defineEvent({
  name: 'customer.register.reply',
  schema: Type.Object({ customerId: CustomerId }, closed),
});

// ───────────────────────────── customer.get (order-storage) ─────────────────────────────

export const GetCustomer = defineCommand({
  name: 'customer.get',
  description: 'One customer as registered. 404 CUSTOMER_NOT_FOUND.',
  schema: Type.Object({ customerId: CustomerId }, closed),
});
export const CustomerReply = defineEvent({
  name: 'customer.get.reply',
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

// ───────────────────────────── order.place (order-storage) ─────────────────────────────

export const PlaceOrder = defineCommand({
  name: 'order.place',
  description:
    'Place an order. Same idempotencyKey + same body → the same orderId; a different body → 409 IDEMPOTENCY_KEY_REUSED. ' +
    '404 CUSTOMER_NOT_FOUND for an unknown customer. A reply means order.placed is stored (never lost).',
  schema: Type.Object(
    {
      customerId: CustomerId,
      items: Type.Array(OrderItem, { minItems: 1, maxItems: 100 }),
      currency: Currency,
      shippingAddress: Address,
      payment: Type.Object({ token: Type.String({ minLength: 1, maxLength: 200 }) }, closed),
      idempotencyKey: Type.String({ minLength: 1, maxLength: 200 }),
    },
    closed,
  ),
});
export const PlaceOrderReply = defineEvent({
  name: 'order.place.reply',
  schema: Type.Object({ orderId: OrderId, status: OrderStatus }, closed),
});

// ───────────────────────────── order.cancel (order-storage) ─────────────────────────────

export const CancelOrder = defineCommand({
  name: 'order.cancel',
  description:
    'Ask to cancel an order (allowed until a courier is assigned). Accepted → order.cancel-requested is stored and ' +
    'refund/release follow. 404 ORDER_NOT_FOUND (also when `customerId` is given and the order is not theirs); ' +
    '409 ORDER_CANCEL_TOO_LATE or ORDER_ALREADY_CANCELLED.',
  schema: Type.Object({ orderId: OrderId, customerId: Type.Optional(OwnerId) }, closed),
});
export const CancelOrderReply = defineEvent({
  name: 'order.cancel.reply',
  schema: Type.Object({ orderId: OrderId, status: OrderStatus, accepted: Type.Literal(true) }, closed),
});

// ───────────────────────────── order.get-payment-token (order-storage) ─────────────────────────────

export const GetPaymentToken = defineCommand({
  name: 'order.get-payment-token',
  description:
    'The PSP token of an order, for payment-processor at charge time only (it never travels on a stream). ' +
    '404 ORDER_NOT_FOUND; 410 PAYMENT_TOKEN_GONE once the payment outcome is recorded (nothing left to charge).',
  schema: Type.Object({ orderId: OrderId }, closed),
});
export const PaymentTokenReply = defineEvent({
  name: 'order.get-payment-token.reply',
  schema: Type.Object({ orderId: OrderId, token: Type.String({ minLength: 1, maxLength: 200 }) }, closed),
});

// ───────────────────────────── order.get-status (order-status) ─────────────────────────────

export const GetOrderStatus = defineCommand({
  name: 'order.get-status',
  description: 'The full view of one order. 404 ORDER_NOT_FOUND.',
  schema: Type.Object({ orderId: OrderId }, closed),
});

/** The order as a customer sees it, assembled from every event of the order. */
export const OrderView = Type.Object(
  {
    orderId: OrderId,
    customerId: CustomerId,
    status: OrderStatus,
    lines: Type.Array(OrderLine),
    currency: Currency,
    total: AmountMinor,
    shippingAddress: Address,
    payment: Type.Union([
      Type.Null(),
      Type.Object(
        {
          status: Type.Union([
            Type.Literal('authorized'),
            Type.Literal('declined'),
            Type.Literal('refunded'),
          ]),
          paymentId: Type.Optional(Type.String()),
          declineCode: Type.Optional(Type.String()),
          refundId: Type.Optional(Type.String()),
        },
        closed,
      ),
    ]),
    invoiceNumber: Type.Union([Type.Null(), Type.String()]),
    /** Number of the credit note that cancelled the invoice (a refunded, invoiced order). */
    creditNoteNumber: Type.Union([Type.Null(), Type.String()]),
    courier: Type.Union([
      Type.Null(),
      Type.Object(
        {
          courierId: Type.String(),
          courierName: Type.Optional(Type.String()),
          released: Type.Boolean(),
        },
        closed,
      ),
    ]),
    cancellationReason: Type.Union([Type.Null(), CancellationReason]),
    placedAt: Timestamp,
    updatedAt: Timestamp,
    /** Number of events applied. */
    version: Type.Integer({ minimum: 1 }),
    /** Stream sequence (ORDERING stream) of the latest event applied to this view. */
    lastSequence: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  closed,
);
export type OrderView = Static<typeof OrderView>;

export const OrderStatusReply = defineEvent({ name: 'order.get-status.reply', schema: OrderView });

// ───────────────────────────── order.list (order-status) ─────────────────────────────

/** Largest page `order.list` answers. */
export const MAX_ORDER_PAGE = 100;

export const ListOrders = defineCommand({
  name: 'order.list',
  description:
    'A page of every order (operators: there is no owner filter), newest placed first, optionally only those in ' +
    '`status`. `offset` counts orders of the filtered list (default 0), `limit` is 1..100 (default 20). The list ' +
    'is read from the status projection at the time of the request: a later page may shift when orders are placed meanwhile.',
  schema: Type.Object(
    {
      status: Type.Optional(OrderStatus),
      offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_ORDER_PAGE })),
    },
    closed,
  ),
});
export const OrderPage = Type.Object(
  {
    orders: Type.Array(OrderView),
    /** Orders that match the filter, in all. */
    total: Type.Integer({ minimum: 0 }),
    offset: Type.Integer({ minimum: 0 }),
    limit: Type.Integer({ minimum: 1 }),
  },
  closed,
);
export const ListOrdersReply = defineEvent({ name: 'order.list.reply', schema: OrderPage });

// ───────────────────────────── order.get-history (order-storage) ─────────────────────────────

export const GetOrderHistory = defineCommand({
  name: 'order.get-history',
  description:
    "The order's whole history: every event of orders/payments/invoices/deliveries.<orderId>, in stream order, " +
    'each with the source of the service that produced it. 404 ORDER_NOT_FOUND (also when `customerId` is given and the order is not theirs).',
  schema: Type.Object({ orderId: OrderId, customerId: Type.Optional(OwnerId) }, closed),
});
export const OrderHistoryEntry = Type.Object(
  {
    /** Position in the order's history (1-based, stream order). */
    version: Type.Integer({ minimum: 1 }),
    /** `ce-type`, e.g. `order.placed.v2`. */
    type: Type.String(),
    time: Timestamp,
    data: Type.Unknown(),
    /** CloudEvents `id` of the stored event (optional: added compatibly). */
    id: Type.Optional(Type.String({ minLength: 1 })),
    /** CloudEvents `source` of the stored event: the producing service (optional: added compatibly). */
    source: Type.Optional(Type.String({ minLength: 1 })),
    /** CloudEvents `subject`: the order id (optional: added compatibly). */
    subject: Type.Optional(Type.String({ minLength: 1 })),
    /** W3C `traceparent` the event was published with, if it was traced (optional: added compatibly). */
    traceparent: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  closed,
);
export const OrderHistoryReply = defineEvent({
  name: 'order.get-history.reply',
  schema: Type.Object({ orderId: OrderId, events: Type.Array(OrderHistoryEntry) }, closed),
});
