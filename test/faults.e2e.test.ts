// System-level faults, the whole system as processes through its HTTP API (see test/support/system.ts):
// poison messages on every subject namespace of the ORDERING stream, PSP 5xx bursts and timeouts, and a
// rolling SIGTERM restart of every service while orders keep coming. After each: every order that got
// a 2xx is terminal and its effects (charge, refund, invoice, mails) happened once.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { EVENT_SOURCES, OrderingTopology } from '@orderflow/contracts';
import { NatsTransport, type DeadLetter } from '@orderflow/messaging';
import { waitFor } from '@orderflow/testing';
import { demoOrder } from '../cli/api.ts';
import { publishPoison, type PoisonMessage } from '../cli/chaos/poison.ts';
import { SERVICES } from '../cli/system.ts';
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
} from './support/system.ts';

const STREAM = 'ORDERING';
const DEAD_LETTERS = 'DEADLETTER';
/** PSP deadline of payment-processor here: a PSP slower than this is a timeout. */
const PSP_TIMEOUT_MS = 1_000;

describe('the system under faults, as processes, through HTTP', { timeout: 300_000 }, () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let transport: NatsTransport;
  /** Every order and customer of this file: the effects checks cover all of them. */
  const orders: PlacedOrder[] = [];
  const customers: Customer[] = [];

  const customer = async (): Promise<Customer> => {
    const c = await registerCustomer(sys.api);
    customers.push(c);
    return c;
  };
  const place = async (c: Customer, options: Parameters<typeof placeOrder>[2] = {}) => {
    const order = await placeOrder(sys.api, c, options);
    orders.push(order);
    return order;
  };
  const deadLetters = (): Promise<DeadLetter[]> => transport.deadLetters.list({ stream: STREAM });
  const describeLetters = (letters: readonly DeadLetter[]) =>
    letters.map((l) => `${l.consumer} ${l.subject} #${l.streamSequence} ${l.code}: ${l.reason}`);
  const assertEffectsOnce = async () => {
    assert.deepEqual(await settledEffects(sys, orders, customers), NO_EFFECT_PROBLEMS, sys.diagnostics());
  };

  before(async () => {
    sys = await startTestSystem({
      replicas: { 'payment-processor': 2 },
      // The test forges poison events: it connects as the chaos harness's identity.
      chaosIdentity: true,
      env: {
        'payment-processor': {
          PSP_TIMEOUT_MS: String(PSP_TIMEOUT_MS),
          RETRY_INITIAL_DELAY_MS: '100',
          RETRY_MAX_DELAY_MS: '1000',
        },
      },
    });
    nc = await sys.system.connect('faults-test', 'chaos');
    jsm = await jetstreamManager(nc);
    transport = await NatsTransport.create(nc, { source: 'orderflow/faults-test' });
  });

  after(async () => {
    await nc?.close().catch(() => undefined);
    await sys?.dispose();
  });

  test('poison messages on every subject namespace are dead-lettered by each consumer that reads them; real orders complete', async (t) => {
    // Who reads the stream: the services' consumers (each with a redrive durable on DEADLETTER), and
    // order-storage's read-model projection (an ordered consumer; event-store codes, no redrive).
    const redrivePrefix = `redrive-${STREAM}-`;
    const withRedrive = new Set<string>();
    for await (const info of jsm.consumers.list(DEAD_LETTERS))
      if (info.name.startsWith(redrivePrefix)) withRedrive.add(info.name.slice(redrivePrefix.length));
    const readers: { name: string; filter: string | undefined; projection: boolean }[] = [];
    for await (const info of jsm.consumers.list(STREAM))
      if (withRedrive.has(info.name))
        readers.push({ name: info.name, filter: info.config.filter_subject, projection: false });
    readers.push({
      name: OrderingTopology.consumer('order-storage', 'orders').name,
      filter: OrderingTopology.filters.orders,
      projection: true,
    });
    const readersOf = (subject: string) =>
      readers.filter((r) => !r.filter || r.filter === `${subject.split('.')[0]}.*`);
    // Every service that consumes has its consumers up (the supervisor waited for readiness).
    for (const service of SERVICES.filter((s) => s !== 'gateway'))
      assert.ok(
        readers.some((r) => r.name.startsWith(`${service}-`) && !r.projection),
        `${service} has a consumer: ${JSON.stringify(readers)}`,
      );

    // Real orders interleaved with the poison: one order, then a namespace's four poison messages.
    const c = await customer();
    const placed: PlacedOrder[] = [];
    const published: PoisonMessage[] = [];
    for (const [i, source] of EVENT_SOURCES.entries()) {
      placed.push(await place(c, i === 2 ? { country: 'AQ' } : i === 3 ? { token: 'tok_decline' } : {}));
      published.push(...(await publishPoison(nc, OrderingTopology, [source])));
    }
    placed.push(await place(c));

    const views = await mapLimit(placed, 6, (o) => waitTerminal(sys, o.orderId, 90_000));
    assert.deepEqual(
      views.map((v) => `${v.status}/${v.cancellationReason ?? '-'}`),
      [
        'confirmed/-',
        'confirmed/-',
        'cancelled/delivery_unavailable',
        'cancelled/payment_declined',
        'confirmed/-',
        'confirmed/-',
      ],
    );

    // Each poison message, once per consumer that reads its subject, with its code.
    const expected = published
      .flatMap((p) =>
        readersOf(p.subject).map(
          (r) => `${r.name} ${p.subject} #${p.streamSequence} ${p.expectedCodes[r.projection ? 1 : 0]}`,
        ),
      )
      .sort();
    let letters: DeadLetter[] = [];
    const actual = () =>
      letters.map((l) => `${l.consumer} ${l.subject} #${l.streamSequence} ${l.code}`).sort();
    await waitFor(
      async () => {
        letters = await deadLetters();
        return letters.length >= expected.length;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    ).catch(() => undefined);
    assert.deepEqual(actual(), expected, `dead letters:\n${describeLetters(letters).join('\n')}`);
    for (const letter of letters) assert.ok(letter.reason.length > 0, `a reason: ${JSON.stringify(letter)}`);
    const byCode = new Map<string, number>();
    for (const l of letters) byCode.set(l.code, (byCode.get(l.code) ?? 0) + 1);
    t.diagnostic(
      `${published.length} poison messages, ${letters.length} dead letters: ${JSON.stringify([...byCode])}`,
    );

    await assertEffectsOnce();
    // Handled: the next tests start with an empty dead-letter stream.
    for (const letter of letters) await transport.deadLetters.discard(letter.seq);
    assert.deepEqual(await deadLetters(), []);
  });

  test('PSP 5xx bursts, errors after commit and timeouts during a batch: all complete, one charge each, no dead letter', async (t) => {
    const batch = await mapLimit([0, 1, 2, 3], 4, () => customer());
    const ledgerBefore = (await sys.ledger()).length;
    // A 5xx burst, random 500s before and after the PSP recorded the charge.
    await sys.setPspFaults({ failNextRequests: 8, errorRate: 0.15, errorAfterCommitRate: 0.2 });
    const placed = await mapLimit(
      Array.from({ length: 10 }, (_, i) => i),
      5,
      (i) => place(batch[i % batch.length]!, i === 4 ? { country: 'AQ' } : {}),
    );
    // Timeouts: the PSP answers after payment-processor gave up, and still records the charge.
    await sys.setPspFaults({ latencyMs: PSP_TIMEOUT_MS + 500, failNextRequests: 4 });
    placed.push(
      ...(await mapLimit(
        Array.from({ length: 10 }, (_, i) => i),
        5,
        (i) => place(batch[i % batch.length]!, i === 7 ? { country: 'AQ' } : {}),
      )),
    );
    // Hold the timeouts until the PSP has seen (and recorded) charges it answered too late.
    await waitFor(async () => (await sys.ledger()).length >= ledgerBefore + 12, {
      timeoutMs: 30_000,
      intervalMs: 200,
      message: 'the PSP records charges while slow',
    });
    await sys.setPspFaults({ latencyMs: 0, errorRate: 0.1, errorAfterCommitRate: 0.1 });
    const views = await mapLimit(placed, 10, (o) => waitTerminal(sys, o.orderId, 90_000));
    await sys.setPspFaults({ errorRate: 0, errorAfterCommitRate: 0, failNextRequests: 0 });

    const outcomes = views.map((v) => `${v.status}/${v.cancellationReason ?? '-'}`);
    assert.equal(outcomes.filter((o) => o === 'confirmed/-').length, 18, outcomes.join(', '));
    assert.equal(
      outcomes.filter((o) => o === 'cancelled/delivery_unavailable').length,
      2,
      outcomes.join(', '),
    );
    const ledger = await sys.ledger();
    for (const view of views) {
      const charges = ledger.filter((e) => e.reference === view.orderId && e.kind === 'charge');
      assert.equal(charges.length, 1, `one charge for ${view.orderId}: ${JSON.stringify(charges)}`);
      assert.equal(charges[0]?.status, 'succeeded');
    }
    t.diagnostic(`PSP ledger: ${ledger.length - ledgerBefore} entries for ${views.length} orders`);
    assert.deepEqual(describeLetters(await deadLetters()), [], 'nothing dead-lettered');
    await assertEffectsOnce();
  });

  test('rolling SIGTERM restart of every service while orders keep coming: no 500, 503 only while order-storage restarts, all complete, no dead letter', async (t) => {
    const c = await customer();
    const supervisor = sys.system.supervisor;
    let restarting: string | undefined;
    let done = false;
    const accepted: PlacedOrder[] = [];
    const answers: string[] = [];
    const badAnswers: string[] = [];
    let retried503 = 0;

    /** POST /orders until a 2xx, with one Idempotency-Key; records every answer that is not one. */
    const placeWithRetry = async () => {
      const key = randomUUID();
      const body = demoOrder(c.customerId);
      for (let attempt = 1; ; attempt++) {
        const during = restarting;
        let response: Awaited<ReturnType<typeof sys.api.placeOrder>>;
        try {
          response = await sys.api.placeOrder(body, key);
        } catch (error) {
          // No HTTP answer at all: only while the gateway itself restarts.
          if (during !== 'gateway' && restarting !== 'gateway')
            badAnswers.push(`no answer while ${during ?? 'nothing'} restarts: ${String(error)}`);
          assert.ok(attempt < 300, `POST /orders keeps failing: ${String(error)}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        answers.push(`${response.status} (${during ?? '-'})`);
        if (response.status >= 200 && response.status < 300) {
          const order = { orderId: response.body.orderId, customerId: c.customerId, email: c.email };
          if (!accepted.some((o) => o.orderId === order.orderId)) accepted.push(order);
          return;
        }
        const problemJson = /application\/problem\+json/.test(response.headers.get('content-type') ?? '');
        const storageRestarting = during === 'order-storage' || restarting === 'order-storage';
        if (response.status !== 503 || !problemJson || !storageRestarting) {
          badAnswers.push(
            `${response.status} ${response.headers.get('content-type')} while ${during ?? 'nothing'} restarts: ${JSON.stringify(response.body)}`,
          );
        }
        if (response.status !== 503) return;
        retried503 += 1;
        assert.ok(attempt < 300, 'POST /orders answers 503 for too long');
        // The client's retry pause after a 503 (the service it needs is coming back).
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };

    // Two clients place orders during every restart: up to PER_RESTART orders each time, paced so that
    // they spread over the stop (drain) and the start of the service.
    const PER_RESTART = 4;
    let phaseOrders = 0;
    const client = async () => {
      while (!done) {
        if (restarting === undefined || phaseOrders >= PER_RESTART) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          continue;
        }
        phaseOrders += 1;
        await placeWithRetry();
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    };
    let clientFailure: Error | undefined;
    const clients = [client(), client()].map((p) =>
      p.catch((error: unknown) => {
        clientFailure ??= error instanceof Error ? error : new Error(JSON.stringify(error));
        done = true;
      }),
    );
    for (const name of SERVICES) {
      const atStart = accepted.length;
      phaseOrders = 0;
      restarting = name;
      await supervisor.restart(name);
      // At least two of the phase's orders were accepted before the next service restarts.
      await waitFor(() => clientFailure !== undefined || accepted.length >= atStart + 2, {
        timeoutMs: 60_000,
        intervalMs: 50,
        message: `orders accepted around the restart of ${name}`,
      });
      restarting = undefined;
      if (clientFailure !== undefined) break;
    }
    done = true;
    await Promise.all(clients);
    if (clientFailure !== undefined) throw clientFailure;
    orders.push(...accepted);

    assert.ok(accepted.length >= 2 * SERVICES.length, `${accepted.length} orders accepted`);
    assert.deepEqual(badAnswers, [], `answers: ${answers.join(', ')}\n${sys.diagnostics()}`);
    const restarted = supervisor.list().filter((r) => r.program !== 'nats-server' && r.restarts > 0);
    assert.deepEqual(restarted, [], 'a restart is a stop and a start, never a crash');
    const tally = new Map<string, number>();
    for (const a of answers) tally.set(a, (tally.get(a) ?? 0) + 1);
    t.diagnostic(`${accepted.length} orders accepted; answers: ${JSON.stringify([...tally])}`);
    const views = await mapLimit(accepted, 10, (o) => waitTerminal(sys, o.orderId, 90_000));
    assert.deepEqual(
      views.filter((v) => v.status !== 'confirmed').map((v) => `${v.orderId}: ${v.status}`),
      [],
      `every accepted order is confirmed (${retried503} retried 503s)`,
    );
    assert.deepEqual(describeLetters(await deadLetters()), [], 'nothing dead-lettered');
    await assertEffectsOnce();
  });

  test('every process, and this test as the chaos identity, ran without a permission violation', () => {
    assert.deepEqual(sys.system.permissionViolations(), []);
  });
});
