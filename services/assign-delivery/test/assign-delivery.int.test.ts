import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  DeliveryAssigned,
  DeliveryFailed,
  DeliveryReleased,
  DeliveryUnavailable,
  OrderCancelled,
  OrderCancelRequested,
  orderingTopology,
  OrderPlaced,
  PaymentAuthorized,
  OwnerPublisher,
} from '@orderflow/contracts';
import { connectNats, NatsTransport, runService, type RunningService } from '@orderflow/messaging';
import { migrate, migrateInboxOutbox, openSqlStore } from '@orderflow/sql';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { pino } from 'pino';
import { deliveryMigrations, SqlDispatch, startAssignDelivery, type Courier } from '../src/mod.ts';
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

const POOL: Courier[] = [
  { courierId: 'de-a', name: 'DE A', country: 'DE', capacity: 2 },
  { courierId: 'de-b', name: 'DE B', country: 'DE', capacity: 2 },
  { courierId: 'fr-a', name: 'FR A', country: 'FR', capacity: 5 },
];

async function system(dialect: 'postgres' | 'pglite') {
  const topology = orderingTopology({ namespace: uniqueName('ad') });
  const schema = uniqueName('assign_delivery');
  const dataDir = dialect === 'pglite' ? await mkdtemp(join(tmpdir(), 'assign-delivery-')) : '';
  // An initialised database to reopen: initdb on every system made this file slow (tens of seconds).
  if (dataDir) await seedPgliteDataDir(dataDir);
  const open = () =>
    openSqlStore({ ...(dialect === 'postgres' && { databaseUrl: DATABASE_URL }), dataDir, schema });
  const first = await open();
  // PGlite belongs to one process: there the two replicas share the embedded database.
  const stores = [first, dialect === 'postgres' ? await open() : first];
  await migrateInboxOutbox(first);
  await migrate(first, deliveryMigrations, { component: 'assign-delivery' });
  await SqlDispatch.seed(first, POOL);
  const consumer = topology.consumers.assignDelivery.all.name;
  const replicas: RunningService[] = [];
  for (const store of stores) {
    replicas.push(
      await runService(
        {
          name: 'assign-delivery',
          version: '0.1.0',
          broker: { kind: 'nats', servers: nats.url },
          streams: topology.streams,
          handleSignals: false,
          logger: pino({ level: 'silent' }),
        },
        (context) =>
          startAssignDelivery(context, {
            topology,
            dispatch: new SqlDispatch(store, { consumer }),
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
  const t = topology;
  const now = () => new Date().toISOString();
  return {
    topology,
    dispatch: new SqlDispatch(first, { consumer }),
    async place(orderId: string, country: string) {
      await owners.publish(
        OrderPlaced,
        {
          orderId,
          customer: { customerId: randomUUID(), email: 'ada@example.test', name: 'Ada' },
          lines: [{ sku: 'SKU-1', quantity: 1, unitPrice: 1000, lineTotal: 1000 }],
          currency: 'EUR',
          total: 1000,
          shippingAddress: { line1: 'Main St 1', city: 'Somewhere', postalCode: '1000', country },
          placedAt: now(),
        },
        { subject: t.subjects.order(orderId), about: orderId },
      );
    },
    /** The same authorization under two ids (two stream messages): a duplicate to absorb. */
    async authorize(orderId: string) {
      const data = {
        orderId,
        paymentId: `ch_${orderId}`,
        amount: { amount: 1000, currency: 'EUR' as const },
        authorizedAt: now(),
      };
      await owners.publish(PaymentAuthorized, data, { subject: t.subjects.payment(orderId), about: orderId });
      await owners.publish(PaymentAuthorized, data, { subject: t.subjects.payment(orderId), about: orderId });
    },
    async cancel(orderId: string) {
      const subject = t.subjects.order(orderId);
      await owners.publish(
        OrderCancelRequested,
        { orderId, reason: 'customer_request', requestedAt: now() },
        { subject, about: orderId },
      );
      await owners.publish(
        OrderCancelled,
        { orderId, reason: 'customer_request', cancelledAt: now() },
        { subject, about: orderId },
      );
    },
    /** The delivery events of an order, in stream order (`ce-type` and data). */
    async deliveries(orderId: string): Promise<{ type: string; data: Record<string, unknown> }[]> {
      const info = await jsm.streams.info(t.stream, { subjects_filter: t.subjects.delivery(orderId) });
      const events = [];
      let seq = info.state.first_seq;
      const total = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
      while (events.length < total) {
        const m = await jsm.streams.getMessage(t.stream, {
          next_by_subj: t.subjects.delivery(orderId),
          seq,
        } as never);
        if (!m) break;
        events.push({ type: m.header.get('ce-type'), data: m.json<Record<string, unknown>>() });
        seq = m.seq + 1;
      }
      return events;
    },
    async drained() {
      const b = t.consumers.assignDelivery.all;
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

for (const dialect of ['postgres', 'pglite'] as const) {
  describe(`assign-delivery against real NATS and ${dialect}`, () => {
    test('one courier per order, capacity never exceeded, AQ unavailable, cancel before assignment, release once', async () => {
      const s = await system(dialect);
      try {
        const german = Array.from({ length: 6 }, () => randomUUID());
        const french = randomUUID();
        const antarctic = randomUUID();
        const cancelledEarly = randomUUID();
        await Promise.all([
          ...german.map(async (o) => {
            await s.place(o, 'DE');
            await s.authorize(o);
          }),
          (async () => {
            await s.place(french, 'FR');
            await s.authorize(french);
          })(),
          (async () => {
            await s.place(antarctic, 'AQ');
            await s.authorize(antarctic);
          })(),
          (async () => {
            await s.place(cancelledEarly, 'FR');
            await s.cancel(cancelledEarly);
            await s.authorize(cancelledEarly);
          })(),
        ]);
        await waitFor(() => s.drained(), { timeoutMs: 30_000 });

        // Four German couriers' slots for six orders: four assigned, two unavailable, one event each.
        const outcomes = await Promise.all(german.map((o) => s.deliveries(o)));
        for (const events of outcomes) assert.equal(events.length, 1, JSON.stringify(events));
        const types = outcomes.map((events) => events[0]?.type).sort();
        assert.deepEqual(
          types,
          [
            ...Array<string>(4).fill(DeliveryAssigned.type),
            ...Array<string>(2).fill(DeliveryUnavailable.type),
          ].sort(),
        );
        const couriers = await s.dispatch.couriers();
        for (const c of couriers) {
          assert.ok(c.load <= c.capacity, `${c.courierId} load ${c.load} ≤ ${c.capacity}`);
          assert.equal(await s.dispatch.assignedCount(c.courierId), c.load, c.courierId);
        }
        assert.deepEqual(
          couriers.filter((c) => c.country === 'DE').map((c) => c.load),
          [2, 2],
        );

        const aq = await s.deliveries(antarctic);
        assert.deepEqual(
          aq.map((e) => [e.type, e.data.reason]),
          [[DeliveryUnavailable.type, 'no courier serves AQ']],
        );
        assert.deepEqual(await s.deliveries(cancelledEarly), []);
        assert.equal(await s.dispatch.statusOf(cancelledEarly), 'skipped');
        assert.deepEqual(
          (await s.deliveries(french)).map((e) => e.type),
          [DeliveryAssigned.type],
        );

        // Cancel the French order twice over (cancel-requested, cancelled, and both again): one release.
        await s.cancel(french);
        await s.cancel(french);
        await waitFor(async () => (await s.deliveries(french)).length === 2);
        await waitFor(() => s.drained(), { timeoutMs: 30_000 });
        const frenchEvents = await s.deliveries(french);
        assert.deepEqual(
          frenchEvents.map((e) => e.type),
          [DeliveryAssigned.type, DeliveryReleased.type],
        );
        assert.equal(frenchEvents[1]?.data.courierId, 'fr-a');
        const fr = (await s.dispatch.couriers()).find((c) => c.courierId === 'fr-a');
        assert.equal(fr?.load, 0);
      } finally {
        await s.close();
      }
    });
  });
}

describe('a permanent failure of the assignment', () => {
  test('an authorization assign-delivery cannot handle (no order.placed) is dead-lettered and published as delivery.failed', async () => {
    const s = await system('postgres');
    try {
      const orderId = randomUUID();
      await s.authorize(orderId);
      const events = await waitFor(
        async () => {
          const found = await s.deliveries(orderId);
          return found.length > 0 ? found : undefined;
        },
        { timeoutMs: 30_000 },
      );
      assert.deepEqual(
        events.map((e) => e.type),
        [DeliveryFailed.type],
      );
      assert.equal(events[0]?.data.orderId, orderId);
      assert.equal(events[0]?.data.failedEvent, PaymentAuthorized.type);
      assert.equal(events[0]?.data.code, 'DELIVERY_ORDER_UNKNOWN');
    } finally {
      await s.close();
    }
  });
});
