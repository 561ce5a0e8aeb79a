// CloudEvents from a foreign client (a plain nats.js publisher, no toolkit): structured mode and
// percent-encoded binary mode are handled like ours; what cannot be read is dead-lettered with the reason.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/nats-core';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { ThingHappened } from '../src/conformance/transport.ts';
import { connectNats, NatsTransport, on, type Envelope } from '../src/mod.ts';

let server: NatsServer;
let nc: NatsConnection;
let transport: NatsTransport;
before(async () => {
  server = await startNatsServer();
  ({ nc } = await connectNats({ servers: server.url, name: 'foreign-cloudevents' }));
  transport = await NatsTransport.create(nc, { source: 'orderflow/foreign-test' });
});
after(async () => {
  await transport.close();
  await nc.close();
  await server.dispose();
});

type Thing = Envelope<{ key: string; n: number }>;

async function consumeAll(stream: string): Promise<{ handled: Thing[]; consumer: string }> {
  await transport.provision([{ name: stream, subjects: [`${stream}.>`] }]);
  const handled: Thing[] = [];
  const consumer = uniqueName('foreign');
  await transport.consume({
    name: consumer,
    stream,
    orderingKey: 'subject',
    handlers: [on(ThingHappened, async (event) => void handled.push(event))],
  });
  return { handled, consumer };
}

const structured = () => {
  const h = headers();
  h.set('content-type', 'application/cloudevents+json; charset=utf-8');
  return h;
};

test('structured-mode CloudEvents (content-type application/cloudevents+json, no ce-* headers) are handled', async () => {
  const stream = uniqueName('STRUCT');
  const { handled, consumer } = await consumeAll(stream);
  const js = jetstream(nc);
  const subject = `${stream}.foreign`;
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  await js.publish(
    subject,
    JSON.stringify({
      specversion: '1.0',
      id: 's-1',
      type: ThingHappened.type,
      source: 'urn:foreign:structured',
      subject: 'thing 1',
      time: '2026-01-02T03:04:05Z',
      datacontenttype: 'application/json',
      traceparent,
      correlationid: 'flow-7',
      data: { key: 'a', n: 1 },
    }),
    { headers: structured() },
  );
  // data_base64 holding JSON; no datacontenttype (JSON by default)
  await js.publish(
    subject,
    JSON.stringify({
      specversion: '1.0',
      id: 's-2',
      type: ThingHappened.type,
      source: 'urn:foreign:structured',
      data_base64: Buffer.from(JSON.stringify({ key: 'b', n: 2 })).toString('base64'),
    }),
    { headers: structured() },
  );
  // The NATS binding 1.0.2 had no headers: the event format alone in the body.
  await js.publish(
    subject,
    JSON.stringify({
      specversion: '1.0',
      id: 's-3',
      type: ThingHappened.type,
      source: 'urn:old',
      data: { key: 'c', n: 3 },
    }),
  );

  await waitFor(() => handled.length === 3, { message: 'three structured events handled' });
  const [first, second, third] = handled;
  assert.deepEqual(
    { ...first },
    {
      id: 's-1',
      type: ThingHappened.type,
      source: 'urn:foreign:structured',
      subject: 'thing 1',
      time: '2026-01-02T03:04:05Z',
      dataContentType: 'application/json',
      traceparent,
      correlationId: 'flow-7',
      causationId: undefined,
      data: { key: 'a', n: 1 },
    },
  );
  assert.deepEqual(second?.data, { key: 'b', n: 2 });
  assert.equal(second?.correlationId, 's-2');
  assert.deepEqual(third?.data, { key: 'c', n: 3 });
  assert.deepEqual(await transport.deadLetters.list({ stream, consumer }), []);
});

test('structured-mode events that cannot be read are dead-lettered with the reason', async () => {
  const stream = uniqueName('STRUCTBAD');
  const { handled, consumer } = await consumeAll(stream);
  const js = jetstream(nc);
  const subject = `${stream}.foreign`;
  const event = {
    specversion: '1.0',
    id: 'b-1',
    type: ThingHappened.type,
    source: 'urn:x',
    data: { key: 'a', n: 1 },
  };
  await js.publish(subject, JSON.stringify({ ...event, id: undefined }), { headers: structured() });
  await js.publish(subject, JSON.stringify({ ...event, specversion: '0.3' }), { headers: structured() });
  await js.publish(subject, JSON.stringify({ ...event, data: { key: 'a', n: -1 } }), {
    headers: structured(),
  });
  await js.publish(subject, JSON.stringify([event]), {
    headers: (() => {
      const h = headers();
      h.set('content-type', 'application/cloudevents-batch+json');
      return h;
    })(),
  });
  await js.publish(subject, '{"specversion": "1.0", ', { headers: structured() });
  await js.publish(subject, JSON.stringify({ ...event, id: 'b-ok', data: { key: 'a', n: 9 } }), {
    headers: structured(),
  });

  await waitFor(() => handled.length === 1);
  const letters = await waitFor(async () => {
    const list = await transport.deadLetters.list({ stream, consumer });
    return list.length === 5 ? list : undefined;
  });
  assert.equal(handled[0]?.data.n, 9);
  assert.deepEqual(
    letters.map((l) => l.code),
    ['DECODE_FAILED', 'DECODE_FAILED', 'VALIDATION_FAILED', 'DECODE_FAILED', 'DECODE_FAILED'],
  );
  assert.match(letters[0]!.reason, /missing attribute\(s\) id/);
  assert.match(letters[1]!.reason, /specversion "0.3"/);
  assert.match(letters[2]!.reason, /\/n/);
  assert.match(letters[3]!.reason, /batch mode is not supported/);
  assert.match(letters[4]!.reason, /not valid JSON/);
});

test('binary-mode header values are percent-decoded; an invalid UTF-8 encoding is dead-lettered', async () => {
  const stream = uniqueName('PCT');
  const { handled, consumer } = await consumeAll(stream);
  const js = jetstream(nc);
  const subject = `${stream}.foreign`;
  const binary = (id: string, extra: Record<string, string>) => {
    const h = headers();
    h.set('ce-specversion', '1.0');
    h.set('ce-id', id);
    h.set('ce-type', ThingHappened.type);
    h.set('ce-source', 'urn:foreign:binary');
    for (const [name, value] of Object.entries(extra)) h.set(name, value);
    return h;
  };
  // The binding's own example, a lower-case escape, an unnecessary one, and an old-style quoted value.
  await js.publish(subject, '{"key":"a","n":1}', {
    headers: binary('p-1', {
      'ce-subject': 'Euro%20%E2%82%AC%20%F0%9F%98%80',
      'ce-source': 'urn:%c3%a9t%41',
    }),
  });
  await js.publish(subject, '{"key":"a","n":2}', {
    headers: binary('p-2', { 'ce-subject': '"Euro \\"q\\""' }),
  });
  await js.publish(subject, '{"key":"a","n":3}', { headers: binary('p-3', { 'ce-subject': 'bad%C0%A0' }) });

  await waitFor(() => handled.length === 2);
  assert.equal(handled[0]?.subject, 'Euro € 😀');
  assert.equal(handled[0]?.source, 'urn:étA');
  assert.equal(handled[1]?.subject, 'Euro "q"');
  const [letter] = await waitFor(async () => {
    const list = await transport.deadLetters.list({ stream, consumer });
    return list.length === 1 ? list : undefined;
  });
  assert.equal(letter?.code, 'DECODE_FAILED');
  assert.match(letter.reason, /ce-subject: percent-encoded value is not valid UTF-8/);
});

test('what we publish is percent-encoded on the wire and reads back as it was', async () => {
  const stream = uniqueName('PCTPUB');
  const { handled } = await consumeAll(stream);
  const subject = `${stream}.ours`;
  const receipt = await transport.publish(
    ThingHappened,
    { key: 'a', n: 1 },
    { subject, about: ' Bestellung für "Zoë" 100% ' },
  );
  const stored = await (await jetstreamManager(nc)).streams.getMessage(stream, { seq: receipt.seq });
  assert.equal(stored?.header.get('ce-subject'), '%20Bestellung%20f%C3%BCr%20%22Zo%C3%AB%22%20100%25%20');
  await waitFor(() => handled.length === 1);
  assert.equal(handled[0]?.subject, ' Bestellung für "Zoë" 100% ');
});
