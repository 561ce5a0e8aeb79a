// The fault-injection harness (`npm run chaos`, cli/chaos/) in short seeded runs: the whole system as
// processes on PostgreSQL, on a single nats-server, under load through HTTP, with every fault class of
// that mode injected at least once. The invariants
// (nothing lost, nothing done twice, dead letters only for the poison) must all hold. The cluster run
// (`npm run chaos -- --nats cluster`, a node killed) is not here: it exceeded the suite's 300 s per-file
// limit once in four CI runs, cause not found yet (see docs/reliability.md).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runChaos, type ChaosOptions } from '../cli/chaos/run.ts';
import { renderReport } from '../cli/commands/chaos.ts';
import type { FaultClass } from '../cli/chaos/faults.ts';

const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

async function run(options: Omit<ChaosOptions, 'databaseUrl' | 'baseEnv'>, expected: readonly FaultClass[]) {
  const report = await runChaos({
    ...options,
    databaseUrl: DATABASE_URL,
    baseEnv: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  const summary = renderReport(report);
  for (const fault of expected)
    assert.ok((report.faultCounts[fault] ?? 0) >= 1, `fault ${fault} was injected\n${summary}`);
  assert.ok(report.ordersAccepted >= options.orders, `every order was accepted\n${summary}`);
  assert.deepEqual(
    report.faults.filter((f) => f.recoveryMs === undefined).map((f) => `${f.fault} ${f.target}`),
    [],
    `an order placed after each fault completed\n${summary}`,
  );
  assert.equal(report.violations, 0, summary);
  return summary;
}

describe('chaos: faults under load, invariants after', { timeout: 900_000 }, () => {
  test('single nats-server: SIGKILL of every service, NATS restart, PostgreSQL outage, PSP faults, rolling restart, poison', async (t) => {
    const faults: FaultClass[] = ['kill', 'nats-restart', 'pg-outage', 'psp', 'rolling-restart', 'poison'];
    const summary = await run(
      {
        orders: 150,
        seed: 20261201,
        ratePerSecond: 10,
        nats: 'single',
        faults,
        killsPerService: 1,
        paymentReplicas: 2,
      },
      faults,
    );
    for (const line of summary.split('\n')) t.diagnostic(line);
  });
});
