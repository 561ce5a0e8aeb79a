// The fault-injection harness (`npm run chaos`, cli/chaos/) in short seeded runs: the whole system as
// processes on PostgreSQL, under load through HTTP, with every fault class injected at least once —
// one run on a single nats-server, one on a 3-node JetStream cluster with R3 streams. The invariants
// (nothing lost, nothing done twice, dead letters only for the poison) must all hold.
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

  test('3-node JetStream cluster, R3 streams: a node killed under load and brought back, poison', async (t) => {
    const faults: FaultClass[] = ['node-kill', 'poison'];
    const summary = await run(
      {
        orders: 80,
        seed: 20261202,
        ratePerSecond: 10,
        nats: 'cluster',
        faults,
        killsPerService: 0,
        paymentReplicas: 2,
      },
      faults,
    );
    for (const line of summary.split('\n')) t.diagnostic(line);
  });
});
