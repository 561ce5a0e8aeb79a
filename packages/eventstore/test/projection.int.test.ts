import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  createEnvelope,
  deadLetterStream,
  envelopeHeaders,
  JetStreamPublisher,
  NatsTransport,
  TransientError,
} from '@orderflow/messaging';
import { openPglite, openPostgres, SqlUnavailableError, type SqlStore } from '@orderflow/sql';
import { startNatsServer, uniqueName, type NatsServer } from '@orderflow/testing';
import {
  AggregateStore,
  commandHandler,
  EventDecodeError,
  ProjectionError,
  ReadError,
  rebuildProjection,
  SqlEventLog,
  startProjection,
  type EventLog,
  type Projection,
  type RebuildProgress,
} from '../src/mod.ts';
import { accountAggregate, AccountOpened, MoneyDepositedV1, type AccountEvent } from './fixtures/account.ts';
import { balancesProjection, type BalanceTables } from './fixtures/balances.ts';
import { accountFixture, connect, type AccountFixture } from './fixtures/harness.ts';

const POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

let server: NatsServer;
let nc: NatsConnection;
before(async () => {
  server = await startNatsServer();
  nc = await connect(server.url);
});
after(async () => {
  await nc?.close();
  await server?.dispose();
});

interface ReadModelStore {
  readonly sql: SqlStore;
  /** Loses every table, as a wiped or restored database would. */
  reset(): Promise<void>;
  dispose(): Promise<void>;
}

interface Backend {
  name: string;
  /** An empty read-model store. */
  open(): Promise<ReadModelStore>;
}

// Opening PGlite compiles its WebAssembly (seconds on a busy machine): one instance serves every test,
// emptied between them.
let pglite: Promise<SqlStore> | undefined;
after(async () => (await pglite)?.close());

async function emptySchema(sql: SqlStore, schema: string): Promise<void> {
  await sql.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE; CREATE SCHEMA "${schema}"`);
}

const backends: Backend[] = [
  {
    name: 'PGlite (in memory)',
    async open() {
      const sql = await (pglite ??= openPglite());
      await emptySchema(sql, 'public');
      return { sql, reset: () => emptySchema(sql, 'public'), dispose: () => emptySchema(sql, 'public') };
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const schema = uniqueName('es');
      const sql = await openPostgres({ url: POSTGRES_URL, schema, poolSize: 3 });
      return {
        sql,
        reset: () => emptySchema(sql, schema),
        async dispose() {
          await sql.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          await sql.close();
        },
      };
    },
  },
];

/** Opens accounts, moves money (a two-event commit and a v1 event among it); returns the last version. */
async function writeHistory(fixture: AccountFixture, accounts: number, from = 0): Promise<number> {
  const handle = commandHandler(fixture.store());
  let version = 0;
  for (let i = from; i < from + accounts; i++) {
    const id = `acc${i}`;
    await handle(id, { type: 'open', owner: `owner${i}` });
    await handle(id, { type: 'deposit', amount: 3_000 + i });
    version = (await handle(id, { type: 'withdraw', amount: 1_500 })).version; // with a fee
  }
  const oldCode = new JetStreamPublisher(jetstream(nc), { source: 'orderflow/old-code' });
  const receipt = await oldCode.publish(
    MoneyDepositedV1,
    { amount: 11 },
    { subject: fixture.account.subject(`acc${from}`), about: `acc${from}` },
  );
  return Math.max(version, receipt.seq);
}

async function rows(sql: SqlStore) {
  const balances = await sql.query('SELECT * FROM account_balances ORDER BY id');
  const movements = await sql.query('SELECT * FROM account_movements ORDER BY event_id');
  return { balances: balances.rows, movements: movements.rows };
}

/**
 * `log`, whose first subscription fails after one commit as the SQL log's does while its database is
 * down (a `ReadError` caused by `SqlUnavailableError`); `subscriptions` records each `fromSequence`.
 */
function failingOnce(log: EventLog): { log: EventLog; subscriptions: number[] } {
  const subscriptions: number[] = [];
  const subscribe: EventLog['subscribe'] = (stream, subject, options) => {
    subscriptions.push(options.fromSequence);
    const inner = log.subscribe(stream, subject, options);
    if (subscriptions.length > 1) return inner;
    async function* oneThenFail() {
      for await (const commit of inner) {
        yield commit;
        throw new ReadError(stream, 'database unreachable (injected)', {
          cause: new SqlUnavailableError('database unreachable (injected)', 'ECONNRESET'),
        });
      }
    }
    const commits = oneThenFail();
    return { [Symbol.asyncIterator]: () => commits, stop: () => inner.stop() };
  };
  const failing = new Proxy(log, {
    get: (target, property) => {
      if (property === 'subscribe') return subscribe;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { log: failing, subscriptions };
}

/** The balances projection with `before` run ahead of each event (to slow it down or make it fail). */
function balancesAfter(before: () => unknown): typeof balancesProjection {
  return {
    ...balancesProjection,
    apply: async (tx, event, tables) => {
      await before();
      return balancesProjection.apply(tx, event, tables);
    },
  };
}

for (const backend of backends) {
  describe(`projections on ${backend.name}`, () => {
    test('catch-up, live updates, restart without double counting, reset read model', async () => {
      const fixture = await accountFixture(nc);
      const written = await writeHistory(fixture, 3);
      const store = await backend.open();
      try {
        const options = {
          log: fixture.log,
          sql: store.sql,
          source: fixture.account,
          projection: balancesProjection,
        };
        let running = await startProjection(options);
        await running.waitFor(written);
        const { balances } = await rows(store.sql);
        assert.deepEqual(
          balances.map((b) => [b.id, b.owner, b.balance, b.movements]),
          [
            ['acc0', 'owner0', 3_000 - 1_500 - 2 + 11, 4],
            ['acc1', 'owner1', 3_001 - 1_502, 3],
            ['acc2', 'owner2', 3_002 - 1_502, 3],
          ],
        );

        const live = await commandHandler(fixture.store())('acc1', { type: 'deposit', amount: 100 });
        await running.waitFor(live.version);
        assert.equal(
          (await store.sql.query('SELECT balance FROM account_balances WHERE id = $1', ['acc1'])).rows[0]
            ?.balance,
          1_599,
        );

        await running.stop();
        const whileStopped = await commandHandler(fixture.store())('acc2', { type: 'deposit', amount: 1 });
        running = await startProjection(options);
        await running.waitFor(whileStopped.version);
        const afterRestart = await rows(store.sql);
        assert.equal(afterRestart.movements.length, 4 + 3 + 3 + 2);
        await running.stop();

        // a read model that lost everything (its checkpoint back at 0) is rebuilt from the start
        await store.reset();
        const again = await startProjection(options);
        await again.waitFor(whileStopped.version);
        assert.deepEqual(await rows(store.sql), afterRestart);
        await again.stop();
      } finally {
        await store.dispose();
      }
    });

    test('two instances of one projection (two replicas) apply every commit once', async () => {
      const fixture = await accountFixture(nc);
      const store = await backend.open();
      try {
        const options = {
          log: fixture.log,
          sql: store.sql,
          source: fixture.account,
          projection: balancesProjection,
        };
        const [a, b] = await Promise.all([startProjection(options), startProjection(options)]);
        const written = await writeHistory(fixture, 3);
        await Promise.all([a.waitFor(written), b.waitFor(written)]);
        const { balances, movements } = await rows(store.sql);
        assert.deepEqual(
          balances.map((r) => [r.id, r.balance, r.movements]),
          [
            ['acc0', 3_000 - 1_500 - 2 + 11, 4],
            ['acc1', 3_001 - 1_502, 3],
            ['acc2', 3_002 - 1_502, 3],
          ],
        );
        assert.equal(movements.length, 10, 'no movement applied twice');
        await Promise.all([a.stop(), b.stop()]);
      } finally {
        await store.dispose();
      }
    });

    test('rebuild equals incremental, reports progress, and the live projection continues on it', async () => {
      const fixture = await accountFixture(nc);
      const written = await writeHistory(fixture, 5);
      const store = await backend.open();
      try {
        const running = await startProjection({
          log: fixture.log,
          sql: store.sql,
          source: fixture.account,
          projection: balancesProjection,
        });
        await running.waitFor(written);
        const incremental = await rows(store.sql);

        const progress: RebuildProgress[] = [];
        const result = await rebuildProjection({
          log: fixture.log,
          sql: store.sql,
          source: fixture.account,
          projection: balancesProjection,
          batchSize: 4,
          onProgress: (p) => progress.push(p),
        });
        assert.equal(result.generation, 2);
        assert.deepEqual(await rows(store.sql), incremental);
        const last = progress.at(-1);
        assert.equal(last?.applied, 16);
        assert.equal(last?.total, 16);
        assert.ok(progress.length >= 4, 'progress after every batch');
        for (let i = 1; i < progress.length; i++) {
          assert.ok((progress[i]?.applied ?? 0) >= (progress[i - 1]?.applied ?? 0), 'progress only grows');
        }
        const oldTables = await store.sql.query(
          "SELECT count(*)::integer AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'account_%_g1'",
        );
        assert.equal(oldTables.rows[0]?.n, 0, 'the old generation is dropped');

        // the live projection now writes into the rebuilt generation
        const later = await writeHistory(fixture, 2, 5);
        await running.waitFor(later);
        const live = await rows(store.sql);
        assert.equal(live.balances.length, 7);
        await rebuildProjection({
          log: fixture.log,
          sql: store.sql,
          source: fixture.account,
          projection: balancesProjection,
        });
        assert.deepEqual(await rows(store.sql), live);
        await running.stop();
      } finally {
        await store.dispose();
      }
    });

    test('a failing batch rolls back with its checkpoint and is retried; applied exactly once', async () => {
      const fixture = await accountFixture(nc);
      const written = await writeHistory(fixture, 2);
      const store = await backend.open();
      let failures = 0;
      const flaky: Projection<AccountEvent, BalanceTables> = {
        ...balancesProjection,
        async apply(tx, event, tables) {
          await balancesProjection.apply(tx, event, tables); // written, then rolled back
          if (event.type === 'account.fee-charged' && failures < 2) {
            failures++;
            throw new Error('transient failure');
          }
        },
      };
      try {
        const running = await startProjection({
          log: fixture.log,
          sql: store.sql,
          source: fixture.account,
          projection: flaky,
          retryDelayMs: 1,
        });
        await running.waitFor(written);
        assert.equal(failures, 2);
        const { balances, movements } = await rows(store.sql);
        assert.equal(movements.length, 4 + 3);
        assert.deepEqual(
          balances.map((b) => b.balance),
          [3_000 - 1_502 + 11, 3_001 - 1_502],
        );
        await running.stop();
      } finally {
        await store.dispose();
      }
    });

    test('commits that arrive while a batch is applied are all applied, the last one without waiting for more', async () => {
      // nats.js counts a queued pull request as a pending message (getPending() stays above 0 after it):
      // a batch must not wait for "more" that never comes. Bursts of deposits land while slow batches apply.
      const fixture = await accountFixture(nc);
      const handle = commandHandler(fixture.store());
      await handle('acc0', { type: 'open', owner: 'owner0' });
      const store = await backend.open();
      const slow = balancesAfter(() => new Promise((resolve) => setTimeout(resolve, 20)));
      try {
        const running = await startProjection({
          log: fixture.log,
          sql: store.sql,
          source: fixture.account,
          projection: slow,
          batchSize: 3,
        });
        for (let burst = 1; burst <= 8; burst++) {
          let last = 0;
          for (let i = 0; i < burst; i++)
            last = (await handle('acc0', { type: 'deposit', amount: 1 })).version;
          await running.waitFor(last, { timeoutMs: 5_000 });
        }
        const { balances } = await rows(store.sql);
        assert.equal(balances[0]?.balance, 36);
        await running.stop();
      } finally {
        await store.dispose();
      }
    });

    test('a dependency outage is retried past maxAttempts: the projection does not stop', async () => {
      const fixture = await accountFixture(nc);
      const written = await writeHistory(fixture, 1);
      const store = await backend.open();
      let outages = 4;
      const flaky = balancesAfter(() => {
        if (outages-- > 0) throw new TransientError('database unreachable (injected)');
      });
      try {
        const running = await startProjection({
          log: fixture.log,
          sql: store.sql,
          source: fixture.account,
          projection: flaky,
          maxAttempts: 2,
          retryDelayMs: 10,
        });
        await running.waitFor(written, { timeoutMs: 10_000 });
        assert.equal((await rows(store.sql)).balances.length, 1);
        assert.ok(outages < 0, 'the outage happened');
        await running.stop();
      } finally {
        await store.dispose();
      }
    });

    test('a log that fails for an outage is read again from the checkpoint: the projection does not stop', async () => {
      const fixture = await accountFixture(nc);
      const written = await writeHistory(fixture, 2);
      const store = await backend.open();
      const { log, subscriptions } = failingOnce(fixture.log);
      try {
        const running = await startProjection({
          log,
          sql: store.sql,
          source: fixture.account,
          projection: balancesProjection,
          batchSize: 1,
          retryDelayMs: 10,
        });
        await running.waitFor(written, { timeoutMs: 10_000 });
        assert.equal(subscriptions.length, 2, 'subscribed again after the failure');
        assert.equal(subscriptions[1], 2, 'from the commit after the checkpoint');
        assert.equal((await rows(store.sql)).balances.length, 2);
        await running.stop();
      } finally {
        await store.dispose();
      }
    });

    test("with onUndecodable 'dead-letter' an undecodable event is dead-lettered and the projection goes on", async () => {
      const fixture = await accountFixture(nc);
      const transport = await NatsTransport.create(nc, { source: 'orderflow/eventstore-test' });
      await transport.provision([deadLetterStream()]);
      await writeHistory(fixture, 1);
      const bad = await jetstream(nc).publish(fixture.account.subject('acc0'), '{"owner":', {
        headers: envelopeHeaders(createEnvelope({ type: AccountOpened.type, source: 'foreign', data: null })),
      });
      const written = await writeHistory(fixture, 1, 1);
      const store = await backend.open();
      const durable = uniqueName('balances');
      try {
        const running = await startProjection({
          log: fixture.log,
          sql: store.sql,
          source: fixture.account,
          projection: balancesProjection,
          consumerName: durable,
          onUndecodable: 'dead-letter',
          deadLetters: transport.deadLetters,
        });
        await running.waitFor(written, { timeoutMs: 10_000 });
        assert.equal((await rows(store.sql)).balances.length, 2, 'the events after the bad one were applied');
        const letters = (await transport.deadLetters.list({ stream: fixture.account.stream })).filter(
          (l) => l.consumer === durable,
        );
        assert.deepEqual(
          letters.map((l) => [l.streamSequence, l.code]),
          [[bad.seq, 'UNDECODABLE_EVENT']],
        );
        assert.match(letters[0]!.reason, /JSON/);
        await running.stop();
      } finally {
        await store.dispose();
      }
    });

    test('an undecodable event stops the projection and the rebuild with typed errors', async () => {
      const fixture = await accountFixture(nc);
      const written = await writeHistory(fixture, 1);
      const bad = await jetstream(nc).publish(fixture.account.subject('acc0'), '{"owner":', {
        headers: envelopeHeaders(createEnvelope({ type: AccountOpened.type, source: 'foreign', data: null })),
      });
      const store = await backend.open();
      try {
        const running = await startProjection({
          log: fixture.log,
          sql: store.sql,
          source: fixture.account,
          projection: balancesProjection,
        });
        await assert.rejects(running.closed, (e: unknown) => {
          assert.ok(e instanceof ProjectionError);
          assert.equal(e.sequence, bad.seq);
          assert.ok(e.cause instanceof EventDecodeError);
          assert.equal(e.cause.subject, fixture.account.subject('acc0'));
          return true;
        });
        // everything before the bad message was applied and checkpointed
        const checkpoint = await store.sql.query<{ last_sequence: number }>(
          "SELECT c.last_sequence FROM eventstore_checkpoints c JOIN eventstore_projections p ON p.name = c.projection AND p.generation = c.generation WHERE p.name = 'balances'",
        );
        assert.equal(checkpoint.rows[0]?.last_sequence, written);
        await assert.rejects(
          rebuildProjection({
            log: fixture.log,
            sql: store.sql,
            source: fixture.account,
            projection: balancesProjection,
          }),
          (e: unknown) => e instanceof EventDecodeError && e.sequence === bad.seq,
        );
        // the failed rebuild did not replace the active read model
        assert.equal((await rows(store.sql)).balances.length, 1);
        // and the next rebuild clears what the failed one left before failing in turn
        await assert.rejects(
          rebuildProjection({
            log: fixture.log,
            sql: store.sql,
            source: fixture.account,
            projection: balancesProjection,
          }),
          EventDecodeError,
        );
        const generations = await store.sql.query<{ n: number }>(
          "SELECT count(*)::integer AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'account_balances_g%'",
        );
        assert.equal(generations.rows[0]?.n, 2, 'the active generation and one leftover, not more');
      } finally {
        await store.dispose();
      }
    });
  });
}

// The same runner on the SQL event log: commits followed by polling the commits table, the read
// model and the log in one database.
for (const backend of backends) {
  describe(`projections from a SQL event log on ${backend.name}`, () => {
    test('catch-up, live updates and a restart from the checkpoint apply every commit once', async () => {
      const store = await backend.open();
      try {
        const log = await SqlEventLog.create(store.sql, {
          source: 'orderflow/eventstore-test',
          pollIntervalMs: 20,
        });
        const account = accountAggregate(uniqueName('ACC').toUpperCase());
        const handle = commandHandler(new AggregateStore(account, { log }));
        for (const id of ['acc0', 'acc1']) {
          await handle(id, { type: 'open', owner: `owner-${id}` });
          await handle(id, { type: 'deposit', amount: 3_000 });
        }
        const options = {
          log,
          sql: store.sql,
          source: account,
          projection: balancesProjection,
          batchSize: 2,
        };
        let running = await startProjection(options);
        await running.waitFor(await log.lastSequence(account.stream));
        assert.deepEqual(
          (await rows(store.sql)).balances.map((b) => [b.id, b.balance, b.movements]),
          [
            ['acc0', 3_000, 1],
            ['acc1', 3_000, 1],
          ],
        );
        const live = await handle('acc1', { type: 'withdraw', amount: 1_500 }); // with a fee: two events
        await running.waitFor(live.version);
        await running.stop();
        const whileStopped = await handle('acc0', { type: 'deposit', amount: 5 });
        running = await startProjection(options);
        await running.waitFor(whileStopped.version);
        const { balances, movements } = await rows(store.sql);
        assert.deepEqual(
          balances.map((b) => [b.id, b.balance]),
          [
            ['acc0', 3_005],
            ['acc1', 3_000 - 1_500 - 2],
          ],
        );
        assert.equal(movements.length, 2 + 2 + 1, 'no movement applied twice');
        await running.stop();
      } finally {
        await store.dispose();
      }
    });

    test('an undecodable commit is dead-lettered through the given store and the projection goes on', async () => {
      const store = await backend.open();
      const transport = await NatsTransport.create(nc, { source: 'orderflow/eventstore-test' });
      try {
        await transport.provision([deadLetterStream()]);
        const log = await SqlEventLog.create(store.sql, {
          source: 'orderflow/eventstore-test',
          pollIntervalMs: 20,
        });
        const account = accountAggregate(uniqueName('ACC').toUpperCase());
        const handle = commandHandler(new AggregateStore(account, { log }));
        await handle('acc0', { type: 'open', owner: 'owner0' });
        // A commit whose body is not JSON, as a foreign writer to the table could leave it.
        const bad = await handle('acc9', { type: 'open', owner: 'owner9' });
        await store.sql.query(
          "UPDATE eventstore_commits SET body = convert_to('{\"owner\":', 'UTF8') WHERE position = $1",
          [bad.version],
        );
        const last = (await handle('acc1', { type: 'open', owner: 'owner1' })).version;
        const durable = uniqueName('balances');
        const running = await startProjection({
          log,
          sql: store.sql,
          source: account,
          projection: balancesProjection,
          consumerName: durable,
          onUndecodable: 'dead-letter',
          deadLetters: transport.deadLetters,
        });
        await running.waitFor(last, { timeoutMs: 10_000 });
        assert.deepEqual(
          (await rows(store.sql)).balances.map((b) => b.id),
          ['acc0', 'acc1'],
        );
        const letters = (await transport.deadLetters.list({ stream: account.stream })).filter(
          (l) => l.consumer === durable,
        );
        assert.deepEqual(
          letters.map((l) => [l.streamSequence, l.code]),
          [[bad.version, 'UNDECODABLE_EVENT']],
        );
        await running.stop();
        await assert.rejects(
          () =>
            startProjection({
              log,
              sql: store.sql,
              source: account,
              projection: balancesProjection,
              onUndecodable: 'dead-letter',
            }),
          /deadLetters/,
        );
      } finally {
        await transport.close();
        await store.dispose();
      }
    });
  });
}
