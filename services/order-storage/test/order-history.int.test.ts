// One suite for every OrderHistory implementation: the JetStream one (events of every source in the
// ORDERING stream) and the SQL one (the order's own events in a SQL event log, the others recorded by
// the consumers). Each harness reports another service's event the way that implementation learns
// of it.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  DeliveryAssigned,
  InvoiceCreated,
  orderingTopology,
  OwnerPublisher,
  PaymentAuthorized,
  producerOf,
  sourceOf,
  type OrderingTopology,
} from '@orderflow/contracts';
import {
  AggregateStore,
  commandHandler,
  migrateEventStore,
  SqlEventLog,
  type EventLog,
} from '@orderflow/eventstore';
import {
  connectNats,
  createEnvelope,
  NatsTransport,
  type MessageContract,
  type PayloadOf,
} from '@orderflow/messaging';
import { migrate, openPglite, type SqlStore } from '@orderflow/sql';
import { startNatsServer, uniqueName, type NatsServer } from '@orderflow/testing';
import {
  jetStreamPorts,
  orderAggregate,
  orderStorageMigrations,
  ownerOf,
  SqlOrderHistory,
  type OrderHistory,
} from '../src/mod.ts';

interface HistoryHarness {
  readonly topology: OrderingTopology;
  readonly log: EventLog;
  readonly history: OrderHistory;
  /** Another service's event about the order, as the implementation under test comes to know it. */
  report<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    orderId: string,
    id: string,
  ): Promise<void>;
  close(): Promise<void>;
}

let nats: NatsServer;
let nc: NatsConnection;
let pglite: SqlStore;
before(async () => {
  nats = await startNatsServer();
  ({ nc } = await connectNats({ servers: nats.url, name: 'order-history-test' }));
  pglite = await openPglite();
  await migrate(pglite, orderStorageMigrations, { component: 'order-storage' });
  await migrateEventStore(pglite);
});
after(async () => {
  await nc?.close();
  await nats?.dispose();
  await pglite?.close();
});

const subjectOf = (topology: OrderingTopology, contract: MessageContract, orderId: string): string => {
  const service = producerOf(contract);
  if (service === 'payment-processor') return topology.subjects.payment(orderId);
  if (service === 'create-invoice') return topology.subjects.invoice(orderId);
  return topology.subjects.delivery(orderId);
};

const harnesses: { name: string; open(): Promise<HistoryHarness> }[] = [
  {
    name: 'JetStream',
    async open() {
      const topology = orderingTopology({ namespace: uniqueName('oh') });
      const transport = await NatsTransport.create(nc, { source: sourceOf('order-storage') });
      await transport.provision(topology.streams);
      const owners = new OwnerPublisher(nc);
      const { eventLog, history } = jetStreamPorts(transport, topology);
      return {
        topology,
        log: eventLog,
        history,
        async report(contract, data, orderId, id) {
          await owners.publish(contract, data, {
            subject: subjectOf(topology, contract, orderId),
            about: orderId,
            id,
          });
          await pglite.transaction((tx) =>
            history.record(tx, orderId, createEnvelope({ type: contract.type, source: '', data, id })),
          );
        },
        async close() {
          await owners.close();
          await transport.close();
        },
      };
    },
  },
  {
    name: 'SQL (PGlite)',
    async open() {
      const topology = orderingTopology({ namespace: uniqueName('oh') });
      const log = new SqlEventLog(pglite, { source: sourceOf('order-storage') });
      const history = new SqlOrderHistory({ store: pglite, log, aggregate: orderAggregate(topology) });
      return {
        topology,
        log,
        history,
        async report(contract, data, orderId, id) {
          const event = createEnvelope({
            type: contract.type,
            source: sourceOf(producerOf(contract)),
            data,
            id,
            subject: orderId,
          });
          await pglite.transaction((tx) => history.record(tx, orderId, event));
        },
        close: async () => undefined,
      };
    },
  },
];

const now = () => new Date().toISOString();

for (const { name, ...harness } of harnesses) {
  describe(`order history on ${name}`, () => {
    test("the order's events and every source's, in order, with their producers; a repeated event once", async () => {
      const h = await harness.open();
      try {
        const aggregate = orderAggregate(h.topology);
        const handle = commandHandler(new AggregateStore(aggregate, { log: h.log }));
        const orderId = randomUUID();
        const customerId = randomUUID();
        await handle(orderId, {
          type: 'place',
          orderId,
          customer: { customerId, email: 'ada@example.test', name: 'Ada' },
          items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1250 }],
          currency: 'EUR',
          shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
        });
        const payment = {
          orderId,
          paymentId: 'ch_1',
          amount: { amount: 2500, currency: 'EUR' as const },
          authorizedAt: now(),
        };
        await h.report(PaymentAuthorized, payment, orderId, `pay-${orderId}`);
        await h.report(PaymentAuthorized, payment, orderId, `pay-${orderId}`); // redelivered, re-published
        await h.report(
          DeliveryAssigned,
          { orderId, courierId: 'k-1', courierName: 'Kim', assignedAt: now() },
          orderId,
          `del-${orderId}`,
        );
        await h.report(
          InvoiceCreated,
          {
            orderId,
            invoiceNumber: '2026-000001',
            year: 2026,
            sequence: 1,
            total: { amount: 2500, currency: 'EUR' as const },
            pdf: { bucket: 'INVOICES', name: `${orderId}.pdf`, size: 10 },
            issuedAt: now(),
          },
          orderId,
          `inv-${orderId}`,
        );
        await handle(orderId, {
          type: 'confirm',
          paymentId: 'ch_1',
          invoiceNumber: '2026-000001',
          courierId: 'k-1',
        });

        const { events, skipped } = await h.history.read(orderId);
        assert.deepEqual(skipped, []);
        assert.deepEqual(
          events.map((e) => [e.version, e.type, e.source, e.subject]),
          [
            [1, 'order.placed.v2', 'orderflow/order-storage', orderId],
            [2, 'payment.authorized.v1', 'orderflow/payment-processor', orderId],
            [3, 'delivery.assigned.v1', 'orderflow/assign-delivery', orderId],
            [4, 'invoice.created.v1', 'orderflow/create-invoice', orderId],
            [5, 'order.confirmed.v1', 'orderflow/order-storage', orderId],
          ],
        );
        assert.equal(events[1]?.id, `pay-${orderId}`);
        assert.deepEqual(events[1]?.data, payment);
        assert.equal(ownerOf(events), customerId);
      } finally {
        await h.close();
      }
    });

    test('an order nobody wrote has no history', async () => {
      const h = await harness.open();
      try {
        assert.deepEqual(await h.history.read(randomUUID()), { events: [], skipped: [] });
      } finally {
        await h.close();
      }
    });
  });
}
