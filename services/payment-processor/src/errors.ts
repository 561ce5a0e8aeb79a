import { MessagingError, PermanentError } from '@orderflow/messaging';

export const PaymentErrorCode = {
  /** The PSP did not answer in time, answered 5xx, or the key is in use: retried with backoff. */
  PspUnavailable: 'PSP_UNAVAILABLE',
  /** The PSP refused the request itself (400, key reused…): retrying cannot help, dead-lettered. */
  PspRejected: 'PSP_REJECTED',
  /** A refund is due but the order's charge is not recorded yet (it may be in flight): retried. */
  ChargePending: 'CHARGE_PENDING',
} as const;
export type PaymentErrorCode = (typeof PaymentErrorCode)[keyof typeof PaymentErrorCode];

/** Transient PSP failure. Not a `PermanentError`, so the consumer runtime retries it with backoff. */
export class PspUnavailableError extends MessagingError {
  override name = 'PspUnavailableError';
  constructor(
    readonly operation: string,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(PaymentErrorCode.PspUnavailable, `PSP ${operation}: ${message}`, options);
  }
}

/**
 * A refund was asked for an order with no charge on record yet: the charge may still be running on
 * another replica. Not permanent, so the runtime retries with backoff until the charge is recorded
 * (then it is refunded) or the attempts run out (then the dead letter shows it).
 */
export class ChargePendingError extends MessagingError {
  override name = 'ChargePendingError';
  constructor(readonly orderId: string) {
    super(
      PaymentErrorCode.ChargePending,
      `no charge recorded yet for order ${orderId}; refund retried later`,
    );
  }
}

/** The PSP refused the request as such: the message is dead-lettered with this reason. */
export class PspRejectedError extends PermanentError {
  override name = 'PspRejectedError';
  constructor(
    readonly operation: string,
    readonly status: number,
    readonly pspCode: string,
    message: string,
  ) {
    super(`PSP ${operation} refused (${status} ${pspCode}): ${message}`, {
      code: PaymentErrorCode.PspRejected,
    });
  }
}
