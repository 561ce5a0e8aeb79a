// A saga step that fails permanently ends the order. Real parts in process: one nats-server, the fake
// PSP as its own process, PostgreSQL (a schema per service and test); order-storage, payment-processor
// and create-invoice as the services run them. The failures are real ones: the PSP refuses a card as
// an invalid request, and the invoice archive (the INVOICES object store) is over its quota.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { orderingTopology, type OrderingTopology } from '@orderflow/contracts';
import {
  ObjectStorePdfArchive,
  invoiceMigrations,
  SqlInvoiceBook,
  startCreateInvoice,
} from '@orderflow/create-invoice';
import {
  connectNats,
  NatsTransport,
  runService,
  type RunningService,
  NatsBlobStores,
} from '@orderflow/messaging';
import {
  jetStreamPorts,
  orderStorageMigrations,
  startOrderStorage,
  type OrderStorage,
} from '@orderflow/order-storage';
import { HttpPaymentGateway, startPaymentProcessor } from '@orderflow/payment-processor';
import { spawnPaymentProvider, type PaymentProviderProcess } from '@orderflow/payment-provider';
import { migrate, migrateInboxOutbox, openPostgres, type SqlStore } from '@orderflow/sql';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { pino } from 'pino';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
let nats: NatsServer;
let psp: PaymentProviderProcess;
before(async () => {
  [nats, psp] = await Promise.all([startNatsServer(), spawnPaymentProvider()]);
});
after(async () => {
  await Promise.all([nats.dispose(), psp.dispose()]);
});

const fast = { initialDelayMs: 20, maxDelayMs: 100, transientRetryMs: 200 };

async function system() {
  const topology: OrderingTopology = orderingTopology({ namespace: uniqueName('saga') });
  const schemas = { storage: uniqueName('saga_os'), invoices: uniqueName('saga_ci') };
  const storageDb: SqlStore = await openPostgres({ url: DATABASE_URL, schema: schemas.storage, poolSize: 3 });
  await migrateInboxOutbox(storageDb);
  await migrate(storageDb, orderStorageMigrations, { component: 'order-storage' });
  const invoiceDb: SqlStore = await openPostgres({
    url: DATABASE_URL,
    schema: schemas.invoices,
    poolSize: 3,
  });
  await migrateInboxOutbox(invoiceDb);
  await migrate(invoiceDb, invoiceMigrations, { component: 'create-invoice' });
  const common = {
    version: '0.1.0',
    broker: { kind: 'nats' as const, servers: nats.url },
    streams: topology.streams,
    handleSignals: false,
    logger: pino({ level: 'silent' }),
  };
  let storage: OrderStorage | undefined;
  const services: RunningService[] = [
    await runService({ ...common, name: 'order-storage' }, async (context) => {
      storage = await startOrderStorage(context, {
        topology,
        store: storageDb,
        ...jetStreamPorts(context.broker.transport, topology),
        retry: fast,
        relayPollIntervalMs: 100,
      });
    }),
    await runService({ ...common, name: 'payment-processor' }, (context) =>
      startPaymentProcessor(context, {
        topology,
        psp: new HttpPaymentGateway({ baseUrl: psp.url, timeoutMs: 5_000 }),
        maxDeliver: 3,
        retry: fast,
      }),
    ),
    await runService({ ...common, name: 'create-invoice' }, async (context) =>
      startCreateInvoice(context, {
        topology,
        book: new SqlInvoiceBook(invoiceDb, { consumer: topology.consumers.createInvoice.all.name }),
        pdfs: await ObjectStorePdfArchive.open(
          new NatsBlobStores(context.broker.nc),
          topology.objectStores.invoices,
        ),
        maxDeliver: 3,
        retry: fast,
      }),
    ),
  ];
  const { nc } = await connectNats({ servers: nats.url, name: 'saga-test' });
  const client = await NatsTransport.create(nc, { source: 'orderflow/test' });
  const customerId = (
    await client.request(topology.endpoints.registerCustomer, {
      email: `${randomUUID()}@example.test`,
      name: 'Ada',
    })
  ).customerId;
  return {
    topology,
    client,
    storage: storage as OrderStorage,
    place: (token: string) =>
      client.request(topology.endpoints.placeOrder, {
        customerId,
        items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1250 }],
        currency: 'EUR',
        shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
        payment: { token },
        idempotencyKey: randomUUID(),
      }),
    history: async (orderId: string) =>
      (await client.request(topology.endpoints.getOrderHistory, { orderId })).events,
    async close() {
      for (const service of services.reverse()) await service.stop();
      await client.close();
      await nc.close();
      for (const [store, schema] of [
        [storageDb, schemas.storage],
        [invoiceDb, schemas.invoices],
      ] as const) {
        await store.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await store.close();
      }
    },
  };
}

describe('a saga step that fails permanently ends the order', () => {
  test('the PSP refuses the card as such: the charge is dead-lettered, payment.failed, cancelled payment_failed, nothing charged', async () => {
    const s = await system();
    try {
      const { orderId } = await s.place('tok_invalid');
      await waitFor(async () => (await s.storage.summary(orderId))?.status === 'cancelled', {
        timeoutMs: 30_000,
      });
      assert.equal((await s.storage.summary(orderId))?.cancellationReason, 'payment_failed');
      // The whole history: payment-processor's failure, then order-storage's cancellation.
      const history = await s.history(orderId);
      assert.deepEqual(
        history.map((e) => [e.type, e.source]),
        [
          ['order.placed.v2', 'orderflow/order-storage'],
          ['payment.failed.v1', 'orderflow/payment-processor'],
          ['order.cancelled.v1', 'orderflow/order-storage'],
        ],
      );
      assert.equal((history[2]?.data as { refunded?: unknown }).refunded, undefined);
      assert.deepEqual(await psp.ledger({ reference: orderId }), []);
      const binding = s.topology.consumers.paymentProcessor.orders;
      const letters = await s.client.deadLetters.list({ stream: binding.stream, consumer: binding.name });
      assert.deepEqual(
        letters.map((l) => [l.subject, l.code]),
        [[s.topology.subjects.order(orderId), 'PSP_REJECTED']],
      );
    } finally {
      await s.close();
    }
  });

  test('the invoice archive is over its quota after the charge: invoice.failed, refund, cancelled invoice_failed', async () => {
    const s = await system();
    try {
      // An operator set the invoice bucket's quota below one PDF: storing any invoice fails.
      const bucketStream = `OBJ_${s.topology.objectStores.invoices}`;
      const info = await s.client.jsm.streams.info(bucketStream);
      await s.client.jsm.streams.update(bucketStream, { ...info.config, max_bytes: 256 });

      const { orderId } = await s.place('tok_visa');
      await waitFor(async () => (await s.storage.summary(orderId))?.status === 'cancelled', {
        timeoutMs: 60_000,
      });
      assert.equal((await s.storage.summary(orderId))?.cancellationReason, 'invoice_failed');
      // The Order's own events (the other services' steps interleave in any order).
      const history = (await s.history(orderId)).filter((e) => e.source === 'orderflow/order-storage');
      assert.deepEqual(
        history.map((e) => [e.type, (e.data as { reason?: string }).reason]),
        [
          ['order.placed.v2', undefined],
          ['order.cancel-requested.v1', 'invoice_failed'],
          ['order.cancelled.v1', 'invoice_failed'],
        ],
      );
      assert.deepEqual((history[2]?.data as { refunded?: unknown }).refunded, {
        amount: 2500,
        currency: 'EUR',
      });
      const ledger = await psp.ledger({ reference: orderId });
      assert.deepEqual(
        ledger.map((e) => [e.kind, e.status, e.amount]),
        [
          ['charge', 'succeeded', 2500],
          ['refund', 'succeeded', 2500],
        ],
      );
      const binding = s.topology.consumers.createInvoice.all;
      const letters = await s.client.deadLetters.list({ stream: binding.stream, consumer: binding.name });
      assert.deepEqual(
        letters.map((l) => l.subject),
        [s.topology.subjects.payment(orderId)],
      );
    } finally {
      await s.close();
    }
  });
});
