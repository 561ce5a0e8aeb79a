// Test support for this package: the two adapters as conformance harnesses, on real servers.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uniqueName } from '@orderflow/testing';
import { PGlite } from '@electric-sql/pglite';
import type { JetStreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import type { SqlStoreHarness, SqlStoreUnderTest } from '../src/conformance.ts';
import { pgliteStartParams, wrapPglite } from '../src/pglite.ts';
import { openPostgres } from '../src/postgres.ts';
import type { SqlStore } from '../src/types.ts';

/** The PostgreSQL server tests use (tests are their own composition root). */
export const POSTGRES_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Drops a test schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** A new schema per test, a second pool per replica, the schema dropped afterwards. */
export const postgresHarness: SqlStoreHarness = {
  features: { serialisesTransactions: false },
  async open(): Promise<SqlStoreUnderTest> {
    const schema = uniqueName('sqltest_');
    const store = await openPostgres({ url: POSTGRES_URL, schema, poolSize: 4 });
    const opened: SqlStore[] = [store];
    return {
      store,
      replica: async () => {
        const replica = await openPostgres({ url: POSTGRES_URL, schema, poolSize: 2 });
        opened.push(replica);
        return replica;
      },
      dispose: async () => {
        await Promise.all(opened.map((s) => s.close()));
        await dropSchema(schema);
      },
    };
  },
};

/**
 * Empties a PGlite database the way a new PostgreSQL schema is empty: drops every user schema (and
 * what is in it) and creates `public` again, after `DISCARD ALL` ended the session's state (settings,
 * temporary tables, prepared statements, advisory locks).
 */
async function emptyDatabase(db: PGlite): Promise<void> {
  await db.exec('DISCARD ALL');
  await db.exec(`DO $$
    DECLARE name text;
    BEGIN
      FOR name IN SELECT nspname FROM pg_namespace
                  WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', name);
      END LOOP;
    END $$;
    CREATE SCHEMA public`);
}

/**
 * One in-memory PGlite per test file, booted on first use (a boot runs initdb: seconds of CPU, where
 * emptying the database takes milliseconds). Each test gets a store of its own on it, as the PostgreSQL
 * harness gives each test a schema of its own: the database is emptied first ({@link emptyDatabase}),
 * and the store's `close()` ends that store, not the instance. One test at a time: `open()` while an
 * earlier store is still open throws. A replica is the same store, since one process owns a PGlite.
 * `close()` closes the instance.
 */
export function pgliteHarness(): SqlStoreHarness & { close(): Promise<void> } {
  let instance: Promise<PGlite> | undefined;
  let inUse = false;
  return {
    features: { serialisesTransactions: true },
    async open(): Promise<SqlStoreUnderTest> {
      if (inUse) throw new Error('the PGlite harness serves one test at a time; dispose the previous one');
      inUse = true;
      try {
        // Booted as openPglite boots a service's database.
        instance ??= PGlite.create({ startParams: pgliteStartParams() });
        const db = await instance;
        await emptyDatabase(db);
        const store = wrapPglite({
          execProtocolStream: (message, options) => db.execProtocolStream(message, options),
          syncToFs: () => db.syncToFs(),
          _runExclusiveQuery: (work) => db._runExclusiveQuery(work),
          _runExclusiveTransaction: (work) => db._runExclusiveTransaction(work),
          parsers: db.parsers,
          close: async () => undefined,
        });
        return {
          store,
          replica: async () => store,
          dispose: async () => {
            await store.close();
            inUse = false;
          },
        };
      } catch (error) {
        inUse = false;
        throw error;
      }
    },
    close: async () => {
      if (instance) await (await instance).close();
    },
  };
}

/** A temporary directory, deleted by the returned function. */
export async function tempDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true, maxRetries: 5 }) };
}

/** Every message a stream holds, in stream order: its subject, `Nats-Msg-Id`, headers and JSON body. */
export async function streamMessages(
  jsm: JetStreamManager,
  stream: string,
): Promise<{ subject: string; msgId: string | undefined; header(name: string): string; data: unknown }[]> {
  const info = await jsm.streams.info(stream);
  const messages = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const stored = await jsm.streams.getMessage(stream, { seq });
    if (!stored) continue;
    messages.push({
      subject: stored.subject,
      msgId: stored.header.get('Nats-Msg-Id') || undefined,
      header: (name: string) => stored.header.get(name),
      data: stored.json(),
    });
  }
  return messages;
}
