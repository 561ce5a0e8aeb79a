import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { OrderView } from '@orderflow/contracts';
import type { HistoryEvent } from '../api.ts';
import { checkInvariants, type Invariant, type Observations } from './invariants.ts';
import type { DrivenOrder } from './load.ts';

// Given/when/then over what a chaos run observes (histories, and the books): a consistent run passes,
// each defect is named.

const at = '2026-01-01T00:00:00.000Z';
const SOURCE = {
  order: 'orderflow/order-storage',
  payment: 'orderflow/payment-processor',
  invoice: 'orderflow/create-invoice',
  'credit-note': 'orderflow/create-invoice',
  delivery: 'orderflow/assign-delivery',
} as const;

function event(orderId: string, type: string, data: unknown = {}): Omit<HistoryEvent, 'sequence'> {
  const source = SOURCE[type.split('.')[0] as keyof typeof SOURCE];
  return {
    specversion: '1.0',
    id: `${type}:${orderId}`,
    source,
    type: `${type}.v1`,
    subject: orderId,
    time: at,
    data,
  };
}
const numbered = (events: Omit<HistoryEvent, 'sequence'>[]): HistoryEvent[] =>
  events.map((e, i) => ({ ...e, sequence: i + 1 }));

function view(orderId: string, patch: Partial<OrderView>): OrderView {
  return {
    orderId,
    customerId: 'c-1',
    status: 'confirmed',
    lines: [{ sku: 'SKU-1', quantity: 1, unitPrice: 1000, lineTotal: 1000 }],
    currency: 'EUR',
    total: 1000,
    shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
    payment: { status: 'authorized', paymentId: `ch-${orderId}` },
    invoiceNumber: '2026-000001',
    creditNoteNumber: null,
    courier: { courierId: 'k-1', courierName: 'Kim', released: false },
    cancellationReason: null,
    placedAt: at,
    updatedAt: at,
    version: 5,
    ...patch,
  };
}

/** One confirmed order, everything about it consistent. */
function confirmedRun(history?: HistoryEvent[]): Observations {
  const orderId = 'o-1';
  const order: DrivenOrder = { orderId, customerId: 'c-1', kind: 'normal', acceptedAtMs: 0, probe: false };
  const mail = (kind: string, key = orderId) => ({
    headers: { 'x-orderflow-key': key, 'x-orderflow-kind': kind },
    messageId: `<${kind}.${key}@orderflow.local>`,
  });
  return {
    orders: [order],
    customers: [{ customerId: 'c-1', email: 'c@example.test', token: 'unused' }],
    views: new Map([[orderId, view(orderId, {})]]),
    histories: new Map([
      [
        orderId,
        history ??
          numbered([
            event(orderId, 'order.placed'),
            event(orderId, 'payment.authorized'),
            event(orderId, 'invoice.created'),
            event(orderId, 'delivery.assigned'),
            event(orderId, 'order.confirmed'),
          ]),
      ],
    ]),
    ledger: [{ kind: 'charge', reference: orderId, status: 'succeeded' }],
    mails: [mail('welcome', 'c-1'), mail('order_placed'), mail('invoice'), mail('courier_assigned')],
    deadLetters: [],
    poison: [],
    answers: { counts: {}, unexpected: [], gaveUp: [] },
  };
}

const named = (o: Observations, prefix: string): Invariant => {
  const found = checkInvariants(o).invariants.find((i) => i.name.startsWith(prefix));
  assert.ok(found, `no invariant "${prefix}…"`);
  return found;
};

describe('chaos invariants', () => {
  test('given a consistent run, then no violations', () => {
    const report = checkInvariants(confirmedRun());
    assert.deepEqual(
      report.invariants.filter((i) => !i.ok).map((i) => [i.name, i.problems]),
      [],
    );
  });

  test('given a history of the Order events only (the old GET /orders/:id/events), then the history invariant fails', () => {
    const history = numbered([event('o-1', 'order.placed'), event('o-1', 'order.confirmed')]);
    const result = named(confirmedRun(history), 'each order history');
    assert.equal(result.ok, false);
    assert.ok(result.problems.some((p) => p.includes('lacks payment.authorized')));
    assert.ok(result.problems.some((p) => p.includes('lacks invoice.created')));
    assert.ok(result.problems.some((p) => p.includes('lacks delivery.assigned')));
  });

  test('given an event with another source than its producer, then the history invariant names it', () => {
    const events = numbered([
      event('o-1', 'order.placed'),
      { ...event('o-1', 'payment.authorized'), source: 'orderflow/order-storage' },
      event('o-1', 'invoice.created'),
      event('o-1', 'delivery.assigned'),
      event('o-1', 'order.confirmed'),
    ]);
    const result = named(confirmedRun(events), 'each order history');
    assert.deepEqual(result.counts.wrongSource, 1);
    assert.match(result.problems[0] ?? '', /payment\.authorized from orderflow\/order-storage/);
  });

  test('given events of other services after the terminal Order event, then the history is still valid', () => {
    // e.g. a courier released after order.cancelled: only the Order events must end with the terminal one.
    const o = confirmedRun(
      numbered([
        event('o-1', 'order.placed'),
        event('o-1', 'payment.authorized'),
        event('o-1', 'delivery.assigned'),
        event('o-1', 'order.confirmed'),
        event('o-1', 'invoice.created'),
      ]),
    );
    assert.equal(named(o, 'each order history').ok, true);
  });

  /** A confirmed order and an order to an unserved country: invoiced, refunded, cancelled, credited. */
  function unservedRun(options: { creditNote: boolean; mails: string[] }): Observations {
    const base = confirmedRun();
    const orderId = 'o-2';
    const creditNoteNumber = options.creditNote ? 'CN-2026-000001' : null;
    const mail = (kind: string, key = orderId) => ({
      headers: { 'x-orderflow-key': key, 'x-orderflow-kind': kind },
      messageId: `<${kind}.${key}@orderflow.local>`,
    });
    return {
      ...base,
      orders: [
        ...base.orders,
        { orderId, customerId: 'c-1', kind: 'unserved', acceptedAtMs: 0, probe: false },
      ],
      views: new Map([
        ...base.views,
        [
          orderId,
          view(orderId, {
            status: 'cancelled',
            cancellationReason: 'delivery_unavailable',
            payment: { status: 'refunded', paymentId: 'ch-o-2', refundId: 're-o-2' },
            invoiceNumber: '2026-000002',
            creditNoteNumber,
            courier: null,
          }),
        ],
      ]),
      histories: new Map([
        ...base.histories,
        [
          orderId,
          numbered([
            event(orderId, 'order.placed'),
            event(orderId, 'payment.authorized'),
            event(orderId, 'invoice.created'),
            event(orderId, 'order.cancel-requested', { reason: 'delivery_unavailable' }),
            event(orderId, 'payment.refunded'),
            event(orderId, 'order.cancelled', { reason: 'delivery_unavailable' }),
            ...(options.creditNote ? [event(orderId, 'credit-note.issued')] : []),
          ]),
        ],
      ]),
      ledger: [
        ...base.ledger,
        { kind: 'charge', reference: orderId, status: 'succeeded' },
        { kind: 'refund', reference: orderId, status: 'succeeded' },
      ],
      mails: [...base.mails, ...options.mails.map((kind) => mail(kind))],
    };
  }

  test('given a refunded invoiced order with its credit note, the invoice mail before the cancellation or left out, then no violations', () => {
    for (const mails of [
      ['order_placed', 'invoice', 'order_cancelled', 'credit_note'],
      ['order_placed', 'order_cancelled', 'credit_note'],
    ]) {
      const report = checkInvariants(unservedRun({ creditNote: true, mails }));
      assert.deepEqual(
        report.invariants.filter((i) => !i.ok).map((i) => [i.name, i.problems]),
        [],
        mails.join(', '),
      );
    }
  });

  test('given a refunded invoiced order without a credit note (the old books), then the books invariant fails', () => {
    const o = unservedRun({ creditNote: false, mails: ['order_placed', 'order_cancelled', 'invoice'] });
    const books = named(o, 'invoices and credit notes');
    assert.equal(books.ok, false);
    assert.ok(books.problems.some((p) => p.includes('o-2 refunded, invoice 2026-000002 has no credit note')));
    assert.ok(books.problems.some((p) => p.includes('2 invoices − 0 credit notes ≠ 1 confirmed orders')));
    assert.ok(
      named(o, 'exactly the expected mails').problems.includes(
        'invoice mail after the cancellation mail: o-2',
      ),
    );
  });

  test('given a gap in the credit-note series, then the books invariant names it', () => {
    const o = unservedRun({ creditNote: true, mails: ['order_placed', 'order_cancelled', 'credit_note'] });
    const views = new Map(o.views);
    const v = views.get('o-2');
    assert.ok(v);
    views.set('o-2', { ...v, creditNoteNumber: 'CN-2026-000002' });
    const books = named({ ...o, views }, 'invoices and credit notes');
    assert.deepEqual(books.problems, ['credit notes 2026: position 1 holds number 2']);
  });

  test('given a credit note and no credit-note mail, then the mail invariant says it is missing', () => {
    const o = unservedRun({ creditNote: true, mails: ['order_placed', 'invoice', 'order_cancelled'] });
    assert.deepEqual(named(o, 'exactly the expected mails').problems, ['missing: o-2 credit_note']);
  });
});
