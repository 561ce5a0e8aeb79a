import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import amqp, { type ChannelModel } from 'amqplib';
import {
  DeliveryAssigned,
  DeliveryUnavailable,
  orderingTopology,
  OrderPlaced,
  PaymentAuthorized,
  sourceOf,
} from '@orderflow/contracts';
import { on, RabbitTransport, runService, type Envelope } from '@orderflow/messaging';
import { migrate, migrateInboxOutbox, openSqlStore, type SqlStore } from '@orderflow/sql';
import { createRabbitVhost, uniqueName, waitFor, type RabbitVhost } from '@orderflow/testing';
import { pino } from 'pino';
import { deliveryMigrations, SqlDispatch, startAssignDelivery, type Courier } from '../src/mod.ts';

// assign-delivery needs only the Transport port: the same app on a real RabbitMQ vhost, with a
// PostgreSQL schema of its own.
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = uniqueName('assign_delivery_rabbit');
let vhost: RabbitVhost;
let store: SqlStore;
before(async () => {
  vhost = await createRabbitVhost();
  store = await openSqlStore({ databaseUrl: DATABASE_URL, dataDir: '', schema });
  await migrateInboxOutbox(store);
  await migrate(store, deliveryMigrations, { component: 'assign-delivery' });
});
after(async () => {
  await store.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await store.close();
  await vhost.dispose();
});

const POOL: Courier[] = [{ courierId: 'de-a', name: 'DE A', country: 'DE', capacity: 1 }];

test('assign-delivery on RabbitMQ: a paid order gets the courier, the next one finds none', async () => {
  const topology = orderingTopology({ namespace: uniqueName('adr') });
  await SqlDispatch.seed(store, POOL);
  const consumer = topology.consumers.assignDelivery.all.name;
  const service = await runService(
    {
      name: 'assign-delivery',
      version: '0.1.0',
      broker: { kind: 'rabbitmq', url: vhost.url },
      streams: topology.streams,
      handleSignals: false,
      logger: pino({ level: 'silent' }),
    },
    (context) =>
      startAssignDelivery(context, {
        topology,
        dispatch: new SqlDispatch(store, { consumer }),
        concurrency: 4,
        retry: { initialDelayMs: 20, maxDelayMs: 200 },
      }),
  );
  // The owners of `orders.*` and `payments.*`, and an observer of `deliveries.*`, each on its own connection.
  const connections: ChannelModel[] = [];
  const transport = async (service: Parameters<typeof sourceOf>[0]) => {
    const connection = await amqp.connect(vhost.url);
    connections.push(connection);
    return RabbitTransport.create(connection, { source: sourceOf(service) });
  };
  const orders = await transport('order-storage');
  const payments = await transport('payment-processor');
  const observer = await transport('order-status');
  const outcomes: Envelope[] = [];
  await observer.consume({
    name: uniqueName('observer'),
    stream: topology.stream,
    filterSubject: topology.filters.deliveries,
    handlers: [
      on(DeliveryAssigned, async (event) => void outcomes.push(event)),
      on(DeliveryUnavailable, async (event) => void outcomes.push(event)),
    ],
  });
  try {
    assert.equal((await fetch(`http://127.0.0.1:${service.httpPort}/readyz`)).status, 200);
    const now = () => new Date().toISOString();
    const first = randomUUID();
    const second = randomUUID();
    for (const orderId of [first, second]) {
      await orders.publish(
        OrderPlaced,
        {
          orderId,
          customer: { customerId: randomUUID(), email: 'ada@example.test', name: 'Ada' },
          lines: [{ sku: 'SKU-1', quantity: 1, unitPrice: 1000, lineTotal: 1000 }],
          currency: 'EUR',
          total: 1000,
          shippingAddress: { line1: 'Main St 1', city: 'Somewhere', postalCode: '1000', country: 'DE' },
          placedAt: now(),
        },
        { subject: topology.subjects.order(orderId), about: orderId },
      );
      await payments.publish(
        PaymentAuthorized,
        {
          orderId,
          paymentId: `ch_${orderId}`,
          amount: { amount: 1000, currency: 'EUR' },
          authorizedAt: now(),
        },
        { subject: topology.subjects.payment(orderId), about: orderId },
      );
      // One order at a time: which of the two gets the only courier is then certain.
      await waitFor(() => outcomes.length === (orderId === first ? 1 : 2), { timeoutMs: 30_000 });
    }
    assert.deepEqual(
      outcomes.map((e) => [e.type, e.subject]),
      [
        [DeliveryAssigned.type, first],
        [DeliveryUnavailable.type, second],
      ],
    );
    const dispatch = new SqlDispatch(store, { consumer });
    assert.equal(await dispatch.assignedCount('de-a'), 1);
  } finally {
    for (const t of [orders, payments, observer]) await t.close();
    for (const connection of connections) await connection.close();
    await service.stop();
  }
});
