import { MessagingError, PermanentError } from '@orderflow/messaging';

export const PaymentErrorCode = {
  /** The PSP did not answer in time, answered 5xx, or the key is in use: retried with backoff. */
  PspUnavailable: 'PSP_UNAVAILABLE',
  /** The PSP refused the request itself (400, key reused…): retrying cannot help, dead-lettered. */
  PspRejected: 'PSP_REJECTED',
  Config: 'INVALID_CONFIG',
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

export class ConfigError extends MessagingError {
  override name = 'ConfigError';
  constructor(readonly issues: readonly string[]) {
    super(PaymentErrorCode.Config, `invalid configuration: ${issues.join('; ')}`);
  }
}
