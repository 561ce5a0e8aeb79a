/**
 * Stable error codes of the ordering domain. Endpoints answer with `EndpointError(status, code, …)`
 * using these; the gateway maps them once to problem+json. `ORDERING_ERROR_STATUS` is the status each
 * code travels with (HTTP semantics).
 */
export const OrderingErrorCode = {
  /** 404: no order with this id. */
  OrderNotFound: 'ORDER_NOT_FOUND',
  /** 404: no customer with this id (placing an order for an unknown customer). */
  CustomerNotFound: 'CUSTOMER_NOT_FOUND',
  /** 409: the e-mail address is registered already. */
  EmailTaken: 'CUSTOMER_EMAIL_TAKEN',
  /** 409: the idempotency key was used before with a different request body. */
  IdempotencyKeyReused: 'IDEMPOTENCY_KEY_REUSED',
  /** 409: cancel refused, a courier is assigned (or the order is confirmed). */
  CancelTooLate: 'ORDER_CANCEL_TOO_LATE',
  /** 409: cancel refused, the order is cancelled or being cancelled already. */
  AlreadyCancelled: 'ORDER_ALREADY_CANCELLED',
  /** 409: two writers raced on one order; the caller may retry. */
  Conflict: 'ORDER_CONCURRENT_UPDATE',
  /** 422: the order breaks a business rule (e.g. total above the limit). */
  Rejected: 'ORDER_REJECTED',
  /** 422: the order's total is 0: a charge of nothing is not a sale (the PSP refuses it). */
  ZeroTotal: 'ORDER_TOTAL_ZERO',
  /** 400: invalid subject token (an id that cannot be placed in a subject). */
  InvalidId: 'INVALID_ID',
  /** 410: the order's payment token is gone: its payment outcome is recorded (nothing to charge). */
  PaymentTokenGone: 'PAYMENT_TOKEN_GONE',
  /*
   * Dead-letter codes of order-storage's consumers: an event that cannot be true of the order
   * (see services/order-storage/src/domain/order.ts `admitFact`).
   */
  /** A set-once fact came again with another value (a second charge, invoice, courier or refund). */
  FactConflict: 'ORDER_FACT_CONFLICT',
  /** The authorized amount or currency is not the order's total. */
  PaymentMismatch: 'ORDER_PAYMENT_MISMATCH',
  /** A refund, invoice or courier for an order whose payment was declined: nothing was charged. */
  NotCharged: 'ORDER_NOT_CHARGED',
  /** The event contradicts what the order went through (e.g. authorized after declined). */
  ImpossibleTransition: 'ORDER_IMPOSSIBLE_TRANSITION',
} as const;
export type OrderingErrorCode = (typeof OrderingErrorCode)[keyof typeof OrderingErrorCode];

export const ORDERING_ERROR_STATUS: Readonly<Record<OrderingErrorCode, number>> = {
  ORDER_NOT_FOUND: 404,
  CUSTOMER_NOT_FOUND: 404,
  CUSTOMER_EMAIL_TAKEN: 409,
  IDEMPOTENCY_KEY_REUSED: 409,
  ORDER_CANCEL_TOO_LATE: 409,
  ORDER_ALREADY_CANCELLED: 409,
  ORDER_CONCURRENT_UPDATE: 409,
  ORDER_REJECTED: 422,
  ORDER_TOTAL_ZERO: 422,
  INVALID_ID: 400,
  PAYMENT_TOKEN_GONE: 410,
  ORDER_FACT_CONFLICT: 409,
  ORDER_PAYMENT_MISMATCH: 422,
  ORDER_NOT_CHARGED: 422,
  ORDER_IMPOSSIBLE_TRANSITION: 422,
};

/** A value that cannot be used where the contracts need it (e.g. an id with a `.` in a subject). */
export class ContractsError extends Error {
  override name = 'ContractsError';
  constructor(
    readonly code: OrderingErrorCode | 'INVALID_NAMESPACE' | 'UNKNOWN_EVENT',
    message: string,
  ) {
    super(message);
  }
}
