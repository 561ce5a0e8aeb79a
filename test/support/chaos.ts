// Runs the fault-injection harness (cli/chaos/) for a system test and asserts on its report: every
// requested fault class injected, every order accepted, the system recovered after each fault, zero
// invariant violations. The rendered report goes to the test's diagnostics.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { runChaos, type ChaosOptions } from '../../cli/chaos/run.ts';
import { renderReport, renderViolations } from '../../cli/commands/chaos.ts';
import type { FaultClass } from '../../cli/chaos/faults.ts';
import { testRuntime } from './system.ts';

const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Settling is capped well inside the runner's 300 s per-file limit, so a run that does not become
 * consistent fails with its invariants table instead of being cut off without one.
 */
const SETTLE_TIMEOUT_MS = 90_000;

/**
 * A run still going after this is interrupted, inside the runner's 300 s limit: it stops what it
 * started, drops its database (and vhost), and fails with its notes on stderr, instead of being cut
 * off with its processes left running.
 */
const RUN_DEADLINE_MS = 270_000;

/** Warnings and errors kept per program for a failed run's diagnostics. */
const RECENT_PROBLEMS_KEPT = 15;

export async function chaosRun(
  t: TestContext,
  options: Omit<ChaosOptions, 'databaseUrl' | 'baseEnv' | 'onNote' | 'onLog' | 'signal' | 'runtime'> & {
    faults: readonly FaultClass[];
  },
): Promise<void> {
  // The last warnings and errors of each program: printed when the run fails, to show why.
  const recentProblems = new Map<string, string[]>();
  const report = await runChaos({
    settleTimeoutMs: SETTLE_TIMEOUT_MS,
    ...options,
    databaseUrl: DATABASE_URL,
    runtime: testRuntime(),
    // RabbitMQ runs: the node without credentials (default amqp://127.0.0.1:5672); rabbitmqctl finds
    // it as ever (RABBITMQ_NODENAME for another node than the default).
    ...(process.env.AMQP_URL && { amqpUrl: process.env.AMQP_URL }),
    baseEnv: { PATH: process.env.PATH, HOME: process.env.HOME },
    // The milestones as they happen (a fault injected, a service restarted): what a slow run was doing.
    onNote: (note) => process.stderr.write(`[chaos] ${note}\n`),
    signal: AbortSignal.any([t.signal, AbortSignal.timeout(RUN_DEADLINE_MS)]),
    onLog: ({ program, replica, line }) => {
      if (!/"level":(40|50|60)/.test(line)) return;
      const kept = recentProblems.get(`${program}#${replica}`) ?? [];
      kept.push(line.slice(0, 600));
      if (kept.length > RECENT_PROBLEMS_KEPT) kept.shift();
      recentProblems.set(`${program}#${replica}`, kept);
    },
  });
  if (report.violations > 0) {
    for (const [program, lines] of recentProblems)
      for (const line of lines) process.stderr.write(`[chaos] ${program}: ${line}\n`);
  }
  // The failed invariants first: a runner that shows only the head of a failure message shows them.
  const summary =
    report.violations > 0 ? `${renderViolations(report)}\n\n${renderReport(report)}` : renderReport(report);
  for (const fault of options.faults)
    assert.ok((report.faultCounts[fault] ?? 0) >= 1, `fault ${fault} was injected\n${summary}`);
  assert.ok(report.ordersAccepted >= options.orders, `every order was accepted\n${summary}`);
  assert.deepEqual(
    report.faults.filter((f) => f.recoveryMs === undefined).map((f) => `${f.fault} ${f.target}`),
    [],
    `an order placed after each fault completed\n${summary}`,
  );
  assert.equal(report.violations, 0, summary);
  for (const line of summary.split('\n')) t.diagnostic(line);
}
