import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  isRetryableSqlError,
  SqlClosedError,
  SqlConflictError,
  SqlConstraintError,
  SqlQueryError,
  SqlUnavailableError,
  toSqlError,
} from '../src/errors.ts';

const withCode = (code: string, message = 'boom', extra: Record<string, unknown> = {}): Error =>
  Object.assign(new Error(message), { code, ...extra });

test('connection failures become retryable SqlUnavailableError, keeping the reason and cause', () => {
  for (const code of ['ECONNREFUSED', 'ECONNRESET', '57P01', '57P03', '08006', '08001', '53300']) {
    const cause = withCode(code);
    const error = toSqlError(cause);
    assert.ok(error instanceof SqlUnavailableError, code);
    assert.equal(error.reason, code);
    assert.equal(error.code, 'SQL_UNAVAILABLE');
    assert.equal(error.cause, cause);
    assert.equal(isRetryableSqlError(error), true);
  }
  for (const message of ['Connection terminated unexpectedly', 'timeout exceeded when trying to connect']) {
    assert.ok(toSqlError(new Error(message)) instanceof SqlUnavailableError, message);
  }
});

test('constraint violations keep SQLSTATE, constraint and table and are not retryable', () => {
  const error = toSqlError(withCode('23505', 'duplicate key', { constraint: 't_pkey', table: 't' }));
  assert.ok(error instanceof SqlConstraintError);
  assert.deepEqual(
    [error.sqlState, error.constraint, error.table, error.retryable],
    ['23505', 't_pkey', 't', false],
  );
  assert.ok(toSqlError(withCode('23503')) instanceof SqlConstraintError);
});

test('serialization failures and deadlocks are retryable conflicts; other states are query errors', () => {
  for (const code of ['40001', '40P01']) {
    const error = toSqlError(withCode(code));
    assert.ok(error instanceof SqlConflictError);
    assert.equal(error.retryable, true);
  }
  const syntax = toSqlError(withCode('42601'));
  assert.ok(syntax instanceof SqlQueryError);
  assert.equal(syntax.sqlState, '42601');
  assert.equal(syntax.retryable, false);
  assert.ok(toSqlError(new Error('something odd')) instanceof SqlQueryError);
});

test('closed pools and instances become SqlClosedError; SqlErrors pass through unchanged', () => {
  assert.ok(
    toSqlError(new Error('Cannot use a pool after calling end on the pool')) instanceof SqlClosedError,
  );
  assert.ok(toSqlError(new Error('PGlite is closed')) instanceof SqlClosedError);
  const original = new SqlClosedError();
  assert.equal(toSqlError(original), original);
});
