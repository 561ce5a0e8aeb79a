import PDFDocument from 'pdfkit';
import { formatMoney } from '@orderflow/contracts';
import type { CreditNoteDocument, InvoiceDocument } from '../domain/invoice.ts';

/** A one-page A4 document (pdfkit, built-in Helvetica) and the promise of its bytes. */
function a4(title: string, seller: string, issuedAt: string) {
  const issued = new Date(issuedAt);
  const doc = new PDFDocument({
    size: 'A4',
    margin: 50,
    info: { Title: title, Author: seller, CreationDate: issued, ModDate: issued },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<Uint8Array>((resolve, reject) => {
    doc.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
    doc.on('error', reject);
  });
  return { doc, done };
}

/** Renders an invoice as a one-page A4 PDF (pdfkit, built-in Helvetica). Same invoice → same layout. */
export function renderInvoicePdf(invoice: InvoiceDocument, seller = 'Orderflow GmbH'): Promise<Uint8Array> {
  const { doc, done } = a4(`Invoice ${invoice.number}`, seller, invoice.issuedAt);
  const money = (amount: number) => formatMoney(amount, invoice.currency);
  const a = invoice.billingAddress;

  doc.fontSize(20).text(`Invoice ${invoice.number}`);
  doc.moveDown(0.5).fontSize(10).text(seller);
  doc.text(`Date: ${invoice.issuedAt.slice(0, 10)}`);
  doc.text(`Order: ${invoice.orderId}`);
  doc.moveDown();
  doc.text('Bill to:');
  doc.text(invoice.customer.name);
  doc.text(a.line1);
  doc.text(`${a.postalCode} ${a.city}`);
  doc.text(a.country);
  doc.moveDown();
  for (const line of invoice.lines) {
    doc.text(`${line.quantity} x ${line.sku} @ ${money(line.unitPrice)} = ${money(line.lineTotal)}`);
  }
  doc.moveDown();
  doc.text(`Net: ${money(invoice.net)}`);
  doc.text(`VAT ${(invoice.vatRateBp / 100).toFixed(2)} %: ${money(invoice.vat)}`);
  doc.fontSize(12).text(`Total (paid): ${money(invoice.total)}`);
  doc.end();
  return done;
}

const REFUND_REASONS: Record<CreditNoteDocument['reason'], string> = {
  delivery_unavailable: 'no courier could deliver the order',
  customer_request: "cancelled at the customer's request",
  delivery_failed: 'the delivery could not be arranged',
  invoice_failed: 'the order could not be invoiced',
};

/**
 * Renders a credit note as a one-page A4 PDF: the invoice it cancels, the same lines and tax, and the
 * total credited (refunded to the card). Same credit note → same layout.
 */
export function renderCreditNotePdf(
  note: CreditNoteDocument,
  seller = 'Orderflow GmbH',
): Promise<Uint8Array> {
  const { doc, done } = a4(`Credit note ${note.number}`, seller, note.issuedAt);
  const money = (amount: number) => formatMoney(amount, note.currency);
  const a = note.billingAddress;

  doc.fontSize(20).text(`Credit note ${note.number}`);
  doc.moveDown(0.5).fontSize(10).text(seller);
  doc.text(`Date: ${note.issuedAt.slice(0, 10)}`);
  doc.text(`Order: ${note.orderId}`);
  doc.text(`Cancels invoice ${note.invoiceNumber} of ${note.invoiceIssuedAt.slice(0, 10)} in full`);
  doc.text(`Reason: ${REFUND_REASONS[note.reason]} (refund ${note.refundId})`);
  doc.moveDown();
  doc.text('Credited to:');
  doc.text(note.customer.name);
  doc.text(a.line1);
  doc.text(`${a.postalCode} ${a.city}`);
  doc.text(a.country);
  doc.moveDown();
  for (const line of note.lines) {
    doc.text(`${line.quantity} x ${line.sku} @ ${money(line.unitPrice)} = -${money(line.lineTotal)}`);
  }
  doc.moveDown();
  doc.text(`Net: -${money(note.net)}`);
  doc.text(`VAT ${(note.vatRateBp / 100).toFixed(2)} %: -${money(note.vat)}`);
  doc.fontSize(12).text(`Total credited (refunded to your card): -${money(note.total)}`);
  doc.end();
  return done;
}
