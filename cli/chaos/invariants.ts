import type { OrderView } from '@orderflow/contracts';
import type { DeadLetter } from '@orderflow/messaging';
import type { HistoryEvent } from '../api.ts';
import type { AnswerTally, Customer, DrivenOrder } from './load.ts';
import type { PoisonMessage } from './poison.ts';

/**
 * The invariants a chaos run checks once the system is quiet. Each is computed from what the system
 * itself reports — the gateway's views and histories, the PSP's ledger, the SMTP sink's mailbox, the
 * dead letters (stream or queue) and (with PostgreSQL) the services' own tables — never from what the harness
 * thinks it did, except for the order kinds it chose.
 */

export interface Invariant {
  readonly name: string;
  readonly ok: boolean;
  /** What was counted (orders checked, charges, invoices…). */
  readonly counts: Record<string, number>;
  /** How many violations; `problems` lists the first ones. */
  readonly violations: number;
  readonly problems: readonly string[];
}

export interface InvariantReport {
  readonly invariants: readonly Invariant[];
  readonly violations: number;
}

export interface LedgerEntry {
  readonly kind: 'charge' | 'refund';
  readonly reference: string;
  readonly status: 'succeeded' | 'failed';
}

export interface Mail {
  readonly headers: Readonly<Record<string, string>>;
  /** `Message-ID`, as the SMTP sink parsed it. */
  readonly messageId?: string;
}

/** Rows of the services' tables, read in PostgreSQL mode. */
export interface DatabaseFacts {
  /** `create_invoice.invoices`: one row per invoice. */
  readonly invoices: readonly { orderId: string; year: number; sequence: number }[];
  /** `create_invoice.credit_notes`: one row per credit note. */
  readonly creditNotes: readonly { orderId: string; year: number; sequence: number }[];
  /** `assign_delivery.delivery_assignments`. */
  readonly assignments: readonly { orderId: string; status: string }[];
  /** Sum of `assign_delivery.couriers.load`. */
  readonly courierLoad: number;
  /** order-storage's read model (`order_summaries`, its active generation). */
  readonly readModel: readonly { orderId: string; status: string; cancellationReason: string | null }[];
}

/** Everything the checks read. */
export interface Observations {
  readonly orders: readonly DrivenOrder[];
  readonly customers: readonly Customer[];
  /** GET /orders/:id per order (undefined: no 200 answer). */
  readonly views: ReadonlyMap<string, OrderView | undefined>;
  readonly histories: ReadonlyMap<string, readonly HistoryEvent[] | undefined>;
  readonly ledger: readonly LedgerEntry[];
  readonly mails: readonly Mail[];
  readonly deadLetters: readonly DeadLetter[];
  readonly poison: readonly PoisonMessage[];
  readonly answers: AnswerTally;
  readonly database?: DatabaseFacts;
  /**
   * Lines the broker logged about an operation it refused (every process has its own identity):
   * nats-server's `Publish Violation` / `Subscription Violation`, RabbitMQ's `access_refused`.
   */
  readonly permissionViolations?: readonly string[];
}

const SHOWN = 20;

function invariant(name: string, counts: Record<string, number>, problems: readonly string[]): Invariant {
  return {
    name,
    ok: problems.length === 0,
    counts,
    violations: problems.length,
    problems: problems.slice(0, SHOWN),
  };
}

export function checkInvariants(o: Observations): InvariantReport {
  const invariants = [
    terminal(o),
    outcomes(o),
    answers(o),
    money(o),
    invoices(o),
    couriers(o),
    mails(o),
    stepFailures(o),
    histories(o),
    ...(o.database ? [readModel(o, o.database)] : []),
    deadLetters(o),
    ...(o.permissionViolations ? [permissions(o.permissionViolations)] : []),
  ];
  return { invariants, violations: invariants.reduce((n, i) => n + i.violations, 0) };
}

const viewOf = (o: Observations, orderId: string) => o.views.get(orderId);

/** Every order that got a 2xx reached a terminal state. */
function terminal(o: Observations): Invariant {
  const problems: string[] = [];
  let confirmed = 0;
  let cancelled = 0;
  for (const order of o.orders) {
    const view = viewOf(o, order.orderId);
    if (view?.status === 'confirmed') confirmed += 1;
    else if (view?.status === 'cancelled') cancelled += 1;
    else problems.push(`${order.orderId}: ${view ? view.status : 'no view'}`);
  }
  return invariant(
    'every accepted order is terminal',
    { accepted: o.orders.length, confirmed, cancelled },
    problems,
  );
}

/** Each order ended as its kind says it must. */
function outcomes(o: Observations): Invariant {
  const problems: string[] = [];
  const byKind: Record<string, number> = {};
  for (const order of o.orders) {
    byKind[order.kind] = (byKind[order.kind] ?? 0) + 1;
    const view = viewOf(o, order.orderId);
    if (!view) continue;
    const got = `${view.status}/${view.cancellationReason ?? '-'}`;
    const allowed =
      order.kind === 'normal'
        ? ['confirmed/-']
        : order.kind === 'decline'
          ? ['cancelled/payment_declined']
          : order.kind === 'unserved'
            ? ['cancelled/delivery_unavailable']
            : order.kind === 'invalid-card'
              ? ['cancelled/payment_failed']
              : order.cancelAccepted === true
                ? ['cancelled/customer_request']
                : order.cancelAccepted === false
                  ? ['confirmed/-']
                  : ['confirmed/-', 'cancelled/customer_request'];
    if (!allowed.includes(got))
      problems.push(`${order.orderId} (${order.kind}): ${got}, expected ${allowed.join(' or ')}`);
  }
  return invariant('each order ends as its kind requires', byKind, problems);
}

/** The gateway never answered a valid request with a 5xx other than 503, and nothing was given up. */
function answers(o: Observations): Invariant {
  const problems = [...o.answers.unexpected, ...o.answers.gaveUp];
  return invariant('no error answers at the gateway (503 retried)', o.answers.counts, problems);
}

/** One charge per paid order, one refund per order cancelled after payment, none for declined ones. */
function money(o: Observations): Invariant {
  const problems: string[] = [];
  const charges = new Map<string, number>();
  const refunds = new Map<string, number>();
  for (const e of o.ledger) {
    if (e.kind === 'charge' && e.status === 'succeeded')
      charges.set(e.reference, (charges.get(e.reference) ?? 0) + 1);
    if (e.kind === 'refund' && e.status === 'succeeded')
      refunds.set(e.reference, (refunds.get(e.reference) ?? 0) + 1);
  }
  let paid = 0;
  let refunded = 0;
  let declined = 0;
  for (const order of o.orders) {
    const view = viewOf(o, order.orderId);
    if (!view) continue;
    const c = charges.get(order.orderId) ?? 0;
    const r = refunds.get(order.orderId) ?? 0;
    const payment = view.payment?.status;
    if (payment === 'declined') {
      declined += 1;
      if (c !== 0 || r !== 0) problems.push(`${order.orderId} declined: ${c} charges, ${r} refunds`);
      continue;
    }
    if (payment === 'authorized' || payment === 'refunded') paid += 1;
    if (view.status === 'confirmed' && (c !== 1 || r !== 0 || payment !== 'authorized'))
      problems.push(`${order.orderId} confirmed: ${c} charges, ${r} refunds, payment ${payment ?? 'none'}`);
    if (view.status === 'cancelled' && payment !== undefined) {
      refunded += r;
      if (c !== 1 || r !== 1 || payment !== 'refunded')
        problems.push(
          `${order.orderId} cancelled after payment: ${c} charges, ${r} refunds, payment ${payment}`,
        );
    }
    if (view.status === 'cancelled' && payment === undefined && (c !== 0 || r !== 0))
      problems.push(`${order.orderId} cancelled unpaid: ${c} charges, ${r} refunds`);
  }
  const known = new Set(o.orders.map((order) => order.orderId));
  for (const reference of charges.keys())
    if (!known.has(reference)) problems.push(`charge for ${reference}, an order no client was told of`);
  return invariant(
    'PSP ledger: one charge per paid order, one refund per cancelled paid order',
    { paid, refunded, declined, ledgerEntries: o.ledger.length },
    problems,
  );
}

/** `<year>-<sequence>` (invoice) or `CN-<year>-<sequence>` (credit note) → its year and sequence. */
function numbering(number: string): { year: number; sequence: number } {
  const [year, sequence] = number.replace(/^CN-/, '').split('-').map(Number);
  return { year: year ?? 0, sequence: sequence ?? 0 };
}

/** Problems of a number series: per year, the sequences must be exactly 1..n. */
function gaps(series: string, numbers: readonly { year: number; sequence: number }[]): string[] {
  const byYear = new Map<number, number[]>();
  for (const n of numbers) byYear.set(n.year, [...(byYear.get(n.year) ?? []), n.sequence]);
  const problems: string[] = [];
  for (const [year, list] of byYear) {
    [...list]
      .sort((a, b) => a - b)
      .forEach((n, i) => {
        if (n !== i + 1) problems.push(`${series} ${year}: position ${i + 1} holds number ${n}`);
      });
  }
  return problems;
}

/**
 * The books: invoice numbers and credit-note numbers each unique and gapless per year; every confirmed
 * order invoiced and not credited; every refunded invoiced order credited (its invoice cancelled by a
 * credit note); a credit note only for an invoiced order; so invoices − credit notes = confirmed orders.
 */
function invoices(o: Observations): Invariant {
  const problems: string[] = [];
  let invoiced = 0;
  let credited = 0;
  let confirmed = 0;
  const invoiceNumbers: { year: number; sequence: number }[] = [];
  const creditNumbers: { year: number; sequence: number }[] = [];
  for (const order of o.orders) {
    const view = viewOf(o, order.orderId);
    if (!view) continue;
    const creditNote = view.creditNoteNumber;
    if (view.status === 'confirmed') {
      confirmed += 1;
      if (view.invoiceNumber === null) problems.push(`${order.orderId} confirmed without invoice`);
      if (creditNote !== null)
        problems.push(`${order.orderId} confirmed, its invoice credited by ${creditNote}`);
    }
    if (view.payment?.status === 'refunded' && view.invoiceNumber !== null && creditNote === null)
      problems.push(`${order.orderId} refunded, invoice ${view.invoiceNumber} has no credit note`);
    if (creditNote !== null && view.invoiceNumber === null)
      problems.push(`${order.orderId}: credit note ${creditNote} without an invoice`);
    if (view.invoiceNumber !== null) {
      invoiced += 1;
      invoiceNumbers.push(numbering(view.invoiceNumber));
    }
    if (creditNote !== null) {
      credited += 1;
      creditNumbers.push(numbering(creditNote));
    }
  }
  if (invoiced - credited !== confirmed)
    problems.push(`${invoiced} invoices − ${credited} credit notes ≠ ${confirmed} confirmed orders`);
  // With PostgreSQL the books themselves are read: a number never shown by a view still counts.
  const db = o.database;
  problems.push(...gaps('invoices', db ? db.invoices : invoiceNumbers));
  problems.push(...gaps('credit notes', db ? db.creditNotes : creditNumbers));
  if (db && db.invoices.length !== invoiced)
    problems.push(`${db.invoices.length} invoices in the book, ${invoiced} on the order views`);
  if (db && db.creditNotes.length !== credited)
    problems.push(`${db.creditNotes.length} credit notes in the book, ${credited} on the order views`);
  return invariant(
    'invoices and credit notes gapless; invoices − credit notes = confirmed; every refunded invoice credited',
    {
      invoiced,
      credited,
      confirmed,
      ...(db && { inBook: db.invoices.length, creditNotesInBook: db.creditNotes.length }),
    },
    problems,
  );
}

/** One courier per confirmed order; none held for a cancelled one. */
function couriers(o: Observations): Invariant {
  const problems: string[] = [];
  let assigned = 0;
  const confirmed = new Set<string>();
  for (const order of o.orders) {
    const view = viewOf(o, order.orderId);
    if (!view) continue;
    if (view.status === 'confirmed') {
      confirmed.add(order.orderId);
      if (!view.courier || view.courier.released)
        problems.push(`${order.orderId} confirmed, courier ${JSON.stringify(view.courier)}`);
      else assigned += 1;
    }
    if (view.status === 'cancelled' && view.courier && !view.courier.released)
      problems.push(`${order.orderId} cancelled but courier ${view.courier.courierId} still held`);
  }
  const db = o.database;
  if (db) {
    const held = db.assignments.filter((a) => a.status === 'assigned');
    for (const a of held)
      if (!confirmed.has(a.orderId))
        problems.push(`courier held in the pool for ${a.orderId}, not confirmed`);
    if (held.length !== confirmed.size)
      problems.push(`${held.length} assignments held, ${confirmed.size} confirmed orders`);
    if (db.courierLoad !== held.length)
      problems.push(`courier load ${db.courierLoad} ≠ ${held.length} held assignments`);
  }
  return invariant(
    'one courier per confirmed order, none held by cancelled ones',
    {
      assigned,
      ...(db && {
        heldInPool: db.assignments.filter((a) => a.status === 'assigned').length,
        courierLoad: db.courierLoad,
      }),
    },
    problems,
  );
}

/**
 * Exactly the mails the orders' outcomes call for, none twice. A mail is known by its `Message-ID`
 * (one per order and kind): an SMTP re-delivery with the same `Message-ID` — email-notify killed after
 * the server accepted a mail and before it recorded it — is one mail in the recipient's mailbox and is
 * counted as `resentSameMessageId`; a second mail with another `Message-ID` is a violation. The invoice
 * mail of a cancelled order may be left out (its `invoice.created` came after the cancellation; the
 * credit note mail carries the invoice then), but is never sent after the cancellation mail.
 */
function mails(o: Observations): Invariant {
  const expected = new Set<string>(o.customers.map((c) => `${c.customerId} welcome`));
  const optional = new Set<string>();
  for (const order of o.orders) {
    const v = viewOf(o, order.orderId);
    if (!v) continue;
    expected.add(`${v.orderId} order_placed`);
    if (v.payment?.status === 'declined') expected.add(`${v.orderId} payment_declined`);
    if (v.invoiceNumber !== null)
      (v.status === 'cancelled' ? optional : expected).add(`${v.orderId} invoice`);
    if (v.courier !== null) expected.add(`${v.orderId} courier_assigned`);
    if (v.status === 'cancelled') expected.add(`${v.orderId} order_cancelled`);
    if (v.creditNoteNumber !== null) expected.add(`${v.orderId} credit_note`);
  }
  const seen = new Set<string>();
  const messageIds = new Set<string>();
  const problems: string[] = [];
  let resent = 0;
  let invoicesLeftOut = 0;
  for (const [index, mail] of o.mails.entries()) {
    const key = mail.headers['x-orderflow-key'];
    const m = `${key} ${mail.headers['x-orderflow-kind']}`;
    const messageId = mail.messageId ?? `(no Message-ID #${index})`;
    if (messageIds.has(messageId)) {
      resent += 1;
      continue;
    }
    messageIds.add(messageId);
    if (seen.has(m)) problems.push(`twice, with another Message-ID: ${m}`);
    else if (!expected.has(m) && !optional.has(m)) problems.push(`unexpected: ${m}`);
    if (mail.headers['x-orderflow-kind'] === 'invoice' && seen.has(`${key} order_cancelled`))
      problems.push(`invoice mail after the cancellation mail: ${key}`);
    seen.add(m);
  }
  for (const m of expected) if (!seen.has(m)) problems.push(`missing: ${m}`);
  for (const m of optional) if (!seen.has(m)) invoicesLeftOut += 1;
  return invariant(
    'exactly the expected mails, none twice, no invoice after the cancellation',
    {
      expected: expected.size,
      delivered: o.mails.length,
      distinct: messageIds.size,
      resentSameMessageId: resent,
      invoiceMailsLeftOut: invoicesLeftOut,
    },
    problems,
  );
}

/** The service whose subject namespace carries each event type (its `ce-source` is `orderflow/<service>`). */
const PRODUCER_OF: Readonly<Record<string, string>> = {
  order: 'order-storage',
  payment: 'payment-processor',
  invoice: 'create-invoice',
  'credit-note': 'create-invoice',
  delivery: 'assign-delivery',
};

/**
 * Each order's history (`GET /orders/:id/events`) is its whole story across the services, and valid:
 * positions 1..n, ids unique, `order.placed` first, each event from its producer (`source`), the steps
 * of the other services present exactly when the view says they happened; and the Order aggregate's
 * own events in it form a valid Order sequence: `placed` once, at most one `cancel-requested`, exactly
 * one terminal event (`confirmed` or `cancelled`) and it is the last of them, a confirmation never
 * after a cancel request, the terminal event agrees with the view.
 */
function histories(o: Observations): Invariant {
  const problems: string[] = [];
  let events = 0;
  let wrongSource = 0;
  for (const order of o.orders) {
    const history = o.histories.get(order.orderId);
    const view = viewOf(o, order.orderId);
    if (!history) {
      problems.push(`${order.orderId}: no history`);
      continue;
    }
    events += history.length;
    const all = history.map((e) => e.type.replace(/\.v\d+$/, ''));
    const where = `${order.orderId} [${all.join(', ')}]`;
    if (history.some((e, i) => e.sequence !== i + 1)) problems.push(`${where}: positions not 1..n`);
    if (new Set(history.map((e) => e.id)).size !== history.length)
      problems.push(`${where}: an event id twice`);
    if (all[0] !== 'order.placed') problems.push(`${where}: must start with order.placed`);
    for (const [i, event] of history.entries()) {
      const producer = PRODUCER_OF[all[i]?.split('.')[0] ?? ''];
      if (event.source !== `orderflow/${producer ?? '?'}`) {
        wrongSource += 1;
        problems.push(`${where}: ${all[i]} from ${event.source}`);
      }
    }
    if (view) {
      const has = (type: string) => all.includes(type);
      const paid = view.payment?.status === 'authorized' || view.payment?.status === 'refunded';
      const steps: [string, boolean][] = [
        ['payment.authorized', paid],
        ['payment.declined', view.payment?.status === 'declined'],
        ['payment.refunded', view.payment?.status === 'refunded'],
        ['invoice.created', view.invoiceNumber !== null],
        ['credit-note.issued', view.creditNoteNumber !== null],
        ['delivery.assigned', view.courier !== null],
      ];
      for (const [type, expected] of steps)
        if (has(type) !== expected)
          problems.push(
            `${where}: ${expected ? 'lacks' : 'has'} ${type}, view ${JSON.stringify(view.payment)}`,
          );
    }
    const types = all.filter((t) => t.startsWith('order.'));
    if (types.filter((t) => t === 'order.placed').length !== 1)
      problems.push(`${where}: order.placed more than once`);
    if (types.filter((t) => t === 'order.cancel-requested').length > 1)
      problems.push(`${where}: two cancel requests`);
    const terminals = types.filter((t) => t === 'order.confirmed' || t === 'order.cancelled');
    const last = types.at(-1);
    if (terminals.length !== 1 || (last !== 'order.confirmed' && last !== 'order.cancelled'))
      problems.push(`${where}: exactly one terminal order event, the last order event`);
    if (last === 'order.confirmed' && types.includes('order.cancel-requested'))
      problems.push(`${where}: confirmed after a cancel request`);
    if (view && last !== `order.${view.status}`)
      problems.push(`${where}: ends ${last}, view says ${view.status}`);
    const terminal = [...history].reverse().find((e) => e.type.startsWith('order.'));
    const reason = (terminal?.data as { reason?: string } | undefined)?.reason;
    if (view && last === 'order.cancelled' && reason !== view.cancellationReason)
      problems.push(`${where}: cancelled for ${reason}, view says ${view.cancellationReason}`);
  }
  return invariant(
    'each order history is its whole story, and its Order events a valid sequence',
    { orders: o.orders.length, events, wrongSource },
    problems,
  );
}

/** order-storage's SQL read model caught up with every order's log: same terminal status and reason. */
function readModel(o: Observations, db: DatabaseFacts): Invariant {
  const problems: string[] = [];
  const rows = new Map(db.readModel.map((r) => [r.orderId, r]));
  for (const order of o.orders) {
    const view = viewOf(o, order.orderId);
    const row = rows.get(order.orderId);
    if (!row) problems.push(`${order.orderId}: not in the read model`);
    else if (view && (row.status !== view.status || row.cancellationReason !== view.cancellationReason))
      problems.push(
        `${order.orderId}: read model ${row.status}/${row.cancellationReason}, view ${view.status}/${view.cancellationReason}`,
      );
  }
  return invariant('order-storage read model agrees with the views', { rows: db.readModel.length }, problems);
}

/** The step whose permanent failure each reason reports, and the consumer that dead-letters it. */
const FAILED_STEPS = {
  payment_failed: { consumer: /^payment-processor-/, code: 'PSP_REJECTED' },
  invoice_failed: { consumer: /^create-invoice-/, code: undefined },
  delivery_failed: { consumer: /^assign-delivery-/, code: undefined },
} as const satisfies Record<string, { consumer: RegExp; code: string | undefined }>;

/** The order a dead letter is about: the last token of its subject (`orders.<id>`, `payments.<id>`…). */
const orderOfLetter = (letter: DeadLetter) => letter.subject.split('.').at(-1) ?? '';

/**
 * A saga step that failed permanently ends its order: every order of the `invalid-card` kind (the PSP
 * refuses its charge as such) has its charge dead-lettered by payment-processor with the PSP's
 * refusal, and is cancelled `payment_failed`, never charged; every order cancelled for a failed step
 * has that step's dead letter, and if it was charged, its refund.
 */
function stepFailures(o: Observations): Invariant {
  const problems: string[] = [];
  const letters = new Map<string, DeadLetter[]>();
  for (const letter of o.deadLetters) {
    const orderId = orderOfLetter(letter);
    letters.set(orderId, [...(letters.get(orderId) ?? []), letter]);
  }
  const ledger = (orderId: string, kind: 'charge' | 'refund') =>
    o.ledger.filter((e) => e.reference === orderId && e.kind === kind && e.status === 'succeeded').length;
  let failed = 0;
  let refunded = 0;
  for (const order of o.orders) {
    const view = viewOf(o, order.orderId);
    const reason = view?.cancellationReason ?? null;
    const step =
      reason !== null && reason in FAILED_STEPS
        ? FAILED_STEPS[reason as keyof typeof FAILED_STEPS]
        : undefined;
    if (order.kind === 'invalid-card' && !step) {
      problems.push(
        `${order.orderId} (invalid-card): ${view ? `${view.status}/${reason ?? '-'}` : 'no view'}`,
      );
      continue;
    }
    if (!step) continue;
    failed += 1;
    if (view?.status !== 'cancelled')
      problems.push(`${order.orderId}: ${reason} but ${view?.status ?? 'no view'}`);
    const own = (letters.get(order.orderId) ?? []).filter(
      (l) => step.consumer.test(l.consumer) && (step.code === undefined || l.code === step.code),
    );
    if (own.length === 0)
      problems.push(`${order.orderId}: cancelled ${reason} without the step's dead letter`);
    const charges = ledger(order.orderId, 'charge');
    const refunds = ledger(order.orderId, 'refund');
    if (charges > 0) refunded += refunds;
    if (charges !== refunds)
      problems.push(`${order.orderId}: cancelled ${reason} with ${charges} charges and ${refunds} refunds`);
  }
  return invariant(
    'a saga step that failed permanently ends its order (cancelled, refunded if charged)',
    { stepFailures: failed, refunded },
    problems,
  );
}

/**
 * Which message a dead letter is of, for "dead-lettered twice by one consumer": its stream sequence
 * where the broker numbers the stored messages (NATS), else its `ce-id` (RabbitMQ keeps no sequence;
 * a copy published twice there is two messages with one id), else its subject.
 */
function messageOfLetter(letter: DeadLetter): string {
  if (letter.streamSequence > 0) return `#${letter.streamSequence}`;
  const eventId = letter.headers['ce-id'];
  return eventId ? `id ${eventId}` : `subject ${letter.subject}`;
}

/**
 * The dead letters are exactly the poison messages, each with its expected code, and the permanent
 * step failures the orders' kinds call for (the charge of an `invalid-card` order, refused by the PSP);
 * none else. A letter is the poison's by its subject (each poison message has one of its own), and
 * must agree with what else the poison is known by: its stream sequence (NATS) and its `ce-id`.
 */
function deadLetters(o: Observations): Invariant {
  const problems: string[] = [];
  const poisonBySubject = new Map(o.poison.map((p) => [p.subject, p]));
  const invalidCards = new Set(
    o.orders.filter((order) => order.kind === 'invalid-card').map((x) => x.orderId),
  );
  const lettered = new Set<string>();
  const seen = new Set<string>();
  let stepFailures = 0;
  for (const letter of o.deadLetters) {
    const poison = poisonBySubject.get(letter.subject);
    const message = messageOfLetter(letter);
    const what = `${letter.consumer} ${letter.subject} ${message} ${letter.code}`;
    const stepFailure =
      !poison &&
      invalidCards.has(orderOfLetter(letter)) &&
      FAILED_STEPS.payment_failed.consumer.test(letter.consumer) &&
      letter.code === FAILED_STEPS.payment_failed.code;
    if (stepFailure) stepFailures += 1;
    else if (!poison) problems.push(`unexplained dead letter: ${what}: ${letter.reason}`);
    else {
      if (!poison.expectedCodes.includes(letter.code))
        problems.push(`${what}: expected ${poison.expectedCodes.join(' or ')} for ${poison.kind}`);
      if (poison.streamSequence !== undefined && letter.streamSequence !== poison.streamSequence)
        problems.push(`${what}: the poison ${poison.kind} on its subject is #${poison.streamSequence}`);
      if (poison.eventId !== undefined && letter.headers['ce-id'] !== poison.eventId)
        problems.push(`${what}: the poison ${poison.kind} on its subject has ce-id ${poison.eventId}`);
      lettered.add(poison.subject);
    }
    if (letter.reason.trim() === '') problems.push(`${what}: no reason`);
    const key = `${letter.consumer} ${message}`;
    if (seen.has(key)) problems.push(`${what}: dead-lettered twice by one consumer`);
    seen.add(key);
  }
  for (const p of o.poison)
    if (!lettered.has(p.subject))
      problems.push(
        `poison ${p.kind} on ${p.subject}${p.streamSequence === undefined ? '' : ` #${p.streamSequence}`} not dead-lettered`,
      );
  return invariant(
    'dead letters: only the injected poison and the permanent step failures, each with its reason',
    { poisonPublished: o.poison.length, stepFailures, deadLetters: o.deadLetters.length },
    problems,
  );
}

/** Every process stayed inside the permissions the topology gives its identity. */
function permissions(lines: readonly string[]): Invariant {
  return invariant('no permission violation on the bus', { lines: lines.length }, lines);
}
