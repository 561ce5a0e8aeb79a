// The event-store conformance suite against every implementation: JetStream (a nats-server started
// here), PostgreSQL (a schema of its own, dropped afterwards), PGlite (in memory) and in memory.
import { connectNats, ensureStream } from '@orderflow/messaging';
import { openPglite, openPostgres, type SqlStore } from '@orderflow/sql';
import { startNatsServer, uniqueName } from '@orderflow/testing';
import { eventStoreConformance, type EventStoreHarness } from '../src/conformance.ts';
import {
  JetStreamEventLog,
  KvSnapshotStore,
  MemoryEventLog,
  MemorySnapshotStore,
  SqlEventLog,
  SqlSnapshotStore,
} from '../src/mod.ts';

const POSTGRES_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const source = 'orderflow/eventstore-conformance';
const noop = async () => undefined;

/** Opens `open()` once, on first use; `close` disposes it if it was opened. */
function shared<T>(open: () => Promise<T>, dispose: (value: T) => Promise<void>) {
  let value: Promise<T> | undefined;
  return {
    get: () => (value ??= open()),
    close: async () => {
      if (value) await dispose(await value);
    },
  };
}

const pgliteReadModel = () =>
  shared(
    () => openPglite(),
    (store: SqlStore) => store.close(),
  );

eventStoreConformance('JetStream', () => {
  const readModel = pgliteReadModel();
  const nats = shared(
    async () => {
      const server = await startNatsServer();
      const { nc } = await connectNats({ servers: server.url, name: 'eventstore-conformance' });
      return { server, nc, log: await JetStreamEventLog.create(nc, { source }) };
    },
    async ({ server, nc }) => {
      await nc.close();
      await server.dispose();
    },
  );
  return {
    features: { declaredStreams: true, permanentDeduplication: false },
    async open(stream) {
      const { nc, log } = await nats.get();
      await ensureStream(log.jsm, {
        name: stream.name,
        subjects: [`${stream.subjectPrefix}.*`],
        storage: 'memory',
      });
      const snapshots = await KvSnapshotStore.create(nc, { bucket: uniqueName('snap') });
      return { log, snapshots, readModel: await readModel.get(), dispose: noop };
    },
    async close() {
      await nats.close();
      await readModel.close();
    },
  } satisfies EventStoreHarness;
});

eventStoreConformance('PostgreSQL', () => {
  const schema = uniqueName('eventstore_conf_');
  const store = shared(
    async () => {
      const sql = await openPostgres({ url: POSTGRES_URL, schema, poolSize: 6 });
      return { sql, log: await SqlEventLog.create(sql, { source, pollIntervalMs: 50 }) };
    },
    async ({ sql }) => {
      await sql.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await sql.close();
    },
  );
  return {
    features: { declaredStreams: false, permanentDeduplication: true },
    async open() {
      const { sql, log } = await store.get();
      return { log, snapshots: new SqlSnapshotStore(sql), readModel: sql, dispose: noop };
    },
    close: store.close,
  } satisfies EventStoreHarness;
});

eventStoreConformance('PGlite', () => {
  const store = shared(
    async () => {
      const sql = await openPglite();
      return { sql, log: await SqlEventLog.create(sql, { source, pollIntervalMs: 50 }) };
    },
    ({ sql }) => sql.close(),
  );
  return {
    features: { declaredStreams: false, permanentDeduplication: true },
    async open() {
      const { sql, log } = await store.get();
      return { log, snapshots: new SqlSnapshotStore(sql), readModel: sql, dispose: noop };
    },
    close: store.close,
  } satisfies EventStoreHarness;
});

eventStoreConformance('in memory', () => {
  const readModel = pgliteReadModel();
  return {
    features: { declaredStreams: false, permanentDeduplication: true },
    async open() {
      return {
        log: new MemoryEventLog({ source }),
        snapshots: new MemorySnapshotStore(),
        readModel: await readModel.get(),
        dispose: noop,
      };
    },
    close: readModel.close,
  } satisfies EventStoreHarness;
});
