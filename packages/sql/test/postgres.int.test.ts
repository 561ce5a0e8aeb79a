import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { freePort, uniqueName } from '@orderflow/testing';
import { EnvSettings } from '@orderflow/messaging';
import pg from 'pg';
import { sqlStoreConformance } from '../src/conformance.ts';
import { SqlUnavailableError } from '../src/errors.ts';
import { sqlStoreSettings } from '../src/open.ts';
import { openPostgres } from '../src/postgres.ts';
import type { SqlExecutor } from '../src/types.ts';
import { dropSchema, POSTGRES_URL, postgresHarness } from './support.ts';

sqlStoreConformance('PostgreSQL', postgresHarness);

describe('PostgreSQL availability', () => {
  test('an unreachable server fails with a retryable SqlUnavailableError', async () => {
    const port = await freePort();
    await assert.rejects(
      openPostgres({ url: `postgres://postgres@127.0.0.1:${port}/test`, schema: uniqueName('sqltest_') }),
      (error) => {
        assert.ok(error instanceof SqlUnavailableError);
        assert.equal(error.reason, 'ECONNREFUSED');
        assert.equal(error.retryable, true);
        return true;
      },
    );
  });

  test('a connection terminated by the server (57P01) is retryable, and the pool recovers', async () => {
    const { store, dispose } = await postgresHarness.open();
    try {
      await assert.rejects(
        store.transaction(async (tx) => {
          const { rows } = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
          await killBackend(rows[0]!.pid);
          await tx.query('SELECT 1');
        }),
        (error) => {
          assert.ok(error instanceof SqlUnavailableError, String(error));
          assert.equal(error.reason, '57P01');
          assert.equal(error.retryable, true);
          return true;
        },
      );
      // The broken connection was discarded: the next transactions run on fresh ones.
      for (let i = 0; i < 5; i++) {
        assert.deepEqual((await store.transaction((tx) => tx.query('SELECT 1 AS one'))).rows, [{ one: 1 }]);
      }
    } finally {
      await dispose();
    }
  });
});

describe('PostgreSQL prepared statements', () => {
  /** Whether the connection running `tx` holds a prepared statement with this text. */
  const prepared = (tx: SqlExecutor, text: string) =>
    tx
      .query<{ n: number }>('SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement = $1', [
        text,
      ])
      .then(({ rows }) => rows[0]!.n);
  const text = 'SELECT $1::int + 1 AS next';

  for (const preparedStatements of [true, false]) {
    test(`with preparedStatements ${preparedStatements}, a parameterised statement is ${preparedStatements ? '' : 'not '}kept on its connection`, async () => {
      const schema = uniqueName('sqltest_');
      const store = await openPostgres({ url: POSTGRES_URL, schema, preparedStatements });
      try {
        await store.transaction(async (tx) => {
          assert.deepEqual((await tx.query(text, [41])).rows, [{ next: 42 }]);
          assert.deepEqual((await tx.query(text, [1])).rows, [{ next: 2 }], 'run again');
          assert.equal(await prepared(tx, text), preparedStatements ? 1 : 0);
        });
      } finally {
        await store.close();
        await dropSchema(schema);
      }
    });
  }

  test('DB_PREPARED_STATEMENTS=false reaches the store settings; unset keeps them on', () => {
    const settings = (vars: Record<string, string>) => sqlStoreSettings(new EnvSettings(vars), 'svc');
    assert.equal(settings({ DB_PREPARED_STATEMENTS: 'false' }).preparedStatements, false);
    assert.equal(settings({}).preparedStatements, undefined);
  });
});

async function killBackend(pid: number): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query('SELECT pg_terminate_backend($1)', [pid]);
  } finally {
    await client.end();
  }
}
