import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { renderCreditNotePdf } from '../src/adapters/pdf.ts';
import {
  creditNoteNumber,
  creditNotePdfName,
  decideCredit,
  decideIssue,
  draftCreditNote,
  draftInvoice,
  invoiceNumber,
  splitGross,
  vatRateFor,
} from '../src/domain/invoice.ts';

const order = {
  customer: { name: 'Ada', email: 'ada@example.test' },
  lines: [
    { sku: 'SKU-1', quantity: 2, unitPrice: 1190, lineTotal: 2380 },
    { sku: 'SKU-2', quantity: 1, unitPrice: 595, lineTotal: 595 },
  ],
  currency: 'EUR' as const,
  total: 2975,
  shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
  placedAt: '2026-03-01T10:00:00.000Z',
};

describe('invoices', () => {
  test('given a German order, then 19 % VAT is contained in the gross total', () => {
    const invoice = draftInvoice(
      'o-1',
      order,
      { year: 2026, sequence: 42 },
      new Date('2026-03-01T10:00:05Z'),
    );
    assert.equal(invoice.number, '2026-000042');
    assert.equal(invoice.total, 2975);
    assert.equal(invoice.vatRateBp, 1900);
    assert.equal(invoice.vat, 475);
    assert.equal(invoice.net, 2500);
  });

  test('given an unlisted country, then no VAT (export); the US has none', () => {
    assert.equal(vatRateFor('AQ'), 0);
    assert.equal(vatRateFor('US'), 0);
    assert.deepEqual(splitGross(1000, 0), { net: 1000, vat: 0 });
  });

  test('VAT is rounded to the minor unit and net + VAT is always the total', () => {
    for (const gross of [1, 99, 101, 12_345, 999_999]) {
      const { net, vat } = splitGross(gross, 2100);
      assert.equal(net + vat, gross);
    }
    assert.deepEqual(splitGross(100, 2000), { net: 83, vat: 17 });
  });

  test('numbers have the year and at least six digits', () => {
    assert.equal(invoiceNumber(2026, 1), '2026-000001');
    assert.equal(invoiceNumber(2026, 1_234_567), '2026-1234567');
  });

  test('deciding: an invoiced order stays as it is, a cancelled one is skipped, an unknown one waits', () => {
    assert.equal(decideIssue({ known: true, cancelled: true, invoiced: true }), 'already_issued');
    assert.equal(decideIssue({ known: true, cancelled: true, invoiced: false }), 'skip_cancelled');
    assert.equal(decideIssue({ known: false, cancelled: true, invoiced: false }), 'skip_cancelled');
    assert.equal(decideIssue({ known: false, cancelled: false, invoiced: false }), 'wait');
    assert.equal(decideIssue({ known: true, cancelled: false, invoiced: false }), 'issue');
  });
});

describe('credit notes', () => {
  const invoice = draftInvoice('o-1', order, { year: 2026, sequence: 42 }, new Date('2026-03-01T10:00:05Z'));
  const refund = { reason: 'delivery_unavailable' as const, refundId: 're_1' };

  test('given an invoice, then its credit note cancels it in full with a number of its own series', () => {
    const note = draftCreditNote(
      invoice,
      { year: 2027, sequence: 1 },
      new Date('2027-01-02T00:00:00Z'),
      refund,
    );
    assert.equal(note.number, 'CN-2027-000001');
    assert.equal(note.invoiceNumber, '2026-000042');
    assert.equal(note.invoiceIssuedAt, invoice.issuedAt);
    assert.deepEqual(
      [note.net, note.vat, note.total, note.vatRateBp],
      [invoice.net, invoice.vat, invoice.total, invoice.vatRateBp],
    );
    assert.deepEqual(note.lines, invoice.lines);
    assert.equal(note.reason, 'delivery_unavailable');
    assert.equal(note.refundId, 're_1');
    assert.equal(creditNoteNumber(2026, 1_234_567), 'CN-2026-1234567');
    assert.equal(creditNotePdfName(note.number), 'credit-note-CN-2027-000001.pdf');
  });

  test('deciding: an invoice not yet credited is credited, once; an order without invoice gets none', () => {
    assert.equal(decideCredit({ invoiced: true, credited: false }), 'credit');
    assert.equal(decideCredit({ invoiced: true, credited: true }), 'already_credited');
    assert.equal(decideCredit({ invoiced: false, credited: false }), 'not_invoiced');
  });

  test('the PDF is a PDF, and the same credit note renders to the same bytes', async () => {
    const note = draftCreditNote(
      invoice,
      { year: 2026, sequence: 7 },
      new Date('2026-03-02T00:00:00Z'),
      refund,
    );
    const [a, b] = await Promise.all([renderCreditNotePdf(note), renderCreditNotePdf(note)]);
    assert.equal(Buffer.from(a).subarray(0, 5).toString(), '%PDF-');
    assert.deepEqual(a, b);
  });

  test('the font metrics parsed once and shared render the same bytes as pdfkit parsing them itself', () => {
    // A fresh process, so that its first document is laid out with metrics pdfkit parsed on its own
    // and the later ones with the shared tables; text with kerned pairs and wrapped lines.
    const script = `
      const { renderInvoicePdf } = await import(${JSON.stringify(new URL('../src/adapters/pdf.ts', import.meta.url).href)});
      const { createHash } = await import('node:crypto');
      const invoice = ${JSON.stringify({ ...invoice, customer: { name: 'AVAWAY To Yo LT, Fjord & Wave '.repeat(8), email: 'a@b.test' } })};
      const hashes = [];
      for (let i = 0; i < 3; i++) hashes.push(createHash('sha256').update(await renderInvoicePdf(invoice)).digest('hex'));
      console.log(hashes.join(' '));
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    const [first, ...later] = out.trim().split(' ');
    assert.match(first ?? '', /^[0-9a-f]{64}$/);
    assert.deepEqual(later, [first, first]);
  });
});
