import { MessagingError, PermanentError } from '@orderflow/messaging';

export const EmailErrorCode = {
  /** Another replica holds the claim on this (key, kind): retried later. */
  Busy: 'MAIL_BUSY',
  /** No contact known for the order yet (`order.placed` not seen): retried later. */
  ContactUnknown: 'CONTACT_UNKNOWN',
  /** The invoice PDF is not (yet) in the object store: retried later. */
  AttachmentMissing: 'ATTACHMENT_MISSING',
  /** SMTP failed for a reason that may pass (connection, 4xx): retried later. */
  SmtpUnavailable: 'SMTP_UNAVAILABLE',
  /** The SMTP server refused the mail for good (5xx): dead-lettered. */
  SmtpRejected: 'SMTP_REJECTED',
} as const;

export class EmailNotifyError extends MessagingError {
  override name = 'EmailNotifyError';
}

export class SmtpRejectedError extends PermanentError {
  override name = 'SmtpRejectedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: EmailErrorCode.SmtpRejected });
  }
}
