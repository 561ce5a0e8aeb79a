import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Base64UrlPaddedCodec, Objm } from '@nats-io/obj';
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

test('blob port: reads by direct get — many chunks, a replaced object, a deleted one — and make no consumer', async () => {
  const blobs = new NatsBlobStores(nc);
  const bucket = uniqueName('blobs');
  const store = await blobs.create(bucket);
  const jsm = await jetstreamManager(nc);
  // 300 KiB: three chunks of nats.js's default 128 KiB.
  const big = new Uint8Array(300 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
  await store.put('big.pdf', big);
  assert.deepEqual(Buffer.compare(Buffer.from(await store.get('big.pdf')), Buffer.from(big)), 0);
  await store.put('big.pdf', new TextEncoder().encode('replaced'));
  assert.equal(Buffer.from(await store.get('big.pdf')).toString(), 'replaced');
  await store.put('empty.pdf', new Uint8Array(0));
  assert.equal((await store.get('empty.pdf')).length, 0);
  // nats.js's getBlob leaves an ephemeral ordered consumer behind per read; direct gets make none.
  assert.deepEqual(await jsm.consumers.list(`OBJ_${bucket}`).next(), []);
  const objects = await new Objm(nc).open(bucket);
  await objects.delete('big.pdf');
  await assert.rejects(store.get('big.pdf'), (error: unknown) => {
    assert.ok(error instanceof StoreNotFoundError);
    assert.equal(error.key, 'big.pdf');
    return true;
  });
});

test('blob port: an object whose bytes do not match its digest is refused, not returned', async () => {
  const blobs = new NatsBlobStores(nc);
  const bucket = uniqueName('blobs');
  const store = await blobs.create(bucket);
  await store.put('a.pdf', new TextEncoder().encode('%PDF-1.7 the real one'));
  const jsm = await jetstreamManager(nc);
  const metaSubject = `$O.${bucket}.M.${Base64UrlPaddedCodec.encode('a.pdf')}`;
  const record = await jsm.streams.getMessage(`OBJ_${bucket}`, { last_by_subj: metaSubject });
  assert.ok(record);
  // The same record with another digest: the stored chunk no longer matches it.
  await jetstream(nc).publish(
    metaSubject,
    JSON.stringify({
      ...record.json<Record<string, unknown>>(),
      digest: `SHA-256=${Base64UrlPaddedCodec.encode(new Uint8Array(32))}`,
    }),
  );
  await assert.rejects(store.get('a.pdf'), (error: unknown) => {
    assert.ok(error instanceof StoreUnavailableError, `expected StoreUnavailableError, got ${String(error)}`);
    assert.match(String((error.cause as Error | undefined)?.message), /digest/);
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
