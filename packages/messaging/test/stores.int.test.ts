import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { startNatsServer, uniqueName, type NatsServer } from '@orderflow/testing';
import {
  connectNats,
  DeadLetters,
  deadLetterStream,
  ensureStream,
  isTransient,
  NatsBlobStores,
  NatsKeyValueStores,
  StoreConflictError,
  StoreErrorCode,
  StoreNotFoundError,
  StoreUnavailableError,
} from '../src/mod.ts';

let server: NatsServer;
let nc: NatsConnection;
before(async () => {
  server = await startNatsServer();
  ({ nc } = await connectNats({ servers: server.url, name: 'stores' }));
});
after(async () => {
  await nc.close();
  await server.dispose();
});

/** A second connection, to close and so show what an outage does. */
async function closedLater(): Promise<NatsConnection> {
  return (await connectNats({ servers: server.url, name: 'stores-outage' })).nc;
}

function isUnavailable(bucket: string) {
  return (error: unknown) => {
    assert.ok(error instanceof StoreUnavailableError, `expected StoreUnavailableError, got ${String(error)}`);
    assert.equal(error.code, StoreErrorCode.Unavailable);
    assert.equal(error.store, bucket);
    assert.ok(isTransient(error), 'an outage is retryable');
    return true;
  };
}

test('blob port: bytes round-trip, a missing object or bucket is StoreNotFoundError', async () => {
  const blobs = new NatsBlobStores(nc);
  const bucket = uniqueName('blobs');
  await assert.rejects(blobs.open(bucket), (error: unknown) => {
    assert.ok(error instanceof StoreNotFoundError);
    assert.equal(error.code, StoreErrorCode.NotFound);
    return true;
  });
  const store = await blobs.create(bucket);
  const bytes = new TextEncoder().encode('%PDF-1.7 an invoice');
  assert.deepEqual(await store.put('a.pdf', bytes), { size: bytes.length });
  assert.equal(Buffer.from(await (await blobs.open(bucket)).get('a.pdf')).toString(), '%PDF-1.7 an invoice');
  assert.deepEqual(await store.stat('a.pdf'), { size: bytes.length });
  assert.equal(await store.stat('b.pdf'), undefined);
  await assert.rejects(store.get('b.pdf'), (error: unknown) => {
    assert.ok(error instanceof StoreNotFoundError);
    assert.equal(error.key, 'b.pdf');
    return true;
  });
});

test('blob port: an outage (closed connection) is StoreUnavailableError, never "not found"', async () => {
  const bucket = uniqueName('blobs');
  const outage = await closedLater();
  const blobs = new NatsBlobStores(outage);
  const store = await blobs.create(bucket);
  await store.put('a.pdf', new Uint8Array([1, 2, 3]));
  await outage.close();
  await assert.rejects(store.get('a.pdf'), isUnavailable(bucket));
  await assert.rejects(store.get('missing.pdf'), isUnavailable(bucket));
  await assert.rejects(store.stat('a.pdf'), isUnavailable(bucket));
  await assert.rejects(blobs.open(bucket), isUnavailable(bucket));
});

test('key-value port: not found, compare-and-set conflicts, and an outage are each typed', async () => {
  const bucket = uniqueName('kv');
  const outage = await closedLater();
  const kv = await new NatsKeyValueStores(outage).create(bucket);
  const value = new TextEncoder().encode('{"status":"placed"}');
  await assert.rejects(kv.get('order-1'), (error: unknown) => error instanceof StoreNotFoundError);
  const revision = await kv.create('order-1', value);
  await assert.rejects(kv.create('order-1', value), (error: unknown) => {
    assert.ok(error instanceof StoreConflictError);
    assert.equal(error.expectedRevision, 0);
    return true;
  });
  const entry = await kv.get('order-1');
  assert.equal(entry.key, 'order-1');
  assert.equal(entry.revision, revision);
  assert.equal(new TextDecoder().decode(entry.value), '{"status":"placed"}');
  const next = await kv.update('order-1', value, revision);
  assert.ok(next > revision);
  await assert.rejects(
    kv.update('order-1', value, revision),
    (error: unknown) => error instanceof StoreConflictError,
  );
  await outage.close();
  await assert.rejects(kv.get('order-1'), isUnavailable(bucket));
  await assert.rejects(kv.get('order-2'), isUnavailable(bucket));
  await assert.rejects(kv.update('order-1', value, next), isUnavailable(bucket));
});

test('dead-letter store: an outage rejects list and get instead of answering "none"', async () => {
  const outage = await closedLater();
  const jsm = await jetstreamManager(outage);
  await ensureStream(jsm, deadLetterStream());
  const letters = new DeadLetters(jetstream(outage), jsm);
  assert.equal(await letters.get(1_000_000), undefined, 'no such letter: undefined');
  await outage.close();
  await assert.rejects(letters.get(1), (error: unknown) => error instanceof StoreUnavailableError);
  await assert.rejects(letters.list(), isUnavailable('DEADLETTER'));
});

test('dead-letter store: before the dead-letter stream exists there are no letters', async () => {
  const other = await startNatsServer();
  const { nc: fresh } = await connectNats({ servers: other.url, name: 'stores-fresh' });
  try {
    const letters = new DeadLetters(jetstream(fresh), await jetstreamManager(fresh));
    assert.deepEqual(await letters.list(), []);
    assert.equal(await letters.get(1), undefined);
  } finally {
    await fresh.close();
    await other.dispose();
  }
});
