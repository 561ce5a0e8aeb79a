// The scenarios of the system tests, run on each broker (test/system.e2e.test.ts on NATS,
// test/system-rabbitmq.e2e.test.ts on RabbitMQ): the whole system as processes through its HTTP API.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { OrderingTopology, OrderPlaced } from '@orderflow/contracts';
import { BrokerKind } from '@orderflow/messaging';
import { waitFor } from '@orderflow/testing';
import { demoOrder } from '../../cli/api.ts';
import {
  mapLimit,
  NO_EFFECT_PROBLEMS,
  placeOrder,
  registerCustomer,
  settledEffects,
  startTestSystem,
  waitTerminal,
  type Customer,
  type PlacedOrder,
  type TestSystem,
} from './system.ts';

export const PAYMENT_REPLICAS = 3;
/** HTTP requests in flight while the burst is placed. */
const PLACE_CONCURRENCY = 20;
/**
 * Each payment-processor replica must handle part of a burst. The broker hands messages to whichever
 * replica asks (JetStream: whose pull asks first; RabbitMQ: whose prefetch has room), not evenly: a
 * replica slowed by a busy machine got 18 of 500 in one CI run, so a fixed percentage would make the
 * test flaky; every replica doing some of the work is the claim.
 */
const MIN_SHARE_MESSAGES = 1;

/**
 * Per payment-processor replica (in replica order), how many `order.placed` its shared durable
 * consumer handled successfully since the replica started: the handled counter on its `/metrics`
 * (the health server on the port the supervisor gave it through `HTTP_PORT`).
 */
async function placedHandledPerReplica(sys: TestSystem): Promise<number[]> {
  const consumer = OrderingTopology.consumers.paymentProcessor.orders.name;
  const replicas = sys.system.supervisor.list().filter((r) => r.program === 'payment-processor');
  return Promise.all(
    replicas.map(async (r) => {
      assert.ok(r.port !== undefined, `payment-processor#${r.replica} has no HTTP port`);
      const text = await (await fetch(`http://127.0.0.1:${r.port}/metrics`)).text();
      return text
        .split('\n')
        .filter(
          (line) =>
            line.startsWith('orderflow_messages_handled_total{') &&
            line.includes(`consumer="${consumer}"`) &&
            line.includes(`type="${OrderPlaced.type}"`),
        )
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
    }),
  );
}

/** What a broker's own tests get: the running system and the helpers that record what they place. */
export interface ScenarioContext {
  /** The system (started in the suite's `before`). */
  readonly sys: () => TestSystem;
  /** Signs a customer up; the effects checks cover it. */
  readonly customer: () => Promise<Customer>;
  /** Places an order; the effects checks cover it. */
  readonly place: (customer: Customer, options?: Parameters<typeof placeOrder>[2]) => Promise<PlacedOrder>;
}

export interface SystemScenarioOptions {
  readonly broker: BrokerKind;
  /** Orders placed at once in the burst test (10% declined, 10% to an unserved country): a multiple of 10. */
  readonly burst: number;
  /**
   * How the replicas of a service share a consumer with per-key order (payment-processor's orders):
   * `spread` (JetStream: each replica handles part of the messages) or `single-active` (RabbitMQ's
   * single active consumer: one replica handles them all, the others stand by until it goes).
   */
  readonly orderedConsumerReplicas: 'spread' | 'single-active';
  /**
   * Start on empty data directories, every service creating its PGlite database (default true), or
   * reopen seeded ones (see `startTestSystem`).
   */
  readonly firstStart?: boolean;
  /**
   * Tests of this broker only (e.g. a broker restart), registered after the shared scenarios and
   * before the effects checks, which cover their orders too.
   */
  readonly brokerTests?: (context: ScenarioContext) => void;
}

/**
 * Registers the system scenarios on `options.broker`, in order: happy path with its full history,
 * decline, AQ refund and credit note, cancel before the courier, cancel too late, idempotent POST,
 * a burst with {@link PAYMENT_REPLICAS} payment-processor replicas, SIGKILL of order-storage and a
 * payment replica mid-flow, the broker's own tests, then the effects-once checks over every order and
 * the permission check.
 */
export function describeSystemScenarios(options: SystemScenarioOptions): void {
  const { broker, burst } = options;
  const spread = options.orderedConsumerReplicas === 'spread';
  const label = broker === BrokerKind.RabbitMQ ? 'RabbitMQ' : 'NATS';
  describe(`the system on ${label}, as processes, through HTTP`, { timeout: 600_000 }, () => {
    let sys: TestSystem;
    /** Every order and customer this file created: the effects checks cover all of them. */
    const orders: PlacedOrder[] = [];
    const customers: Customer[] = [];
    const customer = async (): Promise<Customer> => {
      const c = await registerCustomer(sys.api);
      customers.push(c);
      return c;
    };
    const place = async (c: Customer, options: Parameters<typeof placeOrder>[2] = {}) => {
      const order = await placeOrder(sys.api, c, options);
      if (!orders.some((o) => o.orderId === order.orderId)) orders.push(order);
      return order;
    };
    /** The order's whole history (every service's events), checked for positions 1..n. */
    const historyOf = async (orderId: string) => {
      const history = await sys.api.history(orderId);
      assert.equal(history.status, 200, `GET /orders/${orderId}/events: ${JSON.stringify(history.body)}`);
      assert.deepEqual(
        history.body.map((e) => e.sequence),
        history.body.map((_, i) => i + 1),
        'the history is in stream order',
      );
      return history.body;
    };
    const eventTypes = async (orderId: string): Promise<string[]> =>
      (await historyOf(orderId)).map((e) => e.type);
    /** The Order aggregate's own events in the history. */
    const orderEventTypes = async (orderId: string): Promise<string[]> =>
      (await eventTypes(orderId)).filter((t) => t.startsWith('order.'));

    before(async () => {
      // By default the services' real first start: their PGlite databases created from an empty DATA_DIR.
      sys = await startTestSystem({
        broker,
        replicas: { 'payment-processor': PAYMENT_REPLICAS },
        firstStart: options.firstStart ?? true,
        // A SIGKILLed replica's charges come back after the ack wait: 12 s here instead of 30 s
        // (above the 5 s PSP timeout; the runtime extends it while a charge runs).
        env: { 'payment-processor': { ACK_WAIT_MS: '12000' } },
      });
    });

    after(async () => {
      await sys?.dispose();
    });

    test('happy path: placed → paid → invoiced, courier assigned → confirmed', async () => {
      const c = await customer();
      const { orderId } = await place(c);
      const view = await waitTerminal(sys, orderId);
      assert.equal(view.status, 'confirmed', JSON.stringify(view));
      assert.equal(view.payment?.status, 'authorized');
      assert.match(view.invoiceNumber ?? '', /^\d{4}-\d{6,}$/);
      assert.ok(view.courier && !view.courier.released, 'a courier is assigned');
      assert.equal(view.total, 2 * 850 + 1_900);

      // The whole history, every service's step with its producer as the source.
      const history = await historyOf(orderId);
      const steps = new Map(history.map((e) => [e.type, e.source]));
      assert.equal(history[0]?.type, 'order.placed.v2');
      assert.equal(history.at(-1)?.type, 'order.confirmed.v1');
      assert.deepEqual(
        [...steps].filter(([type]) => type !== 'order.placed.v2' && type !== 'order.confirmed.v1').sort(),
        [
          ['delivery.assigned.v1', 'orderflow/assign-delivery'],
          ['invoice.created.v1', 'orderflow/create-invoice'],
          ['payment.authorized.v1', 'orderflow/payment-processor'],
        ],
      );
      assert.equal(steps.get('order.confirmed.v1'), 'orderflow/order-storage');

      const own = sys.api.as(c.token);
      const pdf = await own.invoicePdf(orderId);
      assert.equal(pdf.status, 200);
      assert.match(pdf.contentType ?? '', /application\/pdf/);
      assert.equal(new TextDecoder().decode(pdf.bytes.slice(0, 5)), '%PDF-');
      assert.equal((await own.getOrder(orderId)).body.customerId, c.customerId);
      // Another customer, or nobody, gets nothing of it.
      const other = sys.api.as((await customer()).token);
      for (const answer of [
        await other.getOrder(orderId),
        await other.history(orderId),
        await other.cancel(orderId),
      ])
        assert.equal(answer.status, 404, JSON.stringify(answer.body));
      assert.equal((await other.invoicePdf(orderId)).status, 404);
      assert.equal((await sys.api.as(undefined).getOrder(orderId)).status, 401);
      // A confirmed order keeps its invoice: no credit note.
      assert.equal(view.creditNoteNumber, null);
      const none = await sys.api.creditNotePdf(orderId);
      assert.equal(none.status, 404);
      assert.match(none.contentType ?? '', /application\/problem\+json/);
    });

    test('tok_decline → cancelled / payment_declined, nothing charged', async () => {
      const { orderId } = await place(await customer(), { token: 'tok_decline' });
      const view = await waitTerminal(sys, orderId);
      assert.equal(view.status, 'cancelled', JSON.stringify(view));
      assert.equal(view.cancellationReason, 'payment_declined');
      assert.equal(view.payment?.status, 'declined');
      assert.equal(view.invoiceNumber, null);
      assert.equal(view.courier, null);
      const charged = (await sys.ledger()).filter(
        (e) => e.reference === orderId && e.kind === 'charge' && e.status === 'succeeded',
      );
      assert.deepEqual(charged, []);
      assert.equal((await sys.api.invoicePdf(orderId)).status, 404);
    });

    test('unserved country AQ → refund → cancelled / delivery_unavailable; its invoice is cancelled by a credit note', async () => {
      const { orderId } = await place(await customer(), { country: 'AQ' });
      const view = await waitTerminal(sys, orderId);
      assert.equal(view.status, 'cancelled', JSON.stringify(view));
      assert.equal(view.cancellationReason, 'delivery_unavailable');
      assert.equal(view.payment?.status, 'refunded');
      assert.ok(view.payment?.refundId, 'the refund id is on the view');
      const entries = (await sys.ledger()).filter((e) => e.reference === orderId);
      assert.equal(entries.filter((e) => e.kind === 'charge' && e.status === 'succeeded').length, 1);
      assert.equal(entries.filter((e) => e.kind === 'refund').length, 1);
      assert.ok((await eventTypes(orderId)).includes('order.cancelled.v1'));

      // The books: the invoice stays (numbers are final) and a credit note of its own series cancels it.
      const credited = await waitFor(
        async () => {
          const v = (await sys.api.getOrder(orderId)).body;
          return v.creditNoteNumber ? v : undefined;
        },
        { timeoutMs: 30_000, message: `credit note of ${orderId}` },
      );
      assert.match(credited.invoiceNumber ?? '', /^\d{4}-\d{6,}$/);
      assert.match(credited.creditNoteNumber ?? '', /^CN-\d{4}-\d{6,}$/);
      const pdf = await sys.api.creditNotePdf(orderId);
      assert.equal(pdf.status, 200);
      assert.match(pdf.contentType ?? '', /application\/pdf/);
      assert.equal(new TextDecoder().decode(pdf.bytes.slice(0, 5)), '%PDF-');
      const history = await historyOf(orderId);
      const types = history.map((e) => e.type);
      const creditNote = history.find((e) => e.type === 'credit-note.issued.v1');
      assert.equal(creditNote?.source, 'orderflow/create-invoice');
      assert.ok(
        types.indexOf('invoice.created.v1') < types.indexOf('credit-note.issued.v1'),
        types.join(', '),
      );

      // The mails: the credit note (with its PDF), and no invoice mail after the cancellation mail.
      const mails = await waitFor(
        async () => {
          const list = (await sys.mails()).filter((m) => m.headers['x-orderflow-key'] === orderId);
          return list.some((m) => m.headers['x-orderflow-kind'] === 'credit_note') ? list : undefined;
        },
        { timeoutMs: 30_000, message: `credit note mail of ${orderId}` },
      );
      const kinds = mails.map((m) => m.headers['x-orderflow-kind']);
      const invoiceMail = kinds.indexOf('invoice');
      assert.ok(invoiceMail === -1 || invoiceMail < kinds.indexOf('order_cancelled'), kinds.join(', '));
      const creditMail = mails.find((m) => m.headers['x-orderflow-kind'] === 'credit_note');
      const attached = creditMail?.attachments.map((a) => a.filename) ?? [];
      assert.ok(attached.includes(`credit-note-${credited.creditNoteNumber}.pdf`), attached.join(', '));
      if (invoiceMail === -1)
        assert.ok(
          attached.includes(`invoice-${credited.invoiceNumber}.pdf`),
          'the invoice goes with the credit note',
        );
    });

    test('customer cancel before a courier is assigned → refund (and release) → cancelled / customer_request', async () => {
      // A slow PSP holds the order at `placed` (the charge is running), before any courier can be assigned.
      await sys.setPspFaults({ latencyMs: 1_500 });
      let orderId: string;
      try {
        const c = await customer();
        ({ orderId } = await place(c));
        const cancel = await sys.api.as(c.token).cancel(orderId);
        assert.ok(
          cancel.status >= 200 && cancel.status < 300,
          `${cancel.status} ${JSON.stringify(cancel.body)}`,
        );
        assert.equal(cancel.body.accepted, true);
      } finally {
        await sys.setPspFaults({ latencyMs: 0 });
      }
      const view = await waitTerminal(sys, orderId);
      assert.equal(view.status, 'cancelled', JSON.stringify(view));
      assert.equal(view.cancellationReason, 'customer_request');
      assert.equal(view.payment?.status, 'refunded', 'the charge that went through is refunded');
      assert.ok(
        view.courier === null || view.courier.released,
        `no courier stays reserved: ${JSON.stringify(view.courier)}`,
      );
      const entries = (await sys.ledger()).filter((e) => e.reference === orderId);
      assert.equal(entries.filter((e) => e.kind === 'charge' && e.status === 'succeeded').length, 1);
      assert.equal(entries.filter((e) => e.kind === 'refund').length, 1);
      const types = await orderEventTypes(orderId);
      assert.ok(types.includes('order.cancel-requested.v1'), types.join(', '));
      assert.equal(types.at(-1), 'order.cancelled.v1');
      assert.ok((await eventTypes(orderId)).includes('payment.refunded.v1'));
    });

    test('cancel after the courier is assigned → 409 ORDER_CANCEL_TOO_LATE', async () => {
      const { orderId } = await place(await customer());
      const view = await waitTerminal(sys, orderId);
      assert.equal(view.status, 'confirmed');
      const cancel = await sys.api.cancel(orderId);
      assert.equal(cancel.status, 409, JSON.stringify(cancel.body));
      assert.equal(cancel.problem?.code, 'ORDER_CANCEL_TOO_LATE');
      assert.match(cancel.headers.get('content-type') ?? '', /application\/problem\+json/);
      assert.equal((await sys.api.getOrder(orderId)).body.status, 'confirmed');
    });

    test('POST /orders is idempotent: the same key twice, and twice at once, gives one order', async () => {
      const c = await customer();
      const api = sys.api.as(c.token);
      const body = demoOrder(c.customerId);
      const key = randomUUID();
      const first = await api.placeOrder(body, key);
      const again = await api.placeOrder(body, key);
      assert.ok(first.status >= 200 && first.status < 300, JSON.stringify(first.body));
      assert.ok(again.status >= 200 && again.status < 300, JSON.stringify(again.body));
      assert.equal(again.body.orderId, first.body.orderId);

      const concurrentKey = randomUUID();
      const [a, b] = await Promise.all([
        api.placeOrder(body, concurrentKey),
        api.placeOrder(body, concurrentKey),
      ]);
      assert.ok(a.status >= 200 && a.status < 300, `${a.status} ${JSON.stringify(a.body)}`);
      assert.ok(b.status >= 200 && b.status < 300, `${b.status} ${JSON.stringify(b.body)}`);
      assert.equal(a.body.orderId, b.body.orderId);
      assert.notEqual(a.body.orderId, first.body.orderId);

      const reused = await api.placeOrder({ ...body, payment: { token: 'tok_decline' } }, key);
      assert.equal(reused.status, 409, JSON.stringify(reused.body));
      assert.equal(reused.problem?.code, 'IDEMPOTENCY_KEY_REUSED');

      for (const orderId of [first.body.orderId, a.body.orderId]) {
        orders.push({ orderId, customerId: c.customerId, email: c.email });
        assert.equal((await waitTerminal(sys, orderId)).status, 'confirmed');
        const charges = (await sys.ledger()).filter((e) => e.reference === orderId && e.kind === 'charge');
        assert.equal(charges.length, 1, `one charge for ${orderId}`);
      }
    });

    test(`${burst} orders at once with ${PAYMENT_REPLICAS} payment-processor replicas: all terminal, ${spread ? 'each replica handled a share' : 'one replica active, the others standing by'}`, async () => {
      const handledBefore = await placedHandledPerReplica(sys);
      const burstCustomers = await mapLimit(
        Array.from({ length: 50 }, (_, i) => i),
        10,
        () => customer(),
      );
      const started = performance.now();
      const placed = await mapLimit(
        Array.from({ length: burst }, (_, i) => i),
        PLACE_CONCURRENCY,
        (i) =>
          place(
            burstCustomers[i % burstCustomers.length]!,
            i % 10 === 3 ? { token: 'tok_decline' } : i % 10 === 7 ? { country: 'AQ' } : {},
          ),
      );
      const placedMs = performance.now() - started;
      assert.equal(new Set(placed.map((o) => o.orderId)).size, burst);
      const views = await mapLimit(placed, 10, (o) => waitTerminal(sys, o.orderId, 300_000));
      const terminalMs = performance.now() - started;
      const byStatus = (reason: string | null, status: string) =>
        views.filter((v) => v.status === status && v.cancellationReason === reason).length;
      assert.equal(byStatus('payment_declined', 'cancelled'), burst / 10);
      assert.equal(byStatus('delivery_unavailable', 'cancelled'), burst / 10);
      assert.equal(byStatus(null, 'confirmed'), (burst * 8) / 10);

      // Which replica charged what: each one's count of order.placed handled by the shared consumer.
      const handledAfter = await placedHandledPerReplica(sys);
      const shares = handledAfter.map((n, i) => n - (handledBefore[i] ?? 0));
      const total = shares.reduce((a, b) => a + b, 0);
      process.stderr.write(
        `burst of ${burst}: placed in ${Math.round(placedMs)} ms, all terminal after ${Math.round(terminalMs)} ms; ` +
          `order.placed handled per payment-processor replica: ${shares.join(' / ')}\n`,
      );
      // A redelivery (e.g. an ack lost) may count an order twice, never less than once.
      assert.ok(total >= burst, `the replicas handled ${total} of ${burst} order.placed`);
      if (spread)
        for (const [i, n] of shares.entries())
          assert.ok(
            n >= MIN_SHARE_MESSAGES,
            `payment-processor#${i + 1} handled ${n} of ${burst} (shares ${shares.join(' / ')}); ` +
              'each replica should handle a share',
          );
      else
        assert.equal(
          shares.filter((n) => n > 0).length,
          1,
          `one active consumer: shares ${shares.join(' / ')}`,
        );
    });

    test('SIGKILL of order-storage and a payment-processor replica mid-flow: restarted, every order completes', async () => {
      const c = await customer();
      // Slow charges keep the orders in flight while the processes die.
      await sys.setPspFaults({ latencyMs: 300 });
      const placed = await mapLimit(
        Array.from({ length: 20 }, (_, i) => i),
        10,
        () => place(c),
      );
      const before = sys.system.supervisor.pids();
      // The replica that handled the most order.placed: with a single active consumer, the active one.
      const handled = await placedHandledPerReplica(sys);
      const victim = handled.indexOf(Math.max(...handled)) + 1;
      await Promise.all([
        sys.system.supervisor.kill('order-storage', { signal: 'SIGKILL' }),
        sys.system.supervisor.kill('payment-processor', { replica: victim, signal: 'SIGKILL' }),
      ]);
      await sys.setPspFaults({ latencyMs: 0 });
      await sys.system.supervisor.waitReady('order-storage');
      await sys.system.supervisor.waitReady('payment-processor');
      const now = sys.system.supervisor.pids();
      assert.notDeepEqual(
        now['order-storage'],
        before['order-storage'],
        'order-storage runs as a new process',
      );
      assert.equal(now['payment-processor']?.length, PAYMENT_REPLICAS);
      assert.notEqual(now['payment-processor']?.[victim - 1], before['payment-processor']?.[victim - 1]);
      const restarted = sys.system.supervisor.list().filter((r) => r.restarts > 0);
      assert.deepEqual(
        restarted.map((r) => `${r.program}#${r.replica}`).sort(),
        ['order-storage#1', `payment-processor#${victim}`],
        sys.diagnostics(),
      );

      const views = await mapLimit(placed, 10, (o) => waitTerminal(sys, o.orderId, 120_000));
      assert.deepEqual(
        views.filter((v) => v.status !== 'confirmed').map((v) => `${v.orderId}: ${v.status}`),
        [],
        'every order placed before the crash is confirmed',
      );
    });

    options.brokerTests?.({ sys: () => sys, customer, place });

    test('effects happened once: one charge (and refund) per order, gapless invoices, one courier per confirmed order, one mail per (order, kind)', async () => {
      assert.ok(orders.length >= burst + 20, `${orders.length} orders placed`);
      // Invoices and mails may trail the terminal state: checked until consistent, the last difference shown.
      const last = await settledEffects(sys, orders, customers);
      assert.deepEqual(last, NO_EFFECT_PROBLEMS, sys.diagnostics());

      // One courier per confirmed order; a cancelled order holds none (never assigned, or released).
      const views = await mapLimit(orders, 10, async (o) => (await sys.api.getOrder(o.orderId)).body);
      const couriers = views.flatMap((v) => {
        const held = v.courier !== null && !v.courier.released;
        if (v.status === 'confirmed' && !held)
          return [`${v.orderId} confirmed, courier ${JSON.stringify(v.courier)}`];
        if (v.status === 'cancelled' && held)
          return [`${v.orderId} cancelled, still holds ${v.courier?.courierId}`];
        return [];
      });
      assert.deepEqual(couriers, [], 'every confirmed order holds a courier, no cancelled one does');
    });

    test('every process ran on its own credentials without a single permission violation', () => {
      assert.deepEqual(sys.system.permissionViolations(), []);
    });
  });
}
