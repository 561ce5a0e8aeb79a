import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { freePort, uniqueName } from '@orderflow/testing';
import pg from 'pg';
import { sqlStoreConformance } from '../src/conformance.ts';
import { SqlUnavailableError } from '../src/errors.ts';
import { openPostgres } from '../src/postgres.ts';
import { POSTGRES_URL, postgresHarness } from './support.ts';

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

async function killBackend(pid: number): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query('SELECT pg_terminate_backend($1)', [pid]);
  } finally {
    await client.end();
  }
}
