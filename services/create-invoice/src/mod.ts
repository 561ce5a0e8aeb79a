export { ObjectStorePdfArchive } from './adapters/object-store-pdfs.ts';
export type { PdfArchive, PdfLocation } from './adapters/object-store-pdfs.ts';
export { renderInvoicePdf } from './adapters/pdf.ts';
export { invoiceMigrations, SqlInvoiceBook } from './adapters/sql-invoice-book.ts';
export type { IssueOutcome } from './adapters/sql-invoice-book.ts';
export { createInvoiceConsumer, startCreateInvoice } from './app.ts';
export type { CreateInvoiceOptions } from './app.ts';
export { configFromEnv } from './config.ts';
export type { CreateInvoiceConfig } from './config.ts';
export {
  decideIssue,
  draftInvoice,
  invoiceNumber,
  invoiceYear,
  pdfName,
  splitGross,
  VAT_RATES_BP,
  vatRateFor,
} from './domain/invoice.ts';
export type { InvoiceDocument, IssueDecision, OrderDetails } from './domain/invoice.ts';
export { ConfigError, CreateInvoiceError, InvoiceErrorCode } from './errors.ts';
