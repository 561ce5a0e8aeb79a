import PDFDocument from 'pdfkit';
import { formatMoney } from '@orderflow/contracts';
import type { CreditNoteDocument, InvoiceDocument } from '../domain/invoice.ts';

/** What pdfkit's AFM parser fills in on the font metrics object it is called on. */
interface AfmMetrics {
  attributes: unknown;
  glyphWidths: unknown;
  boundingBoxes: unknown;
  kernPairs: unknown;
}
type AfmParse = (this: AfmMetrics, contents: string) => void;

let afmParseShared = false;

/**
 * pdfkit reads and parses the standard font's AFM metrics file (Helvetica, ≈ 2.5 ms of CPU) anew in
 * every document, and the parsed tables are only ever read afterwards. After the first document, the
 * AFM parser of pdfkit's font class is wrapped so that the same file contents are parsed once per
 * process and the tables shared by every later document; each document still gets its own font
 * object and renders exactly as before (byte-identical output, unit-tested). The class is reached
 * through the document's current font because pdfkit does not export it; if its shape ever changes,
 * nothing is wrapped and pdfkit parses as it does by itself.
 */
function shareAfmParse(doc: PDFKit.PDFDocument): void {
  afmParseShared = true;
  const metrics = (doc as unknown as { _font?: { font?: object } })._font?.font;
  const proto = metrics === undefined ? undefined : (Object.getPrototypeOf(metrics) as { parse?: unknown });
  if (typeof proto?.parse !== 'function') return;
  const parse = proto.parse as AfmParse;
  const parsed = new Map<string, AfmMetrics>();
  proto.parse = function sharedParse(this: AfmMetrics, contents: string) {
    const known = parsed.get(contents);
    if (known !== undefined) {
      this.attributes = known.attributes;
      this.glyphWidths = known.glyphWidths;
      this.boundingBoxes = known.boundingBoxes;
      this.kernPairs = known.kernPairs;
      return;
    }
    parse.call(this, contents);
    parsed.set(contents, {
      attributes: this.attributes,
      glyphWidths: this.glyphWidths,
      boundingBoxes: this.boundingBoxes,
      kernPairs: this.kernPairs,
    });
  } satisfies AfmParse;
}

/** A one-page A4 document (pdfkit, built-in Helvetica) and the promise of its bytes. */
function a4(title: string, seller: string, issuedAt: string) {
  const issued = new Date(issuedAt);
  const doc = new PDFDocument({
    size: 'A4',
    margin: 50,
    info: { Title: title, Author: seller, CreationDate: issued, ModDate: issued },
  });
  if (!afmParseShared) shareAfmParse(doc);
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
