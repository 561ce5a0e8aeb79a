import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  CreditNoteIssued,
  CustomerRegistered,
  DeliveryAssigned,
  DeliveryFailed,
  DeliveryUnavailable,
  eventIdFor,
  InvoiceCreated,
  InvoiceFailed,
  OrderConfirmed,
  orderingTopology,
  OrderPlaced,
  PaymentAuthorized,
  PaymentDeclined,
  PaymentFailed,
  PaymentRefunded,
  type OrderingTopology,
  OwnerPublisher,
} from '@orderflow/contracts';
import {
  connectNats,
  createEnvelope,
  decodeEnvelope,
  envelopeHeaders,
  Header,
  NatsTransport,
  RemoteError,
  runService,
  type MessageContract,
  type PayloadOf,
  type RunningService,
} from '@orderflow/messaging';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { migrate, migrateInboxOutbox, openPglite, openPostgres, type SqlStore } from '@orderflow/sql';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { pino } from 'pino';
import {
  jetStreamPorts,
  orderStorageMigrations,
  sqlPorts,
  startOrderStorage,
  type OrderStorage,
} from '../src/mod.ts';

// Real servers: one nats-server for the file; PostgreSQL with a schema per test (PGlite in memory for
// one). Every test has its own namespace (stream, subjects, endpoints).
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
let nats: NatsServer;
before(async () => {
  nats = await startNatsServer();
});
after(async () => {
  await nats.dispose();
});

interface System {
  topology: OrderingTopology;
  storage: OrderStorage;
  store: SqlStore;
  client: NatsTransport;
  register(email?: string): Promise<string>;
  place(
    customerId: string,
    key?: string,
    overrides?: Partial<PlaceRequest>,
  ): Promise<{ orderId: string; status: string }>;
  publish<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    subject: string,
    about: string,
  ): Promise<void>;
  history(
    orderId: string,
  ): Promise<PayloadOf<OrderingTopology['endpoints']['getOrderHistory']['response']>['events']>;
  close(): Promise<void>;
}

type PlaceRequest = PayloadOf<OrderingTopology['endpoints']['placeOrder']['request']>;

async function system(
  backend: 'postgres' | 'pglite' = 'postgres',
  eventLog: 'jetstream' | 'sql' = 'jetstream',
): Promise<System> {
  const topology = orderingTopology({ namespace: uniqueName('os') });
  const schema = uniqueName('order_storage');
  const store: SqlStore =
    backend === 'postgres'
      ? await openPostgres({ url: DATABASE_URL, schema, poolSize: 5 })
      : await openPglite();
  await migrateInboxOutbox(store);
  await migrate(store, orderStorageMigrations, { component: 'order-storage' });
  let storage: OrderStorage | undefined;
  const service: RunningService = await runService(
    {
      name: 'order-storage',
      version: '0.1.0',
      broker: { kind: 'nats', servers: nats.url },
      streams: topology.streams,
      handleSignals: false,
      logger: pino({ level: 'silent' }),
    },
    async (context) => {
      let ports;
      if (eventLog === 'sql') {
        const { forwarder, ...sql } = await sqlPorts(store, context.transport, topology, {
          pollIntervalMs: 20,
        });
        await forwarder.start();
        context.onStop(() => forwarder.stop());
        ports = sql;
      } else {
        ports = jetStreamPorts(context.broker.transport, topology);
      }
      storage = await startOrderStorage(context, {
        topology,
        store,
        ...ports,
        retry: { initialDelayMs: 20, maxDelayMs: 200 },
        relayPollIntervalMs: 100,
      });
    },
  );
  const { nc } = await connectNats({ servers: nats.url, name: 'order-storage-test' });
  const client = await NatsTransport.create(nc, { source: 'orderflow/test' });
  const owners = new OwnerPublisher(nc); // publishes each event as its producing service
  const s: System = {
    topology,
    storage: storage as OrderStorage,
    store,
    client,
    async register(email = `${randomUUID()}@example.test`) {
      return (await client.request(topology.endpoints.registerCustomer, { email, name: 'Ada' })).customerId;
    },
    place: (customerId, key = randomUUID(), overrides = {}) =>
      client.request(topology.endpoints.placeOrder, {
        customerId,
        items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1250 }],
        currency: 'EUR',
        shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
        payment: { token: 'tok_visa' },
        idempotencyKey: key,
        ...overrides,
      }),
    async publish(contract, data, subject, about) {
      await owners.publish(contract, data, { subject, about });
    },
    async history(orderId) {
      return (await client.request(topology.endpoints.getOrderHistory, { orderId })).events;
    },
    async close() {
      await service.stop();
      await client.close();
      await owners.close();
      await nc.close();
      if (backend === 'postgres') await store.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await store.close();
    },
  };
  return s;
}

const now = () => new Date().toISOString();
const types = (events: { type: string }[]) => events.map((e) => e.type);
/** The Order aggregate's own events in a history. */
const orderTypes = (events: { type: string }[]) => types(events).filter((t) => t.startsWith('order.'));

/** Asserts that `promise` rejects with a RemoteError of `status` and `code`. */
async function rejectsWith(promise: Promise<unknown>, status: number, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RemoteError, `expected a RemoteError, got ${String(error)}`);
    assert.equal(error.status, status);
    assert.equal(error.code, code);
    return true;
  });
}

describe('customers', () => {
  for (const backend of ['postgres', 'pglite'] as const) {
    test(`register stores the customer and publishes customer.registered; a taken e-mail is a 409 (${backend})`, async () => {
      const s = await system(backend);
      try {
        const email = `${randomUUID()}@example.test`;
        const customerId = await s.register(email);
        const jsm = s.client.jsm;
        const stored = await waitFor(() =>
          jsm.streams
            .getMessage(s.topology.stream, { last_by_subj: s.topology.subjects.customer(customerId) })
            .catch(() => null),
        );
        const envelope = decodeEnvelope(stored.header, stored.data);
        assert.equal(envelope.type, CustomerRegistered.type);
        assert.deepEqual((envelope.data as { email: string }).email, email);
        // The same address again, also in other letter case, is refused with its code (it was a
        // 25P02 "transaction aborted" 500 on PGlite: the caught unique violation aborted the transaction).
        await rejectsWith(s.register(email), 409, 'CUSTOMER_EMAIL_TAKEN');
        await rejectsWith(s.register(email.toUpperCase()), 409, 'CUSTOMER_EMAIL_TAKEN');
        // The refusal left the store usable and published nothing.
        const other = await s.register();
        assert.notEqual(other, customerId);
        const { rows } = await s.store.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM customers WHERE lower(email) = lower($1)',
          [email],
        );
        assert.equal(rows[0]?.n, 1);
        await rejectsWith(s.place(randomUUID()), 404, 'CUSTOMER_NOT_FOUND');
      } finally {
        await s.close();
      }
    });
  }
});

describe('placing', () => {
  test('same key and body → the same order once; another body → 409; concurrent duplicates → one order', async () => {
    const s = await system();
    try {
      const customerId = await s.register();
      const key = randomUUID();
      const first = await s.place(customerId, key);
      assert.equal(first.status, 'placed');
      const again = await s.place(customerId, key);
      assert.equal(again.orderId, first.orderId);
      await rejectsWith(
        s.place(customerId, key, { items: [{ sku: 'SKU-1', quantity: 3, unitPrice: 1250 }] }),
        409,
        'IDEMPOTENCY_KEY_REUSED',
      );
      assert.deepEqual(types(await s.history(first.orderId)), ['order.placed.v2']);

      const raceKey = randomUUID();
      const replies = await Promise.all(Array.from({ length: 8 }, () => s.place(customerId, raceKey)));
      const ids = new Set(replies.map((r) => r.orderId));
      assert.equal(ids.size, 1);
      const [orderId] = [...ids] as [string];
      const history = await s.history(orderId);
      assert.deepEqual(types(history), ['order.placed.v2']);
      assert.equal((history[0]?.data as { total: number }).total, 2500);

      await s.storage.projection.waitFor(
        await s.client.jsm.streams.info(s.topology.stream).then((i) => i.state.last_seq),
      );
      const summary = await s.storage.summary(orderId);
      assert.equal(summary?.status, 'placed');
      assert.equal(summary?.total, 2500);
      await rejectsWith(s.history(randomUUID()), 404, 'ORDER_NOT_FOUND');
    } finally {
      await s.close();
    }
  });

  test('a total of 0 is refused with 422 ORDER_TOTAL_ZERO, appends nothing and does not use up the key', async () => {
    const s = await system();
    try {
      const customerId = await s.register();
      const key = randomUUID();
      const free = { items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 0 }] };
      await rejectsWith(s.place(customerId, key, free), 422, 'ORDER_TOTAL_ZERO');
      await rejectsWith(s.place(customerId, key, free), 422, 'ORDER_TOTAL_ZERO');
      // The same key with a priced body places the order (the refusal claimed nothing).
      const placed = await s.place(customerId, key);
      assert.equal(placed.status, 'placed');
      const events = await s.client.jsm.streams.info(s.topology.stream);
      assert.equal(events.state.num_subjects, 2, 'the customer and the one order, nothing for the refusals');
    } finally {
      await s.close();
    }
  });

  test("Idempotency-Keys are per customer: another customer's key is neither squatted nor answered", async () => {
    const s = await system();
    try {
      const [ada, eve] = [await s.register(), await s.register()];
      const key = randomUUID();
      // Eve takes the key first, with another body: Ada's request is still her own new order.
      const evesBody = { items: [{ sku: 'SKU-9', quantity: 1, unitPrice: 1 }] };
      const squatted = await s.place(eve, key, evesBody);
      const own = await s.place(ada, key);
      assert.notEqual(own.orderId, squatted.orderId);
      // Each one's retry finds their own order, never the other's.
      assert.equal((await s.place(eve, key, evesBody)).orderId, squatted.orderId);
      assert.equal((await s.place(ada, key)).orderId, own.orderId);
    } finally {
      await s.close();
    }
  });

  test("the history with customerId: the owner's order only; another customer's is not found", async () => {
    const s = await system();
    try {
      const [ada, eve] = [await s.register(), await s.register()];
      const { orderId } = await s.place(ada);
      const { getOrderHistory, cancelOrder } = s.topology.endpoints;
      const own = await s.client.request(getOrderHistory, { orderId, customerId: ada });
      assert.deepEqual(types(own.events), ['order.placed.v2']);
      await rejectsWith(
        s.client.request(getOrderHistory, { orderId, customerId: eve }),
        404,
        'ORDER_NOT_FOUND',
      );
      await rejectsWith(s.client.request(cancelOrder, { orderId, customerId: eve }), 404, 'ORDER_NOT_FOUND');
      assert.deepEqual(types(await s.history(orderId)), ['order.placed.v2']);
      const cancel = await s.client.request(cancelOrder, { orderId, customerId: ada });
      assert.equal(cancel.accepted, true);
      // Once cancelled, another customer still learns nothing (404, not 409 ALREADY_CANCELLED).
      await rejectsWith(s.client.request(cancelOrder, { orderId, customerId: eve }), 404, 'ORDER_NOT_FOUND');
    } finally {
      await s.close();
    }
  });

  test('the payment token is kept in SQL, not on the stream; payment-processor gets it until the payment is recorded', async () => {
    const s = await system();
    try {
      const { orderId } = await s.place(await s.register(), randomUUID(), {
        payment: { token: 'tok_secret' },
      });
      const [placed] = await s.history(orderId);
      assert.equal(placed?.type, 'order.placed.v2');
      assert.equal(JSON.stringify(placed?.data).includes('tok_secret'), false);
      assert.equal('payment' in (placed?.data as object), false);
      const endpoint = s.topology.endpoints.getPaymentToken;
      assert.deepEqual(await s.client.request(endpoint, { orderId }), { orderId, token: 'tok_secret' });
      await rejectsWith(s.client.request(endpoint, { orderId: randomUUID() }), 404, 'ORDER_NOT_FOUND');
      await s.publish(
        PaymentAuthorized,
        { orderId, paymentId: 'ch_1', amount: { amount: 2500, currency: 'EUR' }, authorizedAt: now() },
        s.topology.subjects.payment(orderId),
        orderId,
      );
      // The token is dropped right after the payment fact is recorded.
      await waitFor(async () =>
        s.client.request(endpoint, { orderId }).then(
          () => false,
          (error: unknown) => error instanceof RemoteError && error.code === 'PAYMENT_TOKEN_GONE',
        ),
      );
      await rejectsWith(s.client.request(endpoint, { orderId }), 410, 'PAYMENT_TOKEN_GONE');
    } finally {
      await s.close();
    }
  });

  test('works on embedded PGlite too, the read model included', async () => {
    const s = await system('pglite');
    try {
      const customerId = await s.register();
      const { orderId } = await s.place(customerId);
      await waitFor(async () => (await s.storage.summary(orderId))?.status === 'placed');
      assert.deepEqual(types(await s.history(orderId)), ['order.placed.v2']);
      const endpoint = s.topology.endpoints.getPaymentToken;
      assert.deepEqual(await s.client.request(endpoint, { orderId }), { orderId, token: 'tok_visa' });
      await s.publish(
        PaymentDeclined,
        { orderId, code: 'card_declined', message: 'declined', declinedAt: now() },
        s.topology.subjects.payment(orderId),
        orderId,
      );
      await waitFor(async () => (await s.storage.summary(orderId))?.status === 'cancelled');
      await rejectsWith(s.client.request(endpoint, { orderId }), 410, 'PAYMENT_TOKEN_GONE');
    } finally {
      await s.close();
    }
  });
});

describe('with a SQL event log (ORDER_EVENT_LOG=sql)', () => {
  test('the log, read model and history live in SQL; each commit reaches the bus through the forwarder', async () => {
    const s = await system('pglite', 'sql');
    const jsm = s.client.jsm;
    try {
      const { orderId } = await s.place(await s.register());
      const t = s.topology.subjects;
      await waitFor(async () => (await s.storage.summary(orderId))?.status === 'placed');
      const onBus = async (type: string) =>
        (
          await jsm.streams
            .getMessage(s.topology.stream, { last_by_subj: t.order(orderId) })
            .catch(() => null)
        )?.header.get(Header.Type) === type;
      await waitFor(() => onBus('order.placed.v2'));
      const placed = await jsm.streams.getMessage(s.topology.stream, { last_by_subj: t.order(orderId) });
      assert.equal(
        placed?.header.get(Header.Id),
        eventIdFor(OrderPlaced, orderId),
        'the commit id, as on JetStream',
      );
      assert.equal(placed?.header.get(Header.Source), 'orderflow/order-storage');

      await s.publish(
        DeliveryAssigned,
        { orderId, courierId: 'k-1', courierName: 'Kim', assignedAt: now() },
        t.delivery(orderId),
        orderId,
      );
      await s.publish(
        PaymentAuthorized,
        {
          orderId,
          paymentId: 'ch_1',
          amount: { amount: 2500, currency: 'EUR' as const },
          authorizedAt: now(),
        },
        t.payment(orderId),
        orderId,
      );
      await s.publish(
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
        t.invoice(orderId),
        orderId,
      );
      await waitFor(async () => (await s.storage.summary(orderId))?.status === 'confirmed');
      await waitFor(() => onBus('order.confirmed.v1'));
      const history = await s.history(orderId);
      assert.deepEqual(
        history.map((e) => [e.type, e.source]),
        [
          ['order.placed.v2', 'orderflow/order-storage'],
          ['delivery.assigned.v1', 'orderflow/assign-delivery'],
          ['payment.authorized.v1', 'orderflow/payment-processor'],
          ['invoice.created.v1', 'orderflow/create-invoice'],
          ['order.confirmed.v1', 'orderflow/order-storage'],
        ],
      );
    } finally {
      await s.close();
    }
  });
});

describe('reacting to the flow', () => {
  test('authorized + invoice + courier (duplicated, in any order) → order.confirmed once', async () => {
    const s = await system();
    try {
      const { orderId } = await s.place(await s.register());
      const t = s.topology.subjects;
      const courier = { orderId, courierId: 'k-1', courierName: 'Kim', assignedAt: now() };
      await s.publish(DeliveryAssigned, courier, t.delivery(orderId), orderId);
      await s.publish(DeliveryAssigned, courier, t.delivery(orderId), orderId);
      const payment = {
        orderId,
        paymentId: 'ch_1',
        amount: { amount: 2500, currency: 'EUR' as const },
        authorizedAt: now(),
      };
      await s.publish(PaymentAuthorized, payment, t.payment(orderId), orderId);
      await waitFor(async () => (await s.storage.summary(orderId))?.status === 'paid');
      const invoice = {
        orderId,
        invoiceNumber: '2026-000001',
        year: 2026,
        sequence: 1,
        total: { amount: 2500, currency: 'EUR' as const },
        pdf: { bucket: 'INVOICES', name: `${orderId}.pdf`, size: 10 },
        issuedAt: now(),
      };
      await Promise.all([
        s.publish(InvoiceCreated, invoice, t.invoice(orderId), orderId),
        s.publish(InvoiceCreated, invoice, t.invoice(orderId), orderId),
        s.publish(PaymentAuthorized, payment, t.payment(orderId), orderId),
      ]);
      await waitFor(async () => (await s.storage.summary(orderId))?.status === 'confirmed');
      const history = await s.history(orderId);
      assert.deepEqual(orderTypes(history), ['order.placed.v2', 'order.confirmed.v1']);
      assert.deepEqual(
        history.map((e) => e.version),
        history.map((_, i) => i + 1),
      );
      assert.equal(
        (history.find((e) => e.type === 'order.confirmed.v1')?.data as { invoiceNumber: string })
          .invoiceNumber,
        '2026-000001',
      );
      // Too late to cancel a confirmed order.
      await rejectsWith(
        s.client.request(s.topology.endpoints.cancelOrder, { orderId }),
        409,
        'ORDER_CANCEL_TOO_LATE',
      );
    } finally {
      await s.close();
    }
  });

  test('declined → cancelled{payment_declined}; no courier → cancel requested, then cancelled after the refund', async () => {
    const s = await system();
    try {
      const customerId = await s.register();
      const t = s.topology.subjects;
      const declined = (await s.place(customerId)).orderId;
      await s.publish(
        PaymentDeclined,
        { orderId: declined, code: 'card_declined', message: 'declined', declinedAt: now() },
        t.payment(declined),
        declined,
      );

      const unavailable = (await s.place(customerId)).orderId;
      await s.publish(
        PaymentAuthorized,
        {
          orderId: unavailable,
          paymentId: 'ch_2',
          amount: { amount: 2500, currency: 'EUR' },
          authorizedAt: now(),
        },
        t.payment(unavailable),
        unavailable,
      );
      await s.publish(
        DeliveryUnavailable,
        { orderId: unavailable, reason: 'no courier', at: now() },
        t.delivery(unavailable),
        unavailable,
      );
      await waitFor(async () => (await s.storage.summary(unavailable))?.status === 'cancellation_requested');
      await rejectsWith(
        s.client.request(s.topology.endpoints.cancelOrder, { orderId: unavailable }),
        409,
        'ORDER_ALREADY_CANCELLED',
      );
      await s.publish(
        PaymentRefunded,
        {
          orderId: unavailable,
          paymentId: 'ch_2',
          refundId: 're_2',
          amount: { amount: 2500, currency: 'EUR' },
          reason: 'delivery_unavailable',
          refundedAt: now(),
        },
        t.payment(unavailable),
        unavailable,
      );

      await waitFor(async () => (await s.storage.summary(declined))?.status === 'cancelled');
      await waitFor(async () => (await s.storage.summary(unavailable))?.status === 'cancelled');
      assert.equal((await s.storage.summary(declined))?.cancellationReason, 'payment_declined');
      assert.equal((await s.storage.summary(unavailable))?.cancellationReason, 'delivery_unavailable');
      // create-invoice's credit note for the refunded order: its number in the read model.
      await s.publish(
        CreditNoteIssued,
        {
          orderId: unavailable,
          creditNoteNumber: 'CN-2026-000003',
          year: 2026,
          sequence: 3,
          invoiceNumber: '2026-000009',
          total: { amount: 2500, currency: 'EUR' },
          reason: 'delivery_unavailable',
          refundId: 're_2',
          pdf: { bucket: 'INVOICES', name: 'credit-note-CN-2026-000003.pdf', size: 10 },
          issuedAt: now(),
        },
        t.invoice(unavailable),
        unavailable,
      );
      await waitFor(
        async () => (await s.storage.summary(unavailable))?.creditNoteNumber === 'CN-2026-000003',
      );
      assert.equal((await s.storage.facts(unavailable))?.creditNoteNumber, 'CN-2026-000003');
      assert.equal((await s.storage.summary(declined))?.creditNoteNumber, null);
      const history = await s.history(unavailable);
      assert.deepEqual(types(history), [
        'order.placed.v2',
        'payment.authorized.v1',
        'delivery.unavailable.v1',
        'order.cancel-requested.v1',
        'payment.refunded.v1',
        'order.cancelled.v1',
        'credit-note.issued.v1',
      ]);
      assert.equal(history.at(-1)?.source, 'orderflow/create-invoice');
      assert.deepEqual((history.at(-2)?.data as { refunded: unknown }).refunded, {
        amount: 2500,
        currency: 'EUR',
      });
    } finally {
      await s.close();
    }
  });

  test('a saga step that failed permanently ends the order: payment → cancelled; invoice, delivery → refund, then cancelled', async () => {
    const s = await system();
    try {
      const customerId = await s.register();
      const t = s.topology.subjects;
      const failure = (orderId: string, code: string) => ({
        orderId,
        failedEvent: 'order.placed.v2',
        code,
        reason: `${code} for ${orderId}`,
        failedAt: now(),
      });
      const unpaid = (await s.place(customerId)).orderId;
      await s.publish(PaymentFailed, failure(unpaid, 'PSP_REJECTED'), t.payment(unpaid), unpaid);

      const charged: Record<'invoice_failed' | 'delivery_failed', string> = {
        invoice_failed: (await s.place(customerId)).orderId,
        delivery_failed: (await s.place(customerId)).orderId,
      };
      for (const [reason, orderId] of Object.entries(charged)) {
        await s.publish(
          PaymentAuthorized,
          {
            orderId,
            paymentId: `ch_${orderId}`,
            amount: { amount: 2500, currency: 'EUR' },
            authorizedAt: now(),
          },
          t.payment(orderId),
          orderId,
        );
        if (reason === 'invoice_failed') {
          await s.publish(InvoiceFailed, failure(orderId, 'PDF_STORE_FAILED'), t.invoice(orderId), orderId);
        } else {
          await s.publish(DeliveryFailed, failure(orderId, 'DISPATCH_FAILED'), t.delivery(orderId), orderId);
        }
      }
      await waitFor(async () => (await s.storage.summary(unpaid))?.status === 'cancelled');
      assert.equal((await s.storage.summary(unpaid))?.cancellationReason, 'payment_failed');
      assert.deepEqual(types(await s.history(unpaid)), [
        'order.placed.v2',
        'payment.failed.v1',
        'order.cancelled.v1',
      ]);
      // A charge redriven from the dead letters after this cancellation finds no token: nothing is charged.
      await rejectsWith(
        s.client.request(s.topology.endpoints.getPaymentToken, { orderId: unpaid }),
        410,
        'PAYMENT_TOKEN_GONE',
      );

      for (const [reason, orderId] of Object.entries(charged)) {
        await waitFor(async () => (await s.storage.summary(orderId))?.status === 'cancellation_requested');
        // The Order's own events within the whole history.
        const requested = (await s.history(orderId)).filter((e) => e.type.startsWith('order.'));
        assert.deepEqual(requested[1]?.data, {
          orderId,
          reason,
          requestedAt: (requested[1]?.data as { requestedAt: string }).requestedAt,
        });
        // payment-processor refunds on order.cancel-requested{reason}; its refund ends the order.
        await s.publish(
          PaymentRefunded,
          {
            orderId,
            paymentId: `ch_${orderId}`,
            refundId: `re_${orderId}`,
            amount: { amount: 2500, currency: 'EUR' },
            reason: reason as 'invoice_failed' | 'delivery_failed',
            refundedAt: now(),
          },
          t.payment(orderId),
          orderId,
        );
        await waitFor(async () => (await s.storage.summary(orderId))?.status === 'cancelled');
        assert.equal((await s.storage.summary(orderId))?.cancellationReason, reason);
        const history = (await s.history(orderId)).filter((e) => e.type.startsWith('order.'));
        assert.deepEqual(types(history), [
          'order.placed.v2',
          'order.cancel-requested.v1',
          'order.cancelled.v1',
        ]);
        assert.deepEqual((history[2]?.data as { refunded: unknown }).refunded, {
          amount: 2500,
          currency: 'EUR',
        });
      }
    } finally {
      await s.close();
    }
  });

  test('an event about an unknown order is dead-lettered with its reason; the consumer carries on', async () => {
    const s = await system();
    try {
      const ghost = randomUUID();
      const t = s.topology.subjects;
      await s.publish(
        PaymentAuthorized,
        { orderId: ghost, paymentId: 'ch_x', amount: { amount: 1, currency: 'EUR' }, authorizedAt: now() },
        t.payment(ghost),
        ghost,
      );
      const consumer = s.topology.consumers.orderStorage.payments;
      const [letter] = await waitFor(async () => {
        const letters = await s.client.deadLetters.list({ stream: consumer.stream, consumer: consumer.name });
        return letters.length > 0 ? letters : undefined;
      });
      assert.match(letter?.reason ?? '', /no such order/);
      assert.equal(letter?.code, 'ORDER_NOT_FOUND');
      // The consumer carries on with the next order.
      const { orderId } = await s.place(await s.register());
      await s.publish(
        PaymentDeclined,
        { orderId, code: 'card_declined', message: 'declined', declinedAt: now() },
        t.payment(orderId),
        orderId,
      );
      await waitFor(async () => (await s.storage.summary(orderId))?.status === 'cancelled');
    } finally {
      await s.close();
    }
  });
});

describe('history', () => {
  test("an order's history is every event of its sources, in stream order, each with its producer's source", async () => {
    const s = await system();
    const { nc } = await connectNats({ servers: nats.url, name: 'order-storage-history-test' });
    const producers = await Promise.all(
      ['payment-processor', 'create-invoice', 'assign-delivery', 'chaos'].map((name) =>
        NatsTransport.create(nc, { source: `orderflow/${name}` }),
      ),
    );
    const [payments, invoices, deliveries] = producers as [NatsTransport, NatsTransport, NatsTransport];
    try {
      const customerId = await s.register();
      const { orderId } = await s.place(customerId);
      const other = (await s.place(customerId)).orderId;
      const t = s.topology.subjects;
      const at = now();
      const amount = { amount: 2500, currency: 'EUR' as const };
      const about = { about: orderId };
      await payments.publish(
        PaymentAuthorized,
        { orderId, paymentId: 'ch_h', amount, authorizedAt: at },
        { subject: t.payment(orderId), ...about },
      );
      // Another order's event, a customer event under the same id and a foreign client's garbage on the
      // order's own subjects: none of them is a step of this order.
      await payments.publish(
        PaymentDeclined,
        { orderId: other, code: 'card_declined', message: 'declined', declinedAt: at },
        { subject: t.payment(other), about: other },
      );
      await s.client.publish(
        CustomerRegistered,
        { customerId: orderId, email: 'x@example.test', name: 'X', registeredAt: at },
        { subject: t.customer(orderId), about: orderId },
      );
      await s.client.js.publish(t.payment(orderId), '{"orderId": "');
      await s.client.js.publish(t.delivery(orderId), '{}', {
        headers: (() => {
          const h = natsHeaders();
          for (const [k, v] of Object.entries({
            'ce-specversion': '1.0',
            'ce-id': randomUUID(),
            'ce-type': 'delivery.exploded.v1',
            'ce-source': 'orderflow/chaos',
            'ce-subject': orderId,
          }))
            h.set(k, v);
          return h;
        })(),
      });
      await deliveries.publish(
        DeliveryAssigned,
        { orderId, courierId: 'k-h', courierName: 'Kim', assignedAt: at },
        { subject: t.delivery(orderId), ...about },
      );
      await invoices.publish(
        InvoiceCreated,
        {
          orderId,
          invoiceNumber: '2026-000007',
          year: 2026,
          sequence: 7,
          total: amount,
          pdf: { bucket: 'INVOICES', name: 'invoice-2026-000007.pdf', size: 10 },
          issuedAt: at,
        },
        { subject: t.invoice(orderId), ...about },
      );
      await waitFor(async () => (await s.storage.summary(orderId))?.status === 'confirmed');

      const history = await s.history(orderId);
      assert.deepEqual(
        history.map((e) => [e.version, e.type, e.source]),
        [
          [1, 'order.placed.v2', 'orderflow/order-storage'],
          [2, 'payment.authorized.v1', 'orderflow/payment-processor'],
          [3, 'delivery.assigned.v1', 'orderflow/assign-delivery'],
          [4, 'invoice.created.v1', 'orderflow/create-invoice'],
          [5, 'order.confirmed.v1', 'orderflow/order-storage'],
        ],
      );
      assert.ok(history.every((e) => e.subject === orderId && e.id));
      assert.equal(new Set(history.map((e) => e.id)).size, history.length);
      assert.equal((history[1]?.data as { paymentId: string }).paymentId, 'ch_h');
      // The other order's history is its own.
      assert.deepEqual(types(await s.history(other)), [
        'order.placed.v2',
        'payment.declined.v1',
        'order.cancelled.v1',
      ]);
    } finally {
      for (const p of producers) await p.close();
      await nc.close();
      await s.close();
    }
  });
});

describe('events that cannot be true', () => {
  test('a forged producer and impossible transitions are dead-lettered with typed codes; nothing changes', async () => {
    const s = await system();
    try {
      const customerId = await s.register();
      const t = s.topology.subjects;
      const eur = (amount: number) => ({ amount, currency: 'EUR' as const });
      const authorized = (orderId: string, paymentId = 'ch_1', amount = 2500) => ({
        orderId,
        paymentId,
        amount: eur(amount),
        authorizedAt: now(),
      });
      const refunded = (orderId: string, reason: 'customer_request' | 'delivery_unavailable') => ({
        orderId,
        paymentId: 'ch_1',
        refundId: 're_1',
        amount: eur(2500),
        reason,
        refundedAt: now(),
      });
      const letters = async (consumer: { stream: string; name: string }, count: number) =>
        waitFor(async () => {
          const list = await s.client.deadLetters.list({ stream: consumer.stream, consumer: consumer.name });
          return list.length >= count ? list : undefined;
        });
      const { payments, deliveries } = s.topology.consumers.orderStorage;

      // Forged: a client that is not payment-processor claims the payment (binary-mode ce-source).
      const forged = (await s.place(customerId)).orderId;
      await s.client.publish(PaymentAuthorized, authorized(forged), {
        subject: t.payment(forged),
        about: forged,
      });
      // Declined, then authorized / refunded / assigned: nothing was charged.
      const declined = (await s.place(customerId)).orderId;
      await s.publish(
        PaymentDeclined,
        { orderId: declined, code: 'card_declined', message: 'declined', declinedAt: now() },
        t.payment(declined),
        declined,
      );
      await waitFor(async () => (await s.storage.summary(declined))?.status === 'cancelled');
      await s.publish(PaymentAuthorized, authorized(declined), t.payment(declined), declined);
      await s.publish(PaymentRefunded, refunded(declined, 'customer_request'), t.payment(declined), declined);
      // Another amount; a second charge; a customer refund nobody asked for.
      const mismatch = (await s.place(customerId)).orderId;
      await s.publish(PaymentAuthorized, authorized(mismatch, 'ch_1', 1), t.payment(mismatch), mismatch);
      const twice = (await s.place(customerId)).orderId;
      await s.publish(PaymentAuthorized, authorized(twice, 'ch_1'), t.payment(twice), twice);
      await s.publish(PaymentAuthorized, authorized(twice, 'ch_2'), t.payment(twice), twice);
      await s.publish(PaymentRefunded, refunded(twice, 'customer_request'), t.payment(twice), twice);

      // Per order, in that order's stream order (orders are handled concurrently).
      const byOrder = (list: { headers: Record<string, string>; code: string }[]) => {
        const codes: Record<string, string[]> = {};
        for (const l of list) (codes[l.headers['ce-subject'] ?? ''] ??= []).push(l.code);
        return codes;
      };
      const paymentLetters = await letters(payments, 6);
      assert.deepEqual(byOrder(paymentLetters), {
        [forged]: ['UNEXPECTED_PRODUCER'],
        [declined]: ['ORDER_IMPOSSIBLE_TRANSITION', 'ORDER_NOT_CHARGED'],
        [mismatch]: ['ORDER_PAYMENT_MISMATCH'],
        [twice]: ['ORDER_FACT_CONFLICT', 'ORDER_IMPOSSIBLE_TRANSITION'],
      });
      const reason = (code: string) => paymentLetters.find((l) => l.code === code)?.reason ?? '';
      assert.match(reason('UNEXPECTED_PRODUCER'), /orderflow\/test is not the owner/);
      assert.match(reason('ORDER_FACT_CONFLICT'), /charge ch_1 is recorded; the event reports ch_2/);

      // A courier for a declined order; a courier after none was available.
      await s.publish(
        DeliveryAssigned,
        { orderId: declined, courierId: 'k-1', courierName: 'Kim', assignedAt: now() },
        t.delivery(declined),
        declined,
      );
      await s.publish(
        DeliveryUnavailable,
        { orderId: twice, reason: 'no courier', at: now() },
        t.delivery(twice),
        twice,
      );
      await waitFor(async () => (await s.storage.facts(twice))?.deliveryUnavailable === true);
      await s.publish(
        DeliveryAssigned,
        { orderId: twice, courierId: 'k-1', courierName: 'Kim', assignedAt: now() },
        t.delivery(twice),
        twice,
      );
      const deliveryLetters = await letters(deliveries, 2);
      assert.deepEqual(byOrder(deliveryLetters), {
        [declined]: ['ORDER_NOT_CHARGED'],
        [twice]: ['ORDER_IMPOSSIBLE_TRANSITION'],
      });

      // Nothing was recorded or appended for the refused events.
      assert.equal((await s.storage.facts(forged))?.paymentId ?? null, null);
      assert.equal((await s.storage.summary(forged))?.status, 'placed');
      assert.equal((await s.storage.facts(declined))?.paymentId ?? null, null);
      assert.equal((await s.storage.facts(declined))?.courierId ?? null, null);
      assert.equal((await s.storage.facts(mismatch))?.paymentId ?? null, null);
      assert.equal((await s.storage.facts(twice))?.paymentId, 'ch_1');
      assert.equal((await s.storage.facts(twice))?.courierId ?? null, null);
      assert.deepEqual(orderTypes(await s.history(declined)), ['order.placed.v2', 'order.cancelled.v1']);
      assert.deepEqual(orderTypes(await s.history(twice)), ['order.placed.v2', 'order.cancel-requested.v1']);
    } finally {
      await s.close();
    }
  });

  test("a forged event on the order's own subject is not the order's: skipped on load, dead-lettered by the read model", async () => {
    const s = await system();
    try {
      const { orderId } = await s.place(await s.register());
      // Another client (not order-storage) appends a confirmation to orders.<id>.
      await s.client.publish(
        OrderConfirmed,
        { orderId, paymentId: 'ch_x', invoiceNumber: '2026-999999', courierId: 'k-x', confirmedAt: now() },
        { subject: s.topology.subjects.order(orderId), about: orderId },
      );
      // And a malformed one: it keeps its own code, and does not break loading the order either.
      const garbage = createEnvelope({ type: OrderConfirmed.type, source: 'orderflow/test', data: null });
      await s.client.js.publish(s.topology.subjects.order(orderId), '{"orderId":42}', {
        headers: envelopeHeaders({ ...garbage, subject: orderId }),
      });
      const readModel = s.topology.consumer('order-storage', 'orders');
      const letters = await waitFor(async () => {
        const list = await s.client.deadLetters.list({ stream: readModel.stream, consumer: readModel.name });
        return list.length > 1 ? list : undefined;
      });
      assert.deepEqual(
        letters.map((l) => l.code),
        ['FOREIGN_PRODUCER', 'INVALID_EVENT'],
      );
      assert.equal((await s.storage.summary(orderId))?.status, 'placed');
      assert.deepEqual(types(await s.history(orderId)), ['order.placed.v2']);
      // The order is still the order-storage's: a cancel is decided on its real state.
      const reply = await s.client.request(s.topology.endpoints.cancelOrder, { orderId });
      assert.equal(reply.status, 'cancellation_requested');
      assert.deepEqual(types(await s.history(orderId)), ['order.placed.v2', 'order.cancel-requested.v1']);
    } finally {
      await s.close();
    }
  });

  test('a courier assigned while the order was being cancelled is recorded, and the order is not confirmed', async () => {
    const s = await system();
    try {
      const t = s.topology.subjects;
      const { orderId } = await s.place(await s.register());
      await s.publish(
        PaymentAuthorized,
        { orderId, paymentId: 'ch_1', amount: { amount: 2500, currency: 'EUR' }, authorizedAt: now() },
        t.payment(orderId),
        orderId,
      );
      await s.publish(
        InvoiceCreated,
        {
          orderId,
          invoiceNumber: '2026-000009',
          year: 2026,
          sequence: 9,
          total: { amount: 2500, currency: 'EUR' },
          pdf: { bucket: 'INVOICES', name: `${orderId}.pdf`, size: 10 },
          issuedAt: now(),
        },
        t.invoice(orderId),
        orderId,
      );
      await waitFor(async () => (await s.storage.facts(orderId))?.invoiceNumber === '2026-000009');
      await s.client.request(s.topology.endpoints.cancelOrder, { orderId });
      await s.publish(
        DeliveryAssigned,
        { orderId, courierId: 'k-9', courierName: 'Kim', assignedAt: now() },
        t.delivery(orderId),
        orderId,
      );
      await waitFor(async () => (await s.storage.facts(orderId))?.courierId === 'k-9');
      assert.deepEqual(orderTypes(await s.history(orderId)), [
        'order.placed.v2',
        'order.cancel-requested.v1',
      ]);
    } finally {
      await s.close();
    }
  });
});

describe('customer cancellation', () => {
  test('before a courier: accepted, then cancelled{customer_request} after the refund; after a courier: 409', async () => {
    const s = await system();
    try {
      const customerId = await s.register();
      const t = s.topology.subjects;
      const { orderId } = await s.place(customerId);
      const reply = await s.client.request(s.topology.endpoints.cancelOrder, { orderId });
      assert.deepEqual(reply, { orderId, status: 'cancellation_requested', accepted: true });
      await rejectsWith(
        s.client.request(s.topology.endpoints.cancelOrder, { orderId }),
        409,
        'ORDER_ALREADY_CANCELLED',
      );
      await s.publish(
        PaymentRefunded,
        {
          orderId,
          paymentId: 'ch_3',
          refundId: 're_3',
          amount: { amount: 2500, currency: 'EUR' },
          reason: 'customer_request',
          refundedAt: now(),
        },
        t.payment(orderId),
        orderId,
      );
      await waitFor(async () => (await s.storage.summary(orderId))?.status === 'cancelled');
      assert.equal((await s.storage.summary(orderId))?.cancellationReason, 'customer_request');

      const assigned = (await s.place(customerId)).orderId;
      await s.publish(
        DeliveryAssigned,
        { orderId: assigned, courierId: 'k-2', courierName: 'Kim', assignedAt: now() },
        t.delivery(assigned),
        assigned,
      );
      await waitFor(async () => (await s.storage.facts(assigned))?.courierId === 'k-2');
      await rejectsWith(
        s.client.request(s.topology.endpoints.cancelOrder, { orderId: assigned }),
        409,
        'ORDER_CANCEL_TOO_LATE',
      );
      await rejectsWith(
        s.client.request(s.topology.endpoints.cancelOrder, { orderId: randomUUID() }),
        404,
        'ORDER_NOT_FOUND',
      );
      assert.deepEqual(types(await s.history(assigned)), ['order.placed.v2', 'delivery.assigned.v1']);
    } finally {
      await s.close();
    }
  });
});
