import PDFDocument from 'pdfkit';
import { formatMoney } from '@orderflow/contracts';
import type { InvoiceDocument } from '../domain/invoice.ts';

/** Renders an invoice as a one-page A4 PDF (pdfkit, built-in Helvetica). Same invoice → same layout. */
export function renderInvoicePdf(invoice: InvoiceDocument, seller = 'Orderflow GmbH'): Promise<Uint8Array> {
  const issued = new Date(invoice.issuedAt);
  const doc = new PDFDocument({
    size: 'A4',
    margin: 50,
    info: {
      Title: `Invoice ${invoice.number}`,
      Author: seller,
      CreationDate: issued,
      ModDate: issued,
    },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<Uint8Array>((resolve, reject) => {
    doc.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
    doc.on('error', reject);
  });
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
