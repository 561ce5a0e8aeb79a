import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '@orderflow/messaging';
import { configFromEnv } from '../src/config.ts';

test('ACK_WAIT_MS: by default the larger of 30 s and twice PSP_TIMEOUT_MS; set, it must exceed PSP_TIMEOUT_MS', () => {
  assert.equal(configFromEnv({}).ackWaitMs, 30_000);
  assert.equal(configFromEnv({ PSP_TIMEOUT_MS: '20000' }).ackWaitMs, 40_000);
  assert.equal(configFromEnv({ ACK_WAIT_MS: '12000' }).ackWaitMs, 12_000);
  assert.throws(
    () => configFromEnv({ ACK_WAIT_MS: '5000', PSP_TIMEOUT_MS: '5000' }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /ACK_WAIT_MS \(5000\) must exceed PSP_TIMEOUT_MS \(5000\)/.test(error.message),
  );
  assert.throws(() => configFromEnv({ ACK_WAIT_MS: 'soon' }), /ACK_WAIT_MS must be an integer/);
});
