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
};

/** A value that cannot be used where the contracts need it (e.g. an id with a `.` in a subject). */
export class ContractsError extends Error {
  override name = 'ContractsError';
  constructor(
    readonly code: OrderingErrorCode | 'INVALID_NAMESPACE',
    message: string,
  ) {
    super(message);
  }
}
