import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { decodeEnvelope, ensureStream, Header, NatsTransport } from '@orderflow/messaging';
import { openPglite, type SqlStore } from '@orderflow/sql';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { Registry } from 'prom-client';
import { AggregateStore, commandHandler, EventForwarder, SqlEventLog } from '../src/mod.ts';
import { accountAggregate } from './fixtures/account.ts';
import { connect } from './fixtures/harness.ts';

const SOURCE = 'orderflow/eventstore-test';
let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
let transport: NatsTransport;
let sql: SqlStore;
before(async () => {
  server = await startNatsServer();
  nc = await connect(server.url);
  jsm = await jetstreamManager(nc);
  transport = await NatsTransport.create(nc, { source: SOURCE });
  sql = await openPglite();
});
after(async () => {
  await transport?.close();
  await nc?.close();
  await server?.dispose();
  await sql?.close();
});

async function streamed(stream: string) {
  const info = await jsm.streams.info(stream);
  const out = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (m)
      out.push({
        subject: m.subject,
        envelope: decodeEnvelope(m.header, m.data),
        msgId: m.header.get(Header.MsgId),
      });
  }
  return out;
}

const lagOf = async (registry: Registry) =>
  (await registry.getMetricsAsJSON()).find((m) => m.name === 'orderflow_event_forwarder_lag_commits')
    ?.values[0]?.value;

test('commits appended to a SQL log reach a NATS stream once, in order, across a restart that repeats some', async () => {
  const stream = uniqueName('ACC').toUpperCase();
  const account = accountAggregate(stream);
  await ensureStream(jsm, account.streamDeclaration({ storage: 'memory' }));
  const log = await SqlEventLog.create(sql, { source: SOURCE, pollIntervalMs: 20 });
  const handle = commandHandler(new AggregateStore(account, { log }));
  await handle('acc0', { type: 'open', owner: 'owner0' }, { commitId: 'open-acc0' });
  await handle('acc0', { type: 'deposit', amount: 100 });
  const withFee = await handle('acc0', { type: 'withdraw', amount: 50 }); // with its fee: one commit of two events
  const registry = new Registry();
  const options = {
    name: uniqueName('fwd'),
    log,
    stream,
    subjects: account.subjects,
    publisher: transport,
    checkpoints: sql,
    registry,
  };
  let forwarder = new EventForwarder(options);
  await forwarder.start();
  await forwarder.waitFor(withFee.version, { timeoutMs: 10_000 });
  assert.equal(await lagOf(registry), 0);
  let messages = await streamed(stream);
  assert.deepEqual(
    messages.map((m) => [m.subject, m.envelope.source]),
    Array.from({ length: 3 }, () => [account.subject('acc0'), SOURCE]),
  );
  const stored = [];
  for await (const c of log.read(stream, account.subjects, {
    fromSequence: 1,
    toSequence: withFee.version,
  })) {
    stored.push(decodeEnvelope(c.headers, c.body));
  }
  // The same messages as the log holds: commit id as ce-id and message id, attributes as recorded.
  assert.deepEqual(
    messages.map((m) => [m.envelope.id, m.msgId, m.envelope.type, m.envelope.time, m.envelope.data]),
    stored.map((e) => [e.id, e.id, e.type, e.time, e.data]),
  );
  assert.equal(messages[0]?.envelope.id, 'open-acc0');

  await forwarder.stop();
  const whileStopped = await handle('acc1', { type: 'open', owner: 'owner1' });
  assert.equal(await new EventForwarder({ ...options, registry: new Registry() }).lag(), 1);
  // A crash after two publishes and before their checkpoint: the checkpoint is behind what was sent.
  await sql.query('UPDATE eventstore_forwarders SET position = 1 WHERE name = $1', [options.name]);
  forwarder = new EventForwarder({ ...options, registry: new Registry() });
  await forwarder.start();
  await forwarder.waitFor(whileStopped.version, { timeoutMs: 10_000 });
  messages = await streamed(stream);
  assert.equal(messages.length, 4, 'the repeated commits were de-duplicated by the stream');
  assert.deepEqual(
    messages.map((m) => m.envelope.id).slice(0, 3),
    stored.map((e) => e.id),
  );
  assert.deepEqual(
    [messages[3]?.subject, messages[3]?.envelope.type],
    [account.subject('acc1'), 'account.opened.v1'],
  );
  const live = await handle('acc1', { type: 'deposit', amount: 5 });
  await forwarder.waitFor(live.version, { timeoutMs: 10_000 });
  assert.equal((await streamed(stream)).length, 5);
  await forwarder.stop();
});

test('a publish that fails (no stream yet) is retried until it succeeds; nothing later overtakes it', async () => {
  const stream = uniqueName('ACC').toUpperCase();
  const account = accountAggregate(stream);
  const log = await SqlEventLog.create(sql, { source: SOURCE, pollIntervalMs: 20 });
  const handle = commandHandler(new AggregateStore(account, { log }));
  await handle('acc0', { type: 'open', owner: 'owner0' });
  const last = await handle('acc0', { type: 'deposit', amount: 1 });
  const registry = new Registry();
  const forwarder = new EventForwarder({
    name: uniqueName('fwd'),
    log,
    stream,
    subjects: account.subjects,
    publisher: transport,
    checkpoints: sql,
    registry,
    retryDelayMs: 20,
    maxRetryDelayMs: 100,
    publishTimeoutMs: 500,
  });
  await forwarder.start();
  try {
    await waitFor(async () => {
      const failures = (await registry.getMetricsAsJSON()).find(
        (m) => m.name === 'orderflow_event_forwarder_failures_total',
      );
      return (failures?.values[0]?.value ?? 0) > 0;
    });
    assert.equal(forwarder.position, 0);
    assert.equal(await lagOf(registry), 2);
    await ensureStream(jsm, account.streamDeclaration({ storage: 'memory' }));
    await forwarder.waitFor(last.version, { timeoutMs: 20_000 });
    assert.deepEqual(
      (await streamed(stream)).map((m) => m.envelope.type),
      ['account.opened.v1', 'account.deposited.v2'],
    );
  } finally {
    await forwarder.stop();
  }
});
