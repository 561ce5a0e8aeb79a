import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  connectNats,
  createEnvelope,
  envelopeHeaders,
  Header,
  NatsTransport,
  on,
} from '@orderflow/messaging';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { Registry } from 'prom-client';
import type { SqlStoreHarness } from '../src/conformance.ts';
import { exactlyOnce, SqlInbox } from '../src/inbox.ts';
import { outboxMessage, SqlOutbox } from '../src/outbox.ts';
import { OutboxRelay } from '../src/relay.ts';
import { migrateInboxOutbox } from '../src/tables.ts';
import type { OutboxMessage } from '../src/types.ts';
import { ItemCounted } from './fixtures/contracts.ts';
import { pgliteHarness, postgresHarness, streamMessages } from './support.ts';

let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
/** The relays' publisher: the toolkit's transport, as a service has it. */
let transport: NatsTransport;
const pglite = pgliteHarness();
before(async () => {
  server = await startNatsServer();
  ({ nc } = await connectNats({ servers: server.url, name: 'outbox-relay-test' }));
  jsm = await jetstreamManager(nc);
  transport = await NatsTransport.create(nc, { source: 'orderflow/test' });
});
after(async () => {
  await transport.close();
  await nc.close();
  await server.dispose();
  await pglite.close();
});

async function newStream(): Promise<{ name: string; subject: (key: string) => string }> {
  const name = uniqueName('OUTBOX');
  await jsm.streams.add({ name, subjects: [`${name}.>`] });
  return { name, subject: (key) => `${name}.${key}` };
}

const message = (id: string, key: string, subject: string, n = 0): OutboxMessage => ({
  id,
  subject,
  type: ItemCounted.type,
  key,
  data: { item: key, total: n },
});

for (const [name, harness] of [
  ['PGlite', pglite],
  ['PostgreSQL', postgresHarness],
] as [string, SqlStoreHarness][]) {
  describe(`outbox relay on ${name}`, () => {
    test('publishes rows once, per key in write order, as CloudEvents with Nats-Msg-Id, and reports lag', async () => {
      const db = await harness.open();
      const registry = new Registry();
      const relay = new OutboxRelay({ store: db.store, publisher: transport, registry });
      try {
        await migrateInboxOutbox(db.store);
        const stream = await newStream();
        const outbox = new SqlOutbox();
        const ids = ['a1', 'b1', 'a2', 'a3', 'b2', 'c1', 'a4'];
        for (const id of ids) {
          await db.store.transaction((tx) => outbox.enqueue(tx, message(id, id[0]!, stream.subject(id[0]!))));
        }
        const typed = outboxMessage(
          ItemCounted,
          { item: 'z', total: 1 },
          { subject: stream.subject('z'), key: 'z', id: 'z1' },
        );
        await db.store.transaction((tx) => outbox.enqueue(tx, typed));
        const metricsBefore = await registry.getMetricsAsJSON();
        const unpublished = metricsBefore.find((m) => m.name === 'orderflow_outbox_unpublished');
        assert.equal(unpublished?.values[0]?.value, 8);

        assert.deepEqual(await relay.relayOnce(), { published: 8, duplicates: 0, failed: 0, skipped: false });
        const stored = await streamMessages(jsm, stream.name);
        const ofKey = (k: string) => stored.filter((m) => m.header(Header.Subject) === k).map((m) => m.msgId);
        assert.deepEqual(ofKey('a'), ['a1', 'a2', 'a3', 'a4']);
        assert.deepEqual(ofKey('b'), ['b1', 'b2']);
        const a1 = stored.find((m) => m.msgId === 'a1')!;
        assert.equal(a1.header(Header.Id), 'a1');
        assert.equal(a1.header(Header.Type), 'item.counted.v1');
        assert.equal(a1.header(Header.Source), 'orderflow/test');
        assert.equal(a1.header(Header.SpecVersion), '1.0');
        assert.equal(a1.header(Header.CorrelationId), 'a1');
        assert.deepEqual(a1.data, { item: 'a', total: 0 });
        const z1 = stored.find((m) => m.msgId === 'z1')!;
        assert.equal(z1.header(Header.Time), typed.headers?.[Header.Time]);
        assert.equal(z1.header(Header.TraceParent), typed.headers?.[Header.TraceParent]);

        assert.deepEqual(await relay.backlog(), { unpublished: 0, oldestAgeSeconds: 0 });
        // Rows relayed again (a crash before they were marked) are stored once.
        await db.store.query('UPDATE orderflow_outbox SET published_at = NULL');
        assert.deepEqual(await relay.relayOnce(), { published: 8, duplicates: 8, failed: 0, skipped: false });
        assert.equal((await jsm.streams.info(stream.name)).state.messages, 8);
        const after = await registry.getMetricsAsJSON();
        const published = after.find((m) => m.name === 'orderflow_outbox_published_total');
        assert.deepEqual(published?.values.map((v) => [v.labels.duplicate, v.value]).sort(), [
          ['false', 8],
          ['true', 8],
        ]);
      } finally {
        await relay.stop();
        await db.dispose();
      }
    });

    test('a message id taken first by another publisher does not make the row vanish as a duplicate', async () => {
      const db = await harness.open();
      const relay = new OutboxRelay({ store: db.store, publisher: transport });
      const { nc: impostorNc } = await connectNats({ servers: server.url, name: 'outbox-impostor' });
      const impostor = await NatsTransport.create(impostorNc, { source: 'orderflow/impostor' });
      try {
        await migrateInboxOutbox(db.store);
        const stream = await newStream();
        // Published before the row, on another subject, with the id the row will use.
        await impostor.publish(
          ItemCounted,
          { item: 'q', total: 9 },
          { subject: stream.subject('q'), id: 'p1' },
        );
        const outbox = new SqlOutbox();
        await db.store.transaction((tx) => outbox.enqueue(tx, message('p1', 'p', stream.subject('p'), 1)));
        assert.deepEqual(await relay.relayOnce(), { published: 1, duplicates: 0, failed: 0, skipped: false });
        const real = (await streamMessages(jsm, stream.name)).filter((m) => m.header(Header.Subject) === 'p');
        assert.equal(real.length, 1);
        assert.equal(real[0]?.header(Header.Id), 'p1');
        assert.equal(real[0]?.header(Header.Source), 'orderflow/test');
        // Relayed again (a crash before the row was marked): still stored once.
        await db.store.query('UPDATE orderflow_outbox SET published_at = NULL');
        assert.deepEqual(await relay.relayOnce(), { published: 1, duplicates: 1, failed: 0, skipped: false });
        assert.equal((await jsm.streams.info(stream.name)).state.messages, 2);
      } finally {
        await relay.stop();
        await impostor.close();
        await impostorNc.close();
        await db.dispose();
      }
    });

    test('a failing row holds back later rows of its key only, until it can be published', async () => {
      const db = await harness.open();
      const relay = new OutboxRelay({ store: db.store, publisher: transport });
      try {
        await migrateInboxOutbox(db.store);
        const stream = await newStream();
        const missing = uniqueName('NOSTREAM');
        const outbox = new SqlOutbox();
        await db.store.transaction(async (tx) => {
          await outbox.enqueue(tx, message('x1', 'x', `${missing}.x`));
          await outbox.enqueue(tx, message('y1', 'y', stream.subject('y')));
          await outbox.enqueue(tx, message('x2', 'x', stream.subject('x')));
          await outbox.enqueue(tx, message('y2', 'y', stream.subject('y')));
        });
        const pass = await relay.relayOnce();
        assert.deepEqual([pass.published, pass.failed], [2, 1]);
        assert.deepEqual(
          (await streamMessages(jsm, stream.name)).map((m) => m.msgId),
          ['y1', 'y2'],
        );
        const held = await outbox.pending(db.store, 10);
        assert.deepEqual(
          held.map((p) => [p.id, p.attempts]),
          [
            ['x1', 1],
            ['x2', 0],
          ],
        );
        await jsm.streams.add({ name: missing, subjects: [`${missing}.>`] });
        assert.equal((await relay.relayOnce()).published, 2);
        assert.deepEqual(
          (await streamMessages(jsm, missing)).map((m) => m.msgId),
          ['x1'],
        );
        assert.deepEqual(
          (await streamMessages(jsm, stream.name)).map((m) => m.msgId),
          ['y1', 'y2', 'x2'],
        );
      } finally {
        await relay.stop();
        await db.dispose();
      }
    });

    test('a running relay publishes right after a commit when notified, and stops cleanly', async () => {
      const db = await harness.open();
      // A poll interval far beyond the wait below: only notify() can make the relay publish in time.
      const relay = new OutboxRelay({ store: db.store, publisher: transport, pollIntervalMs: 600_000 });
      try {
        await migrateInboxOutbox(db.store);
        const stream = await newStream();
        const outbox = new SqlOutbox({ onCommitted: () => relay.notify() });
        // Left by a previous run: published at start.
        await db.store.transaction((tx) => outbox.enqueue(tx, message('old', 'k', stream.subject('k'))));
        relay.start();
        await waitFor(async () => (await jsm.streams.info(stream.name)).state.messages === 1);
        for (const id of ['n1', 'n2', 'n3']) {
          await db.store.transaction((tx) => outbox.enqueue(tx, message(id, 'k', stream.subject('k'))));
        }
        await waitFor(async () => (await jsm.streams.info(stream.name)).state.messages === 4, {
          timeoutMs: 10_000,
        });
        assert.deepEqual(
          (await streamMessages(jsm, stream.name)).map((m) => m.msgId),
          ['old', 'n1', 'n2', 'n3'],
        );
        await relay.stop();
        assert.throws(() => relay.start(), /stopped/);
        await waitFor(async () => (await relay.backlog()).unpublished === 0);
      } finally {
        await relay.stop();
        await db.dispose();
      }
    });

    test('exactlyOnce: an event delivered twice changes state once and relays its outbox event once', async () => {
      const db = await harness.open();
      const counter = await NatsTransport.create(nc, { source: 'orderflow/counter' });
      const relay = new OutboxRelay({ store: db.store, publisher: counter });
      try {
        await migrateInboxOutbox(db.store);
        await db.store.query('CREATE TABLE totals (item text PRIMARY KEY, total int NOT NULL)');
        const input = await newStream();
        const output = await newStream();
        const inbox = new SqlInbox(db.store);
        const outbox = new SqlOutbox({ onCommitted: () => relay.notify() });
        relay.start();
        let handled = 0;
        const consumer = uniqueName('counter');
        await counter.consume({
          name: consumer,
          stream: input.name,
          handlers: [
            on(
              ItemCounted,
              exactlyOnce(inbox, 'counter', async (event, _context, tx) => {
                handled += 1;
                const { rows } = await tx.query<{ total: number }>(
                  `INSERT INTO totals VALUES ($1, $2)
                   ON CONFLICT (item) DO UPDATE SET total = totals.total + $2 RETURNING total`,
                  [event.data.item, event.data.total],
                );
                await outbox.enqueue(
                  tx,
                  outboxMessage(
                    ItemCounted,
                    { item: event.data.item, total: rows[0]!.total },
                    {
                      subject: output.subject(event.data.item),
                      key: event.data.item,
                      id: `total-${event.id}`,
                      causedBy: event,
                    },
                  ),
                );
              }),
            ),
          ],
        });
        const event = createEnvelope({
          type: ItemCounted.type,
          source: 'orderflow/test',
          data: { item: 'pen', total: 3 },
        });
        // The same ce-id twice under different Nats-Msg-Ids: the stream keeps both, the inbox absorbs one.
        for (const msgId of ['first', 'second']) {
          await jetstream(nc).publish(input.subject('pen'), JSON.stringify(event.data), {
            headers: envelopeHeaders(event, `${event.id}-${msgId}`),
            msgID: `${event.id}-${msgId}`,
          });
        }
        await waitFor(
          async () =>
            (await jsm.consumers.info(input.name, consumer)).num_ack_pending === 0 &&
            (await jsm.consumers.info(input.name, consumer)).num_pending === 0,
        );
        await waitFor(async () => (await jsm.streams.info(output.name)).state.messages === 1);
        assert.equal(handled, 1);
        assert.deepEqual((await db.store.query('SELECT item, total FROM totals')).rows, [
          { item: 'pen', total: 3 },
        ]);
        const [relayed] = await streamMessages(jsm, output.name);
        assert.equal(relayed?.msgId, `total-${event.id}`);
        assert.equal(relayed?.header(Header.CausationId), event.id);
        assert.equal(relayed?.header(Header.Source), 'orderflow/counter');
      } finally {
        await counter.close();
        await relay.stop();
        await db.dispose();
      }
    });
  });
}
