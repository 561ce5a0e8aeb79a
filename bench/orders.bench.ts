// `npm run bench -- orders`: the whole system end to end. Closed-loop load through the gateway's HTTP
// API (N clients, each places an order and waits until it is terminal), with the CPU time, NATS
// traffic and memory of every process of the system. See docs/performance.md ("orders").
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openPostgres } from '@orderflow/sql';
import { demoOrder, TERMINAL } from '../cli/api.ts';
import { allocateFreePort } from '../cli/supervisor.ts';
import {
  RUNTIMES,
  SERVICES,
  startSystem,
  type RunningSystem,
  type Runtime,
  type SystemConfig,
} from '../cli/system.ts';
import {
  benchDir,
  machineInfo,
  natsServerBinaryVersion,
  parseArgs,
  writeReport,
  type Measurement,
} from './support.ts';

const defaults = {
  /** Client counts, one measured level each. */
  concurrency: '1,8,32,64',
  /** Length of each level (placing stops then; the orders in flight are waited for). */
  seconds: 20,
  /**
   * Untimed load before the first level, at 8 clients: ten processes tier their code up in the first
   * tens of seconds (with 5 s, a 25 s level at 32 clients went from 43 to 78 orders/s while it ran).
   */
  warmup: 20,
  database: 'pglite',
  /** PostgreSQL server for `--database postgres`; the run makes a database of its own and drops it. */
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/test',
  /** Use a running system at this gateway URL instead of starting one. */
  gateway: '',
  /** With `--gateway`: its NATS URL (its processes are found by their `NATS_URL`). */
  nats: '',
  /** With `--gateway`: the nats-server monitoring base URL (`http://127.0.0.1:8222`). */
  natsMonitor: '',
  /** How a client learns that its order is terminal: `sse` (GET /status-changes) or `poll` (GET /orders/:id). */
  wait: 'sse',
  /** Share of orders paid with `tok_decline` (→ cancelled / payment_declined). */
  decline: 0.1,
  /** Services to CPU-profile (`all` or a comma list): `.cpuprofile` files and their top functions. */
  profile: '',
  /** Where profiles go (default bench/reports/profiles-<time>). */
  profileDir: '',
  /** After the run: stop the system and start it again on the same data (warm start time). */
  warmStart: true,
  /** How the services run: `dist` (built first, as `npm start` does) or `tsx` (sources, as the tests do). */
  runtime: 'dist',
};
type Options = typeof defaults;

const POLL_MS = 50;
/** An order not terminal after this long is given up on and counted as an error. */
const ORDER_TIMEOUT_MS = 60_000;
/** With SSE: an order not seen terminal after this long is also asked for (an event may be lost). */
const SSE_FALLBACK_MS = 5_000;

// ───────────────────────────── processes ─────────────────────────────

interface Proc {
  /** `order-storage#0`, `nats-server#0`, `postgres` (the backends of the run's database). */
  readonly name: string;
  readonly pids: readonly number[];
}

interface ProcSample {
  /** CPU seconds (utime + stime) of the process and of its descendants (tsx's esbuild helper…). */
  cpu: number;
  /** Resident set in MiB, process and descendants. */
  rssMiB: number;
}

function statOf(pid: number): { cpu: number; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / 100 };
  } catch {
    return undefined;
  }
}

function rssMiBOf(pid: number): number {
  try {
    const kb = /^VmRSS:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Every process's parent, to count descendants with their root. */
function childrenMap(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = statOf(Number(entry));
    if (!stat) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(Number(entry));
    children.set(stat.ppid, list);
  }
  return children;
}

function sampleProcs(procs: readonly Proc[]): Map<string, ProcSample> {
  const children = childrenMap();
  const out = new Map<string, ProcSample>();
  for (const proc of procs) {
    let cpu = 0;
    let rssMiB = 0;
    const seen = new Set<number>();
    const visit = (pid: number) => {
      if (seen.has(pid)) return;
      seen.add(pid);
      cpu += statOf(pid)?.cpu ?? 0;
      rssMiB += rssMiBOf(pid);
      for (const child of children.get(pid) ?? []) visit(child);
    };
    for (const pid of proc.pids) visit(pid);
    out.set(proc.name, { cpu, rssMiB });
  }
  return out;
}

/** Processes whose environment has `NATS_URL=<natsUrl>` (a running system, `--gateway` mode). */
function processesWithNatsUrl(natsUrl: string): Proc[] {
  const procs: Proc[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (!env.includes(`NATS_URL=${natsUrl}`)) continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const name = /services\/([a-z-]+)\//.exec(cmd)?.[1] ?? `pid ${entry}`;
      procs.push({
        name: `${name}#${procs.filter((p) => p.name.startsWith(name)).length}`,
        pids: [Number(entry)],
      });
    } catch {
      // gone, or not ours
    }
  }
  return procs;
}

function natsServerPidByPort(port: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!argv[0]?.endsWith('nats-server')) continue;
      const at = argv.findIndex((a) => a === '-p' || a === '--port');
      if (at !== -1 && argv[at + 1] === port) return Number(entry);
    } catch {
      // gone
    }
  }
  return undefined;
}

interface Varz {
  in_msgs: number;
  out_msgs: number;
  in_bytes: number;
  out_bytes: number;
}

async function varz(monitorUrl: string | undefined): Promise<Varz | undefined> {
  if (!monitorUrl) return undefined;
  try {
    const response = await fetch(`${monitorUrl}/varz`, { signal: AbortSignal.timeout(5_000) });
    return (await response.json()) as Varz;
  } catch {
    return undefined;
  }
}

// ───────────────────────────── the load ─────────────────────────────

interface Customer {
  readonly customerId: string;
  /** A bearer token when the gateway hands one out with the customer. */
  readonly token: string | undefined;
}

interface LevelResult {
  concurrency: number;
  orders: number;
  declined: number;
  errors: number;
  errorKinds: Record<string, number>;
  seconds: number;
  /** place → terminal, ms */
  latencies: number[];
  /** POST /orders, ms */
  postLatencies: number[];
}

/** Terminal statuses as the SSE stream (or polling) learns them; waiters by order id. */
class TerminalWatch {
  readonly #seen = new Map<string, { at: number; status: string }>();
  readonly #waiters = new Map<string, (at: number, status: string) => void>();
  #abort = new AbortController();
  #connected = false;

  constructor(
    private readonly api: string,
    private readonly headers: Record<string, string>,
  ) {}

  /** Opens the stream; resolves once the gateway answered. */
  async connect(): Promise<void> {
    const response = await fetch(`${this.api}/status-changes`, {
      headers: { accept: 'text/event-stream', ...this.headers },
      signal: this.#abort.signal,
    });
    if (!response.ok || !response.body) throw new Error(`GET /status-changes: ${response.status}`);
    this.#connected = true;
    void this.#read(response.body).catch(() => {
      this.#connected = false;
    });
  }

  get connected(): boolean {
    return this.#connected;
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trim())
          .join('\n');
        if (!data) continue;
        try {
          const change = JSON.parse(data) as { orderId?: string; status?: string };
          if (change.orderId && change.status && TERMINAL.includes(change.status))
            this.settle(change.orderId, performance.now(), change.status);
        } catch {
          // not ours
        }
      }
    }
    this.#connected = false;
  }

  settle(orderId: string, at: number, status: string): void {
    const waiter = this.#waiters.get(orderId);
    if (waiter) {
      this.#waiters.delete(orderId);
      waiter(at, status);
    } else if (!this.#seen.has(orderId)) {
      // Before the POST's answer reached its client.
      this.#seen.set(orderId, { at, status });
    }
  }

  wait(orderId: string): Promise<{ at: number; status: string }> {
    const seen = this.#seen.get(orderId);
    if (seen) {
      this.#seen.delete(orderId);
      return Promise.resolve(seen);
    }
    return new Promise((resolve) => this.#waiters.set(orderId, (at, status) => resolve({ at, status })));
  }

  forget(orderId: string): void {
    this.#waiters.delete(orderId);
    this.#seen.delete(orderId);
  }

  close(): void {
    this.#abort.abort();
  }
}

async function json<T>(response: Response): Promise<T> {
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

async function registerCustomers(api: string, count: number): Promise<Customer[]> {
  const run = randomBytes(3).toString('hex');
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const response = await fetch(`${api}/customers`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: `Bench ${i}`, email: `bench-${run}-${i}@example.com` }),
        signal: AbortSignal.timeout(30_000),
      });
      if (!response.ok) throw new Error(`POST /customers: ${response.status} ${await response.text()}`);
      const body = await json<{ customerId: string; token?: string }>(response);
      return { customerId: body.customerId, token: body.token };
    }),
  );
}

const auth = (customer: Customer): Record<string, string> =>
  customer.token ? { authorization: `Bearer ${customer.token}` } : {};

async function pollTerminal(
  api: string,
  orderId: string,
  customer: Customer,
  deadline: number,
  everyMs: number,
): Promise<{ at: number; status: string } | undefined> {
  while (performance.now() < deadline) {
    try {
      const response = await fetch(`${api}/orders/${orderId}`, {
        headers: { accept: 'application/json', ...auth(customer) },
        signal: AbortSignal.timeout(10_000),
      });
      if (response.ok) {
        const view = await json<{ status: string }>(response);
        if (TERMINAL.includes(view.status)) return { at: performance.now(), status: view.status };
      } else await response.arrayBuffer();
    } catch {
      // retried until the deadline
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return undefined;
}

/**
 * One closed-loop level: `concurrency` clients place orders for `seconds`, each waiting for its order
 * to be terminal before the next; then the orders in flight are waited for.
 */
async function runLevel(
  api: string,
  customers: readonly Customer[],
  /** The stream that reports client `i`'s orders (none: poll). */
  watchOf: ((client: number) => TerminalWatch) | undefined,
  concurrency: number,
  seconds: number,
  declineShare: number,
  onProgress: (r: LevelResult, elapsed: number) => void,
): Promise<LevelResult> {
  const result: LevelResult = {
    concurrency,
    orders: 0,
    declined: 0,
    errors: 0,
    errorKinds: {},
    seconds: 0,
    latencies: [],
    postLatencies: [],
  };
  const error = (kind: string) => {
    result.errors += 1;
    result.errorKinds[kind] = (result.errorKinds[kind] ?? 0) + 1;
  };
  const started = performance.now();
  const stopPlacingAt = started + seconds * 1000;
  let lastTerminal = started;
  const ticker = setInterval(() => onProgress(result, (performance.now() - started) / 1000), 1_000);
  const client = async (index: number) => {
    const customer = customers[index % customers.length] as Customer;
    const watch = watchOf?.(index);
    while (performance.now() < stopPlacingAt) {
      const decline = Math.random() < declineShare;
      const placedAt = performance.now();
      let orderId: string;
      try {
        const response = await fetch(`${api}/orders`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'idempotency-key': randomUUID(),
            ...auth(customer),
          },
          body: JSON.stringify(
            demoOrder(customer.customerId, { token: decline ? 'tok_decline' : 'tok_visa' }),
          ),
          signal: AbortSignal.timeout(30_000),
        });
        const body = await json<{ orderId?: string }>(response);
        result.postLatencies.push(performance.now() - placedAt);
        if (!response.ok || !body?.orderId) {
          error(`POST /orders ${response.status}`);
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        orderId = body.orderId;
      } catch (e) {
        error(`POST /orders ${e instanceof Error ? e.name : 'error'}`);
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const deadline = placedAt + ORDER_TIMEOUT_MS;
      let terminal: { at: number; status: string } | undefined;
      if (watch) {
        const fallback = (async () => {
          await new Promise((r) => setTimeout(r, SSE_FALLBACK_MS));
          return terminal ? undefined : pollTerminal(api, orderId, customer, deadline, 1_000);
        })();
        terminal = await Promise.race([watch.wait(orderId), fallback]);
        watch.forget(orderId);
      } else {
        terminal = await pollTerminal(api, orderId, customer, deadline, POLL_MS);
      }
      if (!terminal) {
        error('not terminal in 60 s');
        continue;
      }
      result.orders += 1;
      if (terminal.status === 'cancelled') result.declined += 1;
      result.latencies.push(terminal.at - placedAt);
      lastTerminal = Math.max(lastTerminal, terminal.at);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => client(i)));
  clearInterval(ticker);
  result.seconds = (lastTerminal - started) / 1000;
  return result;
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** Messages the durable consumers have not had acknowledged yet (pending and in flight); undefined without a monitor. */
async function unhandled(monitorUrl: string | undefined): Promise<number | undefined> {
  if (!monitorUrl) return undefined;
  try {
    const response = await fetch(`${monitorUrl}/jsz?accounts=true&consumers=true`, {
      signal: AbortSignal.timeout(5_000),
    });
    const jsz = (await response.json()) as {
      account_details?: {
        stream_detail?: { consumer_detail?: { num_pending: number; num_ack_pending: number }[] }[];
      }[];
    };
    let total = 0;
    for (const account of jsz.account_details ?? [])
      for (const stream of account.stream_detail ?? [])
        for (const consumer of stream.consumer_detail ?? [])
          total += consumer.num_pending + consumer.num_ack_pending;
    return total;
  } catch {
    return undefined;
  }
}

/**
 * Waits until every durable consumer has handled what it was given and nats-server's message
 * counters stop moving: the work a level left behind (mails lag the terminal states under load)
 * belongs to that level. Shows the backlog while it drains; gives up after `maxMs`.
 */
async function quiet(monitorUrl: string | undefined, maxMs = 180_000): Promise<void> {
  const until = performance.now() + maxMs;
  let last = -1;
  while (performance.now() < until) {
    await new Promise((r) => setTimeout(r, 700));
    const now = (await varz(monitorUrl))?.in_msgs ?? 0;
    const backlog = await unhandled(monitorUrl);
    if (backlog) process.stderr.write(`  draining: ${backlog} messages not yet handled by the consumers\n`);
    // Idle pulls and heartbeats keep a few messages a second going.
    if (!backlog && last !== -1 && now - last < 20) return;
    last = now;
  }
}

// ───────────────────────────── profiles ─────────────────────────────

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}

/** Top self-time functions of a `.cpuprofile` between two monotonic times (µs), as lines. */
function topFunctions(profile: CpuProfile, fromUs: number, toUs: number, top: number): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let t = profile.startTime;
  let total = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (t < fromUs || t > toUs) return;
    const frame = byId.get(id)?.callFrame;
    if (!frame) return;
    if (frame.functionName === '(idle)' || frame.functionName === '(program)') return;
    const url = frame.url.replace(/^file:\/\//, '');
    const nm = url.lastIndexOf('node_modules/');
    const where =
      nm !== -1 ? url.slice(nm + 13) : url.replace(/^.*?\/(packages|services|contracts|dist)\//, '$1/');
    const name = `${frame.functionName || '(anonymous)'}  ${where}:${frame.lineNumber + 1}`;
    self.set(name, (self.get(name) ?? 0) + delta);
    total += delta;
  });
  return [
    `busy ${(total / 1000).toFixed(0)} ms sampled in the measured levels`,
    ...[...self]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(
        ([name, us]) =>
          `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}`,
      ),
  ];
}

// ───────────────────────────── the run ─────────────────────────────

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

export async function run(args: string[]): Promise<void> {
  if (args.includes('--help')) {
    console.log(
      'npm run bench -- orders [--concurrency 1,8,32,64] [--seconds 20] [--warmup 20] [--database pglite|postgres]\n' +
        '                        [--gateway URL --nats URL --natsMonitor URL] [--wait sse|poll] [--decline 0.1]\n' +
        '                        [--profile all|<service,…>] [--profileDir DIR] [--warmStart=false] [--runtime tsx|dist]',
    );
    return;
  }
  const options: Options = parseArgs(args, defaults);
  const levels = options.concurrency.split(',').map(Number);
  if (levels.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--concurrency: positive integers');
  if (options.database !== 'pglite' && options.database !== 'postgres')
    throw new Error('--database: pglite or postgres');
  if (options.wait !== 'sse' && options.wait !== 'poll') throw new Error('--wait: sse or poll');
  if (!(RUNTIMES as readonly string[]).includes(options.runtime))
    throw new Error(`--runtime: one of ${RUNTIMES.join(', ')}`);
  const profiled: string[] =
    options.profile === '' ? [] : options.profile === 'all' ? [...SERVICES] : options.profile.split(',');
  for (const name of profiled)
    if (!(SERVICES as readonly string[]).includes(name))
      throw new Error(`--profile: unknown service ${name}`);
  if (options.gateway && profiled.length > 0) throw new Error('--profile needs a system the bench starts');

  const startedAt = new Date();
  const notes: string[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const say = (line: string) => console.log(line);
  const loads: string[] = [`start: ${load()}`];
  let system: RunningSystem | undefined;
  let api: string;
  let monitorUrl: string | undefined;
  let procs: () => Proc[];
  let startSeconds: number | undefined;
  let warmStartSeconds: number | undefined;
  let pgPids: (() => Promise<number[]>) | undefined;
  let systemConfig: SystemConfig | undefined;
  const recent: Record<string, string[]> = {};
  const profileDir = resolve(
    options.profileDir ||
      join(benchDir, 'reports', `profiles-${startedAt.toISOString().replace(/[:.]/g, '-')}`),
  );

  try {
    if (options.gateway) {
      api = options.gateway.replace(/\/$/, '');
      monitorUrl = options.natsMonitor || undefined;
      const natsPort = /:(\d+)\/?$/.exec(options.nats)?.[1];
      const natsPid = natsPort ? natsServerPidByPort(natsPort) : undefined;
      procs = () => [
        ...(options.nats ? processesWithNatsUrl(options.nats) : []),
        ...(natsPid !== undefined ? [{ name: 'nats-server#0', pids: [natsPid] }] : []),
      ];
      say(`using the system at ${api}${options.nats ? ` (NATS ${options.nats})` : ''}`);
    } else {
      const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-bench-'));
      cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
      let databaseUrl: string | undefined;
      if (options.database === 'postgres') {
        const name = `bench_${randomBytes(4).toString('hex')}`;
        const admin = await openPostgres({ url: options.databaseUrl, schema: 'public', poolSize: 1 });
        await admin.query(`CREATE DATABASE ${name}`);
        cleanups.push(async () => {
          await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
          await admin.close();
        });
        const url = new URL(options.databaseUrl);
        url.pathname = `/${name}`;
        databaseUrl = url.toString();
        pgPids = async () =>
          (
            await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name])
          ).rows.map((r) => Number(r.pid));
      }
      const [natsPort, natsMonitorPort, gatewayPort, pspPort, smtpPort, mailboxPort] = await Promise.all(
        Array.from({ length: 6 }, () => allocateFreePort()),
      );
      const env: Record<string, Record<string, string>> = {
        // The mailbox must not be what limits the run (default: newest 10 000).
        'smtp-sink': { MAX_MESSAGES: '1000000' },
        // Nor the gateway's per-client limits: the benchmark is one client on 127.0.0.1 signing up its
        // customers at once and placing for each as fast as the system answers.
        gateway: {
          RATE_LIMIT_SIGNUPS_PER_S: '1000000',
          RATE_LIMIT_SIGNUPS_BURST: '1000000',
          RATE_LIMIT_WRITES_PER_S: '1000000',
          RATE_LIMIT_WRITES_BURST: '1000000',
        },
      };
      const nodeArgs: Record<string, string[]> = {};
      for (const name of profiled)
        nodeArgs[name] = ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, name)}`];
      const config: SystemConfig = {
        dataDir,
        natsPort: natsPort!,
        natsMonitorPort: natsMonitorPort!,
        gatewayPort: gatewayPort!,
        pspPort: pspPort!,
        smtpPort: smtpPort!,
        mailboxPort: mailboxPort!,
        ...(databaseUrl !== undefined && { databaseUrl }),
        runtime: options.runtime as Runtime,
        nodeArgs,
        env,
        baseEnv: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn' },
        ownProcessGroup: false,
        readyTimeoutMs: 180_000,
        onLog: (line) => {
          const tail = (recent[line.program] ??= []);
          tail.push(line.line.slice(0, 400));
          if (tail.length > 15) tail.shift();
          if (/"level":(50|60)/.test(line.line))
            notes.push(`${line.program} logged: ${line.line.slice(0, 300)}`);
        },
      };
      if (options.runtime === 'dist') {
        const { status } = spawnSync(process.execPath, [join(benchDir, '..', 'scripts', 'build.mjs')], {
          stdio: 'inherit',
        });
        if (status !== 0) throw new Error('npm run build failed');
      }
      say(`starting the system (${options.database}, ${options.runtime}, data in ${dataDir}) …`);
      const t0 = performance.now();
      systemConfig = config;
      try {
        system = await startSystem(config);
      } catch (error) {
        for (const [program, lines] of Object.entries(recent))
          console.error(`--- ${program}, last lines:\n${lines.join('\n')}`);
        throw error;
      }
      startSeconds = (performance.now() - t0) / 1000;
      const running = system;
      cleanups.unshift(() => running.stop());
      api = system.apiUrl;
      monitorUrl = `http://127.0.0.1:${natsMonitorPort}`;
      procs = () =>
        (system?.supervisor.list() ?? [])
          .filter((r) => r.pid !== undefined)
          .map((r) => ({ name: `${r.program}#${r.replica}`, pids: [r.pid as number] }));
      say(`up in ${fmt(startSeconds)} s (fresh data directory); gateway ${api}`);
    }
    const allProcs = async (): Promise<Proc[]> => [
      ...procs(),
      ...(pgPids ? [{ name: 'postgres (backends)', pids: await pgPids() }] : []),
    ];

    await new Promise((r) => setTimeout(r, 2_000));
    const idleStart = sampleProcs(await allProcs());

    const maxLevel = Math.max(...levels);
    const customers = await registerCustomers(api, maxLevel);
    // One stream of every order's changes; with bearer tokens (a gateway that scopes what a
    // customer sees) one stream per customer.
    const watches =
      options.wait !== 'sse'
        ? []
        : customers[0]?.token === undefined
          ? [new TerminalWatch(api, {})]
          : customers.map((c) => new TerminalWatch(api, auth(c)));
    for (const watch of watches) {
      await watch.connect();
      cleanups.unshift(async () => watch.close());
    }
    const watch =
      watches.length === 0
        ? undefined
        : (client: number) => watches[client % watches.length] as TerminalWatch;

    if (options.warmup > 0) {
      say(`warm-up: ${options.warmup} s at 8 clients (not measured)`);
      await runLevel(api, customers, watch, Math.min(8, maxLevel), options.warmup, options.decline, () => {});
      await quiet(monitorUrl);
    }
    // What the system burns with no orders (pull expiries, heartbeats, timers), per second: a level's
    // CPU per order is also shown net of it, since short levels with few orders on a loaded machine
    // would otherwise be dominated by it.
    const idleSeconds = 5;
    const idleFrom = sampleProcs(await allProcs());
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idleTo = sampleProcs(await allProcs());
    const idleCpuMsPerS = new Map<string, number>();
    for (const [name, s] of idleTo) {
      const b = idleFrom.get(name);
      if (b && s.cpu >= b.cpu) idleCpuMsPerS.set(name, ((s.cpu - b.cpu) * 1000) / idleSeconds);
    }
    const idleTotalMsPerS = [...idleCpuMsPerS.values()].reduce((a, b) => a + b, 0);
    say(`idle: ${fmt(idleTotalMsPerS, 0)} ms CPU per second over the whole system`);

    const measurements: Measurement[] = [];
    const perLevel: {
      result: LevelResult;
      cpu: Map<string, number>;
      rssMax: Map<string, number>;
      msgs?: Varz;
      load: string;
      bench: number;
      /** CPU ms per order less the idle rate over the level's duration. */
      netOfIdle: number;
    }[] = [];
    const windowUs: [number, number][] = [];
    for (const concurrency of levels) {
      const loadBefore = load();
      const names = await allProcs();
      const before = sampleProcs(names);
      const varzBefore = await varz(monitorUrl);
      const benchBefore = process.cpuUsage();
      const rssMax = new Map<string, number>();
      const fromUs = Number(process.hrtime.bigint() / 1000n);
      const result = await runLevel(
        api,
        customers,
        watch,
        concurrency,
        options.seconds,
        options.decline,
        (r, elapsed) => {
          for (const [name, s] of sampleProcs(names))
            rssMax.set(name, Math.max(rssMax.get(name) ?? 0, s.rssMiB));
          process.stderr.write(
            `  c=${concurrency} ${elapsed.toFixed(0)}/${options.seconds} s: ${r.orders} orders ` +
              `(${fmt(r.orders / elapsed, 0)}/s), p99 ${fmt(percentile(r.latencies, 99), 0)} ms, ` +
              `${r.errors} errors, load ${load()}\n`,
          );
        },
      );
      await quiet(monitorUrl);
      const toUs = Number(process.hrtime.bigint() / 1000n);
      windowUs.push([fromUs, toUs]);
      const after = sampleProcs(await allProcs());
      const varzAfter = await varz(monitorUrl);
      const benchCpu = process.cpuUsage(benchBefore);
      const cpu = new Map<string, number>();
      for (const [name, s] of after) {
        const b = before.get(name);
        // A process that restarted in between has no comparable counter.
        if (b && s.cpu >= b.cpu) cpu.set(name, ((s.cpu - b.cpu) * 1000) / Math.max(1, result.orders));
      }
      const msgs =
        varzBefore && varzAfter
          ? {
              in_msgs: (varzAfter.in_msgs - varzBefore.in_msgs) / Math.max(1, result.orders),
              out_msgs: (varzAfter.out_msgs - varzBefore.out_msgs) / Math.max(1, result.orders),
              in_bytes: (varzAfter.in_bytes - varzBefore.in_bytes) / Math.max(1, result.orders),
              out_bytes: (varzAfter.out_bytes - varzBefore.out_bytes) / Math.max(1, result.orders),
            }
          : undefined;
      const loadAfter = load();
      loads.push(`c=${concurrency}: ${loadBefore} → ${loadAfter}`);
      const benchMs = (benchCpu.user + benchCpu.system) / 1000 / Math.max(1, result.orders);
      const total = [...cpu.values()].reduce((a, b) => a + b, 0);
      const netOfIdle = total - (idleTotalMsPerS * ((toUs - fromUs) / 1e6)) / Math.max(1, result.orders);
      perLevel.push({
        result,
        cpu,
        rssMax,
        ...(msgs && { msgs }),
        load: `${loadBefore} → ${loadAfter}`,
        bench: benchMs,
        netOfIdle,
      });
      const rate = result.orders / Math.max(0.001, result.seconds);
      measurements.push({
        phase: 'orders',
        variant: `c=${concurrency}`,
        round: 1,
        count: result.orders,
        seconds: result.seconds,
        rate,
        extra: {
          p50Ms: percentile(result.latencies, 50),
          p90Ms: percentile(result.latencies, 90),
          p99Ms: percentile(result.latencies, 99),
          postP50Ms: percentile(result.postLatencies, 50),
          postP99Ms: percentile(result.postLatencies, 99),
          errors: result.errors,
          cpuMsPerOrder: total,
          cpuMsPerOrderNetOfIdle: netOfIdle,
          benchCpuMsPerOrder: benchMs,
          ...(msgs && {
            natsInMsgsPerOrder: msgs.in_msgs,
            natsOutMsgsPerOrder: msgs.out_msgs,
            natsInBytesPerOrder: msgs.in_bytes,
            natsOutBytesPerOrder: msgs.out_bytes,
          }),
          load1mAtStart: Number(loadBefore.split(' ')[0]),
        },
      });
      say(
        `c=${concurrency}: ${fmt(rate, 1)} orders/s terminal (${result.orders} orders, ${result.declined} declined, ` +
          `${result.errors} errors), place→terminal p50 ${fmt(percentile(result.latencies, 50), 0)} / ` +
          `p90 ${fmt(percentile(result.latencies, 90), 0)} / p99 ${fmt(percentile(result.latencies, 99), 0)} ms, ` +
          `POST p50 ${fmt(percentile(result.postLatencies, 50), 0)} / p99 ${fmt(percentile(result.postLatencies, 99), 0)} ms, ` +
          `${fmt(total, 2)} ms CPU/order (${fmt(netOfIdle, 2)} net of idle), load ${loadBefore} → ${loadAfter}`,
      );
      if (result.errors > 0) notes.push(`c=${concurrency} errors: ${JSON.stringify(result.errorKinds)}`);
    }

    await new Promise((r) => setTimeout(r, 3_000));
    const idleAfter = sampleProcs(await allProcs());

    // Tables: CPU per order per process, RSS idle and under load, NATS per order.
    const names = [...new Set([...idleStart.keys(), ...idleAfter.keys()])];
    const width = Math.max(...names.map((n) => n.length), 10);
    const header = `${'process'.padEnd(width)}  ${levels.map((c) => `c=${c}`.padStart(8)).join('')}${'idle/s'.padStart(8)}   (CPU ms per order; idle: ms per second)`;
    const lines = [header];
    for (const name of names)
      lines.push(
        `${name.padEnd(width)}  ${perLevel.map((l) => fmt(l.cpu.get(name) ?? NaN, 2).padStart(8)).join('')}${fmt(
          idleCpuMsPerS.get(name) ?? NaN,
          1,
        ).padStart(8)}`,
      );
    lines.push(
      `${'total'.padEnd(width)}  ${perLevel
        .map((l) =>
          fmt(
            [...l.cpu.values()].reduce((a, b) => a + b, 0),
            2,
          ).padStart(8),
        )
        .join('')}${fmt(idleTotalMsPerS, 1).padStart(8)}`,
      `${'net of idle'.padEnd(width)}  ${perLevel.map((l) => fmt(l.netOfIdle, 2).padStart(8)).join('')}`,
      `${'(load gen)'.padEnd(width)}  ${perLevel.map((l) => fmt(l.bench, 2).padStart(8)).join('')}`,
    );
    const rssHeader = `${'process'.padEnd(width)}  ${'idle'.padStart(8)}${levels.map((c) => `c=${c}`.padStart(8)).join('')}${'idle2'.padStart(8)}   (RSS MiB: after start, peak per level, after the run)`;
    const rssLines = [rssHeader];
    for (const name of names)
      rssLines.push(
        `${name.padEnd(width)}  ${fmt(idleStart.get(name)?.rssMiB ?? NaN, 0).padStart(8)}${perLevel
          .map((l) => fmt(l.rssMax.get(name) ?? NaN, 0).padStart(8))
          .join('')}${fmt(idleAfter.get(name)?.rssMiB ?? NaN, 0).padStart(8)}`,
      );
    const sum = (m: Map<string, ProcSample>) => [...m.values()].reduce((a, s) => a + s.rssMiB, 0);
    rssLines.push(
      `${'total'.padEnd(width)}  ${fmt(sum(idleStart), 0).padStart(8)}${perLevel
        .map((l) =>
          fmt(
            [...l.rssMax.values()].reduce((a, b) => a + b, 0),
            0,
          ).padStart(8),
        )
        .join('')}${fmt(sum(idleAfter), 0).padStart(8)}`,
    );
    const natsLines = [
      `NATS per order (from /varz): ${perLevel
        .map((l) =>
          l.msgs
            ? `c=${l.result.concurrency} in ${fmt(l.msgs.in_msgs)} msgs / ${fmt(l.msgs.in_bytes / 1024)} KiB, out ${fmt(l.msgs.out_msgs)} msgs / ${fmt(l.msgs.out_bytes / 1024)} KiB`
            : `c=${l.result.concurrency} –`,
        )
        .join('; ')}`,
    ];
    say('');
    for (const line of [...lines, '', ...rssLines, '', ...natsLines]) say(line);
    notes.push(
      'CPU ms per order: utime+stime from /proc/<pid>/stat of every process of the system and its descendants ' +
        '(tsx esbuild helpers), over the level until the system was quiet, divided by the orders that became terminal.',
      'RSS: VmRSS of each process and its descendants; idle = 2 s after start, idle2 = 3 s after the last level.',
      `uptime load averages (1/5/15 min): ${loads.join('; ')}`,
      ...lines.map((l) => `\`${l}\``),
      ...rssLines.map((l) => `\`${l}\``),
      ...natsLines,
    );
    if (startSeconds !== undefined)
      notes.push(`start to ready: ${fmt(startSeconds)} s (fresh data directory)`);

    // Stop (writes the profiles), then optionally start again on the same data: the warm start.
    if (system) {
      const running = system;
      cleanups.shift();
      await running.stop();
      system = undefined;
      if (options.warmStart && !options.gateway) {
        const t0 = performance.now();
        const again = await startSystem(systemConfig as SystemConfig);
        warmStartSeconds = (performance.now() - t0) / 1000;
        say(`warm start to ready: ${fmt(warmStartSeconds)} s (same data directory, ${load()})`);
        notes.push(`warm start to ready: ${fmt(warmStartSeconds)} s`);
        // Idle memory of a warm start: no initdb (a fresh PGlite directory's first start holds more).
        await new Promise((r) => setTimeout(r, 3_000));
        const warm = sampleProcs(
          again.supervisor
            .list()
            .filter((r) => r.pid !== undefined)
            .map((r) => ({ name: `${r.program}#${r.replica}`, pids: [r.pid as number] })),
        );
        await again.stop();
        const warmLines = [
          `RSS MiB idle after the warm start: ${[...warm]
            .map(([name, s]) => `${name} ${fmt(s.rssMiB, 0)}`)
            .join(', ')}; total ${fmt(sum(warm), 0)}`,
        ];
        for (const line of warmLines) say(line);
        notes.push(...warmLines);
      }
    }

    if (profiled.length > 0) {
      for (const name of profiled) {
        const dir = join(profileDir, name);
        let files: string[] = [];
        try {
          files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
        } catch {
          // none written
        }
        for (const file of files) {
          const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile;
          const from = Math.min(...windowUs.map((w) => w[0]));
          const to = Math.max(...windowUs.map((w) => w[1]));
          say(`\nprofile ${name} (${join(dir, file)}):`);
          for (const line of topFunctions(profile, from, to, 25)) say(`  ${line}`);
        }
        if (files.length === 0) say(`\nprofile ${name}: no .cpuprofile written in ${dir}`);
      }
    }

    const best = measurements.reduce((a, b) => (b.rate > a.rate ? b : a), measurements[0] as Measurement);
    const headline = `orders: ${fmt(best.rate, 0)} orders/s, p99 ${fmt(best.extra?.p99Ms ?? NaN, 0)} ms, ${fmt(
      best.extra?.cpuMsPerOrder ?? NaN,
      1,
    )} ms CPU/order`;
    notes.push(`idle CPU: ${fmt(idleTotalMsPerS, 1)} ms per second over the whole system`);
    const machine = await machineInfo(await natsServerBinaryVersion());
    const paths = await writeReport({
      name: 'orders',
      title: `Orders end to end (${options.database}${options.gateway ? ', running system' : ''})`,
      startedAt: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      machine,
      params: options,
      measurements,
      summary: measurements.map((m) => ({ phase: m.phase, variant: m.variant, rate: m.rate })),
      headline,
      notes,
    });
    say(`\nreport: ${paths.join(', ')}`);
    say(`(best level c=${best.variant.slice(2)}; load ${load()})`);
    console.log(headline);
  } finally {
    for (const cleanup of cleanups) await cleanup().catch((e: unknown) => console.error(e));
  }
}
