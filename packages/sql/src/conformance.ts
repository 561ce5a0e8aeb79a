// The SQL data store conformance suite: every adapter of the SqlStore port must pass it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deferred, waitFor } from '@orderflow/testing';
import { MigrationError, SqlConstraintError, SqlNestedUseError, SqlQueryError } from './errors.ts';
import { SqlInbox } from './inbox.ts';
import { migrate } from './migrate.ts';
import { SqlOutbox } from './outbox.ts';
import { migrateInboxOutbox } from './tables.ts';
import type { Migration, SqlExecutor, SqlStore } from './types.ts';

/** What an adapter guarantees beyond the port's contract; the suite checks each stated guarantee. */
export interface SqlStoreFeatures {
  /**
   * Transactions run one at a time in call order (PGlite). When false (PostgreSQL), they run
   * concurrently on separate connections and `replica()` opens a second pool on the same schema.
   */
  serialisesTransactions: boolean;
}

/**
 * One empty database for one test: a new PostgreSQL schema, or a PGlite whose schemas were emptied (a
 * fresh instance, or one shared by the file, emptied before each test, which then serves one test at
 * a time).
 */
export interface SqlStoreUnderTest {
  store: SqlStore;
  /** The store a second replica of the service would open on the same data (PGlite: `store` itself). */
  replica: () => Promise<SqlStore>;
  /** Closes every store it opened and deletes the data (drops the schema). */
  dispose: () => Promise<void>;
}

export interface SqlStoreHarness {
  features: SqlStoreFeatures;
  open(): Promise<SqlStoreUnderTest>;
}

async function withStore(
  harness: SqlStoreHarness,
  body: (db: SqlStoreUnderTest) => Promise<void>,
): Promise<void> {
  const db = await harness.open();
  try {
    await body(db);
  } finally {
    await db.dispose();
  }
}

/** Waits until a PostgreSQL backend of this database waits on a lock while running `statement`. */
async function blockedOnLock(store: SqlStore, statement: string): Promise<void> {
  if (store.dialect !== 'postgres') return;
  await waitFor(async () => {
    const { rows } = await store.query<{ n: number }>(
      `SELECT count(*)::int8 AS n FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`,
      [`${statement}%`],
    );
    return (rows[0]?.n ?? 0) > 0;
  });
}

const counterTable =
  'CREATE TABLE counter (id int PRIMARY KEY, value int NOT NULL); INSERT INTO counter VALUES (1, 0)';

/** Registers the suite under `name`. */
export function sqlStoreConformance(name: string, harness: SqlStoreHarness): void {
  const { features } = harness;

  describe(`SqlStore conformance: ${name}`, () => {
    test('queries with parameters return the same JavaScript types on every adapter', () =>
      withStore(harness, async ({ store }) => {
        const created = await store.query(
          'CREATE TABLE item (id int8 PRIMARY KEY, label text, price numeric, at timestamptz, doc jsonb); SELECT 1 AS one',
        );
        assert.deepEqual(created.rows, [{ one: 1 }], 'several statements without parameters: last result');
        const at = new Date('2024-05-06T07:08:09.123Z');
        const inserted = await store.query(
          'INSERT INTO item VALUES ($1, $2, $3, $4, $5::text::jsonb), ($6, $7, $8, $9, $10::text::jsonb)',
          [1, 'one', '1.50', at, JSON.stringify({ a: [1] }), 2, 'two', '2', at, '{}'],
        );
        assert.equal(inserted.rowCount, 2);
        const { rows } = await store.query<Record<string, unknown>>(
          'SELECT id, label, price, at, doc FROM item WHERE id = $1',
          [1],
        );
        assert.deepEqual(rows, [{ id: 1, label: 'one', price: '1.50', at, doc: { a: [1] } }]);
        const updated = await store.query('UPDATE item SET label = $1', ['x']);
        assert.equal(updated.rowCount, 2);
        const none = await store.query('SELECT * FROM item WHERE id = $1', [99]);
        assert.deepEqual({ rows: none.rows, rowCount: none.rowCount }, { rows: [], rowCount: 0 });
      }));

    test('parameters are typed by their JavaScript value, as pg does; a statement outside a transaction survives a table change', () =>
      withStore(harness, async ({ store }) => {
        await store.query(
          'CREATE TABLE param (id int8 PRIMARY KEY, ok boolean, big int8, tags text[], doc jsonb, raw bytea, note text)',
        );
        const raw = new Uint8Array([0, 1, 254, 255]);
        const insert = 'INSERT INTO param VALUES ($1, $2, $3, $4, $5, $6, $7)';
        await store.query(insert, [
          1,
          true,
          9007199254740993n,
          ['a', 'b "c"', 'd\\e'],
          { k: [1, 'x'] },
          raw,
          null,
        ]);
        await store.query(insert, [2, false, 2, [], { n: null }, new Uint8Array(0), 'two']);
        const { rows } = await store.query<Record<string, unknown>>(
          'SELECT id, ok, big::text AS big, tags, doc, raw, note FROM param WHERE id = ANY($1) ORDER BY id',
          [[1, 2]],
        );
        assert.deepEqual(
          rows.map((row) => ({ ...row, raw: [...(row.raw as Uint8Array)] })),
          [
            {
              id: 1,
              ok: true,
              big: '9007199254740993',
              tags: ['a', 'b "c"', 'd\\e'],
              doc: { k: [1, 'x'] },
              raw: [0, 1, 254, 255],
              note: null,
            },
            { id: 2, ok: false, big: '2', tags: [], doc: { n: null }, raw: [], note: 'two' },
          ],
        );
        // The same statement text again after the table it reads changed.
        const byId = 'SELECT * FROM param WHERE id = $1';
        assert.equal((await store.query(byId, [1])).rows.length, 1);
        await store.query('ALTER TABLE param ADD COLUMN extra text');
        await store.query('ALTER TABLE param DROP COLUMN note');
        const { rows: changed } = await store.query<Record<string, unknown>>(byId, [2]);
        assert.deepEqual(Object.keys(changed[0]!).sort(), ['big', 'doc', 'extra', 'id', 'ok', 'raw', 'tags']);
        // And after every prepared statement of the session was dropped.
        await store.query('DEALLOCATE ALL');
        assert.equal((await store.query(byId, [1])).rows.length, 1);
      }));

    test('a transaction commits when its work resolves and runs onCommit callbacks after', () =>
      withStore(harness, async ({ store }) => {
        await store.query(counterTable);
        const events: string[] = [];
        const result = await store.transaction(async (tx) => {
          await tx.query('UPDATE counter SET value = 5 WHERE id = 1');
          tx.onCommit(() => events.push('committed'));
          events.push('work done');
          return 'result';
        });
        assert.equal(result, 'result');
        await waitFor(() => events.length === 2);
        assert.deepEqual(events, ['work done', 'committed']);
        const { rows } = await store.query('SELECT value FROM counter');
        assert.deepEqual(rows, [{ value: 5 }]);
      }));

    test('a transaction rolls back when its work throws, and rethrows that very error', () =>
      withStore(harness, async ({ store }) => {
        await store.query(counterTable);
        const failure = new Error('work failed');
        let committed = false;
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.query('UPDATE counter SET value = 7 WHERE id = 1');
            tx.onCommit(() => (committed = true));
            throw failure;
          }),
          (error) => error === failure,
        );
        const { rows } = await store.query('SELECT value FROM counter');
        assert.deepEqual(rows, [{ value: 0 }]);
        // The store stays usable after a rollback.
        await store.transaction((tx) => tx.query('UPDATE counter SET value = 1 WHERE id = 1'));
        assert.equal(committed, false);
      }));

    test('every statement of a transaction is in it: the first one that failed, one refused before it ran, several in one text, concurrent ones', () =>
      withStore(harness, async ({ store }) => {
        await store.query('CREATE TABLE parts (id text PRIMARY KEY)');
        const failure = new Error('roll back');
        const rollsBack = (work: (tx: SqlExecutor) => Promise<unknown>) =>
          assert.rejects(
            store.transaction(async (tx) => {
              await work(tx);
              throw failure;
            }),
            (error) => error === failure,
          );
        // The first statement fails in the database; the work goes on after catching it.
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.query('INSERT INTO missing_table VALUES ($1)', ['x']).catch(() => undefined);
            await tx.query('INSERT INTO parts VALUES ($1)', ['after-failed-first']);
          }),
          (error) => error instanceof SqlQueryError && error.sqlState === '25P02',
        );
        // The first statement is refused before it reaches the database (a parameter no driver sends).
        await rollsBack(async (tx) => {
          await tx.query('INSERT INTO parts VALUES ($1)', [Symbol('unsendable')]).catch(() => undefined);
          await tx.query('INSERT INTO parts VALUES ($1)', ['after-refused-first']);
        });
        await rollsBack((tx) =>
          tx.query("INSERT INTO parts VALUES ('one'); INSERT INTO parts VALUES ('two')"),
        );
        await rollsBack((tx) =>
          Promise.all(['a', 'b', 'c'].map((id) => tx.query('INSERT INTO parts VALUES ($1)', [id]))),
        );
        assert.deepEqual((await store.query('SELECT id FROM parts')).rows, []);
        // A transaction that runs no statement commits, and its callbacks run.
        let committed = false;
        assert.equal(
          await store.transaction(async (tx) => {
            tx.onCommit(() => (committed = true));
            return 'nothing to write';
          }),
          'nothing to write',
        );
        await waitFor(() => committed);
        await store.transaction((tx) => tx.query("INSERT INTO parts VALUES ('kept')"));
        assert.deepEqual((await store.query('SELECT id FROM parts')).rows, [{ id: 'kept' }]);
      }));

    test('constraint violations keep their SQLSTATE; other database errors are typed and not retryable', () =>
      withStore(harness, async ({ store }) => {
        await store.query(counterTable);
        await assert.rejects(store.query('INSERT INTO counter VALUES ($1, $2)', [1, 1]), (error) => {
          assert.ok(error instanceof SqlConstraintError);
          assert.equal(error.sqlState, '23505');
          assert.equal(error.constraint, 'counter_pkey');
          assert.equal(error.code, 'SQL_CONSTRAINT');
          assert.equal(error.retryable, false);
          return true;
        });
        await assert.rejects(store.query('SELEC 1'), (error) => {
          assert.ok(error instanceof SqlQueryError);
          assert.equal(error.sqlState, '42601');
          return true;
        });
        // A failed statement inside a transaction rolls the whole transaction back.
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.query('UPDATE counter SET value = 3');
            await tx.query('INSERT INTO counter VALUES ($1, $2)', [1, 1]);
          }),
          SqlConstraintError,
        );
        assert.deepEqual((await store.query('SELECT value FROM counter')).rows, [{ value: 0 }]);
      }));

    test('a transaction whose work caught a failed statement commits nothing and fails with 25P02', () =>
      withStore(harness, async ({ store }) => {
        await store.query(counterTable);
        let committed = false;
        // PostgreSQL answers COMMIT of an aborted transaction with ROLLBACK, not an error: the
        // adapter must not report that as committed.
        await assert.rejects(
          store.transaction(async (tx) => {
            tx.onCommit(() => (committed = true));
            await tx.query('UPDATE counter SET value = 3');
            await tx.query('INSERT INTO counter VALUES ($1, $2)', [1, 1]).catch(() => undefined);
            return 'swallowed';
          }),
          (error) => {
            assert.ok(error instanceof SqlQueryError, String(error));
            assert.equal(error.sqlState, '25P02');
            assert.equal(error.retryable, false);
            return true;
          },
        );
        assert.equal(committed, false);
        assert.deepEqual((await store.query('SELECT value FROM counter')).rows, [{ value: 0 }]);
        await store.transaction((tx) => tx.query('UPDATE counter SET value = 1 WHERE id = 1'));
        assert.deepEqual((await store.query('SELECT value FROM counter')).rows, [{ value: 1 }]);
      }));

    test('using the store inside its own transaction is refused instead of deadlocking', () =>
      withStore(harness, async ({ store }) => {
        await store.query(counterTable);
        await assert.rejects(
          store.transaction(async () => {
            await store.query('SELECT 1');
          }),
          SqlNestedUseError,
        );
        await assert.rejects(
          store.transaction(() => store.transaction(async () => undefined)),
          SqlNestedUseError,
        );
      }));

    test('concurrent read-modify-write transactions lose no update', () =>
      withStore(harness, async ({ store, replica }) => {
        await store.query(counterTable);
        const other = await replica();
        const increments = 20;
        await Promise.all(
          Array.from({ length: increments }, (_, i) =>
            (i % 2 === 0 ? store : other).transaction(async (tx) => {
              const { rows } = await tx.query<{ value: number }>(
                'SELECT value FROM counter WHERE id = 1 FOR UPDATE',
              );
              await new Promise((resolve) => setImmediate(resolve));
              await tx.query('UPDATE counter SET value = $1 WHERE id = 1', [(rows[0]?.value ?? 0) + 1]);
            }),
          ),
        );
        assert.deepEqual((await store.query('SELECT value FROM counter')).rows, [{ value: increments }]);
      }));

    test('a statement outside a transaction is never part of it: a rollback keeps it', () =>
      withStore(harness, async ({ store }) => {
        await store.query('CREATE TABLE apart (id text PRIMARY KEY)');
        const inserted = deferred();
        const release = deferred();
        const rolledBack = store
          .transaction(async (tx) => {
            await tx.query('INSERT INTO apart VALUES ($1)', ['inside']);
            inserted.resolve();
            await release.promise;
            throw new Error('roll back');
          })
          .catch((error: unknown) => error);
        await inserted.promise;
        // While the transaction is open: PGlite (one session) must wait for it, PostgreSQL runs it on
        // another connection.
        const outside = store.query('INSERT INTO apart VALUES ($1)', ['outside']);
        await new Promise((resolve) => setTimeout(resolve, 50));
        release.resolve();
        assert.match(String(await rolledBack), /roll back/);
        await outside;
        const { rows } = await store.query<{ id: string }>('SELECT id FROM apart ORDER BY id');
        assert.deepEqual(
          rows.map((row) => row.id),
          ['outside'],
        );
      }));

    test('a reader never sees the writes of a transaction that has not committed', () =>
      withStore(harness, async ({ store, replica }) => {
        await store.query(counterTable);
        const reader = await replica();
        const written = deferred();
        const gate = deferred();
        const writer = store.transaction(async (tx) => {
          await tx.query('UPDATE counter SET value = 99 WHERE id = 1');
          written.resolve();
          await gate.promise;
          throw new Error('roll back');
        });
        await written.promise;
        const read = reader.query<{ value: number }>('SELECT value FROM counter');
        // PostgreSQL answers at once from the committed state; PGlite waits for the transaction to end.
        if (!features.serialisesTransactions) assert.deepEqual((await read).rows, [{ value: 0 }]);
        gate.resolve();
        await assert.rejects(writer, /roll back/);
        assert.deepEqual((await read).rows, [{ value: 0 }]);
      }));

    if (features.serialisesTransactions) {
      test('transactions run one at a time, in call order, never interleaved', () =>
        withStore(harness, async ({ store }) => {
          const trace: string[] = [];
          await Promise.all(
            ['a', 'b', 'c'].map((name) =>
              store.transaction(async (tx) => {
                trace.push(`${name} begin`);
                await tx.query('SELECT 1');
                await new Promise((resolve) => setImmediate(resolve));
                await tx.query('SELECT 2');
                trace.push(`${name} end`);
              }),
            ),
          );
          assert.deepEqual(trace, ['a begin', 'a end', 'b begin', 'b end', 'c begin', 'c end']);
        }));
    }

    const migrations: Migration[] = [
      { version: 1, name: 'create thing', sql: 'CREATE TABLE thing (id int PRIMARY KEY)' },
      { version: 2, name: 'add label', sql: 'ALTER TABLE thing ADD COLUMN label text' },
    ];

    test('migrations apply once, in version order, and report what they did', () =>
      withStore(harness, async ({ store }) => {
        assert.deepEqual(await migrate(store, [...migrations].reverse()), { applied: [1, 2], current: 2 });
        assert.deepEqual(await migrate(store, migrations), { applied: [], current: 2 });
        const third = { version: 3, name: 'seed', sql: "INSERT INTO thing VALUES (1, 'one')" };
        assert.deepEqual(await migrate(store, [...migrations, third]), { applied: [3], current: 3 });
        assert.deepEqual(await migrate(store, [...migrations, third]), { applied: [], current: 3 });
        assert.deepEqual((await store.query('SELECT id, label FROM thing')).rows, [{ id: 1, label: 'one' }]);
        // Versions are per component: another component starts at 1 again.
        const other = [{ version: 1, name: 'other', sql: 'CREATE TABLE other_thing (id int)' }];
        assert.deepEqual(await migrate(store, other, { component: 'other' }), { applied: [1], current: 1 });
      }));

    test('migrations refuse a renamed applied migration and apply all or nothing', () =>
      withStore(harness, async ({ store }) => {
        await migrate(store, migrations);
        const renamed = [migrations[0]!, { ...migrations[1]!, name: 'add a label' }];
        await assert.rejects(migrate(store, renamed), (error) => {
          assert.ok(error instanceof MigrationError);
          assert.equal(error.version, 2);
          assert.match(error.message, /applied as "add label" but is now "add a label"/);
          return true;
        });
        const broken = [
          ...migrations,
          { version: 3, name: 'good', sql: 'CREATE TABLE good (id int)' },
          { version: 4, name: 'bad', sql: 'CREATE TABLE thing (id int)' },
        ];
        await assert.rejects(migrate(store, broken), (error) => {
          assert.ok(error instanceof MigrationError);
          assert.equal(error.version, 4);
          assert.ok(error.cause instanceof SqlQueryError);
          return true;
        });
        const { rows } = await store.query(
          "SELECT count(*)::int8 AS n FROM pg_tables WHERE tablename = 'good'",
        );
        assert.deepEqual(rows, [{ n: 0 }], 'migration 3 rolled back with 4');
        assert.deepEqual(await migrate(store, migrations), { applied: [], current: 2 });
      }));

    test('replicas migrating at once apply each migration exactly once', () =>
      withStore(harness, async ({ store, replica }) => {
        const stores = [store, await replica(), await replica()];
        const reports = await Promise.all(stores.map((s) => migrate(s, migrations)));
        assert.deepEqual(
          reports.flatMap((r) => r.applied).sort(),
          [1, 2],
          'every version applied by exactly one replica',
        );
        assert.ok(reports.every((r) => r.current === 2));
        const { rows } = await store.query('SELECT version FROM schema_migrations ORDER BY version');
        assert.deepEqual(rows, [{ version: 1 }, { version: 2 }]);
      }));

    test('the inbox runs the work once per (consumer, event id) and absorbs duplicates', () =>
      withStore(harness, async ({ store }) => {
        await migrateInboxOutbox(store);
        await store.query(counterTable);
        const inbox = new SqlInbox(store);
        let runs = 0;
        const work = async (tx: SqlExecutor): Promise<void> => {
          runs += 1;
          await tx.query('UPDATE counter SET value = value + 1 WHERE id = 1');
        };
        assert.equal(await inbox.handleOnce('c1', 'e1', work), true);
        assert.equal(await inbox.handleOnce('c1', 'e1', work), false);
        assert.equal(runs, 1, 'a duplicate does not run the work');
        assert.equal(await inbox.handleOnce('c2', 'e1', work), true, 'another consumer has its own record');
        // A failed attempt records nothing, so the redelivery runs the work again.
        await assert.rejects(
          inbox.handleOnce('c1', 'e2', async (tx) => {
            await work(tx);
            throw new Error('handler failed');
          }),
          /handler failed/,
        );
        assert.equal(await inbox.handled('c1', 'e2'), false);
        assert.equal(await inbox.handleOnce('c1', 'e2', work), true);
        assert.deepEqual((await store.query('SELECT value FROM counter')).rows, [{ value: 3 }]);
      }));

    test('two concurrent deliveries of one event apply it once, also when the first rolls back', () =>
      withStore(harness, async ({ store, replica }) => {
        await migrateInboxOutbox(store);
        await store.query(counterTable);
        const first = new SqlInbox(store);
        const second = new SqlInbox(await replica());
        const increment = (tx: SqlExecutor): Promise<unknown> =>
          tx.query('UPDATE counter SET value = value + 1 WHERE id = 1');

        for (const outcome of ['commits', 'rolls back'] as const) {
          const eventId = `race-${outcome}`;
          const inside = deferred();
          const gate = deferred();
          const a = first.handleOnce('race', eventId, async (tx) => {
            await increment(tx);
            inside.resolve();
            await gate.promise;
            if (outcome === 'rolls back') throw new Error('first delivery failed');
          });
          await inside.promise;
          const b = second.handleOnce('race', eventId, async (tx) => {
            await increment(tx);
          });
          await blockedOnLock(store, 'INSERT INTO orderflow_inbox');
          gate.resolve();
          const [ra, rb] = await Promise.allSettled([a, b]);
          if (outcome === 'commits') {
            assert.deepEqual(
              [ra, rb],
              [
                { status: 'fulfilled', value: true },
                { status: 'fulfilled', value: false },
              ],
            );
          } else {
            assert.equal(ra.status, 'rejected');
            assert.deepEqual(rb, { status: 'fulfilled', value: true });
          }
        }
        assert.deepEqual((await store.query('SELECT value FROM counter')).rows, [{ value: 2 }]);
      }));

    test('the outbox keeps committed rows in write order per key and drops rolled-back ones', () =>
      withStore(harness, async ({ store }) => {
        await migrateInboxOutbox(store);
        let wakeUps = 0;
        const outbox = new SqlOutbox({ onCommitted: () => (wakeUps += 1) });
        const message = (id: string, key: string) => ({
          id,
          subject: `orders.${key}`,
          type: 'order.noted.v1',
          key,
          data: { id, nested: { n: 1 } },
          headers: { 'ce-correlationid': 'corr' },
        });
        await store.transaction(async (tx) => {
          await outbox.enqueue(tx, message('a1', 'a'));
          await outbox.enqueue(tx, message('b1', 'b'));
        });
        await assert.rejects(
          store.transaction(async (tx) => {
            await outbox.enqueue(tx, message('a-lost', 'a'));
            throw new Error('rolled back');
          }),
          /rolled back/,
        );
        await store.transaction((tx) => outbox.enqueue(tx, message('a2', 'a')));
        await store.transaction((tx) => outbox.enqueue(tx, message('b2', 'b')));
        await assert.rejects(
          store.transaction((tx) => outbox.enqueue(tx, message('a2', 'a'))),
          (error) => error instanceof SqlConstraintError && error.sqlState === '23505',
        );
        await waitFor(() => wakeUps === 3);

        const pending = await outbox.pending(store, 100);
        assert.deepEqual(
          pending.map((p) => p.id),
          ['a1', 'b1', 'a2', 'b2'],
        );
        const first = pending[0]!;
        assert.deepEqual(first.data, { id: 'a1', nested: { n: 1 } });
        assert.deepEqual(first.headers, { 'ce-correlationid': 'corr' });
        assert.ok(first.createdAt instanceof Date);
        assert.deepEqual(await outbox.backlog(store).then((b) => b.unpublished), 4);

        await outbox.markPublished(store, [first.seq, pending[1]!.seq]);
        await outbox.recordFailure(store, pending[2]!.seq, 'no stream');
        const rest = await outbox.pending(store, 100);
        assert.deepEqual(
          rest.map((p) => [p.id, p.attempts]),
          [
            ['a2', 1],
            ['b2', 0],
          ],
        );
        assert.equal((await outbox.backlog(store)).unpublished, 2);
        assert.deepEqual(
          (await outbox.pending(store, 1)).map((p) => p.id),
          ['a2'],
          'limit keeps the oldest',
        );
      }));
  });
}
