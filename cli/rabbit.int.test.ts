import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Type } from '@sinclair/typebox';
import amqp, { type ChannelModel } from 'amqplib';
import { orderingTopology, type BusIdentityName, type ConsumerBinding } from '@orderflow/contracts';
import {
  AccessRefusedError,
  defineCommand,
  defineEndpoint,
  defineEvent,
  isBrokerUnavailable,
  on,
  ProvisioningError,
  PublishError,
  RabbitTopology,
  RabbitTransport,
  removeRabbitUsers,
  type ConsumerSpec,
  type RabbitIdentityAccess,
} from '@orderflow/messaging';
import { createRabbitVhost, deferred, waitFor, type RabbitVhost } from '@orderflow/testing';
import { provisionOrderingRabbit } from './rabbit.ts';

const topology = orderingTopology();
const IDENTITIES = [
  'order-storage',
  'payment-processor',
  'gateway',
  'operator',
] as const satisfies BusIdentityName[];

// Any event contract does: what the broker checks is the routing key (the subject), not the type.
const Noted = defineEvent({ name: 'rabbit-test.noted', schema: Type.Object({ n: Type.Integer() }) });
const Token = defineEndpoint({
  name: 'get-payment-token',
  subject: topology.endpoints.getPaymentToken.subject,
  request: defineCommand({ name: 'rabbit-test.get-token', schema: Type.Object({ orderId: Type.String() }) }),
  response: defineEvent({ name: 'rabbit-test.token', schema: Type.Object({ token: Type.String() }) }),
});

let vhost: RabbitVhost;
let dir: string;
let prefix: string;
let access: Map<string, RabbitIdentityAccess>;
const connections: ChannelModel[] = [];
const transports: RabbitTransport[] = [];

async function connectAs(identity: (typeof IDENTITIES)[number]): Promise<ChannelModel> {
  const url = access.get(identity)?.url;
  assert.ok(url, identity);
  const connection = await amqp.connect(url);
  connection.on('error', () => undefined);
  connections.push(connection);
  return connection;
}

async function transportOf(identity: (typeof IDENTITIES)[number]): Promise<RabbitTransport> {
  const transport = await RabbitTransport.create(await connectAs(identity), {
    source: `orderflow/${identity}`,
    identity,
    provisioned: true,
  });
  transports.push(transport);
  return transport;
}

/** A consumer on `binding` without its producer check (the test's events are not the real ones). */
function specOf(binding: ConsumerBinding, handlers: ConsumerSpec['handlers']): ConsumerSpec {
  return {
    name: binding.name,
    stream: binding.stream,
    ...(binding.filterSubject !== undefined && { filterSubject: binding.filterSubject }),
    orderingKey: binding.orderingKey,
    maxDeliver: 1,
    retry: { initialDelayMs: 20, maxDelayMs: 100 },
    handlers,
  };
}

/** What the broker answers to one operation on a fresh channel: 'ok' or the channel's close code. */
async function attempt(
  connection: ChannelModel,
  operation: (ch: amqp.Channel) => Promise<unknown>,
): Promise<'ok' | number> {
  const ch = await connection.createChannel();
  ch.on('error', () => undefined);
  try {
    await operation(ch);
    await ch.close();
    return 'ok';
  } catch (error) {
    // amqplib rejects most operations with an Error carrying `code`, `get` with the close frame itself.
    const e = error as { code?: unknown; fields?: { replyCode?: unknown } };
    const code = e.code ?? e.fields?.replyCode;
    if (typeof code === 'number') return code;
    throw error;
  }
}

before(async () => {
  vhost = await createRabbitVhost();
  dir = await mkdtemp(join(tmpdir(), 'orderflow-rabbit-'));
  prefix = `${vhost.name}-`;
  access = await provisionOrderingRabbit(topology, {
    url: 'amqp://127.0.0.1:5672',
    vhost: vhost.name,
    secretsDir: join(dir, 'secrets'),
    userPrefix: prefix,
    only: IDENTITIES,
  });
});

after(async () => {
  await Promise.all(transports.map((t) => t.close({ deadlineMs: 500 }).catch(() => undefined)));
  await Promise.all(connections.map((c) => c.close().catch(() => undefined)));
  await Promise.all([
    removeRabbitUsers([...access.keys()], { userPrefix: prefix }),
    vhost.dispose(),
    rm(dir, { recursive: true, force: true }),
  ]);
});

test('the provisioner writes one password per identity (0600) and creates its user', async () => {
  for (const name of [...IDENTITIES, 'provisioner']) {
    const file = access.get(name)?.passwordFile ?? '';
    assert.equal((await stat(file)).mode & 0o777, 0o600, file);
    assert.equal(access.get(name)?.user, `${prefix}${name}`);
  }
  assert.equal((await stat(join(dir, 'secrets'))).mode & 0o777, 0o700);
});

test('services consume, publish, serve and request what their role needs, without configure rights on the topology', async () => {
  const storage = await transportOf('order-storage');
  const payments = await transportOf('payment-processor');
  const seen = deferred<number>();
  await payments.consume(
    specOf(topology.consumers.paymentProcessor.orders, [
      on(Noted, async (event) => seen.resolve(event.data.n)),
    ]),
  );
  await storage.publish(Noted, { n: 7 }, { subject: topology.subjects.order('o1') });
  assert.equal(await seen.promise, 7);

  await payments.publish(Noted, { n: 1 }, { subject: topology.subjects.payment('o1') });

  storage.serve(Token, async (request) => ({ token: `tok-${request.orderId}` }));
  const answer = await waitFor(() =>
    payments.request(Token, { orderId: 'o1' }, { timeoutMs: 1_000 }).catch(() => undefined),
  );
  assert.deepEqual(answer, { token: 'tok-o1' });
});

test('a forged publish is refused by the broker as an AccessRefusedError; the publisher carries on', async () => {
  const payments = await transportOf('payment-processor');
  // payment-processor does not produce orders.*, nor anything outside payments.*
  for (const subject of [topology.subjects.order('o2'), topology.subjects.invoice('o2'), 'anything.else']) {
    const error = await payments.publish(Noted, { n: 2 }, { subject }).then(
      () => assert.fail(`${subject} was accepted`),
      (e: unknown) => e,
    );
    assert.ok(error instanceof PublishError, String(error));
    assert.ok(error.cause instanceof AccessRefusedError, String(error.cause));
    assert.equal(error.cause.code, 'ACCESS_REFUSED');
    assert.match(error.cause.message, new RegExp(`topic '${subject.replace(/\./g, '\\.')}'`));
    assert.equal(error.retryable, false);
    assert.equal(isBrokerUnavailable(error), false);
  }
  // The refused publish closed a channel; the next publish gets a new one.
  await payments.publish(Noted, { n: 3 }, { subject: topology.subjects.payment('o2') });
});

test('a request to an endpoint the identity may not call is refused, typed', async () => {
  const storage = await transportOf('order-storage');
  storage.serve(Token, async () => ({ token: 't' }));
  const gateway = await transportOf('gateway');
  // The payment token is payment-processor's to ask for, not the gateway's.
  const error = await gateway.request(Token, { orderId: 'o3' }, { timeoutMs: 3_000 }).then(
    () => assert.fail('the gateway got a payment token'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof AccessRefusedError, String(error));
});

test('the broker refuses what a role does not include: the default exchange, others’ queues, others’ endpoints', async () => {
  const connection = await connectAs('payment-processor');
  const storageQueue = RabbitTopology.consumerQueue(
    topology.stream,
    topology.consumers.orderStorage.payments.name,
  );
  // Delete, purge or read another service's queue, or declare a queue outside its own names.
  assert.equal(await attempt(connection, (ch) => ch.deleteQueue(storageQueue)), 403);
  assert.equal(await attempt(connection, (ch) => ch.purgeQueue(storageQueue)), 403);
  assert.equal(await attempt(connection, (ch) => ch.consume(storageQueue, () => undefined)), 403);
  assert.equal(await attempt(connection, (ch) => ch.assertQueue('mine', { exclusive: true })), 403);
  // Even its own queue: the provisioner owns it.
  const ownQueue = RabbitTopology.consumerQueue(
    topology.stream,
    topology.consumers.paymentProcessor.orders.name,
  );
  assert.equal(await attempt(connection, (ch) => ch.deleteQueue(ownQueue)), 403);
  assert.equal(await attempt(connection, (ch) => ch.deleteExchange(RabbitTopology.events)), 403);
  // Serve order-storage's endpoint.
  const placeQueue = RabbitTopology.endpointQueue(topology.endpoints.placeOrder.subject);
  assert.equal(await attempt(connection, (ch) => ch.assertQueue(placeQueue, { autoDelete: true })), 403);
  // Publish to the default exchange, straight into order-storage's queue (past the topic permissions).
  const viaDefault = await attempt(connection, async (ch) => {
    ch.sendToQueue(storageQueue, Buffer.from('{}'));
    await ch.checkQueue(storageQueue); // the refusal closes the channel before this answers
  });
  assert.equal(viaDefault, 403);
  // Bind its own private queue to all events (read on the events exchange is not granted).
  const bound = await attempt(connection, async (ch) => {
    const { queue } = await ch.assertQueue(RabbitTopology.privateQueue('payment-processor'), {
      exclusive: true,
    });
    await ch.bindQueue(queue, RabbitTopology.events, '#');
  });
  assert.equal(bound, 403);
  // Bind its reply queue to the replies of every identity.
  const replies = await attempt(connection, async (ch) => {
    const { queue } = await ch.assertQueue(RabbitTopology.privateQueue('payment-processor'), {
      exclusive: true,
    });
    await ch.bindQueue(queue, RabbitTopology.replies, '#');
  });
  assert.equal(replies, 403);
});

test('a service finds a topology that was not provisioned: a ProvisioningError naming it', async () => {
  const payments = await transportOf('payment-processor');
  await assert.rejects(
    payments.consume({
      name: 'undeclared',
      stream: topology.stream,
      handlers: [on(Noted, async () => undefined)],
    }),
    (error: unknown) => error instanceof ProvisioningError && error.consumer === 'undeclared',
  );
});

test('the operator lists the dead letters a service wrote, and redrives one to that consumer', async () => {
  const storage = await transportOf('order-storage');
  const payments = await transportOf('payment-processor');
  const operator = await transportOf('operator');
  let attempts = 0;
  const redriven = deferred<void>();
  await storage.consume(
    specOf(topology.consumers.orderStorage.payments, [
      on(Noted, async (event) => {
        if (event.data.n !== 9) return; // earlier tests' events wait in this queue too
        if (++attempts === 1) throw new Error('first attempt fails');
        redriven.resolve();
      }),
    ]),
  );
  await payments.publish(Noted, { n: 9 }, { subject: topology.subjects.payment('o4') });
  const [letter] = await waitFor(async () => {
    const letters = await operator.deadLetters.list({
      consumer: topology.consumers.orderStorage.payments.name,
    });
    return letters.length > 0 ? letters : undefined;
  });
  assert.ok(letter);
  assert.equal(letter.subject, topology.subjects.payment('o4'));
  await operator.deadLetters.redrive(letter.seq);
  await redriven.promise;
  assert.equal(attempts, 2);
  // A service cannot read the dead letters (only the operator and the gateway's console may).
  const connection = await connectAs('payment-processor');
  assert.equal(await attempt(connection, (ch) => ch.get(RabbitTopology.deadLetterQueue)), 403);
});
