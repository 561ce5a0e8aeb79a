import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '@orderflow/messaging';
import { configFromEnv } from '../src/mod.ts';

test('ORDER_EVENT_LOG picks the event log: jetstream by default, sql, anything else refused with the others', () => {
  assert.equal(configFromEnv({}).eventLog, 'jetstream');
  assert.equal(configFromEnv({ ORDER_EVENT_LOG: 'sql' }).eventLog, 'sql');
  assert.throws(
    () => configFromEnv({ ORDER_EVENT_LOG: 'kafka', MAX_DELIVER: 'x' }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /ORDER_EVENT_LOG must be one of jetstream, sql: kafka/.test(error.message) &&
      /MAX_DELIVER/.test(error.message),
  );
});
