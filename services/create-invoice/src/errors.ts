import { MessagingError } from '@orderflow/messaging';

export const InvoiceErrorCode = {
  /** `payment.authorized` came before this service stored the order's `order.placed`: retried later. */
  OrderUnknown: 'INVOICE_ORDER_UNKNOWN',
  /** The PDF could not be stored in the object store: retried later. */
  PdfStore: 'INVOICE_PDF_STORE_FAILED',
} as const;

export class CreateInvoiceError extends MessagingError {
  override name = 'CreateInvoiceError';
}
