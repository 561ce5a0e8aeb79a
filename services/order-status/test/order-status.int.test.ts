import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import {
  DeliveryAssigned,
  InvoiceCreated,
  OrderConfirmed,
  orderingTopology,
  OrderPlaced,
  OrderStatusChanged,
  PaymentAuthorized,
  type OrderingTopology,
  OwnerPublisher,
} from '@orderflow/contracts';
import {
  connectNats,
  NatsKeyValueStores,
  NatsTransport,
  RemoteError,
  ValidationError,
  runService,
  type Envelope,
  type PayloadOf,
  type RunningService,
} from '@orderflow/messaging';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { pino } from 'pino';
import { KvStatusStore, startOrderStatus, type StatusStore } from '../src/mod.ts';

// One real nats-server for the file; each test has its own namespace (stream, bucket, subjects).
let nats: NatsServer;
before(async () => {
  nats = await startNatsServer();
});
after(async () => {
  await nats.dispose();
});

type Wrap = (store: StatusStore) => StatusStore;

async function system(options: { replicas: number; wrap?: Wrap }) {
  const topology = orderingTopology({ namespace: uniqueName('os') });
  const replicas: RunningService[] = [];
  for (let i = 0; i < options.replicas; i++) {
    replicas.push(
      await runService(
        {
          name: 'order-status',
          version: '0.1.0',
          broker: { kind: 'nats', servers: nats.url },
          streams: topology.streams,
          handleSignals: false,
          logger: pino({ level: 'silent' }),
        },
        async (context) => {
          const store = await KvStatusStore.open(
            new NatsKeyValueStores(context.broker.nc),
            topology.kv.orderStatus,
          );
          await startOrderStatus(context, {
            topology,
            store: options.wrap ? options.wrap(store) : store,
            broadcaster: context.transport,
            concurrency: 8,
            retry: { initialDelayMs: 20, maxDelayMs: 200 },
          });
        },
      ),
    );
  }
  const { nc } = await connectNats({ servers: nats.url, name: 'test-client' });
  const client = await NatsTransport.create(nc, { source: 'orderflow/test' });
  const owners = new OwnerPublisher(nc); // publishes each event as its producing service
  const notifications: Envelope<PayloadOf<typeof OrderStatusChanged>>[] = [];
  client.listen(OrderStatusChanged, topology.notifications.statusChangedAll, (n) => notifications.push(n));
  await nc.flush();
  return {
    topology,
    client,
    owners,
    nc,
    notifications,
    notificationsOf: (orderId: string) => notifications.filter((n) => n.data.orderId === orderId),
    status: (orderId: string) => client.request(topology.endpoints.getOrderStatus, { orderId }),
    async close() {
      await Promise.all(replicas.map((r) => r.stop()));
      await client.close();
      await owners.close();
      await nc.close();
    },
  };
}

const now = () => new Date().toISOString();

/** The events of the reference flow of one order, in append order. */
function referenceFlow(t: OrderingTopology, orderId: string, n: number) {
  const amount = { amount: 2500, currency: 'EUR' as const };
  const invoiceNumber = `2026-${String(n).padStart(6, '0')}`;
  return [
    {
      contract: OrderPlaced,
      subject: t.subjects.order(orderId),
      data: {
        orderId,
        customer: { customerId: randomUUID(), email: 'ada@example.test', name: 'Ada' },
        lines: [{ sku: 'SKU-1', quantity: 1, unitPrice: 2500, lineTotal: 2500 }],
        currency: 'EUR',
        total: 2500,
        shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
        placedAt: now(),
      } satisfies PayloadOf<typeof OrderPlaced>,
    },
    {
      contract: PaymentAuthorized,
      subject: t.subjects.payment(orderId),
      data: { orderId, paymentId: `ch_${n}`, amount, authorizedAt: now() },
    },
    {
      contract: InvoiceCreated,
      subject: t.subjects.invoice(orderId),
      data: {
        orderId,
        invoiceNumber,
        year: 2026,
        sequence: n,
        total: amount,
        pdf: { bucket: t.objectStores.invoices, name: `${invoiceNumber}.pdf`, size: 1 },
        issuedAt: now(),
      },
    },
    {
      contract: DeliveryAssigned,
      subject: t.subjects.delivery(orderId),
      data: { orderId, courierId: 'de-1', courierName: 'Blitz', assignedAt: now() },
    },
    {
      contract: OrderConfirmed,
      subject: t.subjects.order(orderId),
      data: { orderId, paymentId: `ch_${n}`, invoiceNumber, courierId: 'de-1', confirmedAt: now() },
    },
  ] as const;
}

async function publishFlow(s: Awaited<ReturnType<typeof system>>, orderId: string, n: number) {
  for (const e of referenceFlow(s.topology, orderId, n)) {
    // Deterministic ids, published twice: the stream keeps one (Nats-Msg-Id).
    const options = { subject: e.subject, about: orderId, id: `${e.contract.type}:${orderId}` };
    await s.owners.publish(e.contract, e.data, options);
    await s.owners.publish(e.contract, e.data, options);
  }
}

describe('order-status against real NATS', () => {
  test('two replicas: every order confirmed through the endpoint, notifications in version order', async () => {
    const s = await system({ replicas: 2 });
    try {
      const orders = Array.from({ length: 12 }, () => randomUUID());
      await Promise.all(orders.map((orderId, i) => publishFlow(s, orderId, i + 1)));

      for (const [i, orderId] of orders.entries()) {
        const view = await waitFor(async () => {
          const v = await s.status(orderId);
          return v.version === 5 ? v : undefined;
        });
        assert.equal(view.status, 'confirmed');
        assert.equal(view.invoiceNumber, `2026-${String(i + 1).padStart(6, '0')}`);
        assert.deepEqual(view.courier, { courierId: 'de-1', courierName: 'Blitz', released: false });
        assert.deepEqual(view.payment, { status: 'authorized', paymentId: `ch_${i + 1}` });
        assert.equal(view.total, 2500);
      }
      // One notification per applied change; the last one carries the final state.
      await waitFor(() => orders.every((o) => s.notificationsOf(o).length === 5));
      for (const orderId of orders) {
        const versions = s.notificationsOf(orderId).map((n) => n.data.version);
        assert.deepEqual([...versions].sort(), [1, 2, 3, 4, 5]);
        const last = s.notificationsOf(orderId).find((n) => n.data.version === 5);
        assert.equal(last?.data.status, 'confirmed');
        // Each names the order's customer (the gateway streams customers only their own orders).
        const { customerId } = await s.status(orderId);
        assert.deepEqual(
          new Set(s.notificationsOf(orderId).map((n) => n.data.customerId)),
          new Set([customerId]),
        );
      }

      await assert.rejects(s.status(randomUUID()), (error: unknown) => {
        assert.ok(error instanceof RemoteError, String(error));
        assert.equal(error.status, 404);
        assert.equal(error.code, 'ORDER_NOT_FOUND');
        return true;
      });

      // order.list: pages of the filtered list, newest placed first; a status without orders is empty.
      const list = s.topology.endpoints.listOrders;
      const first = await s.client.request(list, { status: 'confirmed', limit: 5 });
      assert.equal(first.total, 12);
      assert.equal(first.orders.length, 5);
      const rest = await s.client.request(list, { status: 'confirmed', offset: 5, limit: 100 });
      assert.equal(rest.orders.length, 7);
      const listed = [...first.orders, ...rest.orders];
      assert.deepEqual(new Set(listed.map((o) => o.orderId)), new Set(orders));
      const placed = listed.map((o) => o.placedAt);
      assert.deepEqual(placed, [...placed].sort().reverse());
      assert.deepEqual(await s.client.request(list, { status: 'cancelled' }), {
        orders: [],
        total: 0,
        offset: 0,
        limit: 20,
      });
      await assert.rejects(
        s.client.request(list, { limit: 0 }),
        (error: unknown) =>
          error instanceof ValidationError || (error instanceof RemoteError && error.status === 400),
      );
    } finally {
      await s.close();
    }
  });

  test('a replica writes on the record it wrote last without reading it; a record replaced since is read', async () => {
    let reads = 0;
    let writes = 0;
    const counting: Wrap = (store) => ({
      read: (orderId) => (reads++, store.read(orderId)),
      ids: () => store.ids(),
      write: (orderId, record, revision) => (writes++, store.write(orderId, record, revision)),
    });
    const s = await system({ replicas: 1, wrap: counting });
    try {
      const orderId = randomUUID();
      const [placed, ...rest] = referenceFlow(s.topology, orderId, 9);
      const publish = (e: (typeof rest)[number] | typeof placed) =>
        s.owners.publish(e.contract, e.data, { subject: e.subject, about: orderId });
      await publish(placed);
      await waitFor(() => s.notificationsOf(orderId).length === 1);
      assert.deepEqual({ reads, writes }, { reads: 0, writes: 1 }, 'the first event creates the record');

      // Another writer replaces the record: the next write from what this replica knew is refused.
      const other = await KvStatusStore.open(new NatsKeyValueStores(s.nc), s.topology.kv.orderStatus);
      const current = await other.read(orderId);
      assert.ok(current);
      assert.ok(await other.write(orderId, current.record, current.revision));
      for (const e of rest) await publish(e);
      await waitFor(() => s.notificationsOf(orderId).length === 5);
      assert.deepEqual({ reads, writes }, { reads: 1, writes: 6 });
      const view = await s.status(orderId);
      assert.equal(view.version, 5);
      assert.equal(view.status, 'confirmed');
    } finally {
      await s.close();
    }
  });

  test('a redelivery after a write whose ack was lost does not apply the event twice', async () => {
    // The first write of an invoice fact succeeds and then fails, as if the process died before the
    // ack: the message comes again and must find its sequence applied.
    let injected = 0;
    const lostAck: Wrap = (store) => ({
      read: (orderId) => store.read(orderId),
      ids: () => store.ids(),
      async write(orderId, record, revision) {
        const written = await store.write(orderId, record, revision);
        if (written && injected === 0 && record.view?.invoiceNumber) {
          injected++;
          throw new Error('connection lost after the write (injected)');
        }
        return written;
      },
    });
    const s = await system({ replicas: 1, wrap: lostAck });
    try {
      const orderId = randomUUID();
      await publishFlow(s, orderId, 7);
      const view = await waitFor(async () => {
        const v = await s.status(orderId);
        return v.status === 'confirmed' ? v : undefined;
      });
      assert.equal(injected, 1);
      assert.equal(view.version, 5);
      assert.equal(view.invoiceNumber, '2026-000007');
      const binding = s.topology.consumers.orderStatus.all;
      const jsm = s.client.jsm;
      await waitFor(async () => {
        const info = await jsm.consumers.info(binding.stream, binding.name);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      });
      assert.equal((await s.status(orderId)).version, 5);
      // The notification of the failed attempt is lost (best effort); none is sent twice.
      const versions = s.notificationsOf(orderId).map((n) => n.data.version);
      assert.equal(new Set(versions).size, versions.length);
    } finally {
      await s.close();
    }
  });

  test('a view stored before it had a credit note number is answered with creditNoteNumber null', async () => {
    const s = await system({ replicas: 1 });
    try {
      const orderId = randomUUID();
      await publishFlow(s, orderId, 3);
      const view = await waitFor(async () => {
        const v = await s.status(orderId).catch(() => undefined);
        return v?.version === 5 ? v : undefined;
      });
      assert.equal(view.creditNoteNumber, null);
      // The record as an earlier version of order-status wrote it: no creditNoteNumber in the view.
      const store = await KvStatusStore.open(new NatsKeyValueStores(s.nc), s.topology.kv.orderStatus);
      const current = await store.read(orderId);
      assert.ok(current?.record.view);
      const { creditNoteNumber: _dropped, ...old } = current.record.view;
      assert.ok(
        await store.write(orderId, { ...current.record, view: old as typeof view }, current.revision),
      );
      const answered = await s.status(orderId);
      assert.equal(answered.creditNoteNumber, null);
      assert.equal(answered.status, 'confirmed');
    } finally {
      await s.close();
    }
  });

  test('a malformed event is dead-lettered with its reason and the projection carries on', async () => {
    const s = await system({ replicas: 1 });
    try {
      const bad = randomUUID();
      await jetstream(s.nc).publish(s.topology.subjects.order(bad), 'not json at all', {
        headers: undefined,
      });
      const orderId = randomUUID();
      await publishFlow(s, orderId, 1);
      await waitFor(async () => (await s.status(orderId).catch(() => undefined))?.version === 5);
      const letters = await waitFor(async () => {
        const list = await s.client.deadLetters.list({
          stream: s.topology.stream,
          consumer: s.topology.consumers.orderStatus.all.name,
        });
        return list.length > 0 ? list : undefined;
      });
      assert.equal(letters.length, 1);
      assert.equal(letters[0]?.subject, s.topology.subjects.order(bad));
      assert.ok(letters[0]?.reason, 'the dead letter carries its reason');
    } finally {
      await s.close();
    }
  });
});
