import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { composeMail, decideSend, KIND_HEADER } from '../src/domain/mails.ts';

const ada = { email: 'ada@example.test', name: 'Ada' };

describe('composing mails', () => {
  test('given an invoice, the mail names the number and the total in major units', () => {
    const mail = composeMail(
      { kind: 'invoice', orderId: 'o-1', invoiceNumber: '2026-000042', total: 3750, currency: 'EUR' },
      ada,
      'example.test',
    );
    assert.equal(mail.to, 'ada@example.test');
    assert.match(mail.subject, /2026-000042/);
    assert.match(mail.text, /37\.50 EUR/);
    assert.equal(mail.messageId, '<invoice.o-1@example.test>');
    assert.equal(mail.headers[KIND_HEADER], 'invoice');
  });

  test('given a cancellation after a refund, the mail says why and what is refunded', () => {
    const mail = composeMail(
      {
        kind: 'order_cancelled',
        orderId: 'o-1',
        reason: 'delivery_unavailable',
        refunded: { amount: 500, currency: 'USD' },
      },
      ada,
      'example.test',
    );
    assert.match(mail.text, /no courier was available/);
    assert.match(mail.text, /5\.00 USD/);
  });

  test('given a credit note, the mail names it, the invoice it cancels and the refund; and the invoice when attached', () => {
    const facts = {
      kind: 'credit_note',
      orderId: 'o-1',
      creditNoteNumber: 'CN-2026-000003',
      invoiceNumber: '2026-000042',
      total: 3750,
      currency: 'EUR',
      withInvoice: false,
    } as const;
    const mail = composeMail(facts, ada, 'example.test');
    assert.match(mail.subject, /Credit note CN-2026-000003 for order o-1/);
    assert.match(mail.text, /cancels invoice 2026-000042/);
    assert.match(mail.text, /37\.50 EUR/);
    assert.match(mail.text, /refunded/);
    assert.doesNotMatch(mail.text, /attached as well/);
    assert.equal(mail.messageId, '<credit_note.o-1@example.test>');
    assert.match(
      composeMail({ ...facts, withInvoice: true }, ada, 'x').text,
      /2026-000042 is attached as well/,
    );
  });

  test('a welcome mail is keyed by the customer', () => {
    assert.equal(composeMail({ kind: 'welcome', customerId: 'c-9' }, ada, 'x').key, 'c-9');
  });
});

describe('deciding to send', () => {
  const now = new Date('2026-01-01T00:01:00Z');

  test('given no record, then send', () => {
    assert.equal(decideSend(undefined, now, 60_000), 'send');
  });

  test('given a sent mail, then skip', () => {
    assert.equal(decideSend({ status: 'sent', claimedAt: now }, now, 60_000), 'skip');
  });

  test('given a fresh claim by another sender, then busy', () => {
    assert.equal(
      decideSend({ status: 'sending', claimedAt: new Date('2026-01-01T00:00:30Z') }, now, 60_000),
      'busy',
    );
  });

  test('given an expired claim (its sender crashed), then send', () => {
    assert.equal(
      decideSend({ status: 'sending', claimedAt: new Date('2026-01-01T00:00:00Z') }, now, 60_000),
      'send',
    );
  });
});
