// The inspection verbs of `orderflow` against a real nats-server and a running service.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { headers as natsHeaders } from '@nats-io/nats-core';
import {
  OrderConfirmed,
  orderingTopology,
  OrderingTopology,
  OwnerPublisher,
  PaymentAuthorized,
  sourceOf,
} from '@orderflow/contracts';
import { on, runService, type RunningService } from '@orderflow/messaging';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { pino } from 'pino';
import { consumers, services, streams, traceOrder } from './commands/inspect.ts';

let server: NatsServer;
let service: RunningService<'nats'>;
const topology = orderingTopology({
  namespace: uniqueName('cli')
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, ''),
});
const durable = topology.consumer('order-status', 'payments');
const orderId = 'o-cli-1';
let handled = 0;

before(async () => {
  server = await startNatsServer();
  service = await runService(
    {
      name: 'inspect-test',
      version: '2.0.0',
      broker: { kind: 'nats', servers: server.url },
      handleSignals: false,
      logger: pino({ level: 'silent' }),
      // The production stream too: the CLI refuses a NATS without it (not Orderflow's).
      streams: [...topology.streams, ...OrderingTopology.streams],
    },
    async ({ transport }) => {
      transport.serve(topology.endpoints.getOrderStatus, async () => {
        throw new Error('not in this test');
      });
      await transport.consume({
        ...durable,
        maxDeliver: 1,
        handlers: [on(PaymentAuthorized, async () => void handled++)],
      });
    },
  );
});
after(async () => {
  await service?.stop();
  await server?.dispose();
});

const capture = () => {
  const lines: string[] = [];
  return { lines, say: (line: string) => lines.push(line) };
};

test('services lists the instance and its endpoints from $SRV.STATS', async () => {
  const { lines, say } = capture();
  const found = await services(service.broker.nc, say, { waitMs: 500 });
  assert.equal(found.length, 1);
  assert.equal(found[0]?.name, 'inspect-test');
  assert.ok(
    lines.some((l) => l.startsWith('inspect-test') && l.includes('2.0.0')),
    lines.join('\n'),
  );
  assert.ok(
    lines.some((l) => l.includes(topology.endpoints.getOrderStatus.subject)),
    lines.join('\n'),
  );
});

test('trace prints the order timeline with its trace ids; streams and consumers show positions', async () => {
  const { transport } = service.broker;
  const owners = new OwnerPublisher(service.broker.nc); // each event as its producing service publishes it
  const now = new Date().toISOString();
  await owners.publish(
    PaymentAuthorized,
    { orderId, paymentId: 'ch_1', amount: { amount: 100, currency: 'EUR' }, authorizedAt: now },
    { subject: topology.subjects.payment(orderId), about: orderId },
  );
  await owners.publish(
    OrderConfirmed,
    { orderId, paymentId: 'ch_1', invoiceNumber: '2026-000001', courierId: 'c1', confirmedAt: now },
    { subject: topology.subjects.order(orderId), about: orderId },
  );
  // Another order's event stays out of this order's timeline.
  await owners.publish(
    PaymentAuthorized,
    { orderId: 'o-other', paymentId: 'ch_2', amount: { amount: 5, currency: 'EUR' }, authorizedAt: now },
    { subject: topology.subjects.payment('o-other'), about: 'o-other' },
  );
  await waitFor(() => handled === 2);
  await owners.close();
  // A payment event (from its owner) the consumer cannot decode: dead-lettered, and shown in the order's trace.
  const h = natsHeaders();
  for (const [k, v] of Object.entries({
    'ce-specversion': '1.0',
    'ce-id': 'bad',
    'ce-type': PaymentAuthorized.type,
    'ce-source': sourceOf('payment-processor'),
    'ce-subject': orderId,
  }))
    h.set(k, v);
  await transport.js.publish(topology.subjects.payment(orderId), '{"orderId":1}', { headers: h });
  await waitFor(async () => (await transport.deadLetters.list({ consumer: durable.name })).length === 1);

  const trace = capture();
  const entries = await traceOrder(service.broker.nc, orderId, trace.say, topology);
  assert.deepEqual(
    entries.map((e) => e.type),
    [PaymentAuthorized.type, OrderConfirmed.type, PaymentAuthorized.type],
  );
  assert.ok(
    entries.slice(0, 2).every((e) => /^[0-9a-f]{32}$/.test(e.traceId ?? '')),
    'every step published by the toolkit has its trace id',
  );
  assert.equal(entries[2]?.traceId, undefined, 'the foreign message carried none');
  assert.ok(
    Date.parse(entries[2]!.time) >= Date.parse(entries[1]!.time),
    `a message without ce-time is placed by the time the stream stored it, not ${entries[2]!.time}`,
  );
  assert.ok(
    trace.lines.some((l) => l.includes('order-storage') && l.includes(OrderConfirmed.type)),
    trace.lines.join('\n'),
  );
  assert.ok(
    trace.lines.some((l) => l.startsWith('dead letter') && l.includes(durable.name)),
    trace.lines.join('\n'),
  );
  assert.deepEqual(await traceOrder(service.broker.nc, 'o-none', () => undefined, topology), []);

  const s = capture();
  assert.ok((await streams(service.broker.nc, s.say)) >= 2);
  assert.ok(
    s.lines.some((l) => l.startsWith(topology.stream) && /\s4\s/.test(l)),
    s.lines.join('\n'),
  );

  const c = capture();
  const rows = await consumers(service.broker.nc, c.say, { stream: topology.stream });
  const row = rows.find((r) => r.name === durable.name);
  assert.ok(row, c.lines.join('\n'));
  assert.equal(row.pending, 0, 'every payment event was delivered');
  assert.equal(row.ackPending, 0);
  assert.ok(c.lines.some((l) => l.includes(durable.name)));
});

test('the CLI shows a dead letter with reason and payload, and discards it', async () => {
  const run = (...args: string[]) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', 'cli/orderflow.ts', ...args],
        { env: { PATH: process.env.PATH, NATS_URL: server.url }, timeout: 60_000 },
        (error, stdout, stderr) =>
          resolve({ code: error ? ((error.code as number | undefined) ?? 1) : 0, out: stdout + stderr }),
      );
    });
  const [letter] = await service.transport.deadLetters.list({ consumer: durable.name });
  assert.ok(letter, 'the previous test left a dead letter');
  const shown = await run('dlq', 'show', String(letter.seq));
  assert.equal(shown.code, 0, shown.out);
  assert.match(shown.out, /code\s+VALIDATION_FAILED/);
  assert.match(shown.out, /"orderId": 1/);
  assert.match(shown.out, /ce-subject: o-cli-1/);
  const discarded = await run('dlq', 'discard', String(letter.seq));
  assert.equal(discarded.code, 0, discarded.out);
  assert.equal(await service.transport.deadLetters.get(letter.seq), undefined);
  assert.equal((await run('dlq', 'show', String(letter.seq))).code, 1, 'a discarded letter is gone');
});
