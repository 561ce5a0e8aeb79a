import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import { pino } from 'pino';
import { Type } from '@sinclair/typebox';
import { createRabbitVhost, uniqueName, waitFor, type RabbitVhost } from '@orderflow/testing';
import { ThingHappened } from '../src/conformance/transport.ts';
import {
  defineCommand,
  defineEndpoint,
  defineEvent,
  MessagingError,
  on,
  RabbitTransport,
  runService,
} from '../src/mod.ts';

// A real RabbitMQ vhost per file (made and deleted with rabbitmqctl by @orderflow/testing).
let vhost: RabbitVhost;
before(async () => (vhost = await createRabbitVhost()));
after(() => vhost.dispose());

const Double = defineEndpoint({
  name: 'double',
  subject: `${uniqueName('runner')}.double`,
  request: defineCommand({ name: 'runner.double', schema: Type.Object({ n: Type.Integer() }) }),
  response: defineEvent({ name: 'runner.doubled', schema: Type.Object({ n: Type.Integer() }) }),
});

async function readyz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

test('a service on RabbitMQ consumes, serves a request, reports ready and metrics, and stops cleanly', async () => {
  const stream = uniqueName('RUN');
  const handled: number[] = [];
  const service = await runService(
    {
      name: 'rabbit-runner-test',
      version: '1.0.0',
      broker: { kind: 'rabbitmq', url: vhost.url },
      handleSignals: false,
      logger: pino({ level: 'silent' }),
      streams: [{ name: stream, subjects: [`${stream}.>`] }],
    },
    async ({ transport, broker }) => {
      assert.equal(broker.kind, 'rabbitmq');
      assert.ok(broker.transport instanceof RabbitTransport);
      await transport.consume({
        name: 'counter',
        stream,
        handlers: [on(ThingHappened, async (event) => void handled.push(event.data.n))],
      });
      transport.serve(Double, async ({ n }) => ({ n: n * 2 }));
    },
  );
  // Another process's view: its own connection and transport.
  const connection = await amqp.connect(vhost.url);
  const client = await RabbitTransport.create(connection, { source: 'orderflow/test-client' });
  const base = `http://127.0.0.1:${service.httpPort}`;
  try {
    const ready = await readyz(service.httpPort);
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, {
      ready: true,
      started: true,
      draining: false,
      connected: true,
      notConsuming: [],
    });
    assert.equal((await fetch(`${base}/healthz`)).status, 200);

    await client.publish(ThingHappened, { key: 'a', n: 1 }, { subject: `${stream}.a` });
    await waitFor(() => handled.includes(1), { message: 'the service consumed the event' });
    // The endpoint's queue is declared asynchronously by serve(): ask until it answers.
    const answer = await waitFor(async () => client.request(Double, { n: 21 }).catch(() => undefined));
    assert.deepEqual(answer, { n: 42 });

    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(
      metrics,
      /orderflow_messages_handled_total\{[^}]*consumer="counter"[^}]*type="conformance.thing-happened.v1"[^}]*\} 1$/m,
    );
  } finally {
    await client.close();
    await connection.close();
    await service.stop();
  }
  await assert.rejects(fetch(`${base}/healthz`));
});

test('readyz is 503 (connected: false) once the RabbitMQ connection is lost; it is not reopened', async () => {
  const stream = uniqueName('LOST');
  const service = await runService(
    {
      name: 'rabbit-lost-test',
      version: '1.0.0',
      broker: { kind: 'rabbitmq', url: vhost.url },
      handleSignals: false,
      logger: pino({ level: 'silent' }),
      streams: [{ name: stream, subjects: [`${stream}.>`] }],
    },
    async ({ transport }) => {
      await transport.consume({ name: 'idle', stream, handlers: [on(ThingHappened, async () => undefined)] });
    },
  );
  try {
    assert.equal((await readyz(service.httpPort)).status, 200);
    // The socket goes without a goodbye, as when the network or the broker's host fails.
    const socket = (
      service.broker.connection as unknown as { connection: { stream: { destroy(error: Error): void } } }
    ).connection.stream;
    socket.destroy(new Error('network gone'));
    const down = await waitFor(async () => {
      const answer = await readyz(service.httpPort);
      return answer.status === 503 ? answer : undefined;
    });
    assert.equal(down.body.connected, false);
    assert.equal(down.body.ready, false);
  } finally {
    await service.stop();
  }
});

test('credentials the broker refuses fail the start at once with BROKER_REFUSED', async () => {
  const url = new URL(vhost.url);
  url.password = 'not-the-password';
  await assert.rejects(
    runService(
      {
        name: 'rabbit-refused-test',
        version: '1.0.0',
        broker: { kind: 'rabbitmq', url: url.toString() },
        handleSignals: false,
        logger: pino({ level: 'silent' }),
      },
      async () => undefined,
    ),
    (error: unknown) => {
      assert.ok(error instanceof MessagingError);
      assert.equal(error.code, 'BROKER_REFUSED');
      assert.doesNotMatch(error.message, /not-the-password/);
      return true;
    },
  );
});
