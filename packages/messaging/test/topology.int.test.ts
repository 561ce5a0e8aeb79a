import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { startNatsServer, uniqueName, type NatsServer } from '@orderflow/testing';
import { connectNats, ensureConsumer, ensureStream, ProvisioningError } from '../src/mod.ts';

let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
before(async () => {
  server = await startNatsServer();
  ({ nc } = await connectNats({ servers: server.url, name: 'topology' }));
  jsm = await jetstreamManager(nc);
});
after(async () => {
  await nc.close();
  await server.dispose();
});

test('streams are provisioned idempotently, updated in place, and an impossible change fails loudly', async () => {
  const name = uniqueName('TOPO');
  const decl = { name, subjects: [`${name}.>`] };
  await Promise.all([ensureStream(jsm, decl), ensureStream(jsm, decl)]);
  const created = (await jsm.streams.info(name)).config;
  assert.equal(created.storage, 'file');
  assert.equal(created.retention, 'limits');
  assert.equal(created.deny_delete, true);
  assert.equal(created.deny_purge, true);
  assert.equal(created.duplicate_window, 120_000_000_000);

  await ensureStream(jsm, { ...decl, duplicateWindowMs: 60_000 });
  assert.equal((await jsm.streams.info(name)).config.duplicate_window, 60_000_000_000);

  await assert.rejects(ensureStream(jsm, { ...decl, storage: 'memory' }), (error: unknown) => {
    assert.ok(error instanceof ProvisioningError);
    assert.match(error.message, /storage is file, declared memory/);
    return true;
  });
});

test('durable consumers are created, updated, and a changed filter is refused', async () => {
  const stream = uniqueName('TOPO');
  await ensureStream(jsm, { name: stream, subjects: [`${stream}.>`] });
  const decl = {
    stream,
    name: 'worker',
    ackWaitMs: 30_000,
    maxDeliver: 8,
    maxAckPending: 100,
    filterSubject: `${stream}.a`,
  };
  await ensureConsumer(jsm, decl);
  await ensureConsumer(jsm, decl);
  await ensureConsumer(jsm, { ...decl, ackWaitMs: 10_000, maxAckPending: 50 });
  const info = (await jsm.consumers.info(stream, 'worker')).config;
  assert.equal(info.ack_wait, 10_000_000_000);
  assert.equal(info.max_ack_pending, 50);
  assert.equal(info.ack_policy, 'explicit');
  await assert.rejects(ensureConsumer(jsm, { ...decl, filterSubject: `${stream}.b` }), ProvisioningError);
});
