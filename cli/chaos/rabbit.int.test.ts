import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  OrderPlaced,
  OrderStatusChanged,
  orderingTopology,
  type BusIdentityName,
} from '@orderflow/contracts';
import {
  connectRabbit,
  on,
  RabbitTransport,
  removeRabbitUsers,
  type RabbitIdentityAccess,
} from '@orderflow/messaging';
import { createRabbitVhost, waitFor, type RabbitVhost } from '@orderflow/testing';
import { provisionOrderingRabbit } from '../rabbit.ts';
import { rabbitChaosBus, type ChaosBus, type StatusChange } from './bus.ts';
import { checkInvariants } from './invariants.ts';
import { publishPoisonRabbit, type PoisonMessage } from './poison.ts';
import { RabbitNode, RabbitRefusalLog } from './rabbit-node.ts';

// The chaos harness's side of RabbitMQ, on a vhost and users of its own: the `chaos` identity
// publishes the poison on every namespace, a service's consumer dead-letters what it reads, the
// harness lists the letters through the transport port and matches them to the poison; the broker's
// log is where a refused operation shows, and only the run's own vhost counts.

const topology = orderingTopology();
const IDENTITIES = ['payment-processor', 'order-status', 'chaos'] as const satisfies BusIdentityName[];

let vhost: RabbitVhost;
let dir: string;
let prefix: string;
let access: Map<string, RabbitIdentityAccess>;
let refusals: RabbitRefusalLog;
let bus: ChaosBus;
const scope = () => ({ vhost: vhost.name, userPrefix: prefix });
const transports: RabbitTransport[] = [];

async function transportOf(identity: (typeof IDENTITIES)[number]): Promise<RabbitTransport> {
  const connection = await connectRabbit({ url: access.get(identity)?.url ?? '', name: identity });
  connection.on('error', () => undefined);
  const transport = await RabbitTransport.create(connection, {
    source: `orderflow/${identity}`,
    identity,
    provisioned: true,
  });
  transports.push(transport);
  return transport;
}

before(async () => {
  vhost = await createRabbitVhost();
  dir = await mkdtemp(join(tmpdir(), 'orderflow-chaos-rabbit-'));
  prefix = `${vhost.name}-`;
  access = await provisionOrderingRabbit(topology, {
    url: 'amqp://127.0.0.1:5672',
    vhost: vhost.name,
    secretsDir: join(dir, 'secrets'),
    userPrefix: prefix,
    only: IDENTITIES,
    chaos: true,
  });
  const logFile = await new RabbitNode({ vhost: vhost.name }).logFile();
  refusals = await RabbitRefusalLog.open(logFile);
  bus = await rabbitChaosBus(access.get('chaos')?.url ?? '', topology, () => refusals.read(scope()));
});

after(async () => {
  await bus.close();
  await Promise.all(transports.map((t) => t.close({ deadlineMs: 500 }).catch(() => undefined)));
  await Promise.all(transports.map((t) => t.connection.close().catch(() => undefined)));
  await Promise.all([
    removeRabbitUsers([...access.keys()], { userPrefix: prefix }),
    vhost.dispose(),
    rm(dir, { recursive: true, force: true }),
  ]);
});

test('poison published as chaos is dead-lettered by the consumers that read it and matched to its letters', async () => {
  const payments = await transportOf('payment-processor');
  const binding = topology.consumers.paymentProcessor.orders;
  let handled = 0;
  await payments.consume({
    name: binding.name,
    stream: binding.stream,
    ...(binding.filterSubject !== undefined && { filterSubject: binding.filterSubject }),
    orderingKey: binding.orderingKey,
    handlers: [
      on(OrderPlaced, async () => {
        handled += 1;
      }),
    ],
  });

  const poison = await bus.publishPoison();
  assert.equal(poison.length, 20, 'four kinds on each of the five namespaces');
  assert.ok(poison.every((p) => p.streamSequence === undefined));
  const onOrders = (p: PoisonMessage) => p.subject.startsWith('orders.');
  const letters = await waitFor(async () => {
    const all = await bus.deadLetters(topology.stream);
    return all.length >= poison.filter(onOrders).length ? all : undefined;
  });
  assert.equal(handled, 0);
  assert.deepEqual(
    letters.map((l) => `${l.consumer} ${l.streamSequence}`),
    poison.filter(onOrders).map(() => `${binding.name} 0`),
  );

  const invariant = checkInvariants({
    orders: [],
    customers: [],
    views: new Map(),
    histories: new Map(),
    ledger: [],
    mails: [],
    deadLetters: letters,
    poison,
    answers: { counts: {}, unexpected: [], gaveUp: [] },
  }).invariants.find((i) => i.name.startsWith('dead letters'));
  // Only payment-processor consumed: the poison of the other namespaces waits in the others' queues.
  assert.deepEqual(
    invariant?.problems,
    poison.filter((p) => !onOrders(p)).map((p) => `poison ${p.kind} on ${p.subject} not dead-lettered`),
  );
  assert.deepEqual(await refusals.read(scope()), [], 'chaos may publish on every namespace');
});

test('the harness follows status notifications as chaos', async () => {
  const status = await transportOf('order-status');
  const seen: StatusChange[] = [];
  bus.followStatus((change) => seen.push(change));
  const change: StatusChange = {
    orderId: '0b7e4a9e-7a3c-4d2a-9f43-3f0c8a1b2c3d',
    customerId: '7f1c2b3a-1d2e-4f5a-8b9c-0d1e2f3a4b5c',
    status: 'confirmed',
    cause: 'order.confirmed.v1',
    version: 3,
    changedAt: new Date().toISOString(),
  };
  await waitFor(() => {
    status.broadcast(OrderStatusChanged, change, {
      subject: topology.notifications.statusChanged(change.orderId),
    });
    return seen.length > 0 ? true : undefined;
  });
  assert.deepEqual(seen[0], change);
});

test("a refused operation of one of the run's users is in the broker's log; other users' refusals are not", async () => {
  const payments = await transportOf('payment-processor');
  // A forged publish: payment-processor writes payments.* only.
  await assert.rejects(publishPoisonRabbit(payments.connection, topology, ['orders']), /ACCESS[_-]REFUSED/);
  await assert.rejects(
    connectRabbit({
      url: `amqp://nobody-${randomUUID()}:wrong@127.0.0.1:5672/${encodeURIComponent(vhost.name)}`,
      name: 'stranger',
      waitOnFirstConnect: false,
    }),
    /refused/,
  );
  const lines = await waitFor(async () => {
    const found = await refusals.read(scope());
    return found.length > 0 ? found : undefined;
  });
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0] ?? '', /operation basic.publish caused a channel exception access_refused/);
  assert.match(lines[0] ?? '', new RegExp(`refused for user '${prefix}payment-processor'`));
});
