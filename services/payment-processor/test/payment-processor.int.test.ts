import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  OrderCancelRequested,
  orderingTopology,
  OrderPlaced,
  OrderPlacedV1,
  OwnerPublisher,
  PaymentAuthorized,
  PaymentFailed,
} from '@orderflow/contracts';
import {
  connectNats,
  decodeEnvelope,
  EndpointError,
  NatsTransport,
  type Envelope,
  runService,
  type PayloadOf,
  type RunningService,
} from '@orderflow/messaging';
import { spawnPaymentProvider, type PaymentProviderProcess } from '@orderflow/payment-provider';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { pino } from 'pino';
import { HttpPaymentGateway, startPaymentProcessor } from '../src/mod.ts';

// One nats-server and one PSP process for the file; each test has its own namespace (streams,
// subjects) and its own order ids, and starts its own replicas.
let nats: NatsServer;
let psp: PaymentProviderProcess;
before(async () => {
  [nats, psp] = await Promise.all([startNatsServer(), spawnPaymentProvider({ faults: { hangMs: 2_000 } })]);
});
after(async () => {
  await Promise.all([nats.dispose(), psp.dispose()]);
});

async function system(options: {
  replicas: number;
  pspTimeoutMs?: number;
  maxDeliver?: number;
  transientRetryMs?: number;
}) {
  const topology = orderingTopology({ namespace: uniqueName('pp') });
  const replicas: RunningService<'nats'>[] = [];
  for (let i = 0; i < options.replicas; i++) {
    replicas.push(
      await runService(
        {
          name: 'payment-processor',
          version: '0.1.0',
          broker: { kind: 'nats', servers: nats.url },
          streams: topology.streams,
          handleSignals: false,
          logger: pino({ level: 'silent' }),
        },
        (context) =>
          startPaymentProcessor(context, {
            topology,
            psp: new HttpPaymentGateway({ baseUrl: psp.url, timeoutMs: options.pspTimeoutMs ?? 5_000 }),
            maxDeliver: options.maxDeliver ?? 20,
            retry: {
              initialDelayMs: 20,
              maxDelayMs: 200,
              ...(options.transientRetryMs !== undefined && { transientRetryMs: options.transientRetryMs }),
            },
          }),
      ),
    );
  }
  const { nc } = await connectNats({ servers: nats.url, name: 'test-producer' });
  const producer = await NatsTransport.create(nc, { source: 'orderflow/test' });
  const owners = new OwnerPublisher(nc); // publishes each event as its producing service
  // Standing in for order-storage's token endpoint: the tokens `placed()` gave out, 410 once `gone`.
  producer.serve(topology.endpoints.getPaymentToken, async ({ orderId }) => {
    const token = tokens.get(orderId);
    if (token === undefined) throw new EndpointError(404, 'ORDER_NOT_FOUND', `no order ${orderId}`);
    if (token === null) throw new EndpointError(410, 'PAYMENT_TOKEN_GONE', 'payment recorded');
    return { orderId, token };
  });
  const jsm = await jetstreamManager(nc);
  return {
    topology,
    replicas,
    producer,
    /** The events stored on an order's payments subject. */
    async payments(orderId: string): Promise<Envelope[]> {
      const subject = topology.subjects.payment(orderId);
      const found: Envelope[] = [];
      const info = await jsm.streams.info(topology.stream);
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(topology.stream, { seq }).catch(() => null);
        if (m?.subject === subject) found.push(decodeEnvelope(m.header, m.data));
      }
      return found;
    },
    owners,
    /** Events stored per subject of the stream. */
    async counts(): Promise<Record<string, number>> {
      const info = await jsm.streams.info(topology.stream, { subjects_filter: '>' });
      return info.state.subjects ?? {};
    },
    async close() {
      await Promise.all(replicas.map((r) => r.stop()));
      await producer.close();
      await owners.close();
      await nc.close();
    },
  };
}

/** Payment tokens by order id, as order-storage keeps them; `null` = gone (payment outcome recorded). */
const tokens = new Map<string, string | null>();

function placed(token = 'tok_visa'): PayloadOf<typeof OrderPlaced> {
  const orderId = randomUUID();
  tokens.set(orderId, token);
  return {
    orderId,
    customer: { customerId: randomUUID(), email: 'ada@example.test', name: 'Ada' },
    lines: [{ sku: 'SKU-1', quantity: 3, unitPrice: 1250, lineTotal: 3750 }],
    currency: 'EUR',
    total: 3750,
    shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
    placedAt: new Date().toISOString(),
  };
}

describe('payment-processor against a real nats-server and a real PSP process', () => {
  test('three replicas, duplicates and PSP errors after commit: exactly one charge per order', async () => {
    const s = await system({ replicas: 3 });
    try {
      await psp.setFaults({ errorAfterCommitRate: 0.5 });
      const orders = Array.from({ length: 12 }, () => placed());
      for (const order of orders) {
        const subject = s.topology.subjects.order(order.orderId);
        // The same order twice under different ids: the PSP key, not the event id, must prevent a second charge.
        await s.owners.publish(OrderPlaced, order, { subject, about: order.orderId });
        await s.owners.publish(OrderPlaced, order, { subject, about: order.orderId });
      }
      await waitFor(
        async () => {
          const counts = await s.counts();
          return orders.every((o) => counts[s.topology.subjects.payment(o.orderId)] === 1);
        },
        { timeoutMs: 30_000, message: 'every order authorized' },
      );
      await psp.setFaults({ errorAfterCommitRate: 0 });
      for (const order of orders) {
        const charges = await psp.ledger({ reference: order.orderId, kind: 'charge' });
        assert.equal(charges.length, 1, `one charge for ${order.orderId}`);
        assert.equal(charges[0]?.amount, 3750);
        assert.equal(charges[0]?.status, 'succeeded');
      }
    } finally {
      await psp.setFaults({ errorAfterCommitRate: 0 });
      await s.close();
    }
  });

  test('a declined card publishes payment.declined and records one failed charge', async () => {
    const s = await system({ replicas: 1 });
    try {
      const order = placed('tok_decline');
      await s.owners.publish(OrderPlaced, order, {
        subject: s.topology.subjects.order(order.orderId),
        about: order.orderId,
      });
      await waitFor(async () => (await s.counts())[s.topology.subjects.payment(order.orderId)] === 1);
      const [charge, ...more] = await psp.ledger({ reference: order.orderId });
      assert.equal(more.length, 0);
      assert.equal(charge?.kind === 'charge' && charge.status, 'failed');
    } finally {
      await s.close();
    }
  });

  test('the token comes from order-storage at charge time, not from the stream; a token that is gone means nothing to charge; v1 orders are charged with their own token', async () => {
    const s = await system({ replicas: 1 });
    try {
      const [fresh, recorded, legacy] = [placed(), placed(), placed('tok_visa')];
      tokens.set(recorded.orderId, null);
      tokens.delete(legacy.orderId); // a v1 order has no stored token: it carries its own
      for (const order of [fresh, recorded]) {
        await s.owners.publish(OrderPlaced, order, {
          subject: s.topology.subjects.order(order.orderId),
          about: order.orderId,
        });
      }
      await s.owners.publish(
        OrderPlacedV1,
        { ...legacy, payment: { token: 'tok_visa' } },
        { subject: s.topology.subjects.order(legacy.orderId), about: legacy.orderId },
      );
      await waitFor(async () => {
        const counts = await s.counts();
        return [fresh, legacy].every((o) => counts[s.topology.subjects.payment(o.orderId)] === 1);
      });
      assert.equal((await psp.ledger({ reference: fresh.orderId, kind: 'charge' })).length, 1);
      assert.equal((await psp.ledger({ reference: legacy.orderId, kind: 'charge' })).length, 1);
      // Settled without a charge (its outcome was recorded before): nothing in the ledger, no event.
      await waitFor(async () => {
        const binding = s.topology.consumers.paymentProcessor.orders;
        const info = await s.producer.jsm.consumers.info(binding.stream, binding.name);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      });
      assert.equal((await psp.ledger({ reference: recorded.orderId })).length, 0);
      assert.equal((await s.counts())[s.topology.subjects.payment(recorded.orderId)], undefined);
    } finally {
      await s.close();
    }
  });

  test('a 5xx burst is retried with backoff until the charge goes through', async () => {
    const s = await system({ replicas: 1 });
    try {
      await psp.setFaults({ failNextRequests: 3 });
      const order = placed();
      await s.owners.publish(OrderPlaced, order, {
        subject: s.topology.subjects.order(order.orderId),
        about: order.orderId,
      });
      await waitFor(async () => (await s.counts())[s.topology.subjects.payment(order.orderId)] === 1);
      assert.equal((await psp.ledger({ reference: order.orderId })).length, 1);
    } finally {
      await psp.setFaults({ failNextRequests: 0 });
      await s.close();
    }
  });

  test('a cancellation for want of a courier refunds once: one refund, one payment.refunded', async () => {
    const s = await system({ replicas: 2 });
    try {
      const order = placed();
      const paymentSubject = s.topology.subjects.payment(order.orderId);
      await s.owners.publish(OrderPlaced, order, {
        subject: s.topology.subjects.order(order.orderId),
        about: order.orderId,
      });
      await waitFor(async () => (await s.counts())[paymentSubject] === 1);
      // What order-storage appends when it reads delivery.unavailable; payment-processor does not read
      // deliveries.* itself.
      for (let i = 0; i < 2; i += 1) {
        await s.owners.publish(
          OrderCancelRequested,
          { orderId: order.orderId, reason: 'delivery_unavailable', requestedAt: new Date().toISOString() },
          { subject: s.topology.subjects.order(order.orderId), about: order.orderId },
        );
      }
      await waitFor(async () => (await s.counts())[paymentSubject] === 2);
      const refunds = await psp.ledger({ reference: order.orderId, kind: 'refund' });
      assert.equal(refunds.length, 1);
      assert.equal(refunds[0]?.amount, 3750);
      // both requests are handled once the consumer has nothing pending
      await waitFor(async () => {
        const jsm = s.replicas[0]!.broker.transport.jsm;
        const info = await jsm.consumers.info(
          s.topology.stream,
          s.topology.consumers.paymentProcessor.orders.name,
        );
        return info.num_pending === 0 && info.num_ack_pending === 0;
      });
      assert.equal((await s.counts())[paymentSubject], 2);
      assert.equal((await psp.ledger({ reference: order.orderId, kind: 'refund' })).length, 1);
    } finally {
      await s.close();
    }
  });

  test('a forged order.placed is dead-lettered as UNEXPECTED_PRODUCER and does not end the order with payment.failed', async () => {
    const s = await system({ replicas: 1 });
    try {
      const order = placed();
      await s.producer.publish(OrderPlaced, order, {
        subject: s.topology.subjects.order(order.orderId),
        about: order.orderId,
      });
      const binding = s.topology.consumers.paymentProcessor.orders;
      const [letter] = await waitFor(async () => {
        const list = await s.replicas[0]!.transport.deadLetters.list({
          stream: binding.stream,
          consumer: binding.name,
        });
        return list.length > 0 ? list : undefined;
      });
      assert.equal(letter?.code, 'UNEXPECTED_PRODUCER');
      assert.deepEqual(await s.payments(order.orderId), []);
      assert.equal((await psp.ledger({ reference: order.orderId })).length, 0);
    } finally {
      await s.close();
    }
  });

  test('a charge the PSP refuses as such (invalid token, total 0) is dead-lettered and ends in payment.failed; nothing is charged', async () => {
    const s = await system({ replicas: 1 });
    try {
      const invalid = placed('tok_invalid');
      const free = {
        ...placed(),
        total: 0,
        lines: [{ sku: 'SKU-1', quantity: 1, unitPrice: 0, lineTotal: 0 }],
      };
      for (const order of [invalid, free]) {
        await s.owners.publish(OrderPlaced, order, {
          subject: s.topology.subjects.order(order.orderId),
          about: order.orderId,
        });
      }
      for (const order of [invalid, free]) {
        const events = await waitFor(async () => {
          const found = await s.payments(order.orderId);
          return found.length > 0 ? found : undefined;
        });
        assert.deepEqual(
          events.map((e) => e.type),
          [PaymentFailed.type],
        );
        const data = events[0]!.data as PayloadOf<typeof PaymentFailed>;
        assert.equal(data.orderId, order.orderId);
        assert.equal(data.failedEvent, OrderPlaced.type);
        assert.equal(data.code, 'PSP_REJECTED');
        assert.match(data.reason, /400 invalid_request/);
        assert.equal((await psp.ledger({ reference: order.orderId })).length, 0);
      }
      const binding = s.topology.consumers.paymentProcessor.orders;
      const letters = await s.replicas[0]!.transport.deadLetters.list({
        stream: binding.stream,
        consumer: binding.name,
      });
      assert.deepEqual(
        letters.map((l) => [l.code, l.deliveries]),
        [
          ['PSP_REJECTED', 1],
          ['PSP_REJECTED', 1],
        ],
      );
    } finally {
      await s.close();
    }
  });

  test('a charge made whose every answer was lost is reported as payment.authorized when it is dead-lettered', async () => {
    const s = await system({ replicas: 1, maxDeliver: 2, transientRetryMs: 100 });
    try {
      await psp.setFaults({ errorAfterCommitRate: 1 });
      const order = placed();
      await s.owners.publish(OrderPlaced, order, {
        subject: s.topology.subjects.order(order.orderId),
        about: order.orderId,
      });
      const events = await waitFor(
        async () => {
          const found = await s.payments(order.orderId);
          return found.length > 0 ? found : undefined;
        },
        { timeoutMs: 30_000 },
      );
      await psp.setFaults({ errorAfterCommitRate: 0 });
      const [charge, ...more] = await psp.ledger({ reference: order.orderId });
      assert.equal(more.length, 0);
      assert.deepEqual(
        events.map((e) => e.type),
        [PaymentAuthorized.type],
      );
      assert.equal((events[0]?.data as { paymentId: string }).paymentId, charge?.id);
    } finally {
      await psp.setFaults({ errorAfterCommitRate: 0 });
      await s.close();
    }
  });

  test('a PSP that never answers is retried, then the order is dead-lettered with the reason', async () => {
    const s = await system({ replicas: 1, pspTimeoutMs: 200, maxDeliver: 2 });
    try {
      const order = placed('tok_timeout');
      await s.owners.publish(OrderPlaced, order, {
        subject: s.topology.subjects.order(order.orderId),
        about: order.orderId,
      });
      const binding = s.topology.consumers.paymentProcessor.orders;
      const [dead] = await waitFor(async () => {
        const letters = await s.replicas[0]!.transport.deadLetters.list({
          stream: binding.stream,
          consumer: binding.name,
        });
        return letters.length > 0 ? letters : undefined;
      });
      assert.equal(dead?.code, 'PSP_UNAVAILABLE');
      assert.equal(dead?.deliveries, 2);
      assert.equal((await psp.ledger({ reference: order.orderId })).length, 0);
      // Nothing was charged: the payment step ends in payment.failed, so the order is cancelled.
      const [failed] = await waitFor(async () => {
        const events = await s.payments(order.orderId);
        return events.length > 0 ? events : undefined;
      });
      assert.equal(failed?.type, PaymentFailed.type);
      assert.equal((failed?.data as { code: string }).code, 'PSP_UNAVAILABLE');
    } finally {
      await s.close();
    }
  });
});
