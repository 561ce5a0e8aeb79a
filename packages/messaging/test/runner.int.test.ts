import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { ThingHappened } from '../src/conformance/transport.ts';
import { DeadLetterTopology, on, runService } from '../src/mod.ts';

let server: NatsServer;
before(async () => (server = await startNatsServer()));
after(() => server.dispose());

test('a service exposes liveness, readiness, metrics and $SRV discovery, and stops cleanly', async () => {
  const stream = uniqueName('RUN');
  let handled = 0;
  const service = await runService(
    {
      name: 'runner-test',
      version: '1.2.3',
      broker: { kind: 'nats', servers: server.url },
      handleSignals: false,
      logger: pino({ level: 'silent' }),
      streams: [{ name: stream, subjects: [`${stream}.>`] }],
    },
    async ({ transport }) => {
      await transport.consume({
        name: 'counter',
        stream,
        handlers: [on(ThingHappened, async () => void handled++)],
      });
    },
  );
  const base = `http://127.0.0.1:${service.httpPort}`;
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  await service.transport.publish(ThingHappened, { key: 'a', n: 1 }, { subject: `${stream}.a` });
  await waitFor(() => handled === 1);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const line = (name: string) =>
    metrics.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes('consumer="counter"'));
  assert.match(line('orderflow_messages_handled_total') ?? '', /type="conformance.thing-happened.v1".*\} 1$/);
  assert.match(line('orderflow_consumer_lag') ?? '', /\} 0$/);
  assert.match(line('orderflow_handler_duration_seconds_count') ?? '', /\} 1$/);

  const ping = await service.broker.nc.request('$SRV.PING.runner-test', '', { timeout: 2_000 });
  const stats = await service.broker.nc.request('$SRV.INFO', '', { timeout: 2_000 });
  assert.equal(ping.json<{ type: string }>().type, 'io.nats.micro.v1.ping_response');
  assert.equal(stats.json<{ version: string }>().version, '1.2.3');

  await service.stop();
  await assert.rejects(fetch(`${base}/healthz`));
});

async function readyz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

test('readyz is 503 while NATS is down and 200 again once the service is reconnected and consuming', async () => {
  const nats = await startNatsServer();
  const stream = uniqueName('OUTAGE');
  const handled: number[] = [];
  const service = await runService(
    {
      name: 'outage-test',
      version: '1.0.0',
      broker: { kind: 'nats', servers: nats.url },
      handleSignals: false,
      logger: pino({ level: 'silent' }),
      streams: [{ name: stream, subjects: [`${stream}.>`] }],
    },
    async ({ transport }) => {
      await transport.consume({
        name: 'outage',
        stream,
        handlers: [on(ThingHappened, async (event) => void handled.push(event.data.n))],
      });
    },
  );
  try {
    assert.equal((await readyz(service.httpPort)).status, 200);
    await nats.stop();
    const down = await waitFor(async () => {
      const answer = await readyz(service.httpPort);
      return answer.status === 503 ? answer : undefined;
    });
    assert.equal(down.body.connected, false);
    assert.equal(down.body.ready, false);

    await nats.start();
    await waitFor(async () => (await readyz(service.httpPort)).status === 200, { timeoutMs: 30_000 });
    await service.transport.publish(ThingHappened, { key: 'a', n: 1 }, { subject: `${stream}.a` });
    await waitFor(() => handled.includes(1), { message: 'consuming again after the outage' });
  } finally {
    await service.stop();
    await nats.dispose();
  }
});

test('a deleted durable consumer is re-provisioned: readyz is 503 until it is back, then consumption resumes', async () => {
  const stream = uniqueName('GONE');
  const handled: number[] = [];
  const service = await runService(
    {
      name: 'durable-test',
      version: '1.0.0',
      broker: { kind: 'nats', servers: server.url },
      handleSignals: false,
      logger: pino({ level: 'silent' }),
      streams: [{ name: stream, subjects: [`${stream}.>`] }],
    },
    async ({ transport }) => {
      await transport.consume({
        name: 'keeper',
        stream,
        handlers: [on(ThingHappened, async (event) => void handled.push(event.data.n))],
      });
    },
  );
  try {
    await service.transport.publish(ThingHappened, { key: 'a', n: 1 }, { subject: `${stream}.a` });
    await waitFor(() => handled.includes(1));
    assert.equal((await readyz(service.httpPort)).status, 200);

    const jsm = service.broker.transport.jsm;
    const redrive = DeadLetterTopology.redriveDurable(stream, 'keeper');
    await jsm.consumers.delete(stream, 'keeper');
    await jsm.consumers.delete(DeadLetterTopology.stream, redrive);
    const missing = await waitFor(async () => {
      const answer = await readyz(service.httpPort);
      return answer.status === 503 ? answer : undefined;
    });
    assert.deepEqual(missing.body.notConsuming, ['keeper']);
    assert.equal(missing.body.connected, true);

    await waitFor(async () => (await readyz(service.httpPort)).status === 200, { timeoutMs: 30_000 });
    assert.equal((await jsm.consumers.info(stream, 'keeper')).config.durable_name, 'keeper');
    assert.equal((await jsm.consumers.info(DeadLetterTopology.stream, redrive)).config.durable_name, redrive);
    await service.transport.publish(ThingHappened, { key: 'a', n: 2 }, { subject: `${stream}.a` });
    await waitFor(() => handled.includes(2), { message: 'consuming again after the durable came back' });
  } finally {
    await service.stop();
  }
});
