import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { startNatsServer, type NatsServer } from '@orderflow/testing';
import { commandHandler } from '../src/mod.ts';
import { accountFixture, connect } from './fixtures/harness.ts';

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

const racer = fileURLToPath(new URL('./fixtures/racer.ts', import.meta.url));

/** A writer process; `lines` yields its stdout as parsed JSON, `exited` its exit code. */
function spawnRacer(args: string[]) {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', racer, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    async next(): Promise<Record<string, unknown>> {
      const line = (await lines.next()) as IteratorResult<string, undefined>;
      if (line.done) assert.fail('racer exited early');
      return JSON.parse(line.value) as Record<string, unknown>;
    },
    go: () => child.stdin!.write('go\n'),
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}

describe('concurrent writers in separate processes', () => {
  test('two writers expecting the same version: exactly one wins, every round', async () => {
    const fixture = await accountFixture(nc);
    await commandHandler(fixture.store())('a1', { type: 'open', owner: 'ada' });
    const rounds = 5;
    const args = [server.url, fixture.account.stream, 'a1', 'barrier', String(rounds)];
    const writers = [spawnRacer(args), spawnRacer(args)];
    try {
      for (let round = 0; round < rounds; round++) {
        const ready = await Promise.all(writers.map((w) => w.next()));
        assert.equal(ready[0]?.ready, ready[1]?.ready, 'both loaded the same version');
        for (const w of writers) w.go();
        const results = await Promise.all(writers.map((w) => w.next()));
        assert.deepEqual(
          results.map((r) => r.expected),
          ready.map((r) => r.ready),
        );
        assert.equal(results.filter((r) => r.won === true).length, 1, `round ${round}: one winner`);
      }
      assert.deepEqual(await Promise.all(writers.map((w) => w.exited)), [0, 0]);
    } finally {
      for (const w of writers) w.kill();
    }
    const loaded = await fixture.store().load('a1');
    assert.equal(loaded.state.balance, rounds);
    assert.equal(loaded.eventCount, rounds + 1);
  });

  test('two writers hammering one account with retries lose no update', async (t) => {
    const fixture = await accountFixture(nc);
    await commandHandler(fixture.store())('a1', { type: 'open', owner: 'ada' });
    const perWriter = 30;
    const args = [server.url, fixture.account.stream, 'a1', 'hammer', String(perWriter)];
    const writers = [spawnRacer(args), spawnRacer(args)];
    let attempts: number[];
    try {
      const reports = await Promise.all(writers.map((w) => w.next()));
      attempts = reports.flatMap((r) => r.attempts as number[]);
      assert.deepEqual(await Promise.all(writers.map((w) => w.exited)), [0, 0]);
    } finally {
      for (const w of writers) w.kill();
    }
    const loaded = await fixture.store().load('a1');
    assert.equal(loaded.state.balance, 2 * perWriter);
    assert.equal(loaded.eventCount, 2 * perWriter + 1);
    // every attempt beyond the first of a command lost exactly one race to a commit that is in the log
    const lost = attempts.reduce((sum, a) => sum + a - 1, 0);
    assert.ok(lost <= 2 * perWriter, `conflicts (${lost}) cannot exceed the commits of the other writer`);
    t.diagnostic(`conflicts resolved by retry: ${lost}`);
  });
});
