// Shared plumbing of the benchmarks: a NATS server, argument parsing, progress lines and reports.
// Benchmarks print figures and write a report; they assert nothing about time.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startNatsServer } from '@orderflow/testing';

export const benchDir = dirname(fileURLToPath(import.meta.url));
export const reportsDir = join(benchDir, 'reports');

/** A NATS server for one benchmark: `NATS_URL` when set, else a fresh `nats-server` with a temp store. */
export interface BenchServer {
  readonly url: string;
  /** True when the benchmark started the server itself (and so knows it is otherwise idle). */
  readonly owned: boolean;
  /** Process id of a server on this machine (found by its port), to read its CPU time; Linux only. */
  readonly pid: number | undefined;
  dispose(): Promise<void>;
}

export async function benchServer(): Promise<BenchServer> {
  const external = process.env.NATS_URL;
  if (external) return { url: external, owned: false, pid: natsServerPid(external), dispose: async () => {} };
  const server = await startNatsServer();
  return { url: server.url, owned: true, pid: natsServerPid(server.url), dispose: () => server.dispose() };
}

/** The pid of the local `nats-server` listening on `url`'s port (`-p <port>` on its command line). */
function natsServerPid(url: string): number | undefined {
  const port = /:(\d+)\/?$/.exec(url)?.[1];
  if (!port) return undefined;
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let argv: string[];
      try {
        argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      } catch {
        continue;
      }
      if (!argv[0]?.endsWith('nats-server')) continue;
      const at = argv.findIndex((a) => a === '-p' || a === '--port');
      if (at !== -1 && argv[at + 1] === port) return Number(entry);
    }
  } catch {
    // not Linux
  }
  return undefined;
}

/** User + system CPU seconds the process has used so far, or `undefined` when it cannot be read. */
export function serverCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/**
 * Read and write system calls the process has made so far (`/proc/<pid>/io`; all threads), or
 * `undefined` when they cannot be read. Writes per operation show how well messages are batched.
 */
export function syscallCounts(pid: number | undefined): { reads: number; writes: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const reads = /^syscr:\s*(\d+)/m.exec(io)?.[1];
    const writes = /^syscw:\s*(\d+)/m.exec(io)?.[1];
    return reads && writes ? { reads: Number(reads), writes: Number(writes) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Parses `--name value` / `--name=value` / `--flag` arguments. Unknown names are an error, so a typo
 * never silently runs the default.
 */
export function parseArgs<const T extends Record<string, string | number | boolean>>(
  args: readonly string[],
  defaults: T,
): T {
  const out: Record<string, string | number | boolean> = { ...defaults };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (!(name in defaults)) {
      throw new Error(
        `unknown option --${name} (known: ${Object.keys(defaults)
          .map((k) => `--${k}`)
          .join(' ')})`,
      );
    }
    const fallback = defaults[name];
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (typeof fallback === 'boolean') {
      out[name] = value === undefined ? true : value !== 'false';
      continue;
    }
    if (value === undefined) {
      value = args[++i];
      if (value === undefined) throw new Error(`--${name} needs a value`);
    }
    if (typeof fallback === 'number') {
      const n = Number(value.replace(/_/g, ''));
      if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${value}"`);
      out[name] = n;
    } else {
      out[name] = value;
    }
  }
  return out as T;
}

/**
 * A progress line on stderr for a long loop (rewritten in place on a terminal, one line every few
 * seconds otherwise). `tick` is cheap: it only compares a counter with a time read every 4096 calls.
 */
export class Progress {
  readonly #label: string;
  readonly #total: number;
  readonly #tty = process.stderr.isTTY;
  readonly #started = performance.now();
  #count = 0;
  #nextCheck = 4096;
  #lastPrint = performance.now();

  constructor(label: string, total: number) {
    this.#label = label;
    this.#total = total;
  }

  get count(): number {
    return this.#count;
  }

  tick(n = 1): void {
    this.#count += n;
    if (this.#total === 0) return; // a silent counter
    if (this.#count < this.#nextCheck) return;
    this.#nextCheck = this.#count + 4096;
    const now = performance.now();
    if (now - this.#lastPrint < (this.#tty ? 250 : 3_000)) return;
    this.#lastPrint = now;
    this.#print(now);
  }

  #print(now: number): void {
    const seconds = (now - this.#started) / 1000;
    const pct = this.#total > 0 ? ((100 * this.#count) / this.#total).toFixed(0) : '?';
    const line = `  ${this.#label}: ${this.#count}/${this.#total} (${pct}%) ${formatRate(this.#count / seconds)}/s`;
    process.stderr.write(this.#tty ? `\r\x1b[K${line}` : `${line}\n`);
  }

  /** Clears the line (on a terminal). */
  done(): void {
    if (this.#tty) process.stderr.write('\r\x1b[K');
  }
}

export function formatRate(perSecond: number): string {
  return Math.round(perSecond).toLocaleString('en-US');
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Resolves after `ms`; used only between phases to let the server settle, never to synchronise. */
export const settle = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ───────────────────────────── Reports ─────────────────────────────

/** One measurement: `count` operations of `variant` in `phase` took `seconds`. */
export interface Measurement {
  phase: string;
  variant: string;
  round: number;
  count: number;
  seconds: number;
  /** count / seconds */
  rate: number;
  /** Extra figures (latency percentiles, CPU seconds…), by name. */
  extra?: Record<string, number>;
}

/** The JSON report (`bench/reports/<name>.json`); the Markdown report shows the same data. */
export interface Report {
  name: string;
  title: string;
  startedAt: string;
  durationSeconds: number;
  machine: MachineInfo;
  /** The options the benchmark ran with (after defaults). */
  params: Record<string, string | number | boolean>;
  /** Every round of every phase and variant. */
  measurements: Measurement[];
  /** Median rate per phase and variant (operations per second), plus derived ratios. */
  summary: { phase: string; variant: string; rate: number; ratio?: number }[];
  /** The benchmark's last stdout line, the one to quote. */
  headline: string;
  notes: string[];
}

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  platform: string;
  node: string;
  natsServer: string;
  /** 1-minute load average when the benchmark started: how busy the machine already was. */
  loadAverage1m: number;
}

export async function machineInfo(natsServerVersion: string): Promise<MachineInfo> {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    platform: `${platform()} ${release()}`,
    node: process.version,
    natsServer: natsServerVersion,
    loadAverage1m: Number((loadavg()[0] ?? 0).toFixed(2)),
  };
}

/** Version of the `nats-server` binary on PATH (for reports when the server is external). */
export async function natsServerBinaryVersion(): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)('nats-server', ['--version']);
    return stdout.trim();
  } catch {
    return 'unknown';
  }
}

/** Medians per phase and variant, in first-seen order. */
export function summarise(measurements: readonly Measurement[]): Report['summary'] {
  const groups = new Map<string, { phase: string; variant: string; rates: number[] }>();
  for (const m of measurements) {
    const key = `${m.phase}\u0000${m.variant}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { phase: m.phase, variant: m.variant, rates: [] }));
    group.rates.push(m.rate);
  }
  return [...groups.values()].map((g) => ({ phase: g.phase, variant: g.variant, rate: median(g.rates) }));
}

function markdown(report: Report): string {
  const m = report.machine;
  const lines = [
    `# ${report.title}`,
    '',
    `Run ${report.startedAt} in ${report.durationSeconds.toFixed(0)} s on ${m.cpus} × ${m.cpuModel}, ` +
      `${m.memoryGiB} GiB, ${m.platform}; Node ${m.node}; nats-server ${m.natsServer}; ` +
      `load average at start ${m.loadAverage1m}.`,
    '',
    `Parameters: ${Object.entries(report.params)
      .map(([k, v]) => `\`--${k} ${String(v)}\``)
      .join(' ')}`,
    '',
    '## Summary (median of rounds)',
    '',
    '| phase | variant | ops/s | ratio |',
    '|---|---|---:|---:|',
    ...report.summary.map(
      (s) =>
        `| ${s.phase} | ${s.variant} | ${formatRate(s.rate)} | ${s.ratio === undefined ? '' : s.ratio.toFixed(2)} |`,
    ),
    '',
    '## Every round',
    '',
    '| phase | variant | round | count | seconds | ops/s | extra |',
    '|---|---|---:|---:|---:|---:|---|',
    ...report.measurements.map(
      (r) =>
        `| ${r.phase} | ${r.variant} | ${r.round} | ${r.count} | ${r.seconds.toFixed(3)} | ${formatRate(r.rate)} | ` +
        `${Object.entries(r.extra ?? {})
          .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(3)}`)
          .join(' ')} |`,
    ),
    '',
    ...(report.notes.length > 0 ? ['## Notes', '', ...report.notes.map((n) => `- ${n}`), ''] : []),
    '```',
    report.headline,
    '```',
    '',
  ];
  return lines.join('\n');
}

/** Writes the report, then prints where it went and, last, its headline (the line to quote). */
export async function finishReport(report: Report): Promise<void> {
  const paths = await writeReport(report);
  console.log(`\nreport: ${paths.join(', ')}`);
  console.log(report.headline);
}

/** Writes `bench/reports/<name>.json` and `.md`; returns their paths. */
export async function writeReport(report: Report): Promise<string[]> {
  await mkdir(reportsDir, { recursive: true });
  const json = join(reportsDir, `${report.name}.json`);
  const md = join(reportsDir, `${report.name}.md`);
  await writeFile(json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(md, markdown(report));
  return [json, md];
}

// ───────────────────────────── Profiles ─────────────────────────────

/**
 * A V8 CPU profile of this process over `body` only (not the set-up around it), written to
 * `dir/<name>.cpuprofile` when `dir` is not empty; summarise it with `bench/cpuprofile.ts`.
 */
export async function profiled<T>(dir: string, name: string, body: () => Promise<T>): Promise<T> {
  if (!dir) return body();
  const session = new Session();
  session.connect();
  const post = <R>(method: string, params?: object): Promise<R> =>
    new Promise((resolve, reject) =>
      session.post(method, params, (error, result) => (error ? reject(error) : resolve(result as R))),
    );
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 200 });
  await post('Profiler.start');
  try {
    return await body();
  } finally {
    const { profile } = await post<{ profile: object }>('Profiler.stop');
    session.disconnect();
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, `${name.replace(/[^A-Za-z0-9_.-]+/g, '-')}.cpuprofile`),
      JSON.stringify(profile),
    );
  }
}
