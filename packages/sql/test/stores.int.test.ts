// The key-value and blob conformance suites against the SQL stores, on PGlite (one in-memory database
// for the file, emptied before each test) and on PostgreSQL (a schema per test, dropped afterwards).
// The PostgreSQL store under test reaches the server through a TCP relay, so an outage is the server
// vanishing mid-use.
import { createServer, connect, type Socket } from 'node:net';
import { after } from 'node:test';
import { blobStoreConformance } from '@orderflow/messaging/conformance/blob-store';
import { keyValueConformance } from '@orderflow/messaging/conformance/key-value';
import { uniqueName } from '@orderflow/testing';
import { openPostgres } from '../src/postgres.ts';
import { SqlBlobStores, SqlKeyValueStores } from '../src/stores.ts';
import type { SqlStore } from '../src/types.ts';
import { dropSchema, pgliteHarness, POSTGRES_URL } from './support.ts';

const pglite = pgliteHarness();
after(() => pglite.close());

/** A TCP relay to `target`; `cut()` closes it and every connection through it. */
async function relay(target: URL): Promise<{ url: string; cut: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket)).on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.href,
    cut: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function onPglite<S>(make: (sql: SqlStore) => S) {
  return {
    features: { outage: true as const },
    async open() {
      const { store, dispose } = await pglite.open();
      return { stores: make(store), replica: async () => make(store), outage: () => store.close(), dispose };
    },
  };
}

function onPostgres<S>(make: (sql: SqlStore) => S) {
  return {
    features: { outage: true as const },
    async open() {
      const schema = uniqueName('stores_');
      const link = await relay(new URL(POSTGRES_URL));
      const opened = [await openPostgres({ url: link.url, schema, poolSize: 4 })];
      return {
        stores: make(opened[0]!),
        replica: async () => {
          const replica = await openPostgres({ url: POSTGRES_URL, schema, poolSize: 2 });
          opened.push(replica);
          return make(replica);
        },
        outage: link.cut,
        dispose: async () => {
          await link.cut();
          await Promise.all(opened.map((store) => store.close()));
          await dropSchema(schema);
        },
      };
    },
  };
}

keyValueConformance(
  'SQL on PGlite',
  onPglite((sql) => new SqlKeyValueStores(sql)),
);
keyValueConformance(
  'SQL on PostgreSQL',
  onPostgres((sql) => new SqlKeyValueStores(sql)),
);
blobStoreConformance(
  'SQL on PGlite',
  onPglite((sql) => new SqlBlobStores(sql)),
);
blobStoreConformance(
  'SQL on PostgreSQL',
  onPostgres((sql) => new SqlBlobStores(sql)),
);
