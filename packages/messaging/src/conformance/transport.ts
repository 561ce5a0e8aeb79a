/**
 * The transport conformance suite: the behaviour every {@link Transport} implementation must show.
 * A broker adapter runs it with a harness that connects transports to a live broker; the `features`
 * object states which optional guarantees the broker gives (a case that needs a missing feature is
 * skipped with that reason).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { deferred, uniqueName, waitFor } from '@orderflow/testing';
import { defineEndpoint } from '../rpc.ts';
import { defineCommand, defineEvent, type PayloadOf } from '../contract.ts';
import {
  ConcurrencyError,
  EndpointError,
  NoRespondersError,
  RemoteError,
  TimeoutError,
  TransientError,
  ValidationError,
} from '../errors.ts';
import type { Envelope } from '../envelope.ts';
import type { Transport } from '../transport.ts';
import { on, type ConsumerSpec } from '../types.ts';

/** What a broker guarantees where brokers differ; a case that needs a missing one is skipped. */
export interface TransportFeatures {
  /** The broker drops a re-published message with the same id. */
  deduplication: boolean;
  /** `publish` honours `expectedLastSubjectSequence` (a stale one is a `ConcurrencyError`). */
  optimisticConcurrency: boolean;
  /** Messages carry their stream sequence: the receipt's `seq` is the handler's `streamSequence`. */
  streamSequences: boolean;
  /** A new durable with deliver policy `all` reads what the stream stored before it existed. */
  replay: boolean;
}

export interface TransportHarness {
  /** A new transport connected to the broker under test (its own connection). */
  connect(): Promise<Transport>;
  /** Ends a transport as a crash would: connection gone, nothing settled, nothing drained. */
  crash(transport: Transport): Promise<void>;
  /** Drains and closes a transport and its connection. */
  close(transport: Transport): Promise<void>;
  features: TransportFeatures;
  /**
   * An error as this broker's client raises it while the broker is unreachable (what a handler sees
   * when a write through the broker fails during an outage); the runtime must retry it in place.
   */
  brokerOutage(): Error;
}

export const ThingHappened = defineEvent({
  name: 'conformance.thing-happened',
  schema: Type.Object({ key: Type.String(), n: Type.Integer({ minimum: 0 }) }),
});

const Echo = defineEndpoint({
  name: 'echo',
  subject: 'conformance.echo',
  request: defineCommand({
    name: 'conformance.echo',
    schema: Type.Object({ text: Type.String({ minLength: 1 }) }),
  }),
  response: defineEvent({
    name: 'conformance.echoed',
    schema: Type.Object({ text: Type.String(), by: Type.String() }),
  }),
});

export function transportConformance(name: string, harness: () => TransportHarness): void {
  describe(`transport conformance: ${name}`, () => {
    const open = new Set<Transport>();
    const connect = async () => {
      const transport = await harness().connect();
      open.add(transport);
      return transport;
    };
    after(async () => {
      await Promise.all(
        [...open].map((t) =>
          harness()
            .close(t)
            .catch(() => undefined),
        ),
      );
    });

    const setup = async (overrides: Partial<ConsumerSpec> = {}) => {
      const transport = await connect();
      const stream = uniqueName('S');
      await transport.provision([{ name: stream, subjects: [`${stream}.>`], storage: 'memory' }]);
      const spec = (handlers: ConsumerSpec['handlers'], more: Partial<ConsumerSpec> = {}): ConsumerSpec => ({
        name: uniqueName('c'),
        stream,
        handlers,
        ackWaitMs: 2_000,
        retry: { initialDelayMs: 20, maxDelayMs: 200 },
        ...overrides,
        ...more,
      });
      const publish = (key: string, n: number, id?: string) =>
        transport.publish(
          ThingHappened,
          { key, n },
          { subject: `${stream}.${key}`, about: key, ...(id && { id }) },
        );
      return { transport, stream, spec, publish };
    };

    test('publishes and consumes typed events with CloudEvents attributes', async () => {
      const { transport, spec, publish } = await setup();
      const seen: { key: string; n: number; type: string; correlationId: string }[] = [];
      await transport.consume(
        spec([
          on(
            ThingHappened,
            async (event) =>
              void seen.push({ ...event.data, type: event.type, correlationId: event.correlationId }),
          ),
        ]),
      );
      const receipt = await publish('a', 1);
      await waitFor(() => seen.length === 1);
      assert.deepEqual(seen[0], {
        key: 'a',
        n: 1,
        type: 'conformance.thing-happened.v1',
        correlationId: receipt.id,
      });
    });

    test('carries correlation and causation from the handled event to the events it causes', async () => {
      const { transport, stream, spec, publish } = await setup();
      const caused = deferred<{
        correlationId: string;
        causationId: string | undefined;
        traceparent: string | undefined;
      }>();
      await transport.consume(
        spec([
          on(ThingHappened, async (event, context) => {
            if (event.data.n === 0) {
              await context.publish(ThingHappened, { key: 'b', n: 1 }, { subject: `${stream}.b` });
            } else {
              caused.resolve(event);
            }
          }),
        ]),
      );
      const first = await publish('a', 0);
      const second = await caused.promise;
      assert.equal(second.correlationId, first.id);
      assert.equal(second.causationId, first.id);
      assert.match(second.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    });

    test('publishes an event recorded earlier with the attributes it was recorded with', async () => {
      const { transport, stream, spec } = await setup();
      const got = deferred<Envelope>();
      await transport.consume(spec([on(ThingHappened, async (event) => got.resolve(event))]));
      const trace = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      await transport.publish(
        ThingHappened,
        { key: 'r', n: 1 },
        {
          subject: `${stream}.r`,
          id: 'recorded-1',
          about: 'r',
          recorded: {
            time: '2026-01-02T03:04:05.678Z',
            correlationId: 'corr-1',
            causationId: 'cause-1',
            traceparent: trace,
          },
        },
      );
      const event = await got.promise;
      assert.deepEqual(
        [event.id, event.time, event.correlationId, event.causationId, event.subject],
        ['recorded-1', '2026-01-02T03:04:05.678Z', 'corr-1', 'cause-1', 'r'],
      );
      // The publish is a child of the recorded context: same trace.
      assert.equal(event.traceparent?.split('-')[1], trace.split('-')[1]);
    });

    test('publishBatch validates every payload before sending any and resolves receipts in input order', async () => {
      const { transport, stream, spec, publish } = await setup();
      const seen: number[] = [];
      await transport.consume(spec([on(ThingHappened, async (event) => void seen.push(event.data.n))]));
      const item = (n: number) => ({
        contract: ThingHappened,
        data: { key: 'a', n },
        options: { subject: `${stream}.a`, about: 'a', id: `${stream}-batch-${n}` },
      });
      await assert.rejects(
        transport.publishBatch([
          item(1),
          { contract: ThingHappened, data: { key: 'a' }, options: item(0).options },
        ]),
        ValidationError,
      );
      const receipts = await transport.publishBatch([item(2), item(3), item(4)]);
      assert.deepEqual(
        receipts.map((r) => r.id),
        [2, 3, 4].map((n) => `${stream}-batch-${n}`),
      );
      await publish('a', 5);
      await waitFor(() => seen.includes(5) && seen.length >= 4);
      assert.deepEqual(
        seen.sort((a, b) => a - b),
        [2, 3, 4, 5],
        'nothing of the refused batch was sent',
      );
    });

    test('load-balances one durable consumer across instances', async () => {
      const { spec, publish } = await setup();
      const durable = spec([]);
      const byInstance = [new Set<number>(), new Set<number>()];
      for (const handled of byInstance) {
        const instance = await connect();
        await instance.consume({
          ...durable,
          handlers: [
            on(ThingHappened, async (event) => {
              handled.add(event.data.n);
              await new Promise((resolve) => setTimeout(resolve, 2));
            }),
          ],
        });
      }
      for (let n = 0; n < 200; n++) await publish(`k${n}`, n);
      await waitFor(() => byInstance[0]!.size + byInstance[1]!.size >= 200);
      assert.ok(byInstance[0]!.size > 0 && byInstance[1]!.size > 0, 'both instances got a share');
      const all = new Set([...byInstance[0]!, ...byInstance[1]!]);
      assert.equal(all.size, 200);
      assert.equal(byInstance[0]!.size + byInstance[1]!.size, 200, 'no message handled twice');
    });

    test('keeps per-key order with concurrency, also across retries', async () => {
      const { transport, spec, publish } = await setup();
      const handled = new Map<string, number[]>();
      let failedOnce = false;
      await transport.consume(
        spec(
          [
            on(ThingHappened, async (event) => {
              if (event.data.key === 'a' && event.data.n === 5 && !failedOnce) {
                failedOnce = true;
                throw new Error('transient');
              }
              await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
              handled.set(event.data.key, [...(handled.get(event.data.key) ?? []), event.data.n]);
            }),
          ],
          { concurrency: 8, orderingKey: 'subject' },
        ),
      );
      const keys = ['a', 'b', 'c'];
      for (let n = 0; n < 20; n++) for (const key of keys) await publish(key, n);
      await waitFor(() => keys.every((k) => handled.get(k)?.length === 20), { timeoutMs: 20_000 });
      const expected = Array.from({ length: 20 }, (_, n) => n);
      for (const key of keys) assert.deepEqual(handled.get(key), expected, `order of key ${key}`);
      assert.ok(failedOnce);
    });

    test('redelivers a message whose consumer crashed mid-handler', async () => {
      const { spec, publish } = await setup();
      const durable = spec([], { ackWaitMs: 1_000 });
      const crashed = await connect();
      const started = deferred();
      await crashed.consume({
        ...durable,
        handlers: [
          on(ThingHappened, async () => {
            started.resolve();
            await new Promise(() => undefined); // hangs until the crash
          }),
        ],
      });
      await publish('a', 1);
      await started.promise;
      await harness().crash(crashed);
      open.delete(crashed);
      const survivor = await connect();
      const redelivered = deferred<number>();
      await survivor.consume({
        ...durable,
        handlers: [on(ThingHappened, async (_event, context) => redelivered.resolve(context.deliveryCount))],
      });
      assert.equal(await redelivered.promise, 2);
    });

    test('a connection lost while a message of a key waits for its retry ends nothing but that instance', async () => {
      const { spec, publish } = await setup();
      const durable = spec([], { orderingKey: 'subject', retry: { initialDelayMs: 400, maxDelayMs: 400 } });
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        const crashed = await connect();
        const failed = deferred();
        await crashed.consume({
          ...durable,
          handlers: [
            on(ThingHappened, async () => {
              failed.resolve();
              throw new Error('fails; retried in place after 400 ms');
            }),
          ],
        });
        await publish('a', 1);
        await failed.promise;
        await harness().crash(crashed);
        open.delete(crashed);
        // The retry comes due on the lost connection: the message is already the broker's again.
        await new Promise((resolve) => setTimeout(resolve, 800));
        const survivor = await connect();
        const handled = deferred<number>();
        await survivor.consume({
          ...durable,
          handlers: [on(ThingHappened, async (event) => handled.resolve(event.data.n))],
        });
        assert.equal(await handled.promise, 1);
        assert.deepEqual(unhandled, [], 'no unhandled rejection in the crashed instance');
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });

    test(
      'de-duplicates a re-published message id',
      { skip: !harness().features.deduplication && 'broker has no deduplication' },
      async () => {
        const { transport, spec, publish } = await setup();
        const seen: number[] = [];
        await transport.consume(
          spec([on(ThingHappened, async (event) => void seen.push(event.data.n))], { concurrency: 1 }),
        );
        const first = await publish('a', 1, 'fixed-id');
        const again = await publish('a', 1, 'fixed-id');
        assert.equal(first.duplicate, false);
        assert.equal(again.duplicate, true);
        await publish('a', 2);
        await waitFor(() => seen.includes(2));
        assert.deepEqual(seen, [1, 2]);
      },
    );

    test(
      'optimistic concurrency: a publish expecting a stale last subject sequence is refused',
      {
        skip: !harness().features.optimisticConcurrency && 'broker has no optimistic concurrency on publish',
      },
      async () => {
        const { transport, stream } = await setup();
        const subject = `${stream}.agg`;
        const append = (n: number, expected: number) =>
          transport.publish(
            ThingHappened,
            { key: 'agg', n },
            { subject, about: 'agg', expectedLastSubjectSequence: expected },
          );
        const first = await append(0, 0);
        await assert.rejects(append(1, 0), (error: unknown) => {
          assert.ok(error instanceof ConcurrencyError);
          assert.equal(error.expected, 0);
          return true;
        });
        const second = await append(1, first.seq);
        assert.ok(second.seq > first.seq);
        await assert.rejects(append(2, first.seq), ConcurrencyError);
      },
    );

    test(
      "the handler's stream sequence is the publish receipt's",
      { skip: !harness().features.streamSequences && 'broker has no stream sequences' },
      async () => {
        const { transport, spec, publish } = await setup();
        const sequences = new Map<number, number>();
        await transport.consume(
          spec([
            on(
              ThingHappened,
              async (event, context) => void sequences.set(event.data.n, context.streamSequence),
            ),
          ]),
        );
        const receipts = [await publish('a', 0), await publish('b', 1), await publish('a', 2)];
        await waitFor(() => sequences.size === 3);
        assert.deepEqual(
          [0, 1, 2].map((n) => sequences.get(n)),
          receipts.map((r) => r.seq),
        );
        assert.ok(receipts[0]!.seq < receipts[1]!.seq && receipts[1]!.seq < receipts[2]!.seq);
      },
    );

    test(
      'a durable created after the publishes reads them all (deliver policy all), one created with "new" only later ones',
      { skip: !harness().features.replay && 'broker keeps no replayable log for new consumers' },
      async () => {
        const { transport, spec, publish } = await setup();
        await publish('a', 0);
        await publish('a', 1);
        const all: number[] = [];
        const fresh: number[] = [];
        await transport.consume(spec([on(ThingHappened, async (event) => void all.push(event.data.n))]));
        await transport.consume(
          spec([on(ThingHappened, async (event) => void fresh.push(event.data.n))], { deliverPolicy: 'new' }),
        );
        await publish('a', 2);
        await waitFor(() => all.length === 3 && fresh.length === 1);
        assert.deepEqual(all.sort(), [0, 1, 2]);
        assert.deepEqual(fresh, [2]);
      },
    );

    test('dead-letters after maxDeliver with the reason, carries on, and redrives to that consumer only', async () => {
      const { transport, stream, spec, publish } = await setup();
      let healed = false;
      const handled: number[] = [];
      const attempts = new Map<number, number>();
      const consumer = spec(
        [
          on(ThingHappened, async (event) => {
            attempts.set(event.data.n, (attempts.get(event.data.n) ?? 0) + 1);
            if (event.data.n === 1 && !healed) throw new Error('database says no');
            handled.push(event.data.n);
          }),
        ],
        { maxDeliver: 3 },
      );
      await transport.consume(consumer);
      const bystander: number[] = [];
      await transport.consume(spec([on(ThingHappened, async (event) => void bystander.push(event.data.n))]));
      await publish('a', 1);
      await publish('a', 2);
      const [letter] = await waitFor(async () => {
        const letters = await transport.deadLetters.list({ stream, consumer: consumer.name });
        return letters.length > 0 ? letters : undefined;
      });
      assert.ok(letter);
      assert.equal(attempts.get(1), 3);
      assert.equal(letter.deliveries, 3);
      assert.equal(letter.consumer, consumer.name);
      assert.equal(letter.subject, `${stream}.a`);
      assert.match(letter.reason, /database says no/);
      assert.deepEqual(JSON.parse(new TextDecoder().decode(letter.body)), { key: 'a', n: 1 });
      assert.equal(letter.headers['ce-type'], ThingHappened.type);
      await waitFor(() => handled.includes(2));

      healed = true;
      await transport.deadLetters.redrive(letter.seq);
      await waitFor(() => handled.includes(1));
      assert.deepEqual(await transport.deadLetters.list({ stream, consumer: consumer.name }), []);
      await waitFor(() => bystander.length === 2);
      assert.deepEqual(
        bystander.sort(),
        [1, 2],
        'the other consumer saw each event once, redrive did not reach it',
      );
    });

    test('a dependency or broker outage is retried in place without using up attempts or dead-lettering', async () => {
      const { transport, stream, spec, publish } = await setup();
      const { TransientError } = await import('../errors.ts');
      let failures = 0;
      const handled = deferred<number>();
      await transport.consume(
        spec(
          [
            on(ThingHappened, async (_event, context) => {
              if (failures < 4) {
                failures++;
                // What a write through the broker raises while it is unavailable.
                if (failures % 2 === 0) throw harness().brokerOutage();
                throw new TransientError('database restarting');
              }
              handled.resolve(context.deliveryCount);
            }),
          ],
          { maxDeliver: 2 },
        ),
      );
      await publish('a', 1);
      assert.equal(await handled.promise, 1, 'still the first delivery');
      assert.equal(failures, 4);
      assert.deepEqual(await transport.deadLetters.list({ stream }), []);
    });

    test('a permanent failure is dead-lettered at once', async () => {
      const { transport, stream, spec, publish } = await setup();
      const { PermanentError } = await import('../errors.ts');
      let attempts = 0;
      const consumer = spec([
        on(ThingHappened, async () => {
          attempts++;
          throw new PermanentError('order does not exist', { code: 'ORDER_UNKNOWN' });
        }),
      ]);
      await transport.consume(consumer);
      await publish('a', 1);
      const [letter] = await waitFor(async () => {
        const letters = await transport.deadLetters.list({ stream });
        return letters.length > 0 ? letters : undefined;
      });
      assert.equal(letter?.code, 'ORDER_UNKNOWN');
      assert.equal(attempts, 1);
    });

    test('the dead letter is filed before the onDeadLetter hook runs; a failing hook is retried and the letter kept once', async () => {
      const { transport, stream, spec, publish } = await setup();
      const { PermanentError } = await import('../errors.ts');
      // 'settled': the hook's outcome ends the step, so its redelivery finds nothing left to fail (as a
      // charge is not retried once `payment.failed` cancelled the order). 'stubborn': fails every time.
      const deliveries = new Map<string, number>();
      const hookCalls = new Map<string, number>();
      const lettersAtHook: number[] = [];
      const consumer = spec(
        [
          on(ThingHappened, async (event) => {
            const { key } = event.data;
            deliveries.set(key, (deliveries.get(key) ?? 0) + 1);
            if (key === 'settled' && (hookCalls.get(key) ?? 0) > 0) return;
            throw new PermanentError(`${key} refused`, { code: 'REFUSED' });
          }),
        ],
        {
          onDeadLetter: async (event) => {
            const { key } = event.data as PayloadOf<typeof ThingHappened>;
            const calls = (hookCalls.get(key) ?? 0) + 1;
            hookCalls.set(key, calls);
            lettersAtHook.push(
              (await transport.deadLetters.list({ stream })).filter((l) => l.subject === `${stream}.${key}`)
                .length,
            );
            if (calls === 1) throw new Error('the outcome could not be published');
          },
        },
      );
      await transport.consume(consumer);
      // One after the other: a RabbitMQ listing holds the letters it reads, hiding them from another.
      await publish('settled', 1);
      await waitFor(() => (deliveries.get('settled') ?? 0) >= 2 && lettersAtHook.length === 1);
      await publish('stubborn', 1);
      await waitFor(() => lettersAtHook.length === 3);
      assert.deepEqual(lettersAtHook, [1, 1, 1], 'the letter exists whenever the hook runs');
      assert.equal(hookCalls.get('settled'), 1, 'settled: its redelivery succeeded');
      const letters = await transport.deadLetters.list({ stream, consumer: consumer.name });
      assert.deepEqual(
        letters.map((l) => `${l.subject.slice(stream.length + 1)} ${l.code}`).sort(),
        ['settled REFUSED', 'stubborn REFUSED'],
        'one letter each: the settled step keeps its letter, the retried one is not filed twice',
      );
    });

    test('stop() drains: the in-flight handler finishes and is acked, nothing is redelivered', async () => {
      const { spec, publish } = await setup();
      const durable = spec([], { ackWaitMs: 1_000 });
      const first = await connect();
      const release = deferred();
      const started = deferred();
      let completed = 0;
      const running = await first.consume({
        ...durable,
        handlers: [
          on(ThingHappened, async () => {
            started.resolve();
            await release.promise;
            completed++;
          }),
        ],
      });
      await publish('a', 1);
      await started.promise;
      const stopped = running.stop({ deadlineMs: 5_000 });
      setTimeout(() => release.resolve(), 100);
      await stopped;
      assert.equal(completed, 1);
      const second = await connect();
      const redelivered: number[] = [];
      await second.consume({
        ...durable,
        handlers: [on(ThingHappened, async (e) => void redelivered.push(e.data.n))],
      });
      await publish('a', 2);
      await waitFor(() => redelivered.includes(2));
      await new Promise((resolve) => setTimeout(resolve, 1_500)); // longer than ackWait: a redelivery would show
      assert.deepEqual(redelivered, [2]);
    });

    test('stop() hands back what it held but had not started: another consumer gets it long before the ack wait', async () => {
      // One at a time, in per-key lanes and without: the rest waits behind the running handler.
      for (const orderingKey of [undefined, 'subject'] as const) {
        const { spec, publish } = await setup();
        const durable = spec([], { ackWaitMs: 60_000, concurrency: 1, ...(orderingKey && { orderingKey }) });
        const first = await connect();
        const release = deferred();
        const started = deferred();
        const handled: number[] = [];
        const running = await first.consume({
          ...durable,
          handlers: [
            on(ThingHappened, async (e) => {
              started.resolve();
              await release.promise;
              handled.push(e.data.n);
            }),
          ],
        });
        for (let n = 1; n <= 6; n++) await publish(n % 2 === 0 ? 'even' : 'odd', n);
        await started.promise;
        await new Promise((resolve) => setTimeout(resolve, 200)); // the rest arrives and waits
        const stopped = running.stop({ deadlineMs: 5_000 });
        setTimeout(() => release.resolve(), 100);
        await stopped;
        await first.close();
        assert.equal(handled.length, 1, `${orderingKey ?? 'unkeyed'}: only the running handler finished`);
        const second = await connect();
        await second.consume({
          ...durable,
          handlers: [on(ThingHappened, async (e) => void handled.push(e.data.n))],
        });
        // Within 15 s, where the ack wait is 60 s: each was handed back, none left to time out.
        await waitFor(() => handled.length >= 6, {
          timeoutMs: 15_000,
          message: `${orderingKey ?? 'unkeyed'}: handled ${JSON.stringify(handled)}`,
        });
        assert.deepEqual([...handled].sort(), [1, 2, 3, 4, 5, 6]);
        await second.close();
      }
    });

    test('request-reply: typed response, typed remote error, 503 for an outage, validation, timeout, no responders', async () => {
      const server = await connect();
      const client = await connect();
      const endpoint = { ...Echo, subject: `${uniqueName('rpc')}.echo` };
      server.serve(endpoint, async (request) => {
        if (request.text === 'missing') throw new EndpointError(404, 'NOT_FOUND', 'no such thing');
        if (request.text === 'outage') throw new TransientError('database unreachable');
        if (request.text === 'slow') await new Promise((resolve) => setTimeout(resolve, 1_000));
        return { text: request.text.toUpperCase(), by: 'server' };
      });
      await waitFor(
        async () => (await client.request(endpoint, { text: 'hi' }).catch(() => undefined))?.text === 'HI',
      );
      assert.deepEqual(await client.request(endpoint, { text: 'hi' }), { text: 'HI', by: 'server' });
      await assert.rejects(client.request(endpoint, { text: 'missing' }), (error: unknown) => {
        assert.ok(error instanceof RemoteError);
        assert.equal(error.status, 404);
        assert.equal(error.code, 'NOT_FOUND');
        return true;
      });
      // A dependency outage is the caller's cue to retry later, not an internal error.
      await assert.rejects(client.request(endpoint, { text: 'outage' }), (error: unknown) => {
        assert.ok(error instanceof RemoteError);
        assert.equal(error.status, 503);
        assert.equal(error.code, 'DEPENDENCY_UNAVAILABLE');
        return true;
      });
      await assert.rejects(client.request(endpoint, { text: '' }), ValidationError);
      await assert.rejects(client.request(endpoint, { text: 'slow' }, { timeoutMs: 200 }), TimeoutError);
      await assert.rejects(
        client.request({ ...endpoint, subject: `${uniqueName('nobody')}.home` }, { text: 'x' }),
        NoRespondersError,
      );
    });

    test('request-reply load-balances across instances of an endpoint', async () => {
      const endpoint = { ...Echo, subject: `${uniqueName('rpc')}.echo` };
      for (const by of ['one', 'two']) {
        const server = await connect();
        server.serve(endpoint, async (request) => ({ text: request.text, by }));
      }
      const client = await connect();
      await waitFor(
        async () => (await client.request(endpoint, { text: 'x' }).catch(() => undefined)) !== undefined,
      );
      const answers = await Promise.all(
        Array.from({ length: 100 }, () => client.request(endpoint, { text: 'x' })),
      );
      const by = new Set(answers.map((a) => a.by));
      assert.deepEqual([...by].sort(), ['one', 'two']);
    });

    test('close() answers the requests an endpoint accepted before it stops', async () => {
      const server = await connect();
      const client = await connect();
      const endpoint = { ...Echo, subject: `${uniqueName('rpc')}.echo` };
      const accepted = deferred();
      const release = deferred();
      let waiting = 0;
      server.serve(endpoint, async (request) => {
        if (request.text === 'hold' && ++waiting === 3) accepted.resolve();
        if (request.text === 'hold') await release.promise;
        return { text: request.text, by: 'server' };
      });
      await waitFor(
        async () => (await client.request(endpoint, { text: 'x' }).catch(() => undefined)) !== undefined,
      );
      const answers = Array.from({ length: 3 }, () => client.request(endpoint, { text: 'hold' }));
      await accepted.promise;
      let closed = false;
      const closing = server.close({ deadlineMs: 5_000 }).then(() => (closed = true));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(closed, false, 'close() must wait for the handlers still running');
      release.resolve();
      await closing;
      for (const answer of await Promise.all(answers))
        assert.deepEqual(answer, { text: 'hold', by: 'server' });
    });

    test('broadcast reaches every listener', async () => {
      const sender = await connect();
      const subject = `${uniqueName('note')}.status`;
      const got = [deferred<number>(), deferred<number>()];
      for (const { resolve } of got) {
        const listener = await connect();
        listener.listen(ThingHappened, subject, (event) => resolve(event.data.n));
      }
      await waitFor(async () => {
        sender.broadcast(ThingHappened, { key: 'a', n: 7 }, { subject });
        const values = await Promise.race([
          Promise.all(got.map((g) => g.promise)),
          new Promise((r) => setTimeout(() => r(null), 100)),
        ]);
        return values;
      });
      assert.deepEqual(await Promise.all(got.map((g) => g.promise)), [7, 7]);
    });
  });
}
