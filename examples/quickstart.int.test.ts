import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startNatsServer, type NatsServer } from '@orderflow/testing';
import { main } from './quickstart.ts';

let server: NatsServer;
before(async () => (server = await startNatsServer()));
after(() => server.dispose());

test('the README quickstart publishes and consumes a typed event', async () => {
  assert.equal(await main(server.url), 'Hello, Ada');
});
