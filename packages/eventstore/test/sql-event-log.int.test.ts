// The account aggregate of the JetStream tests on the SQL log (PGlite): multi-event commits, upcasting
// of an old event version, and the unique constraint as the guard of record against a second writer.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openPglite, SqlConstraintError, type SqlStore } from '@orderflow/sql';
import { AggregateStore, commandHandler, SqlEventLog, WrongExpectedVersionError } from '../src/mod.ts';
import { accountAggregate, FEE, FEE_THRESHOLD, MoneyDepositedV1 } from './fixtures/account.ts';

let sql: SqlStore;
let log: SqlEventLog;
before(async () => {
  sql = await openPglite();
  log = await SqlEventLog.create(sql, { source: 'orderflow/eventstore-test' });
});
after(() => sql?.close());

describe('event store on SQL (PGlite) with the account aggregate', () => {
  test('a decision of two events is one commit; the state matches the JetStream behaviour', async () => {
    const account = accountAggregate('ACCSQL1');
    const store = new AggregateStore(account, { log, cacheSize: 0 });
    const handle = commandHandler(store);
    await handle('a1', { type: 'open', owner: 'ada' });
    await handle('a1', { type: 'deposit', amount: 5_000 });
    const withdrawn = await handle('a1', { type: 'withdraw', amount: FEE_THRESHOLD + 1 });
    assert.deepEqual(
      withdrawn.events.map((e) => e.type),
      ['account.withdrawn', 'account.fee-charged'],
    );
    const loaded = await store.load('a1');
    assert.equal(loaded.state.balance, 5_000 - (FEE_THRESHOLD + 1) - FEE);
    assert.equal(loaded.eventCount, 4);
    const { rows } = await sql.query<{ n: number }>(
      'SELECT count(*)::integer AS n FROM eventstore_commits WHERE stream = $1',
      ['ACCSQL1'],
    );
    assert.equal(rows[0]!.n, 3);
  });

  test('an event stored in an older version is upcast on load', async () => {
    const account = accountAggregate('ACCSQL2');
    const store = new AggregateStore(account, { log, cacheSize: 0 });
    const { version } = await commandHandler(store)('a1', { type: 'open', owner: 'ada' });
    await log.append(
      {
        stream: account.stream,
        subject: account.subject('a1'),
        aggregateId: 'a1',
        events: [{ contract: MoneyDepositedV1, data: { amount: 30 } }],
      },
      version,
    );
    assert.equal((await store.load('a1')).state.balance, 30);
  });

  test('the unique (stream, subject, subject_version) constraint rejects a second writer of one version', async () => {
    const account = accountAggregate('ACCSQL3');
    const store = new AggregateStore(account, { log, cacheSize: 0 });
    const opened = await commandHandler(store)('a1', { type: 'open', owner: 'ada' });
    // A writer that bypassed the append protocol took subject version 2 (at a position below the last).
    await sql.query(
      `INSERT INTO eventstore_commits (stream, position, subject, subject_version, commit_id, headers, body)
       VALUES ($1, 0, $2, 2, 'intruder', '[]', '\\x7b7d')`,
      [account.stream, account.subject('a1')],
    );
    await assert.rejects(
      store.append(await store.load('a1'), [
        { type: 'account.deposited', data: { amount: 1, currency: 'EUR' } },
      ]),
      (error: unknown) =>
        error instanceof WrongExpectedVersionError &&
        error.expectedVersion === opened.version &&
        error.cause instanceof SqlConstraintError,
    );
  });
});
