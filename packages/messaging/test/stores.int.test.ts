// The storage conformance suites against JetStream (a nats-server started here) and a directory;
// the dead-letter store's outage behaviour.
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Base64UrlPaddedCodec, Objm } from '@nats-io/obj';
import { startNatsServer, uniqueName, type NatsServer } from '@orderflow/testing';
import { blobStoreConformance } from '../src/conformance/blob-store.ts';
import { keyValueConformance } from '../src/conformance/key-value.ts';
import { unavailable, type StoresUnderTest } from '../src/conformance/stores.ts';
import {
  connectNats,
  DeadLetters,
  deadLetterStream,
  ensureStream,
  FileBlobStores,
  NatsBlobStores,
  NatsKeyValueStores,
  StoreNotFoundError,
  StoreUnavailableError,
} from '../src/mod.ts';

let server: NatsServer;
/** The connection of the tests that are not part of a suite. */
let nc: NatsConnection;
const connect = async () => (await connectNats({ servers: server.url, name: 'stores' })).nc;
before(async () => {
  server = await startNatsServer();
  nc = await connect();
});
after(async () => {
  await nc.close();
  await server.dispose();
});

/** Stores on a connection of their own, so that closing it is an outage of them alone. */
async function onJetStream<S>(make: (nc: NatsConnection) => S): Promise<StoresUnderTest<S>> {
  const connections = [await connect()];
  return {
    stores: make(connections[0]!),
    replica: async () => {
      const nc = await connect();
      connections.push(nc);
      return make(nc);
    },
    outage: () => connections[0]!.close(),
    dispose: async () => void (await Promise.all(connections.map((nc) => nc.close()))),
  };
}

keyValueConformance('JetStream KV', {
  features: { outage: true },
  open: () => onJetStream((nc) => new NatsKeyValueStores(nc)),
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

blobStoreConformance('JetStream object store', {
  features: { outage: true },
  open: () => onJetStream((nc) => new NatsBlobStores(nc)),
});

blobStoreConformance('directory', {
  features: { outage: true },
  async open() {
    const root = await mkdtemp(join(tmpdir(), 'blobs-'));
    const directory = join(root, 'data');
    return {
      stores: new FileBlobStores(directory),
      replica: async () => new FileBlobStores(directory),
      // The data directory moved away and a file in its place: every path below it is ENOTDIR.
      outage: async () => {
        await rename(directory, `${directory}.gone`);
        await writeFile(directory, '');
      },
      dispose: () => rm(root, { recursive: true, force: true }),
    };
  },
});

test('dead-letter store: an outage rejects list and get instead of answering "none"', async () => {
  const outage = await connect();
  const jsm = await jetstreamManager(outage);
  await ensureStream(jsm, deadLetterStream());
  const letters = new DeadLetters(jetstream(outage), jsm);
  assert.equal(await letters.get(1_000_000), undefined, 'no such letter: undefined');
  await outage.close();
  await assert.rejects(letters.get(1), (error: unknown) => error instanceof StoreUnavailableError);
  await assert.rejects(letters.list(), unavailable({ store: 'DEADLETTER' }));
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
