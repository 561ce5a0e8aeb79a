// The consume and publish paths read three things nats.js does not promise: the raw header block
// of a message and the ack subject of a JsMsg (delivery.ts), the connection of a JetStream client
// (publisher.ts). Each has a fallback to the public API, measured slower (docs/performance.md); this
// pins them to the installed nats.js, so an upgrade that changes one fails here instead of falling back.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/nats-core';
import { startNatsServer, uniqueName, type NatsServer } from '@orderflow/testing';
import { parseHeaderBlock, readAckSubject } from '../src/delivery.ts';
import { connectNats } from '../src/mod.ts';

const natsJsVersion = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    dependencies: Record<string, string>;
  }
).dependencies['@nats-io/jetstream'];

let server: NatsServer;
let nc: NatsConnection;
before(async () => {
  server = await startNatsServer();
  ({ nc } = await connectNats({ servers: server.url, name: 'nats-internals' }));
});
after(async () => {
  await nc.close();
  await server.dispose();
});

async function delivered(h: ReturnType<typeof headers>): Promise<JsMsg> {
  const stream = uniqueName('INTERNALS');
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
  await jsm.consumers.add(stream, { durable_name: 'c', ack_policy: AckPolicy.Explicit });
  const js = jetstream(nc);
  await js.publish(`${stream}.a`, 'one', { headers: h });
  const msg = await (await js.consumers.get(stream, 'c')).next({ expires: 5_000 });
  assert.ok(msg, 'the message arrived');
  return msg;
}

test(`nats.js ${natsJsVersion}: the raw header block reads as msg.headers does`, async () => {
  const h = headers();
  h.set('ce-id', 'e-1');
  h.set('ce-type', 'order.placed.v2');
  h.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  h.append('X-Twice', 'first');
  h.append('X-Twice', 'second');
  h.set('X-Spaces', '  padded value  ');
  const msg = await delivered(h);
  const map = parseHeaderBlock(msg);
  assert.ok(map, `nats.js ${natsJsVersion} no longer exposes the raw header block: re-check delivery.ts`);
  for (const name of ['ce-id', 'ce-type', 'traceparent', 'X-Twice', 'X-Spaces'])
    assert.equal(map.get(name), msg.headers?.get(name), name);
  assert.equal(map.get('absent'), undefined);
  msg.ack();
});

test(`nats.js ${natsJsVersion}: the ack subject gives the delivery count and stream sequence of msg.info`, async () => {
  const msg = await delivered(headers());
  const reply = (msg as unknown as { reply?: unknown }).reply;
  assert.equal(typeof reply, 'string', `nats.js ${natsJsVersion} no longer exposes the ack subject as reply`);
  const into = { count: 0, seq: 0 };
  assert.ok(readAckSubject(reply as string, into));
  assert.deepEqual(into, { count: msg.info.deliveryCount, seq: msg.info.streamSequence });
  assert.equal(readAckSubject('_INBOX.not-an-ack', into), false);
  msg.ack();
});

test(`nats.js ${natsJsVersion}: a JetStream client exposes its connection, which the publisher sends on`, () => {
  const js = jetstream(nc);
  assert.equal(
    (js as unknown as { nc?: unknown }).nc,
    nc,
    `nats.js ${natsJsVersion} no longer exposes JetStreamClient.nc: publisher.ts falls back to js.publish`,
  );
});
