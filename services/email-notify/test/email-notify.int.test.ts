import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import {
  CreditNoteIssued,
  CustomerRegistered,
  DeliveryAssigned,
  InvoiceCreated,
  OrderCancelled,
  OrderConfirmed,
  orderingTopology,
  OrderPlaced,
  PaymentAuthorized,
  PaymentDeclined,
  PaymentRefunded,
  type OrderingTopology,
  OwnerPublisher,
} from '@orderflow/contracts';
import {
  connectNats,
  NatsTransport,
  runService,
  TransientError,
  type MessageContract,
  type PayloadOf,
  type RunningService,
  NatsBlobStores,
} from '@orderflow/messaging';
import { spawnSmtpSink, type SmtpSinkProcess } from '@orderflow/smtp-sink';
import { migrate, openPglite, openSqlStore, type SqlStore } from '@orderflow/sql';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { pino } from 'pino';
import {
  emailMigrations,
  KEY_HEADER,
  KIND_HEADER,
  ObjectStorePdfs,
  SmtpMailer,
  SqlMailLog,
  startEmailNotify,
  type Mailer,
} from '../src/mod.ts';

// Real servers: one nats-server and one smtp-sink process for the file, PostgreSQL with a schema per
// test (DATABASE_URL, default the local test database). Each test has its own namespace and recipients.
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
let nats: NatsServer;
let sink: SmtpSinkProcess;
before(async () => {
  [nats, sink] = await Promise.all([startNatsServer(), spawnSmtpSink()]);
});
after(async () => {
  await Promise.all([nats.dispose(), sink.stop()]);
});

/** Fails the first `failures` sends, as an SMTP server that is briefly down would. */
function flaky(mailer: Mailer, failures: number): Mailer {
  let left = failures;
  return {
    send: async (mail, attachments) => {
      if (left-- > 0) throw new Error('SMTP connection refused (injected)');
      return mailer.send(mail, attachments);
    },
    close: () => mailer.close(),
  };
}

/** A mail log whose `markSent` fails `failures` times as if the database were down. */
class FlakyMarkLog extends SqlMailLog {
  constructor(
    store: SqlStore,
    leaseMs: number,
    private failures: number,
  ) {
    super(store, { leaseMs });
  }
  override async markSent(...args: Parameters<SqlMailLog['markSent']>): Promise<void> {
    if (this.failures-- > 0) throw new TransientError('database unreachable (injected)');
    return super.markSent(...args);
  }
}

async function system(options: {
  replicas: number;
  firstSendFailures?: number;
  markSentFailures?: number;
  leaseMs?: number;
}) {
  const topology = orderingTopology({ namespace: uniqueName('en') });
  const schema = uniqueName('email_notify');
  const stores: SqlStore[] = [];
  const mailers: Mailer[] = [];
  const replicas: RunningService[] = [];
  for (let i = 0; i < options.replicas; i++) {
    const store = await openSqlStore({ databaseUrl: DATABASE_URL, dataDir: '', schema });
    stores.push(store);
    await migrate(store, emailMigrations, { component: 'email-notify' });
    const smtp = new SmtpMailer({
      host: '127.0.0.1',
      port: sink.smtpPort,
      secure: false,
      user: undefined,
      password: undefined,
      from: 'orders@example.test',
      timeoutMs: 5_000,
    });
    const mailer = i === 0 && options.firstSendFailures ? flaky(smtp, options.firstSendFailures) : smtp;
    mailers.push(mailer);
    replicas.push(
      await runService(
        {
          name: 'email-notify',
          version: '0.1.0',
          broker: { kind: 'nats', servers: nats.url },
          streams: topology.streams,
          handleSignals: false,
          logger: pino({ level: 'silent' }),
        },
        (context) =>
          startEmailNotify(context, {
            topology,
            log: new FlakyMarkLog(
              store,
              options.leaseMs ?? 60_000,
              i === 0 ? (options.markSentFailures ?? 0) : 0,
            ),
            mailer,
            pdfs: new ObjectStorePdfs(new NatsBlobStores(context.broker.nc)),
            retry: { initialDelayMs: 20, maxDelayMs: 200 },
          }),
      ),
    );
  }
  const { nc } = await connectNats({ servers: nats.url, name: 'test-producer' });
  const producer = await NatsTransport.create(nc, { source: 'orderflow/test' });
  const owners = new OwnerPublisher(nc); // publishes each event as its producing service
  const jsm = await jetstreamManager(nc);
  return {
    topology,
    nc,
    /** Publishes `data` twice under different ids: a duplicate the consumer must absorb. */
    async publishTwice<C extends MessageContract>(
      contract: C,
      data: PayloadOf<C>,
      subject: string,
      about: string,
    ) {
      await owners.publish(contract, data, { subject, about });
      await owners.publish(contract, data, { subject, about });
    },
    async drained(): Promise<boolean> {
      const binding = topology.consumers.emailNotify.all;
      const info = await jsm.consumers.info(binding.stream, binding.name);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    },
    async close() {
      await Promise.all(replicas.map((r) => r.stop()));
      for (const mailer of mailers) mailer.close();
      await stores[0]?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await Promise.all(stores.map((s) => s.close()));
      await producer.close();
      await owners.close();
      await nc.close();
    },
  };
}

function order(email: string): PayloadOf<typeof OrderPlaced> {
  return {
    orderId: randomUUID(),
    customer: { customerId: randomUUID(), email, name: 'Ada' },
    lines: [{ sku: 'SKU-1', quantity: 3, unitPrice: 1250, lineTotal: 3750 }],
    currency: 'EUR',
    total: 3750,
    shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
    placedAt: new Date().toISOString(),
  };
}

const now = () => new Date().toISOString();

/** The kinds of the mails to `to` in the order the sink received them. */
async function kindsInOrder(to: string): Promise<string[]> {
  return (await sink.messages({ to })).map((m) => m.headers[KIND_HEADER.toLowerCase()] ?? '?');
}

/** The attachments' file names and contents of the one mail of `kind` to `to`. */
async function attachmentsOf(to: string, kind: string): Promise<[string, string][]> {
  const [found] = await sink.messages({ to, header: `${KIND_HEADER}: ${kind}` });
  const full = await sink.message(found?.id ?? '');
  return full.attachments.map((a) => [
    a.filename ?? '',
    Buffer.from(a.contentBase64 ?? '', 'base64').toString(),
  ]);
}

async function mailsTo(to: string): Promise<string[]> {
  const messages = await sink.messages({ to });
  return messages
    .map((m) => `${m.headers[KEY_HEADER.toLowerCase()]}/${m.headers[KIND_HEADER.toLowerCase()]}`)
    .sort();
}

describe('email-notify against real NATS, SMTP sink and PostgreSQL', () => {
  test('two replicas and duplicated events: one mail per (order, kind), the invoice with its PDF', async () => {
    const s = await system({ replicas: 2 });
    try {
      const email = `${uniqueName('ada')}@example.test`;
      const t: OrderingTopology = s.topology;
      const customerId = randomUUID();
      const paid = order(email);
      const declined = order(email);
      const pdf = new TextEncoder().encode(`%PDF-1.4 invoice for ${paid.orderId}`);
      const bucket = t.objectStores.invoices;
      const objects = await new Objm(s.nc).create(bucket);
      await objects.putBlob({ name: `${paid.orderId}.pdf` }, pdf);

      await s.publishTwice(
        CustomerRegistered,
        { customerId, email, name: 'Ada', registeredAt: now() },
        t.subjects.customer(customerId),
        customerId,
      );
      for (const o of [paid, declined])
        await s.publishTwice(OrderPlaced, o, t.subjects.order(o.orderId), o.orderId);
      const amount = { amount: 3750, currency: 'EUR' as const };
      await s.publishTwice(
        PaymentAuthorized,
        { orderId: paid.orderId, paymentId: 'ch_1', amount, authorizedAt: now() },
        t.subjects.payment(paid.orderId),
        paid.orderId,
      );
      await s.publishTwice(
        InvoiceCreated,
        {
          orderId: paid.orderId,
          invoiceNumber: '2026-000001',
          year: 2026,
          sequence: 1,
          total: amount,
          pdf: { bucket, name: `${paid.orderId}.pdf`, size: pdf.length },
          issuedAt: now(),
        },
        t.subjects.invoice(paid.orderId),
        paid.orderId,
      );
      await s.publishTwice(
        DeliveryAssigned,
        { orderId: paid.orderId, courierId: 'c-1', courierName: 'Speedy', assignedAt: now() },
        t.subjects.delivery(paid.orderId),
        paid.orderId,
      );
      await s.publishTwice(
        OrderConfirmed,
        {
          orderId: paid.orderId,
          paymentId: 'ch_1',
          invoiceNumber: '2026-000001',
          courierId: 'c-1',
          confirmedAt: now(),
        },
        t.subjects.order(paid.orderId),
        paid.orderId,
      );
      await s.publishTwice(
        PaymentDeclined,
        { orderId: declined.orderId, code: 'card_declined', message: 'declined', declinedAt: now() },
        t.subjects.payment(declined.orderId),
        declined.orderId,
      );
      await s.publishTwice(
        OrderCancelled,
        { orderId: declined.orderId, reason: 'payment_declined', cancelledAt: now() },
        t.subjects.order(declined.orderId),
        declined.orderId,
      );

      const expected = [
        `${customerId}/welcome`,
        `${paid.orderId}/order_placed`,
        `${paid.orderId}/invoice`,
        `${paid.orderId}/courier_assigned`,
        `${declined.orderId}/order_placed`,
        `${declined.orderId}/payment_declined`,
        `${declined.orderId}/order_cancelled`,
      ].sort();
      await waitFor(async () => (await mailsTo(email)).length >= expected.length, { timeoutMs: 30_000 });
      await waitFor(() => s.drained());
      assert.deepEqual(await mailsTo(email), expected);

      const [invoiceMail] = await sink.messages({ to: email, header: `${KIND_HEADER}: invoice` });
      const full = await sink.message(invoiceMail?.id ?? '');
      assert.equal(full.attachments.length, 1);
      assert.equal(full.attachments[0]?.contentType, 'application/pdf');
      assert.deepEqual(Buffer.from(full.attachments[0]?.contentBase64 ?? '', 'base64'), Buffer.from(pdf));
    } finally {
      await s.close();
    }
  });

  test('an SMTP failure is retried and still sends exactly one mail', async () => {
    const s = await system({ replicas: 1, firstSendFailures: 2 });
    try {
      const email = `${uniqueName('bob')}@example.test`;
      const o = order(email);
      await s.publishTwice(OrderPlaced, o, s.topology.subjects.order(o.orderId), o.orderId);
      await waitFor(async () => (await mailsTo(email)).length >= 1);
      await waitFor(() => s.drained());
      assert.deepEqual(await mailsTo(email), [`${o.orderId}/order_placed`]);
    } finally {
      await s.close();
    }
  });

  test('marking a sent mail failing for longer than the claim lease (database down) still sends one mail', async () => {
    // Before the fix the handler failed, its retry found its own claim and, once the lease ran out,
    // sent the mail again.
    const s = await system({ replicas: 1, markSentFailures: 4, leaseMs: 300 });
    try {
      const email = `${uniqueName('dora')}@example.test`;
      const o = order(email);
      await s.publishTwice(OrderPlaced, o, s.topology.subjects.order(o.orderId), o.orderId);
      await waitFor(async () => (await mailsTo(email)).length >= 1);
      await waitFor(() => s.drained());
      await new Promise((resolve) => setTimeout(resolve, 500)); // past the lease: a resend would show now
      assert.deepEqual(await mailsTo(email), [`${o.orderId}/order_placed`]);
    } finally {
      await s.close();
    }
  });

  /**
   * An invoiced order that is refunded and cancelled: the PDFs in the object store, then the events in
   * the given stream order (`invoice.created` before or after `order.cancelled`), each twice.
   */
  async function refundedInvoicedOrder(
    s: Awaited<ReturnType<typeof system>>,
    email: string,
    invoiceAfterCancellation: boolean,
  ) {
    const t: OrderingTopology = s.topology;
    const o = { ...order(email), shippingAddress: { ...order(email).shippingAddress, country: 'AQ' } };
    const orderId = o.orderId;
    const amount = { amount: 3750, currency: 'EUR' as const };
    const bucket = t.objectStores.invoices;
    const invoiceNumber = `2026-${String(Math.floor(Math.random() * 900_000) + 100_000)}`;
    const creditNoteNumber = `CN-${invoiceNumber}`;
    const objects = await new Objm(s.nc).create(bucket);
    const invoicePdf = t.objectStores.invoicePdf(invoiceNumber);
    const creditNotePdf = t.objectStores.creditNotePdf(creditNoteNumber);
    await objects.putBlob({ name: invoicePdf }, new TextEncoder().encode(`%PDF invoice ${invoiceNumber}`));
    await objects.putBlob(
      { name: creditNotePdf },
      new TextEncoder().encode(`%PDF credit ${creditNoteNumber}`),
    );
    const invoiced = () =>
      s.publishTwice(
        InvoiceCreated,
        {
          orderId,
          invoiceNumber,
          year: 2026,
          sequence: 1,
          total: amount,
          pdf: { bucket, name: invoicePdf, size: 1 },
          issuedAt: now(),
        },
        t.subjects.invoice(orderId),
        orderId,
      );
    await s.publishTwice(OrderPlaced, o, t.subjects.order(orderId), orderId);
    if (!invoiceAfterCancellation) await invoiced();
    await s.publishTwice(
      PaymentRefunded,
      {
        orderId,
        paymentId: 'ch_1',
        refundId: 're_1',
        amount,
        reason: 'delivery_unavailable',
        refundedAt: now(),
      },
      t.subjects.payment(orderId),
      orderId,
    );
    await s.publishTwice(
      OrderCancelled,
      { orderId, reason: 'delivery_unavailable', refunded: amount, cancelledAt: now() },
      t.subjects.order(orderId),
      orderId,
    );
    if (invoiceAfterCancellation) await invoiced();
    await s.publishTwice(
      CreditNoteIssued,
      {
        orderId,
        creditNoteNumber,
        year: 2026,
        sequence: 1,
        invoiceNumber,
        total: amount,
        reason: 'delivery_unavailable',
        refundId: 're_1',
        pdf: { bucket, name: creditNotePdf, size: 1 },
        issuedAt: now(),
      },
      t.subjects.invoice(orderId),
      orderId,
    );
    return { orderId, invoiceNumber, creditNoteNumber };
  }

  test('a refunded invoiced order: invoice mail, cancellation, then the credit note with its PDF', async () => {
    const s = await system({ replicas: 1 });
    try {
      const email = `${uniqueName('erin')}@example.test`;
      const { invoiceNumber, creditNoteNumber } = await refundedInvoicedOrder(s, email, false);
      await waitFor(async () => (await kindsInOrder(email)).length >= 4, { timeoutMs: 30_000 });
      await waitFor(() => s.drained());
      assert.deepEqual(await kindsInOrder(email), [
        'order_placed',
        'invoice',
        'order_cancelled',
        'credit_note',
      ]);
      assert.deepEqual(await attachmentsOf(email, 'credit_note'), [
        [`credit-note-${creditNoteNumber}.pdf`, `%PDF credit ${creditNoteNumber}`],
      ]);
      assert.deepEqual(await attachmentsOf(email, 'invoice'), [
        [`invoice-${invoiceNumber}.pdf`, `%PDF invoice ${invoiceNumber}`],
      ]);
    } finally {
      await s.close();
    }
  });

  test('invoice.created stored after order.cancelled: no invoice mail after the cancellation; the credit note mail carries both PDFs', async () => {
    const s = await system({ replicas: 1 });
    try {
      const email = `${uniqueName('finn')}@example.test`;
      const { invoiceNumber, creditNoteNumber } = await refundedInvoicedOrder(s, email, true);
      await waitFor(async () => (await kindsInOrder(email)).includes('credit_note'), { timeoutMs: 30_000 });
      await waitFor(() => s.drained());
      assert.deepEqual(await kindsInOrder(email), ['order_placed', 'order_cancelled', 'credit_note']);
      assert.deepEqual(await attachmentsOf(email, 'credit_note'), [
        [`credit-note-${creditNoteNumber}.pdf`, `%PDF credit ${creditNoteNumber}`],
        [`invoice-${invoiceNumber}.pdf`, `%PDF invoice ${invoiceNumber}`],
      ]);
    } finally {
      await s.close();
    }
  });
});

describe('the mail log on PGlite and PostgreSQL', () => {
  for (const dialect of ['pglite', 'postgres'] as const) {
    test(`${dialect}: a claim decides once per (key, kind), remembers the contact it carries, and honours the lease`, async () => {
      const schema = uniqueName('email_log');
      const store =
        dialect === 'pglite'
          ? await openPglite()
          : await openSqlStore({ databaseUrl: DATABASE_URL, dataDir: '', schema });
      try {
        await migrate(store, emailMigrations, { component: 'email-notify' });
        let now = new Date('2026-12-03T10:00:00Z');
        const log = new SqlMailLog(store, { leaseMs: 60_000, now: () => now });
        const mail = {
          key: 'ord_1',
          kind: 'order_placed' as const,
          to: 'a@example.test',
          messageId: '<m1@x>',
        };
        const contact = { orderId: 'ord_1', email: 'a@example.test', name: 'Ada' };
        assert.equal(await log.claim({ ...mail, eventId: 'e1', contact }), 'send');
        // Another process (no cache) finds the contact the claim stored.
        const other = new SqlMailLog(store, { leaseMs: 60_000, now: () => now, contactCacheSize: 0 });
        assert.deepEqual(await other.contact('ord_1'), { email: 'a@example.test', name: 'Ada' });
        assert.equal(await other.claim({ ...mail, eventId: 'e1', contact }), 'busy');
        assert.equal(await log.claimedAny('ord_1', ['invoice', 'order_placed']), true);
        assert.equal(await log.claimedAny('ord_1', ['invoice', 'credit_note']), false);
        now = new Date(now.getTime() + 60_000); // the lease ran out: the claim may be taken again
        assert.equal(await other.claim({ ...mail, eventId: 'e2' }), 'send');
        await other.markSent(mail.key, mail.kind);
        assert.equal(await log.claim({ ...mail, eventId: 'e3', contact }), 'skip');
        const { rows } = await store.query<{ attempts: number; status: string }>(
          'SELECT attempts, status FROM email_mails WHERE mail_key = $1 AND kind = $2',
          [mail.key, mail.kind],
        );
        assert.deepEqual(rows, [{ attempts: 2, status: 'sent' }]);
        assert.equal(await other.contact('ord_2'), undefined);
      } finally {
        if (dialect === 'postgres') await store.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await store.close();
      }
    });
  }
});
