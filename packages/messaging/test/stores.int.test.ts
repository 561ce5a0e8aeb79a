// The storage conformance suites against JetStream (a nats-server started here) and a directory;
// the dead-letter store's outage behaviour.
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { startNatsServer, type NatsServer } from '@orderflow/testing';
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
  StoreUnavailableError,
} from '../src/mod.ts';

let server: NatsServer;
before(async () => (server = await startNatsServer()));
after(() => server.dispose());

const connect = async () => (await connectNats({ servers: server.url, name: 'stores' })).nc;

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
