import { MessagingError } from '@orderflow/messaging';

export const StatusErrorCode = {
  /** Compare-and-set lost too many times in a row: retried later with backoff. */
  Contended: 'STATUS_CONTENDED',
  /** A record in the bucket is not what this service wrote. */
  CorruptRecord: 'STATUS_RECORD_CORRUPT',
} as const;

export class OrderStatusError extends MessagingError {
  override name = 'OrderStatusError';
}
