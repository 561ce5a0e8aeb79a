import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { Type } from '@sinclair/typebox';
import { ThingHappened } from '../src/conformance/transport.ts';
import {
  connectNats,
  defineEvent,
  NatsTransport,
  on,
  PermanentError,
  type Envelope,
  type PayloadOf,
} from '../src/mod.ts';

// `ConsumerSpec.onDeadLetter`: a service publishes the typed outcome of a step that cannot complete.
// Real nats-server; each test its own stream.
const ThingFailed = defineEvent({
  name: 'conformance.thing-failed',
  schema: Type.Object({ key: Type.String(), code: Type.String() }),
});

let server: NatsServer;
let nc: NatsConnection;
let transport: NatsTransport;
before(async () => {
  server = await startNatsServer();
  ({ nc } = await connectNats({ servers: server.url, name: 'dead-letter-hook' }));
  transport = await NatsTransport.create(nc, { source: 'orderflow/dead-letter-hook' });
});
after(async () => {
  await transport.close();
  await nc.close();
  await server.dispose();
});

const fast = { initialDelayMs: 20, maxDelayMs: 50, jitter: 0 };

/** A stream with a collector of the failure outcomes published on `<stream>.failed.*`. */
async function setUp() {
  const stream = uniqueName('HOOK');
  await transport.provision([{ name: stream, subjects: [`${stream}.>`] }]);
  const outcomes: Envelope<PayloadOf<typeof ThingFailed>>[] = [];
  await transport.consume({
    name: uniqueName('outcomes'),
    stream,
    filterSubject: `${stream}.failed.*`,
    handlers: [on(ThingFailed, async (event) => void outcomes.push(event))],
  });
  return { stream, outcomes };
}

test('a dead-lettered message gets its typed outcome published once; garbage gets none', async () => {
  const { stream, outcomes } = await setUp();
  const consumer = uniqueName('step');
  const hookCalls: { type: string; error: unknown }[] = [];
  await transport.consume({
    name: consumer,
    stream,
    filterSubject: `${stream}.things.*`,
    retry: fast,
    handlers: [
      on(ThingHappened, async (event) => {
        if (event.data.n === 0) throw new PermanentError('zero is refused', { code: 'ZERO_REFUSED' });
      }),
    ],
    onDeadLetter: async (event, error, context) => {
      hookCalls.push({ type: event.type, error });
      const data = event.data as PayloadOf<typeof ThingHappened>;
      await context.publish(
        ThingFailed,
        { key: data.key, code: (error as PermanentError).code },
        { subject: `${stream}.failed.${data.key}`, id: `failed-${data.key}` },
      );
    },
  });
  const sent = await transport.publish(ThingHappened, { key: 'a', n: 0 }, { subject: `${stream}.things.a` });
  await jetstream(nc).publish(`${stream}.things.b`, 'not a cloud event');

  const letters = await waitFor(async () => {
    const list = await transport.deadLetters.list({ stream, consumer });
    return list.length === 2 ? list : undefined;
  });
  await waitFor(() => outcomes.length === 1);
  assert.deepEqual(letters.map((l) => l.code).sort(), ['DECODE_FAILED', 'ZERO_REFUSED']);
  assert.equal(hookCalls.length, 1, 'the undecodable message has no typed outcome');
  assert.equal(hookCalls[0]?.type, ThingHappened.type);
  const outcome = outcomes[0]!;
  assert.deepEqual(outcome.data, { key: 'a', code: 'ZERO_REFUSED' });
  assert.equal(outcome.causationId, sent.id, 'caused by the dead-lettered event');
});

test('a failing hook leaves its dead letter, written once, and is retried (paced) until the outcome is published', async () => {
  const { stream, outcomes } = await setUp();
  const consumer = uniqueName('step');
  let calls = 0;
  await transport.consume({
    name: consumer,
    stream,
    filterSubject: `${stream}.things.*`,
    maxDeliver: 2,
    retry: fast,
    handlers: [
      on(ThingHappened, async () => {
        throw new Error('always fails, not permanent');
      }),
    ],
    onDeadLetter: async (event, _error, context) => {
      calls += 1;
      if (calls === 1) throw new Error('broker hiccup while publishing the outcome');
      const data = event.data as PayloadOf<typeof ThingHappened>;
      await context.publish(
        ThingFailed,
        { key: data.key, code: 'GAVE_UP' },
        { subject: `${stream}.failed.${data.key}`, id: `failed-${data.key}` },
      );
    },
  });
  await transport.publish(ThingHappened, { key: 'c', n: 1 }, { subject: `${stream}.things.c` });
  // Attempt 2 (the last) fails → letter written → hook fails → nak; delivery 3 is beyond maxDeliver:
  // dead-lettered again without running the handler (the stream's duplicate window keeps one letter),
  // and the hook runs on it (decoded for it) and succeeds.
  await waitFor(() => outcomes.length === 1);
  const letters = await transport.deadLetters.list({ stream, consumer });
  assert.equal(calls, 2);
  assert.equal(letters.length, 1);
  assert.equal(letters[0]?.deliveries, 2, 'the letter of the first write');
  assert.deepEqual(outcomes[0]?.data, { key: 'c', code: 'GAVE_UP' });
});

test("a hook that always fails cannot keep a message unsettled: the server's last delivery is dead-lettered", async () => {
  const { stream } = await setUp();
  const consumer = uniqueName('step');
  let calls = 0;
  await transport.consume({
    name: consumer,
    stream,
    filterSubject: `${stream}.things.*`,
    maxDeliver: 1,
    retry: fast,
    handlers: [
      on(ThingHappened, async () => {
        throw new PermanentError('refused');
      }),
    ],
    onDeadLetter: async () => {
      calls += 1;
      throw new Error('the outcome cannot be published');
    },
  });
  await transport.publish(ThingHappened, { key: 'd', n: 1 }, { subject: `${stream}.things.d` });
  // The server delivers at most maxDeliver + 3 times; the hook ran on each, and the last was acked.
  await waitFor(() => calls === 4);
  await waitFor(
    async () =>
      (await jetstreamManager(nc).then((m) => m.consumers.info(stream, consumer))).num_ack_pending === 0,
  );
  const letters = await transport.deadLetters.list({ stream, consumer });
  assert.equal(letters.length, 1, 'written on the first delivery, kept once');
  assert.equal(letters[0]?.deliveries, 1);
  assert.equal(calls, 4);
});

test('events appended with optimistic concurrency are dead-lettered each: the server directives are not copied', async () => {
  const stream = uniqueName('APPENDED');
  await transport.provision([{ name: stream, subjects: [`${stream}.>`] }]);
  const consumer = uniqueName('refuses');
  await transport.consume({
    name: consumer,
    stream,
    retry: fast,
    handlers: [
      on(ThingHappened, async () => {
        throw new PermanentError('refused');
      }),
    ],
  });
  // As the event store appends: the first event of each aggregate expects an empty subject. Copied into
  // the dead letter, the expectation applied to the dead-letter subject and refused the second one.
  for (const key of ['a', 'b', 'c']) {
    await transport.publish(
      ThingHappened,
      { key, n: 1 },
      {
        subject: `${stream}.things.${key}`,
        expectedLastSubjectSequence: 0,
      },
    );
  }
  const letters = await waitFor(async () => {
    const list = await transport.deadLetters.list({ stream, consumer });
    return list.length === 3 ? list : undefined;
  });
  assert.deepEqual(
    letters.map((l) => l.subject).sort(),
    ['a', 'b', 'c'].map((k) => `${stream}.things.${k}`),
  );
  for (const l of letters) {
    assert.deepEqual(
      Object.keys(l.headers).filter((name) => /^nats-expected-/i.test(name)),
      [],
    );
  }
});
