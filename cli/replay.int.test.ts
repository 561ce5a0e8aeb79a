// `orderflow replay`: rebuilds order-storage's read model from a real order log (nats-server) into a
// real SQL store (PGlite), while order-storage runs on the same store.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { orderingTopology } from '@orderflow/contracts';
import { runService, type RunningService } from '@orderflow/messaging';
import {
  jetStreamPorts,
  orderStorageMigrations,
  orderSummary,
  startOrderStorage,
} from '@orderflow/order-storage';
import { migrate, migrateInboxOutbox, openPglite, type SqlStore } from '@orderflow/sql';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { pino } from 'pino';
import { progressBar, replay } from './commands/replay.ts';

let nats: NatsServer;
let store: SqlStore;
let service: RunningService<'nats'>;
const topology = orderingTopology({ namespace: uniqueName('replay') });

before(async () => {
  nats = await startNatsServer();
  store = await openPglite();
  await migrateInboxOutbox(store);
  await migrate(store, orderStorageMigrations, { component: 'order-storage' });
  service = await runService(
    {
      name: 'order-storage',
      version: '0.1.0',
      broker: { kind: 'nats', servers: nats.url },
      streams: topology.streams,
      handleSignals: false,
      logger: pino({ level: 'silent' }),
    },
    (context) =>
      startOrderStorage(context, {
        topology,
        store,
        ...jetStreamPorts(context.broker.transport, topology),
        relayPollIntervalMs: 100,
      }).then(() => undefined),
  );
});
after(async () => {
  await service?.stop();
  await store?.close();
  await nats?.dispose();
});

test('the progress bar fills with the commits applied', () => {
  assert.equal(progressBar(0, 4, 0), `[${'.'.repeat(30)}]   0%  0/4 commits  #0`);
  assert.equal(progressBar(2, 4, 7), `[${'#'.repeat(15)}${'.'.repeat(15)}]  50%  2/4 commits  #7`);
  assert.equal(progressBar(4, 4, 9), `[${'#'.repeat(30)}] 100%  4/4 commits  #9`);
});

test('replay rebuilds order_summaries from the log with progress, and the read model stays whole', async () => {
  const { transport } = service;
  const { customerId } = await transport.request(topology.endpoints.registerCustomer, {
    email: `${randomUUID()}@example.test`,
    name: 'Ada',
  });
  const orderIds: string[] = [];
  for (let i = 0; i < 5; i++) {
    const placed = await transport.request(topology.endpoints.placeOrder, {
      customerId,
      items: [{ sku: 'SKU-1', quantity: 1 + i, unitPrice: 1250 }],
      currency: 'EUR',
      shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
      payment: { token: 'tok_visa' },
      idempotencyKey: randomUUID(),
    });
    orderIds.push(placed.orderId);
  }
  await waitFor(
    async () => (await Promise.all(orderIds.map((id) => orderSummary(store, id)))).every(Boolean),
    {
      message: 'the running projection has every order',
    },
  );

  const lines: string[] = [];
  const result = await replay({
    nc: service.broker.nc,
    store,
    topology,
    out: { write: (text) => lines.push(text), isTTY: false },
    batchSize: 2,
  });
  assert.equal(result.applied, 5, 'one commit per placed order');
  assert.ok(result.generation >= 2, 'a new generation was swapped in');
  assert.ok(
    lines.some((l) => l.includes('100%  5/5 commits')),
    lines.join(''),
  );
  assert.ok(lines.length >= 3, 'progress was drawn along the way');
  assert.match(lines.at(-1) ?? '', /^rebuilt order_summaries: generation \d+, 5 commit\(s\)/);
  for (const id of orderIds) {
    const summary = await orderSummary(store, id);
    assert.ok(summary, `order ${id} is in the rebuilt read model`);
  }
});
