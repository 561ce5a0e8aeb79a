// `npm run bench -- eventstore` (second part): the SQL inbox and outbox on PostgreSQL and on PGlite.
// Handling one event = one transaction that records (consumer, event id) in the inbox, changes state
// (an upsert of a per-key total) and writes one outbox row; the relay publishes the rows to JetStream.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectNats, JetStreamPublisher } from '@orderflow/messaging';
import {
  migrateInboxOutbox,
  openPglite,
  openPostgres,
  OutboxRelay,
  SqlInbox,
  SqlOutbox,
  type SqlStore,
} from '@orderflow/sql';
import pg from 'pg';
import {
  benchServer,
  formatRate,
  machineInfo,
  parseArgs,
  Progress,
  summarise,
  finishReport,
  type Measurement,
  type Report,
} from './support.ts';

const defaults = {
  /** Events handled per store and round. */
  count: 2_000,
  rounds: 2,
  /** Events handled at once (transactions in flight; PGlite runs them one at a time anyway). */
  concurrency: 16,
  /** Distinct ordering keys (aggregates) the events are spread over. */
  keys: 100,
  /** Comma-separated subset of postgres,pglite. */
  stores: 'postgres,pglite',
  /** PostgreSQL server; each round uses a new schema, dropped afterwards. */
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/test',
  /** PostgreSQL pool size. */
  poolSize: 16,
  help: false,
};
type Options = typeof defaults;
type StoreKind = 'postgres' | 'pglite';

const HELP = `inbox-outbox benchmark: exactly-once handling with the SQL inbox and outbox, relayed to JetStream

  --count N          events per store and round (default ${defaults.count})
  --rounds N         rounds (default ${defaults.rounds})
  --concurrency N    events handled at once (default ${defaults.concurrency})
  --keys N           ordering keys the events are spread over (default ${defaults.keys})
  --stores LIST      postgres,pglite (default both)
  --databaseUrl URL  PostgreSQL (default ${defaults.databaseUrl})
  --poolSize N       PostgreSQL pool (default ${defaults.poolSize})`;

/** A store for one round and how to remove it. */
async function openStore(
  kind: StoreKind,
  options: Options,
): Promise<{ store: SqlStore; remove: () => Promise<void> }> {
  if (kind === 'pglite') {
    const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-bench-pglite-'));
    const store = await openPglite({ dataDir });
    return { store, remove: () => rm(dataDir, { recursive: true, force: true }) };
  }
  const schema = `bench_inbox_${randomUUID().replace(/-/g, '')}`;
  const store = await openPostgres({ url: options.databaseUrl, schema, poolSize: options.poolSize });
  return {
    store,
    remove: async () => {
      const client = new pg.Client({ connectionString: options.databaseUrl });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    },
  };
}

/** Runs `work(i)` for i in [0, count) with at most `concurrency` at once. */
async function pool(count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

export async function run(args: string[]): Promise<void> {
  const options = parseArgs(args, defaults);
  if (options.help) {
    console.log(HELP);
    return;
  }
  const kinds = options.stores.split(',').filter((s): s is StoreKind => s === 'postgres' || s === 'pglite');
  const startedAt = new Date();
  const server = await benchServer();
  const { nc, features } = await connectNats({ servers: server.url, name: 'bench-inbox-outbox' });
  const jsm = await jetstreamManager(nc);
  const publisher = new JetStreamPublisher(jetstream(nc), { source: 'orderflow/bench' });
  const measurements: Measurement[] = [];
  console.log(
    `inbox + outbox: ${options.count} events x ${options.rounds} rounds per store, ` +
      `concurrency ${options.concurrency}, ${options.keys} keys`,
  );
  try {
    for (let round = 1; round <= options.rounds; round++) {
      for (const kind of kinds) {
        const stream = `BENCH_OUTBOX_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
        await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
        const { store, remove } = await openStore(kind, options);
        const relay = new OutboxRelay({
          store,
          publisher,
          pollIntervalMs: 100,
          batchSize: 500,
        });
        try {
          await migrateInboxOutbox(store);
          await store.query('CREATE TABLE totals (key text PRIMARY KEY, total int NOT NULL)');
          const inbox = new SqlInbox(store);
          const outbox = new SqlOutbox({ onCommitted: () => relay.notify() });
          const ids = Array.from({ length: options.count }, () => randomUUID());
          relay.start();

          const progress = new Progress(`${kind} round ${round}`, options.count);
          const start = performance.now();
          await pool(options.count, options.concurrency, async (i) => {
            const key = `k${i % options.keys}`;
            await inbox.handleOnce('bench', ids[i]!, async (tx) => {
              await tx.query(
                'INSERT INTO totals VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET total = totals.total + 1',
                [key],
              );
              await outbox.enqueue(tx, {
                id: `out-${ids[i]!}`,
                subject: `${stream}.${key}`,
                type: 'bench.counted.v1',
                key,
                data: { key, i },
              });
            });
            progress.tick();
          });
          const handled = (performance.now() - start) / 1000;
          while ((await jsm.streams.info(stream)).state.messages < options.count) {
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          const relayed = (performance.now() - start) / 1000;
          progress.done();

          // Every event again, as a redelivery storm would: all absorbed by the inbox.
          const dupStart = performance.now();
          let applied = 0;
          await pool(options.count, options.concurrency, async (i) => {
            if (await inbox.handleOnce('bench', ids[i]!, async () => undefined)) applied += 1;
          });
          const duplicates = (performance.now() - dupStart) / 1000;
          if (applied !== 0) throw new Error(`${applied} duplicates were applied again`);

          measurements.push(
            {
              phase: 'handle + relay',
              variant: kind,
              round,
              count: options.count,
              seconds: relayed,
              rate: options.count / relayed,
              extra: { handledPerSecond: options.count / handled, handleSeconds: handled },
            },
            {
              phase: 'duplicates absorbed',
              variant: kind,
              round,
              count: options.count,
              seconds: duplicates,
              rate: options.count / duplicates,
            },
          );
          console.log(
            `  ${kind.padEnd(8)} round ${round}: handled ${formatRate(options.count / handled)}/s, ` +
              `handled+relayed ${formatRate(options.count / relayed)}/s, duplicates absorbed ${formatRate(options.count / duplicates)}/s`,
          );
        } finally {
          await relay.stop();
          await store.close();
          await remove();
          await jsm.streams.delete(stream);
        }
      }
    }
    const summary = summarise(measurements);
    console.log('\nmedians:');
    for (const s of summary)
      console.log(`  ${s.phase.padEnd(20)} ${s.variant.padEnd(8)} ${formatRate(s.rate)} events/s`);
    const rate = (kind: StoreKind) =>
      summary.find((s) => s.phase === 'handle + relay' && s.variant === kind)?.rate ?? NaN;
    const headline =
      `inbox+outbox handle+relay: ` +
      kinds.map((kind) => `${kind} ${formatRate(rate(kind))} events/s`).join(', ') +
      ` (concurrency ${options.concurrency})`;
    const report: Report = {
      name: 'inbox-outbox',
      title: 'SQL inbox + outbox: exactly-once handling relayed to JetStream',
      startedAt: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      machine: await machineInfo(features.version),
      params: options,
      measurements,
      summary,
      headline,
      notes: [
        'One event = one transaction: inbox insert, upsert of a per-key total, one outbox row; the relay is notified after each commit.',
        'handle + relay: time until the stream holds every event; handledPerSecond: until every transaction committed.',
        'PGlite runs on a data directory in the temp dir, one transaction at a time; PostgreSQL is shared with other work on this machine.',
      ],
    };
    await finishReport(report);
  } finally {
    await nc.close();
    await server.dispose();
  }
}
