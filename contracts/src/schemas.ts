import { Type, type Static } from '@sinclair/typebox';

/**
 * Building blocks shared by the ordering contracts. Every id that appears in a subject is a single
 * NATS token (letters, digits, `_`, `-`), so builders can place it in a subject as it is.
 */

/** Pattern of an id that may be used as one NATS subject token. */
export const ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';

export const OrderId = Type.String({ pattern: ID_PATTERN, description: 'Order id (UUID in practice)' });
export const CustomerId = Type.String({ pattern: ID_PATTERN, description: 'Customer id (UUID in practice)' });
/** RFC 3339 timestamp. */
export const Timestamp = Type.String({ minLength: 20, maxLength: 40, description: 'RFC 3339 date-time' });

/**
 * A saga step that failed permanently, as its owner reports it (`payment.failed`, `invoice.failed`,
 * `delivery.failed`): the event it could not handle was dead-lettered with this reason.
 */
export const StepFailure = Type.Object(
  {
    orderId: OrderId,
    /** ce-type of the event whose handling failed, e.g. `order.placed.v1`. */
    failedEvent: Type.String({ minLength: 1, maxLength: 200 }),
    /** Stable code of the failure, e.g. `PSP_REJECTED`. */
    code: Type.String({ minLength: 1, maxLength: 100 }),
    reason: Type.String({ maxLength: 500 }),
    failedAt: Timestamp,
  },
  { additionalProperties: false },
);

/** Currencies the shop accepts (ISO 4217). */
export const CURRENCIES = ['EUR', 'USD', 'GBP', 'CHF', 'SEK', 'DKK', 'NOK', 'PLN', 'CZK', 'JPY'] as const;
export type Currency = (typeof CURRENCIES)[number];
export const Currency = Type.Union(
  CURRENCIES.map((c) => Type.Literal(c)),
  { description: 'ISO 4217 currency code from the accepted list' },
);

/** Digits after the decimal point per currency: `amount` fields count units of 10^-n of the currency. */
export const CURRENCY_MINOR_UNITS: Readonly<Record<Currency, number>> = {
  EUR: 2,
  USD: 2,
  GBP: 2,
  CHF: 2,
  SEK: 2,
  DKK: 2,
  NOK: 2,
  PLN: 2,
  CZK: 2,
  JPY: 0,
};

/** Largest amount in minor units the system handles (keeps sums far below 2^53). */
export const MAX_AMOUNT_MINOR = 1_000_000_000;

/** An amount in integer minor units (cents for EUR), never a float. */
export const AmountMinor = Type.Integer({
  minimum: 0,
  maximum: MAX_AMOUNT_MINOR,
  description: 'Integer amount in minor units of the currency (e.g. cents)',
});

/** Money: an integer amount in minor units together with its currency. */
export const Money = Type.Object(
  { amount: AmountMinor, currency: Currency },
  { additionalProperties: false },
);
export type Money = Static<typeof Money>;

export const Sku = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
  description: 'Stock keeping unit',
});

/** One item as the customer orders it. */
export const OrderItem = Type.Object(
  {
    sku: Sku,
    quantity: Type.Integer({ minimum: 1, maximum: 1000 }),
    /** Price of one unit in minor units of the order's currency. */
    unitPrice: AmountMinor,
  },
  { additionalProperties: false },
);
export type OrderItem = Static<typeof OrderItem>;

/** An order line as recorded: the item plus its computed total (`quantity * unitPrice`). */
export const OrderLine = Type.Object(
  {
    sku: Sku,
    quantity: Type.Integer({ minimum: 1, maximum: 1000 }),
    unitPrice: AmountMinor,
    lineTotal: AmountMinor,
  },
  { additionalProperties: false },
);
export type OrderLine = Static<typeof OrderLine>;

export const Address = Type.Object(
  {
    line1: Type.String({ minLength: 1, maxLength: 200 }),
    city: Type.String({ minLength: 1, maxLength: 100 }),
    postalCode: Type.String({ minLength: 1, maxLength: 20 }),
    /** ISO 3166-1 alpha-2, upper case. */
    country: Type.String({ pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2 country code' }),
  },
  { additionalProperties: false },
);
export type Address = Static<typeof Address>;

/** A simple e-mail address check (a pattern, because TypeBox formats need a registry at run time). */
export const Email = Type.String({ pattern: '^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$', maxLength: 254 });

/** A customer as carried on events that need to address them (order-storage owns customers). */
export const CustomerRef = Type.Object(
  {
    customerId: CustomerId,
    email: Email,
    name: Type.String({ minLength: 1, maxLength: 200 }),
  },
  { additionalProperties: false },
);
export type CustomerRef = Static<typeof CustomerRef>;

/**
 * Why an order was cancelled. `*_failed`: a saga step failed permanently (its service dead-lettered
 * the order's event and published its `*.failed` outcome): `payment_failed` nothing was charged;
 * `invoice_failed` and `delivery_failed` after a refund of what was charged.
 */
export const CANCELLATION_REASONS = [
  'payment_declined',
  'delivery_unavailable',
  'customer_request',
  'payment_failed',
  'invoice_failed',
  'delivery_failed',
] as const;
export type CancellationReason = (typeof CANCELLATION_REASONS)[number];
export const CancellationReason = Type.Union(CANCELLATION_REASONS.map((r) => Type.Literal(r)));

/** Reasons that need the payment refunded (a declined payment has nothing to refund). */
export const REFUND_REASONS = [
  'delivery_unavailable',
  'customer_request',
  'invoice_failed',
  'delivery_failed',
] as const;
export type RefundReason = (typeof REFUND_REASONS)[number];
export const RefundReason = Type.Union(REFUND_REASONS.map((r) => Type.Literal(r)));

/**
 * Lifecycle of an order:
 * `placed` → `paid` (payment authorized) → `confirmed` (invoice created and courier assigned);
 * `placed` → `cancelled` (payment declined);
 * `placed | paid` → `cancellation_requested` (customer, or no courier) → `cancelled` (after the refund).
 * `confirmed` and `cancelled` are terminal.
 */
export const ORDER_STATUSES = ['placed', 'paid', 'confirmed', 'cancellation_requested', 'cancelled'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];
export const OrderStatus = Type.Union(ORDER_STATUSES.map((s) => Type.Literal(s)));

export const TERMINAL_STATUSES: readonly OrderStatus[] = ['confirmed', 'cancelled'];
