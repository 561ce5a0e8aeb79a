export { ObjectStorePdfArchive } from './adapters/object-store-pdfs.ts';
export type { PdfArchive, PdfLocation } from './adapters/object-store-pdfs.ts';
export { renderCreditNotePdf, renderInvoicePdf } from './adapters/pdf.ts';
export { invoiceMigrations, SqlInvoiceBook } from './adapters/sql-invoice-book.ts';
export type { CreditOutcome, DocumentKind, IssueOutcome } from './adapters/sql-invoice-book.ts';
export { createInvoiceConsumer, startCreateInvoice } from './app.ts';
export type { CreateInvoiceOptions } from './app.ts';
export { configFromEnv } from './config.ts';
export type { CreateInvoiceConfig } from './config.ts';
export {
  creditNoteNumber,
  creditNotePdfName,
  decideCredit,
  decideIssue,
  draftCreditNote,
  draftInvoice,
  invoiceNumber,
  invoiceYear,
  pdfName,
  splitGross,
  VAT_RATES_BP,
  vatRateFor,
} from './domain/invoice.ts';
export type {
  CreditDecision,
  CreditNoteDocument,
  InvoiceDocument,
  IssueDecision,
  OrderDetails,
} from './domain/invoice.ts';
export { CreateInvoiceError, InvoiceErrorCode } from './errors.ts';
