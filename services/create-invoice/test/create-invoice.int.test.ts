import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  CreditNoteIssued,
  InvoiceCreated,
  InvoiceFailed,
  OrderCancelRequested,
  orderingTopology,
  OrderPlaced,
  PaymentAuthorized,
  OwnerPublisher,
  PaymentRefunded,
} from '@orderflow/contracts';
import {
  connectNats,
  NatsTransport,
  runService,
  type PayloadOf,
  type RunningService,
  NatsBlobStores,
} from '@orderflow/messaging';
import {
  migrate,
  migrateInboxOutbox,
  openSqlStore,
  type SqlStore,
  type SqlTransaction,
} from '@orderflow/sql';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { pino } from 'pino';
import { invoiceMigrations, ObjectStorePdfArchive, SqlInvoiceBook, startCreateInvoice } from '../src/mod.ts';
import { seedPgliteDataDir } from '@orderflow/sql/testing';

// Real nats-server for the file; PostgreSQL (a schema per test) or PGlite (a temp directory per test).
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
let nats: NatsServer;
before(async () => {
  nats = await startNatsServer();
});
after(async () => {
  await nats.dispose();
});

/** Fails the first `failures` invoice inserts: the number was taken in that transaction, which rolls back. */
function failingInvoiceInserts(store: SqlStore, failures: number): SqlStore {
  let left = failures;
  const wrapTx = (tx: SqlTransaction): SqlTransaction => ({
    query: (sql, params) => {
      if (sql.includes('INSERT INTO invoices') && left-- > 0)
        return Promise.reject(new Error('connection reset (injected)'));
      return tx.query(sql, params);
    },
    onCommit: (callback) => tx.onCommit(callback),
  });
  return {
    dialect: store.dialect,
    query: (sql, params) => store.query(sql, params),
    transaction: (work) => store.transaction((tx) => work(wrapTx(tx))),
    close: () => store.close(),
  };
}

async function system(dialect: 'postgres' | 'pglite') {
  const topology = orderingTopology({ namespace: uniqueName('ci') });
  const schema = uniqueName('create_invoice');
  const dataDir = dialect === 'pglite' ? await mkdtemp(join(tmpdir(), 'create-invoice-')) : '';
  // An initialised database to reopen: initdb on every system made this file slow (tens of seconds).
  if (dataDir) await seedPgliteDataDir(dataDir);
  // Two replicas. On PostgreSQL each has its own pool; PGlite is owned by one process, so there the
  // two replicas (two consumers on two connections to NATS) share the one embedded database.
  const first = await openSqlStore({
    ...(dialect === 'postgres' && { databaseUrl: DATABASE_URL }),
    dataDir,
    schema,
  });
  const stores = [
    first,
    dialect === 'postgres' ? await openSqlStore({ databaseUrl: DATABASE_URL, dataDir, schema }) : first,
  ];
  await migrateInboxOutbox(first);
  await migrate(first, invoiceMigrations, { component: 'create-invoice' });
  const replicas: RunningService[] = [];
  const books: SqlInvoiceBook[] = [];
  for (const [i, store] of stores.entries()) {
    const book = new SqlInvoiceBook(i === 0 ? failingInvoiceInserts(store, 2) : store, {
      consumer: topology.consumers.createInvoice.all.name,
    });
    books.push(book);
    replicas.push(
      await runService(
        {
          name: 'create-invoice',
          version: '0.1.0',
          broker: { kind: 'nats', servers: nats.url },
          streams: topology.streams,
          handleSignals: false,
          logger: pino({ level: 'silent' }),
        },
        async (context) =>
          startCreateInvoice(context, {
            topology,
            book,
            pdfs: await ObjectStorePdfArchive.open(
              new NatsBlobStores(context.broker.nc),
              topology.objectStores.invoices,
            ),
            concurrency: 8,
            retry: { initialDelayMs: 20, maxDelayMs: 200 },
          }),
      ),
    );
  }
  const { nc } = await connectNats({ servers: nats.url, name: 'test-client' });
  const client = await NatsTransport.create(nc, { source: 'orderflow/test' });
  const owners = new OwnerPublisher(nc); // publishes each event as its producing service
  const jsm = await jetstreamManager(nc);
  return {
    topology,
    client,
    owners,
    jsm,
    book: books[1]!,
    pdfs: await ObjectStorePdfArchive.open(new NatsBlobStores(nc), topology.objectStores.invoices),
    /** The events stored on `subject`, in stream order: `[ce-type, payload]`. */
    async eventsOn(subject: string): Promise<[string, unknown][]> {
      const consumer = await client.js.consumers.get(topology.stream, { filter_subjects: subject });
      const pending = (await consumer.info(true)).num_pending;
      const events: [string, unknown][] = [];
      if (pending > 0) {
        for await (const m of await consumer.fetch({ max_messages: pending, expires: 2_000 })) {
          events.push([m.headers?.get('ce-type') ?? '', m.json()]);
          if (events.length === pending) break;
        }
      }
      await consumer.delete().catch(() => undefined);
      return events;
    },
    async drained() {
      const b = topology.consumers.createInvoice.all;
      const info = await jsm.consumers.info(b.stream, b.name);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    },
    async close() {
      await Promise.all(replicas.map((r) => r.stop()));
      if (dialect === 'postgres') await first.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await Promise.all([...new Set(stores)].map((s) => s.close()));
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
      await client.close();
      await owners.close();
      await nc.close();
    },
  };
}

const now = () => new Date().toISOString();

function refunded(orderId: string, reason: 'delivery_unavailable' | 'customer_request') {
  return {
    orderId,
    paymentId: `ch_${orderId}`,
    refundId: `re_${orderId}`,
    amount: { amount: 2380, currency: 'EUR' as const },
    reason,
    refundedAt: now(),
  } satisfies PayloadOf<typeof PaymentRefunded>;
}

function authorized(orderId: string): PayloadOf<typeof PaymentAuthorized> {
  return {
    orderId,
    paymentId: `ch_${orderId}`,
    amount: { amount: 2380, currency: 'EUR' },
    authorizedAt: now(),
  };
}

function placed(orderId: string, country = 'DE'): PayloadOf<typeof OrderPlaced> {
  return {
    orderId,
    customer: { customerId: randomUUID(), email: 'ada@example.test', name: 'Ada' },
    lines: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1190, lineTotal: 2380 }],
    currency: 'EUR',
    total: 2380,
    shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country },
    placedAt: now(),
  };
}

for (const dialect of ['postgres', 'pglite'] as const) {
  describe(`create-invoice against real NATS and ${dialect}`, () => {
    test('numbers 1..n without gaps under two replicas, duplicates and failed attempts; PDFs stored', async () => {
      const s = await system(dialect);
      try {
        const t = s.topology;
        const orders = Array.from({ length: 12 }, () => randomUUID());
        const cancelledOrder = randomUUID();
        const place = async (orderId: string, cancel: boolean) => {
          const about = { about: orderId };
          await s.owners.publish(OrderPlaced, placed(orderId), {
            subject: t.subjects.order(orderId),
            ...about,
          });
          if (cancel) {
            await s.owners.publish(
              OrderCancelRequested,
              { orderId, reason: 'customer_request', requestedAt: now() },
              { subject: t.subjects.order(orderId), ...about },
            );
          }
        };
        // The same authorization under two ids (two stream messages): one invoice all the same.
        const authorize = async (orderId: string) => {
          const authorization = authorized(orderId);
          for (let copy = 0; copy < 2; copy++) {
            await s.owners.publish(PaymentAuthorized, authorization, {
              subject: t.subjects.payment(orderId),
              about: orderId,
            });
          }
        };
        // Two replicas keep a key's order each in its own process only (docs/delivery-semantics.md): a
        // cancellation still in flight on one replica may lose the race with the authorization on the
        // other, and then the order is invoiced (and credited after its refund). What must hold is that
        // a cancellation handled before the authorization arrives means no invoice.
        await place(cancelledOrder, true);
        await waitFor(() => s.drained(), { timeoutMs: 60_000 });
        await Promise.all([
          ...orders.map(async (orderId) => {
            await place(orderId, false);
            await authorize(orderId);
          }),
          authorize(cancelledOrder),
        ]);

        const year = new Date().getUTCFullYear();
        await waitFor(async () => (await s.book.invoicesOf(year)).length >= orders.length, {
          timeoutMs: 60_000,
        });
        await waitFor(() => s.drained(), { timeoutMs: 60_000 });
        const invoices = await s.book.invoicesOf(year);
        assert.deepEqual(
          invoices.map((i) => i.sequence),
          orders.map((_, i) => i + 1),
        );
        assert.deepEqual(new Set(invoices.map((i) => i.orderId)), new Set(orders));
        assert.equal(await s.book.invoiceOf(cancelledOrder), undefined);

        // One invoice.created per order (deterministic id), pointing at a stored PDF.
        const info = await s.jsm.streams.info(t.stream, { subjects_filter: t.filters.invoices });
        const perOrder = Object.values(info.state.subjects ?? {});
        assert.equal(perOrder.length, orders.length);
        assert.ok(
          perOrder.every((n) => n === 1),
          `one invoice.created per order: ${perOrder.join(',')}`,
        );
        for (const invoice of invoices) {
          const stored = await s.jsm.streams.getMessage(t.stream, {
            last_by_subj: t.subjects.invoice(invoice.orderId),
          });
          const event = InvoiceCreated.parse(stored?.json());
          assert.equal(event.invoiceNumber, invoice.number);
          assert.equal(event.total.amount, 2380);
          const pdf = await s.pdfs.fetch(event.pdf.name);
          assert.equal(pdf?.length, event.pdf.size);
          assert.equal(
            Buffer.from(pdf ?? [])
              .subarray(0, 5)
              .toString(),
            '%PDF-',
          );
        }
      } finally {
        await s.close();
      }
    });

    test('a refunded invoiced order gets one credit note, after its invoice, numbered 1..n in its own series; a refund before the invoice means neither', async () => {
      const s = await system(dialect);
      try {
        const t = s.topology;
        const publish = async <
          C extends typeof OrderPlaced | typeof PaymentAuthorized | typeof PaymentRefunded,
        >(
          contract: C,
          data: PayloadOf<C>,
          subject: string,
        ) => {
          await s.owners.publish(contract, data, { subject, about: data.orderId });
        };
        const invoiced = Array.from({ length: 6 }, () => randomUUID());
        const credited = invoiced.slice(0, 4);
        await Promise.all(
          invoiced.map(async (orderId) => {
            await publish(OrderPlaced, placed(orderId, 'AQ'), t.subjects.order(orderId));
            await publish(PaymentAuthorized, authorized(orderId), t.subjects.payment(orderId));
          }),
        );
        const year = new Date().getUTCFullYear();
        await waitFor(async () => (await s.book.invoicesOf(year)).length >= invoiced.length, {
          timeoutMs: 30_000,
        });
        // Refunds (each under two ids, as two stream messages), and orders refunded before their
        // authorization is handled: per order either an invoice and its credit note, or neither.
        const early = Array.from({ length: 3 }, () => randomUUID());
        await Promise.all([
          ...credited.flatMap((orderId) =>
            [1, 2].map(() =>
              publish(
                PaymentRefunded,
                refunded(orderId, 'delivery_unavailable'),
                t.subjects.payment(orderId),
              ),
            ),
          ),
          ...early.map(async (orderId) => {
            await publish(OrderPlaced, placed(orderId), t.subjects.order(orderId));
            await publish(
              PaymentRefunded,
              refunded(orderId, 'customer_request'),
              t.subjects.payment(orderId),
            );
            await publish(PaymentAuthorized, authorized(orderId), t.subjects.payment(orderId));
          }),
        ]);
        await waitFor(async () => (await s.book.creditNotesOf(year)).length >= credited.length, {
          timeoutMs: 30_000,
        });
        await waitFor(() => s.drained(), { timeoutMs: 30_000 });

        const notes = await s.book.creditNotesOf(year);
        const earlyCredited = [];
        for (const orderId of early) {
          const [invoice, note] = [await s.book.invoiceOf(orderId), await s.book.creditNoteOf(orderId)];
          assert.equal(
            invoice === undefined,
            note === undefined,
            `${orderId}: invoice and credit note, or neither`,
          );
          if (note) earlyCredited.push(orderId);
        }
        assert.deepEqual(
          notes.map((n) => n.sequence),
          notes.map((_, i) => i + 1),
          'credit note numbers 1..n without gaps',
        );
        assert.deepEqual(new Set(notes.map((n) => n.orderId)), new Set([...credited, ...earlyCredited]));
        const invoices = await s.book.invoicesOf(year);
        assert.equal(invoices.length - notes.length, invoiced.length - credited.length);
        for (const note of notes) {
          assert.match(note.number, /^CN-\d{4}-\d{6}$/);
          assert.equal(note.invoiceNumber, invoices.find((i) => i.orderId === note.orderId)?.number);
        }
        for (const orderId of invoiced.slice(credited.length))
          assert.equal(
            await s.book.creditNoteOf(orderId),
            undefined,
            'an order not refunded keeps its invoice',
          );

        // Per credited order: invoice.created, then one credit-note.issued pointing at a stored PDF.
        for (const note of notes) {
          const events = await s.eventsOn(t.subjects.invoice(note.orderId));
          assert.deepEqual(
            events.map(([type]) => type),
            [InvoiceCreated.type, CreditNoteIssued.type],
          );
          const event = CreditNoteIssued.parse(events[1]?.[1]);
          assert.equal(event.creditNoteNumber, note.number);
          assert.equal(event.invoiceNumber, note.invoiceNumber);
          assert.deepEqual(event.total, { amount: 2380, currency: 'EUR' });
          assert.equal(event.pdf.name, t.objectStores.creditNotePdf(note.number));
          const pdf = await s.pdfs.fetch(event.pdf.name);
          assert.equal(pdf?.length, event.pdf.size);
          assert.equal(
            Buffer.from(pdf ?? [])
              .subarray(0, 5)
              .toString(),
            '%PDF-',
          );
        }
      } finally {
        await s.close();
      }
    });

    test('a refund of an invoice committed but never published (a crash in between) publishes the invoice first', async () => {
      const s = await system(dialect);
      try {
        const t = s.topology;
        const orderId = randomUUID();
        const o = placed(orderId);
        // What a replica killed between its commit and its publish leaves: the invoice, no event.
        await s.book.rememberOrder(orderId, {
          customer: { name: o.customer.name, email: o.customer.email },
          lines: o.lines,
          currency: o.currency,
          total: o.total,
          shippingAddress: o.shippingAddress,
          placedAt: o.placedAt,
        });
        const issued = await s.book.issue(orderId, `test-crashed-${orderId}`);
        assert.equal(issued.kind, 'issued');
        assert.deepEqual(await s.eventsOn(t.subjects.invoice(orderId)), []);

        await s.owners.publish(PaymentRefunded, refunded(orderId, 'customer_request'), {
          subject: t.subjects.payment(orderId),
          about: orderId,
        });
        const events = await waitFor(async () => {
          const list = await s.eventsOn(t.subjects.invoice(orderId));
          return list.length >= 2 ? list : undefined;
        });
        assert.deepEqual(
          events.map(([type]) => type),
          [InvoiceCreated.type, CreditNoteIssued.type],
        );
        const invoice = InvoiceCreated.parse(events[0]?.[1]);
        const note = CreditNoteIssued.parse(events[1]?.[1]);
        assert.equal(note.invoiceNumber, invoice.invoiceNumber);
        assert.equal(note.reason, 'customer_request');
        assert.equal(note.refundId, `re_${orderId}`);
        await waitFor(() => s.drained(), { timeoutMs: 30_000 });
        assert.equal((await s.eventsOn(t.subjects.invoice(orderId))).length, 2, 'each once');
      } finally {
        await s.close();
      }
    });
  });
}

describe('a permanent failure of invoicing', () => {
  test('an authorization create-invoice cannot invoice (no order.placed) is dead-lettered and published as invoice.failed', async () => {
    const s = await system('postgres');
    try {
      const orderId = randomUUID();
      const t = s.topology;
      await s.owners.publish(
        PaymentAuthorized,
        {
          orderId,
          paymentId: `ch_${orderId}`,
          amount: { amount: 2380, currency: 'EUR' },
          authorizedAt: now(),
        },
        { subject: t.subjects.payment(orderId), about: orderId },
      );
      const stored = await waitFor(
        () =>
          s.jsm.streams.getMessage(t.stream, { last_by_subj: t.subjects.invoice(orderId) }).catch(() => null),
        { timeoutMs: 30_000 },
      );
      assert.equal(stored.header.get('ce-type'), InvoiceFailed.type);
      const data = stored.json<Record<string, unknown>>();
      assert.equal(data.orderId, orderId);
      assert.equal(data.failedEvent, PaymentAuthorized.type);
      assert.equal(data.code, 'INVOICE_ORDER_UNKNOWN');
    } finally {
      await s.close();
    }
  });
});
