import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startNatsServer } from '@orderflow/testing';
import { main } from '../examples/counter.ts';

test('the README example runs against a real server', async () => {
  const server = await startNatsServer();
  try {
    assert.equal(await main(server.url), 5);
  } finally {
    await server.dispose();
  }
});
