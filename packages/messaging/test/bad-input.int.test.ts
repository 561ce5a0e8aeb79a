import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/nats-core';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { ThingHappened } from '../src/conformance/transport.ts';
import { Type } from '@sinclair/typebox';
import {
  connectNats,
  defineCommand,
  defineEndpoint,
  defineEvent,
  NatsTransport,
  on,
  PublishError,
  ValidationError,
} from '../src/mod.ts';

let server: NatsServer;
let nc: NatsConnection;
let transport: NatsTransport;
before(async () => {
  server = await startNatsServer();
  ({ nc } = await connectNats({ servers: server.url, name: 'bad-input' }));
  transport = await NatsTransport.create(nc, { source: 'orderflow/bad-input' });
});
after(async () => {
  await transport.close();
  await nc.close();
  await server.dispose();
});

test('an invalid payload is rejected on publish with a typed error and nothing is sent', async () => {
  const stream = uniqueName('BAD');
  await transport.provision([{ name: stream, subjects: [`${stream}.>`] }]);
  await assert.rejects(
    transport.publish(ThingHappened, { key: 'a', n: -1 }, { subject: `${stream}.a` }),
    (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.equal(error.code, 'VALIDATION_FAILED');
      assert.equal(error.issues[0]?.path, '/n');
      return true;
    },
  );
  await assert.rejects(
    transport.publishBatch([
      { contract: ThingHappened, data: { key: 'ok', n: 1 }, options: { subject: `${stream}.a` } },
      { contract: ThingHappened, data: { key: 'bad' }, options: { subject: `${stream}.a` } },
    ]),
    ValidationError,
  );
  const jsm = await jetstreamManager(nc);
  assert.equal((await jsm.streams.info(stream)).state.messages, 0);
});

test('garbage from a foreign client is dead-lettered with its reason; valid foreign CloudEvents are handled', async () => {
  const stream = uniqueName('FOREIGN');
  await transport.provision([{ name: stream, subjects: [`${stream}.>`] }]);
  const handled: number[] = [];
  const consumer = uniqueName('strict');
  await transport.consume({
    name: consumer,
    stream,
    handlers: [on(ThingHappened, async (event) => void handled.push(event.data.n))],
  });
  const js = jetstream(nc);
  const cloudEvent = (type: string, id: string) => {
    const h = headers();
    h.set('ce-specversion', '1.0');
    h.set('ce-id', id);
    h.set('ce-type', type);
    h.set('ce-source', 'urn:foreign:client');
    h.set('ce-datacontenttype', 'application/json');
    return h;
  };
  const subject = `${stream}.foreign`;
  await js.publish(subject, '{"key": "a", "n": 1}', { headers: cloudEvent(ThingHappened.type, 'f-1') });
  await js.publish(subject, '{"key": "a", "n":', { headers: cloudEvent(ThingHappened.type, 'f-2') });
  await js.publish(subject, '{"key": "a", "n": 2}');
  await js.publish(subject, '{"key": "a", "n": 3}', { headers: cloudEvent('something.else.v1', 'f-4') });
  await js.publish(subject, '{"key": "a", "n": 4}', {
    headers: cloudEvent('conformance.thing-happened.v9', 'f-5'),
  });
  await js.publish(subject, '{"key": "a", "n": "five"}', { headers: cloudEvent(ThingHappened.type, 'f-6') });
  await js.publish(subject, new Uint8Array([0xff, 0xfe, 0x00]), {
    headers: cloudEvent(ThingHappened.type, 'f-7'),
  });
  await transport.publish(ThingHappened, { key: 'a', n: 8 }, { subject });

  await waitFor(() => handled.includes(8));
  const letters = await waitFor(async () => {
    const list = await transport.deadLetters.list({ stream, consumer });
    return list.length === 6 ? list : undefined;
  });
  assert.deepEqual(handled, [1, 8]);
  assert.deepEqual(
    letters.map((l) => l.code),
    [
      'DECODE_FAILED',
      'DECODE_FAILED',
      'UNKNOWN_TYPE',
      'UNSUPPORTED_VERSION',
      'VALIDATION_FAILED',
      'DECODE_FAILED',
    ],
  );
  assert.match(letters[0]!.reason, /not valid JSON/);
  assert.match(letters[1]!.reason, /missing header\(s\) ce-specversion, ce-id, ce-type, ce-source/);
  assert.match(letters[3]!.reason, /reads v1/);
  assert.match(letters[4]!.reason, /\/n/);
  assert.ok(
    letters.every((l) => l.deliveries === 1),
    'permanent failures are not retried',
  );
  assert.deepEqual([...letters[5]!.body], [0xff, 0xfe, 0x00], 'the original payload is kept byte for byte');
});

test('a request or publish the connection refuses (above max_payload) rejects; the next ones go through', async () => {
  const big = 'x'.repeat((nc.info?.max_payload ?? 1_048_576) + 1);
  const endpoint = defineEndpoint({
    name: 'echo-big',
    subject: `${uniqueName('rpc')}.echo`,
    request: defineCommand({ name: 'bad-input.echo', schema: Type.Object({ text: Type.String() }) }),
    response: defineEvent({ name: 'bad-input.echoed', schema: Type.Object({ text: Type.String() }) }),
  });
  transport.serve(endpoint, async (request) => ({ text: request.text.slice(0, 3) }));
  await waitFor(
    async () => (await transport.request(endpoint, { text: 'abc' }).catch(() => undefined)) !== undefined,
  );
  const [refused, fine] = await Promise.allSettled([
    transport.request(endpoint, { text: big }),
    transport.request(endpoint, { text: 'next' }),
  ]);
  assert.equal(refused.status, 'rejected');
  assert.match(String(refused.reason), /max_payload/);
  assert.deepEqual(fine, { status: 'fulfilled', value: { text: 'nex' } });

  const stream = uniqueName('BIG');
  await transport.provision([{ name: stream, subjects: [`${stream}.>`] }]);
  const [tooBig, stored] = await Promise.allSettled([
    transport.publish(ThingHappened, { key: big, n: 1 }, { subject: `${stream}.a` }),
    transport.publish(ThingHappened, { key: 'a', n: 2 }, { subject: `${stream}.a` }),
  ]);
  assert.ok(tooBig.status === 'rejected' && tooBig.reason instanceof PublishError);
  assert.match(String(tooBig.reason.message), /max_payload/);
  assert.equal(stored.status === 'fulfilled' && stored.value.seq, 1);
});
