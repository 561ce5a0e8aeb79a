import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CancellationReason, OrderStatus, OrderView } from '@orderflow/contracts';
import type { DeadLetter } from '@orderflow/messaging';
import { checkInvariants, type LedgerEntry, type Observations } from './invariants.ts';
import type { DrivenOrder, OrderKind } from './load.ts';
import type { PoisonMessage } from './poison.ts';

// The chaos invariants on hand-made observations: what a run would report for orders whose saga step
// failed permanently, and what must count as a violation.

const at = '2026-12-02T10:00:00.000Z';

function view(orderId: string, status: OrderStatus, reason: CancellationReason | null): OrderView {
  return {
    orderId,
    customerId: 'c-1',
    status,
    lines: [{ sku: 'A', quantity: 1, unitPrice: 100, lineTotal: 100 }],
    currency: 'EUR',
    total: 100,
    shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
    payment: null,
    invoiceNumber: null,
    creditNoteNumber: null,
    courier: null,
    cancellationReason: reason,
    placedAt: at,
    updatedAt: at,
    version: 2,
  };
}

function letter(orderId: string, consumer: string, code: string, seq: number): DeadLetter {
  return {
    seq,
    stream: 'ORDERING',
    consumer,
    subject: `orders.${orderId}`,
    streamSequence: 100 + seq,
    deliveries: 1,
    reason: `${code} for ${orderId}`,
    code,
    deadLetteredAt: at,
    headers: {},
    body: new Uint8Array(),
  };
}

function observe(
  orders: { orderId: string; kind: OrderKind; view: OrderView }[],
  extra: { ledger?: LedgerEntry[]; deadLetters?: DeadLetter[]; poison?: PoisonMessage[] } = {},
): Observations {
  const driven: DrivenOrder[] = orders.map((o) => ({
    orderId: o.orderId,
    customerId: 'c-1',
    kind: o.kind,
    acceptedAtMs: 0,
    probe: false,
  }));
  const terminalEvent = (v: OrderView) =>
    v.status === 'confirmed' || v.status === 'cancelled' ? [`order.${v.status}.v1`] : [];
  return {
    orders: driven,
    customers: [],
    views: new Map(orders.map((o) => [o.orderId, o.view])),
    histories: new Map(
      orders.map((o) => [
        o.orderId,
        ['order.placed.v2', ...terminalEvent(o.view)].map((type, i) => ({
          specversion: '1.0' as const,
          id: `${o.orderId}-${i}`,
          source: 'orderflow/order-storage',
          type,
          subject: o.orderId,
          time: at,
          data: { reason: o.view.cancellationReason ?? undefined },
          sequence: i + 1,
        })),
      ]),
    ),
    ledger: extra.ledger ?? [],
    mails: [],
    deadLetters: extra.deadLetters ?? [],
    poison: extra.poison ?? [],
    answers: { counts: {}, unexpected: [], gaveUp: [] },
  };
}

const named = (report: ReturnType<typeof checkInvariants>, prefix: string) => {
  const found = report.invariants.find((i) => i.name.startsWith(prefix));
  assert.ok(found, `invariant ${prefix}`);
  return found;
};

describe('chaos invariants: a saga step that failed permanently', () => {
  test('an invalid-card order cancelled payment_failed, uncharged, with its PSP refusal dead letter holds', () => {
    const report = checkInvariants(
      observe([{ orderId: 'o-1', kind: 'invalid-card', view: view('o-1', 'cancelled', 'payment_failed') }], {
        deadLetters: [letter('o-1', 'payment-processor-orders', 'PSP_REJECTED', 1)],
      }),
    );
    assert.deepEqual(
      report.invariants
        .filter((i) => !i.ok && !i.name.startsWith('exactly the expected mails'))
        .map((i) => i.problems),
      [],
    );
    assert.equal(named(report, 'a saga step').counts.stepFailures, 1);
    assert.equal(named(report, 'dead letters').counts.stepFailures, 1);
  });

  test('an invalid-card order left placed is a violation of terminal, outcome and step-failure invariants', () => {
    const report = checkInvariants(
      observe([{ orderId: 'o-2', kind: 'invalid-card', view: view('o-2', 'placed', null) }], {
        deadLetters: [letter('o-2', 'payment-processor-orders', 'PSP_REJECTED', 1)],
      }),
    );
    assert.equal(named(report, 'every accepted order is terminal').ok, false);
    assert.equal(named(report, 'each order ends as its kind requires').ok, false);
    assert.match(named(report, 'a saga step').problems[0] ?? '', /o-2 \(invalid-card\): placed/);
  });

  test('a charged order cancelled for a failed step without its refund, or without the dead letter, is a violation', () => {
    const charged: LedgerEntry = { kind: 'charge', reference: 'o-3', status: 'succeeded' };
    const unrefunded = checkInvariants(
      observe([{ orderId: 'o-3', kind: 'normal', view: view('o-3', 'cancelled', 'delivery_failed') }], {
        ledger: [charged],
        deadLetters: [letter('o-3', 'assign-delivery-all', 'DISPATCH_FAILED', 1)],
      }),
    );
    assert.deepEqual(named(unrefunded, 'a saga step').problems, [
      'o-3: cancelled delivery_failed with 1 charges and 0 refunds',
    ]);
    const refunded = checkInvariants(
      observe([{ orderId: 'o-3', kind: 'normal', view: view('o-3', 'cancelled', 'delivery_failed') }], {
        ledger: [charged, { kind: 'refund', reference: 'o-3', status: 'succeeded' }],
      }),
    );
    assert.deepEqual(named(refunded, 'a saga step').problems, [
      "o-3: cancelled delivery_failed without the step's dead letter",
    ]);
  });

  test("a dead letter of a real order that no order's kind explains stays a violation", () => {
    const report = checkInvariants(
      observe([{ orderId: 'o-4', kind: 'normal', view: view('o-4', 'confirmed', null) }], {
        deadLetters: [letter('o-4', 'payment-processor-orders', 'PSP_REJECTED', 1)],
      }),
    );
    assert.match(named(report, 'dead letters').problems[0] ?? '', /unexplained dead letter/);
  });
});

describe('chaos invariants: poison and its dead letters, on either broker', () => {
  const poison = (kind: PoisonMessage['kind'], n: number, streamSequence?: number): PoisonMessage => ({
    kind,
    subject: `payments.poison-${n}`,
    eventId: kind === 'no-headers' ? undefined : `poison-event-${n}`,
    streamSequence,
    expectedCodes: kind === 'wrong-schema' ? ['VALIDATION_FAILED'] : ['DECODE_FAILED'],
  });
  /** A dead letter of `p` as `consumer` wrote it: on RabbitMQ without a stream sequence. */
  const letterOf = (
    p: PoisonMessage,
    consumer: string,
    changes: { code?: string; streamSequence?: number; eventId?: string } = {},
  ): DeadLetter => ({
    seq: 1,
    stream: 'ORDERING',
    consumer,
    subject: p.subject,
    streamSequence: changes.streamSequence ?? p.streamSequence ?? 0,
    deliveries: 1,
    reason: 'poison',
    code: changes.code ?? p.expectedCodes[0] ?? '',
    deadLetteredAt: at,
    headers:
      (changes.eventId ?? p.eventId) === undefined ? {} : { 'ce-id': changes.eventId ?? p.eventId ?? '' },
    body: new Uint8Array(),
  });
  const deadLetterInvariant = (letters: DeadLetter[], published: PoisonMessage[]) =>
    named(checkInvariants(observe([], { deadLetters: letters, poison: published })), 'dead letters');

  test('RabbitMQ: poison without stream sequences is matched by its subject and ce-id, one letter per consumer', () => {
    const published = [poison('bad-json', 1), poison('wrong-schema', 2), poison('no-headers', 3)];
    const letters = published.flatMap((p) => [
      letterOf(p, 'order-status-all'),
      letterOf(p, 'email-notify-all'),
    ]);
    const invariant = deadLetterInvariant(letters, published);
    assert.deepEqual(invariant.problems, []);
    assert.equal(invariant.counts.deadLetters, 6);
  });

  test('a letter on a poison subject with another ce-id, stream sequence or code is a violation', () => {
    const onRabbit = poison('bad-json', 1);
    const onNats = poison('bad-json', 2, 40);
    const invariant = deadLetterInvariant(
      [
        letterOf(onRabbit, 'order-status-all', { eventId: 'someone-else' }),
        letterOf(onRabbit, 'email-notify-all', { code: 'UNKNOWN_TYPE' }),
        letterOf(onNats, 'order-status-all', { streamSequence: 41 }),
      ],
      [onRabbit, onNats],
    );
    assert.deepEqual(invariant.problems, [
      'order-status-all payments.poison-1 id someone-else DECODE_FAILED: the poison bad-json on its subject has ce-id poison-event-1',
      'email-notify-all payments.poison-1 id poison-event-1 UNKNOWN_TYPE: expected DECODE_FAILED for bad-json',
      'order-status-all payments.poison-2 #41 DECODE_FAILED: the poison bad-json on its subject is #40',
    ]);
  });

  test('one message dead-lettered twice by one consumer is a violation, on RabbitMQ by its ce-id', () => {
    const p = poison('wrong-schema', 1);
    const invariant = deadLetterInvariant(
      [letterOf(p, 'order-status-all'), letterOf(p, 'order-status-all')],
      [p],
    );
    assert.deepEqual(invariant.problems, [
      'order-status-all payments.poison-1 id poison-event-1 VALIDATION_FAILED: dead-lettered twice by one consumer',
    ]);
  });

  test('poison that no consumer dead-lettered, and a letter no poison explains, are violations', () => {
    const lettered = poison('bad-json', 1);
    const missing = poison('no-headers', 2);
    const stray: DeadLetter = {
      ...letterOf(lettered, 'order-status-all', { eventId: 'e-9' }),
      subject: 'payments.o-9',
    };
    const invariant = deadLetterInvariant(
      [letterOf(lettered, 'order-status-all'), stray],
      [lettered, missing],
    );
    assert.deepEqual(invariant.problems, [
      'unexplained dead letter: order-status-all payments.o-9 id e-9 DECODE_FAILED: poison',
      'poison no-headers on payments.poison-2 not dead-lettered',
    ]);
  });
});
