import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import {
  ChaosInterruptedError,
  runChaos,
  type ChaosOptions,
  type ChaosProgress,
  type ChaosReport,
} from '../chaos/run.ts';

export interface ChaosCommandOptions extends Omit<
  ChaosOptions,
  'onProgress' | 'onLog' | 'onNote' | 'signal'
> {
  /** Where to write the JSON report. */
  readonly reportFile: string | undefined;
  /** Where to write every line the system printed (default: nowhere). */
  readonly logFile: string | undefined;
}

/**
 * `orderflow chaos`: runs the fault-injection harness, shows a progress bar, prints the faults and the
 * invariants table, writes the JSON report. Exit code 0 only with zero violations. Ctrl-C (or SIGTERM)
 * stops the run and everything it started, drops its database and exits 130.
 */
export async function chaos(options: ChaosCommandOptions): Promise<number> {
  const err = process.stderr;
  const tty = err.isTTY === true;
  const logs = options.logFile ? createWriteStream(options.logFile) : undefined;
  let lastLine = 0;
  const onProgress = (p: ChaosProgress) => {
    const line = progressLine(p);
    if (tty) err.write(`\r\x1b[2K${line}`);
    else if (Date.now() - lastLine >= 5_000) {
      lastLine = Date.now();
      err.write(`${line}\n`);
    }
  };
  const say = (text: string) => err.write(`${tty ? '\r\x1b[2K' : ''}[chaos] ${text}\n`);
  say(
    `seed ${options.seed}: ${options.orders} orders at ${options.ratePerSecond ?? 10}/s, ${brokerName(options)}` +
      (options.faults ? `, faults ${options.faults.join(',')}` : ''),
  );
  const interrupt = new AbortController();
  const onSignal = () => {
    say('interrupted: stopping the system and dropping its database');
    interrupt.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let report: ChaosReport;
  try {
    report = await runChaos({
      ...options,
      onProgress,
      onNote: say,
      signal: interrupt.signal,
      ...(logs && { onLog: (line) => logs.write(`[${line.program}#${line.replica}] ${line.line}\n`) }),
    });
  } catch (error) {
    if (!(error instanceof ChaosInterruptedError)) throw error;
    say('interrupted: nothing left running');
    return 130;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    logs?.end();
  }
  if (tty) err.write('\r\x1b[2K');
  process.stdout.write(`${renderReport(report)}\n`);
  if (options.reportFile) {
    await writeFile(options.reportFile, `${JSON.stringify(report, null, 2)}\n`);
    say(`report written to ${options.reportFile}`);
  }
  return report.violations === 0 ? 0 : 1;
}

function brokerName(mode: Pick<ChaosOptions, 'broker' | 'nats'>): string {
  return mode.broker === 'rabbitmq' ? 'RabbitMQ' : `NATS ${mode.nats ?? 'single'}`;
}

function progressLine(p: ChaosProgress): string {
  const width = 30;
  const done = p.total === 0 ? 1 : p.placed / p.total;
  const bar = '#'.repeat(Math.round(done * width)).padEnd(width, '.');
  return (
    `[${bar}] ${p.phase.padEnd(8)} placed ${p.placed}/${p.total}  terminal ${p.terminal}  ` +
    `faults ${p.faultsDone}/${p.faultsTotal}${p.currentFault ? `  now: ${p.currentFault}` : ''}`
  );
}

/** The failed invariants alone, each with its problems: the head of a failure message. */
export function renderViolations(r: ChaosReport): string {
  const lines = [`chaos seed ${r.seed} (${brokerName(r)}): ${r.violations} violation(s)`];
  for (const i of r.invariants.filter((invariant) => !invariant.ok)) {
    lines.push(`  FAIL  ${i.name}  ${JSON.stringify(i.counts)}`);
    for (const problem of i.problems) lines.push(`          ${problem}`);
  }
  return lines.join('\n');
}

/** The human-readable summary: figures, faults with recovery times, the invariants table. */
export function renderReport(r: ChaosReport): string {
  const lines: string[] = [];
  lines.push(
    `chaos seed ${r.seed} (${brokerName(r)}): ${r.ordersAccepted}/${r.ordersRequested} orders accepted, ` +
      `${r.ordersPerSecond} orders/s over ${(r.loadDurationMs / 1000).toFixed(1)} s, ` +
      `settled in ${(r.settleDurationMs / 1000).toFixed(1)} s, median order latency ${r.medianOrderLatencyMs ?? '-'} ms`,
  );
  lines.push('', 'faults:');
  for (const f of r.faults)
    lines.push(
      `  ${(f.startedAtMs / 1000).toFixed(1).padStart(7)} s  ${f.fault.padEnd(16)} ${f.target.padEnd(28)} ` +
        `lifted after ${f.durationMs} ms, recovered ${f.recoveryMs === undefined ? 'NOT SEEN' : `${f.recoveryMs} ms`} later`,
    );
  lines.push('', `answers: ${JSON.stringify(r.answers)}`, `restarts: ${JSON.stringify(r.restarts)}`);
  lines.push('', 'invariants:');
  const width = Math.max(...r.invariants.map((i) => i.name.length));
  for (const i of r.invariants) {
    lines.push(`  ${i.ok ? 'ok  ' : 'FAIL'}  ${i.name.padEnd(width)}  ${JSON.stringify(i.counts)}`);
    for (const problem of i.problems) lines.push(`          ${problem}`);
    if (i.violations > i.problems.length) lines.push(`          … ${i.violations - i.problems.length} more`);
  }
  lines.push('', `violations: ${r.violations}`);
  return lines.join('\n');
}
