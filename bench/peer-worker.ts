// The worker protocol of `npm run bench -- peers` (bench/peers.bench.ts), shared by every worker:
// bench/peer-toolkit.ts and the peers' plain JavaScript workers in bench/peers/ (run with tsx's loader
// so they can import this file; the peers' own code is not transformed beyond that).
//
// usage: node --import tsx <worker> <role> <nats-url> <name> <payloads.json> <inflight> <seconds> <warmup>
// roles: responder | requester | consumer | publisher
// stdout: `ready` once set up (clients after their untimed warm-up), `progress <n>` every 500 ms while
// counting, `result <json>` (WorkerResult) when a client's timed run ends, `done <epochMs> <n>` when a
// consumer has handled at least the last `target <n>` it was given. stdin: `go` starts a client's timed
// run, `target <n>` arms a consumer; the end of stdin (or SIGTERM) stops the worker.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { BenchOrder, QuoteRequest } from './payloads.ts';

export { quote } from './payloads.ts';

export const ROLES = ['responder', 'requester', 'consumer', 'publisher'] as const;
export type Role = (typeof ROLES)[number];

/** The payloads every worker cycles through (written once per run by the benchmark). */
export interface Payloads {
  requests: QuoteRequest[];
  orders: BenchOrder[];
}

/** What a client worker reports after its timed run. */
export interface WorkerResult {
  count: number;
  seconds: number;
  /** The client process's CPU per operation over the timed run. */
  cpuUsPerOp: number;
  /** Requesters only: latency percentiles of the timed run. */
  p50Us?: number;
  p99Us?: number;
}

export interface WorkerContext {
  url: string;
  /** A name unique to the run and variant: the service, subject prefix, channel or stream. */
  name: string;
  inflight: number;
  seconds: number;
  warmup: number;
  request(i: number): QuoteRequest;
  order(i: number): BenchOrder;
}

interface Closable {
  close: () => Promise<unknown>;
}

/** One implementation per role; a worker implements the roles its framework offers. */
export interface WorkerImpl {
  responder?(context: WorkerContext): Promise<Closable>;
  requester?(context: WorkerContext): Promise<Closable & { call(i: number): Promise<unknown> }>;
  /** `handled()` once per message, when the framework will acknowledge it. */
  consumer?(context: WorkerContext, handled: () => void): Promise<Closable>;
  publisher?(context: WorkerContext): Promise<Closable & { publish(i: number): Promise<unknown> }>;
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
export const nowMs = (): number => performance.timeOrigin + performance.now();

interface DriveOptions {
  count?: number;
  seconds?: number;
  inflight: number;
  call: (i: number) => Promise<unknown>;
  latencies?: number[];
  onDone?: (done: number) => void;
}

/** Keeps `inflight` calls outstanding until `count` are done or `seconds` have passed. */
function drive(options: DriveOptions): Promise<{ count: number; seconds: number }> {
  const { count = Infinity, seconds = Infinity, inflight, call, latencies, onDone } = options;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const deadline = started + seconds * 1000;
    let next = 0;
    let done = 0;
    let outstanding = 0;
    if (count === 0) return resolve({ count: 0, seconds: 0 });
    const launch = (): void => {
      const i = next++;
      outstanding++;
      const t0 = latencies ? performance.now() : 0;
      call(i).then(() => {
        outstanding--;
        latencies?.push((performance.now() - t0) * 1000);
        onDone?.(++done);
        if (next < count && performance.now() < deadline) launch();
        else if (outstanding === 0) resolve({ count: done, seconds: (performance.now() - started) / 1000 });
      }, reject);
    };
    for (let k = 0; k < Math.min(inflight, count); k++) launch();
  });
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const say = (line: string): void => void process.stdout.write(`${line}\n`);

/** Runs the role named on the command line (the protocol above) with `impl`. */
export async function worker(impl: WorkerImpl): Promise<void> {
  const [role, url, name, payloadsPath, inflight, seconds, warmup] = process.argv.slice(2);
  if (!ROLES.includes(role as Role) || !impl[role as Role] || !url || !name || !payloadsPath) {
    console.error(
      `usage: <worker> <${Object.keys(impl).join('|')}> <nats-url> <name> <payloads.json> <inflight> <seconds> <warmup>`,
    );
    process.exit(2);
  }
  const payloads = JSON.parse(readFileSync(payloadsPath, 'utf8')) as Payloads;
  const context: WorkerContext = {
    url,
    name,
    inflight: Number(inflight),
    seconds: Number(seconds),
    warmup: Number(warmup),
    request: (i) => payloads.requests[i % payloads.requests.length] as QuoteRequest,
    order: (i) => payloads.orders[i % payloads.orders.length] as BenchOrder,
  };

  let go!: () => void;
  const started = new Promise<void>((resolve) => (go = resolve));
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  let target = Infinity;
  let handled = 0;
  let count = 0;
  const check = (): void => {
    if (handled < target) return;
    say(`done ${nowMs()} ${handled}`);
    target = Infinity;
  };
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const [command, arg] = line.split(' ');
    if (command === 'go') go();
    else if (command === 'target') {
      target = Number(arg);
      check();
    }
  });
  lines.on('close', () => stop());
  process.on('SIGTERM', () => stop());
  let reported = -1;
  const progress = setInterval(() => {
    const n = role === 'consumer' ? handled : count;
    if (n !== reported) say(`progress ${(reported = n)}`);
  }, 500);

  let instance: Closable;
  switch (role as Role) {
    case 'responder':
      instance = await impl.responder!(context);
      say('ready');
      break;
    case 'consumer':
      instance = await impl.consumer!(context, () => {
        if (++handled >= target) check();
      });
      say('ready');
      break;
    case 'requester':
    case 'publisher': {
      const client =
        role === 'requester'
          ? await impl.requester!(context).then((c) => ({
              close: () => c.close(),
              op: (i: number) => c.call(i),
            }))
          : await impl.publisher!(context).then((c) => ({
              close: () => c.close(),
              op: (i: number) => c.publish(i),
            }));
      instance = client;
      await drive({ count: context.warmup, inflight: context.inflight, call: client.op });
      say('ready');
      await started;
      const latencies: number[] | undefined = role === 'requester' ? [] : undefined;
      const cpu = process.cpuUsage();
      const offset = context.warmup;
      const run = await drive({
        seconds: context.seconds,
        inflight: context.inflight,
        call: (i) => client.op(offset + i),
        latencies,
        onDone: (n) => (count = n),
      });
      const used = process.cpuUsage(cpu);
      const result: WorkerResult = { ...run, cpuUsPerOp: (used.user + used.system) / run.count };
      if (latencies) {
        latencies.sort((a, b) => a - b);
        result.p50Us = Math.round(percentile(latencies, 50));
        result.p99Us = Math.round(percentile(latencies, 99));
      }
      say(`result ${JSON.stringify(result)}`);
      break;
    }
  }
  await stopped;
  clearInterval(progress);
  await instance.close().catch(() => undefined);
  process.exit(0);
}
