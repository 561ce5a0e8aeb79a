import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { deferred, uniqueName, waitFor } from '@orderflow/testing';
import { ThingHappened, transportConformance } from '../src/conformance/transport.ts';
import { isBrokerUnavailable, ProvisioningError, PublishError, TimeoutError } from '../src/errors.ts';
import { MemoryBroker } from '../src/memory/broker.ts';
import { MemoryTransport } from '../src/memory/transport.ts';
import { StoreUnavailableError } from '../src/ports/errors.ts';
import { defineEndpoint } from '../src/rpc.ts';
import type { Transport } from '../src/transport.ts';
import { on, type ConsumerSpec } from '../src/types.ts';

// One broker for the suite: each `connect()` is another process on it.
const broker = new MemoryBroker();

transportConformance('in-memory', () => ({
  features: { deduplication: true, optimisticConcurrency: true, streamSequences: true, replay: true },
  brokerOutage: () => broker.unavailable('publish to orders.1'),
  async connect() {
    return new MemoryTransport(broker, { source: 'orderflow/conformance' });
  },
  async crash(transport: Transport) {
    (transport as MemoryTransport).crash();
  },
  async close(transport: Transport) {
    await transport.close({ deadlineMs: 1_000 });
  },
}));

describe('MemoryTransport beyond the suite', () => {
  const open: MemoryTransport[] = [];
  after(async () => {
    await Promise.all(open.map((t) => t.close({ deadlineMs: 500 })));
  });

  /** A broker of its own (it is taken down), a stream, and `count` transports on it. */
  const world = async (count = 1) => {
    const own = new MemoryBroker({ name: uniqueName('broker') });
    const transports = Array.from({ length: count }, () => {
      const transport = new MemoryTransport(own, { source: 'orderflow/memory-test' });
      open.push(transport);
      return transport;
    });
    const stream = uniqueName('S');
    await transports[0]!.provision([{ name: stream, subjects: [`${stream}.>`] }]);
    const spec = (handlers: ConsumerSpec['handlers'], more: Partial<ConsumerSpec> = {}): ConsumerSpec => ({
      name: uniqueName('c'),
      stream,
      handlers,
      ackWaitMs: 2_000,
      retry: { initialDelayMs: 20, maxDelayMs: 200 },
      ...more,
    });
    const publish = (key: string, n: number, by = transports[0]!) =>
      by.publish(ThingHappened, { key, n }, { subject: `${stream}.${key}`, about: key });
    return { broker: own, transports, stream, spec, publish };
  };

  test('broker down: publishes fail retryable, dead letters are unavailable, nothing is delivered; all resumes when it is up', async () => {
    const { broker: own, transports, stream, spec, publish } = await world();
    const seen: number[] = [];
    const consumer = await transports[0]!.consume(
      spec([on(ThingHappened, async (event) => void seen.push(event.data.n))]),
    );
    await publish('a', 1);
    await waitFor(() => seen.length === 1);

    own.down();
    assert.equal(consumer.consuming, false);
    await assert.rejects(publish('a', 2), (error: unknown) => {
      assert.ok(error instanceof PublishError);
      assert.equal(error.retryable, true);
      assert.ok(isBrokerUnavailable(error));
      return true;
    });
    await assert.rejects(transports[0]!.deadLetters.list(), StoreUnavailableError);

    own.up();
    assert.equal(consumer.consuming, true);
    await publish('a', 3);
    await waitFor(() => seen.length === 2);
    assert.deepEqual(seen, [1, 3]);
    assert.deepEqual(
      own.messages(stream).map((m) => m.seq),
      [1, 2],
      'the failed publish stored nothing',
    );
  });

  test('an ack made while the broker is down is lost: the message comes back after its ack wait', async () => {
    const { broker: own, transports, spec, publish } = await world();
    const release = deferred();
    const counts: number[] = [];
    await transports[0]!.consume(
      spec(
        [
          on(ThingHappened, async (_event, context) => {
            counts.push(context.deliveryCount);
            if (context.deliveryCount === 1) await release.promise;
          }),
        ],
        { ackWaitMs: 300 },
      ),
    );
    await publish('a', 1);
    await waitFor(() => counts.length === 1);
    own.down();
    release.resolve();
    await new Promise((resolve) => setTimeout(resolve, 50)); // the handler resolved and acked: lost
    own.up();
    await waitFor(() => counts.length === 2);
    assert.deepEqual(counts, [1, 2]);
  });

  test("a handler's publish during an outage is retried in place and goes through once the broker is back", async () => {
    const { broker: own, transports, stream, spec, publish } = await world();
    const attempts: number[] = [];
    const outage = deferred();
    const caused = deferred<number>();
    await transports[0]!.consume(
      spec([
        on(ThingHappened, async (event, context) => {
          if (event.data.n === 1) {
            caused.resolve(context.deliveryCount);
            return;
          }
          attempts.push(context.deliveryCount);
          if (attempts.length === 1) {
            own.down();
            outage.resolve();
          }
          await context.publish(ThingHappened, { key: 'b', n: 1 }, { subject: `${stream}.b` });
        }),
      ]),
    );
    await publish('a', 0);
    await outage.promise;
    await waitFor(() => attempts.length >= 3); // paced retries while down
    own.up();
    assert.equal(await caused.promise, 1);
    assert.ok(
      attempts.every((count) => count === 1),
      'still the first delivery',
    );
    assert.deepEqual(await transports[0]!.deadLetters.list(), []);
  });

  test('a request waits while the broker is down and times out if it does not come back in time', async () => {
    const { broker: own, transports } = await world(2);
    const endpoint = defineEndpoint({
      name: 'thing',
      subject: `${uniqueName('rpc')}.thing`,
      request: ThingHappened,
      response: ThingHappened,
    });
    transports[0]!.serve(endpoint, async (request) => ({ ...request, n: request.n + 1 }));
    own.down();
    await assert.rejects(
      transports[1]!.request(endpoint, { key: 'a', n: 1 }, { timeoutMs: 100 }),
      TimeoutError,
    );
    const answer = transports[1]!.request(endpoint, { key: 'a', n: 1 }, { timeoutMs: 2_000 });
    setTimeout(() => own.up(), 100);
    assert.deepEqual(await answer, { key: 'a', n: 2 });
  });

  test('per-key order holds across instances sharing a durable', async () => {
    const { transports, spec, publish } = await world(2);
    const durable = spec([]);
    const handled = new Map<string, number[]>();
    const byInstance = [0, 0];
    for (const [index, transport] of transports.entries()) {
      await transport.consume({
        ...durable,
        concurrency: 8,
        orderingKey: 'subject',
        handlers: [
          on(ThingHappened, async (event) => {
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 4));
            byInstance[index]!++;
            handled.set(event.data.key, [...(handled.get(event.data.key) ?? []), event.data.n]);
          }),
        ],
      });
    }
    const keys = ['a', 'b', 'c', 'd'];
    for (let n = 0; n < 25; n++) for (const key of keys) await publish(key, n);
    await waitFor(() => keys.every((k) => handled.get(k)?.length === 25));
    const expected = Array.from({ length: 25 }, (_, n) => n);
    for (const key of keys) assert.deepEqual(handled.get(key), expected, `order of key ${key}`);
    assert.ok(byInstance[0]! > 0 && byInstance[1]! > 0, 'both instances got a share');
  });

  test('a crashed instance cannot ack what it held: a handler finishing after the crash changes nothing', async () => {
    const { transports, spec, publish } = await world(2);
    const durable = spec([], { ackWaitMs: 300 });
    const release = deferred();
    const started = deferred();
    await transports[0]!.consume({
      ...durable,
      handlers: [
        on(ThingHappened, async () => {
          started.resolve();
          await release.promise;
        }),
      ],
    });
    await publish('a', 1);
    await started.promise;
    transports[0]!.crash();
    release.resolve(); // resolves and "acks" on a dead connection
    const redelivered = deferred<number>();
    await transports[1]!.consume({
      ...durable,
      handlers: [on(ThingHappened, async (_e, context) => redelivered.resolve(context.deliveryCount))],
    });
    assert.equal(await redelivered.promise, 2);
    await assert.rejects(publish('a', 2), PublishError, 'a crashed transport publishes nothing');
  });

  test('a message that crashes every instance holding it is dead-lettered past maxDeliver without running again', async () => {
    const { transports, stream, spec, publish } = await world(3);
    const durable = spec([], { ackWaitMs: 200, maxDeliver: 2 });
    for (const victim of transports.slice(0, 2)) {
      const started = deferred();
      await victim.consume({
        ...durable,
        handlers: [
          on(ThingHappened, async () => {
            started.resolve();
            await new Promise(() => undefined); // the "process" dies in here
          }),
        ],
      });
      if (victim === transports[0]) await publish('a', 1, transports[2]);
      await started.promise;
      victim.crash();
    }
    let ran = 0;
    await transports[2]!.consume({ ...durable, handlers: [on(ThingHappened, async () => void ran++)] });
    const [letter] = await waitFor(async () => {
      const letters = await transports[2]!.deadLetters.list({ stream, consumer: durable.name });
      return letters.length > 0 ? letters : undefined;
    });
    assert.equal(letter?.code, 'MAX_DELIVERIES_EXCEEDED');
    assert.equal(letter?.deliveries, 3);
    assert.equal(ran, 0);
  });

  test('durables: deliver policy "new" skips what is stored; filter and policy cannot change in place', async () => {
    const { transports, spec, publish } = await world();
    await publish('a', 1);
    const seen: number[] = [];
    const fresh = spec([on(ThingHappened, async (event) => void seen.push(event.data.n))], {
      deliverPolicy: 'new',
    });
    const running = await transports[0]!.consume(fresh);
    await publish('a', 2);
    await waitFor(() => seen.length === 1);
    assert.deepEqual(seen, [2]);
    await running.stop();
    await assert.rejects(transports[0]!.consume({ ...fresh, deliverPolicy: 'all' }), ProvisioningError);
    await assert.rejects(transports[0]!.consume({ ...fresh, filterSubject: 'x.>' }), ProvisioningError);
  });
});
