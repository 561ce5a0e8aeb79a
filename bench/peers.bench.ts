// `npm run bench -- peers`: the toolkit side by side with its peers in one run — Moleculer 0.14 (NATS
// transporter; @moleculer/channels on JetStream) and NestJS 11 microservices (NATS transport) — on
// request-reply (a fixed number in flight to a responder in another process) and durable events
// (a publisher process and a consumer process with a durable, acked consumer). The peers are
// installed into bench/peers/ (its own package.json and lockfile, outside the workspaces) on first run.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect } from '@nats-io/transport-node';
import { benchOrder, quoteRequest } from './payloads.ts';
import { nowMs, type Payloads, type Role, type WorkerResult } from './peer-worker.ts';
import {
  benchDir,
  benchServer,
  formatRate,
  machineInfo,
  parseArgs,
  serverCpuSeconds,
  settle,
  summarise,
  finishReport,
  type Measurement,
  type Report,
} from './support.ts';

const defaults = {
  /** Seconds of each timed run. */
  seconds: 10,
  rounds: 1,
  /** Requests in flight (request-reply). */
  inflight: 100,
  /** Unsettled publishes at once (events). */
  publishInflight: 256,
  /** Untimed requests / events before each timed run. */
  warmup: 5_000,
  /** Comma-separated subset of toolkit,moleculer,nest. */
  variants: 'toolkit,moleculer,nest',
  /** Comma-separated subset of request-reply,events. */
  workloads: 'request-reply,events',
  help: false,
};
type Options = typeof defaults;

const VARIANTS = ['toolkit', 'moleculer', 'nest'] as const;
type Variant = (typeof VARIANTS)[number];
const WORKLOADS = ['request-reply', 'events'] as const;
type Workload = (typeof WORKLOADS)[number];

/** What each variant runs, per workload, as the notes and the output name it. */
const DESCRIPTION: Record<Variant, Record<Workload, string>> = {
  toolkit: {
    'request-reply': 'RpcClient.request → RpcServer.serve (request and response validated both sides)',
    events:
      'NatsTransport.publish (JetStream, acked) → NatsTransport.consume (durable, default middleware, explicit ack; prefetch 1000, max_ack_pending 10000)',
  },
  moleculer: {
    'request-reply': 'broker.call → action, NATS transporter, JSON serializer',
    events:
      '@moleculer/channels NATS adapter: sendToChannel (JetStream, acked) → channel handler in a group (durable push consumer, ack after the handler; maxInFlight = max_ack_pending 10000)',
  },
  nest: {
    'request-reply': 'ClientNats.send → @MessagePattern handler, NATS transport',
    events:
      'ClientNats.emit → @EventPattern handler: core NATS, NOT durable (no JetStream in the Nest NATS transport; no ack, lost without a subscriber); a flush per window',
  },
};

const HELP = `peers benchmark: the toolkit vs Moleculer and NestJS microservices on NATS, in one run

  --seconds N          seconds of each timed run (default ${defaults.seconds})
  --rounds N           rounds; variants rotate who goes first (default ${defaults.rounds})
  --inflight N         requests in flight, request-reply (default ${defaults.inflight})
  --publishInflight N  unsettled publishes, events (default ${defaults.publishInflight})
  --warmup N           untimed requests / events before each run (default ${defaults.warmup})
  --variants LIST      toolkit,moleculer,nest (default all)
  --workloads LIST     request-reply,events (default both)

Every side runs in its own process. The peers are installed into bench/peers/ on first run
(npm ci --prefix bench/peers). Uses NATS_URL when set, else starts nats-server (JetStream on).`;

const peersDir = join(benchDir, 'peers');

/** `npm ci --prefix bench/peers` when its node_modules is absent; the peers are not in the main install. */
async function ensurePeers(): Promise<void> {
  if (existsSync(join(peersDir, 'node_modules'))) return;
  process.stderr.write('  installing the peers: npm ci --prefix bench/peers (first run only)…\n');
  const started = performance.now();
  const child = spawn('npm', ['ci', '--prefix', peersDir, '--no-audit', '--no-fund'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`npm ci --prefix bench/peers failed (exit ${code})`);
  process.stderr.write(`  peers installed in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
}

/** A worker process speaking the protocol of bench/peer-worker.ts. */
class Worker {
  readonly pid: number;
  /** The last `progress <n>` the worker printed. */
  progress = 0;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #waiting: { prefix: string; resolve(rest: string): void; reject(error: Error): void }[] = [];
  readonly #label: string;

  constructor(variant: Variant, role: Role, args: string[], onProgress?: (n: number) => void) {
    const script =
      variant === 'toolkit' ? join(benchDir, 'peer-toolkit.ts') : join(peersDir, `${variant}.mjs`);
    this.#label = `${variant} ${role}`;
    this.#child = spawn(process.execPath, ['--import', 'tsx', script, role, ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.pid = this.#child.pid!;
    this.#exited = new Promise((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.once('exit', (code) => {
      for (const w of this.#waiting.splice(0)) w.reject(new Error(`${this.#label} exited with ${code}`));
    });
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      const space = line.indexOf(' ');
      const word = space === -1 ? line : line.slice(0, space);
      const rest = space === -1 ? '' : line.slice(space + 1);
      if (word === 'progress') {
        this.progress = Number(rest);
        onProgress?.(this.progress);
        return;
      }
      const at = this.#waiting.findIndex((w) => w.prefix === word);
      if (at !== -1) this.#waiting.splice(at, 1)[0]?.resolve(rest);
    });
  }

  /** The rest of the next line that starts with `word` (a line that nobody awaits is dropped). */
  next(word: string, timeoutMs = 120_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.#waiting.indexOf(entry);
        if (at !== -1) this.#waiting.splice(at, 1);
        reject(new Error(`${this.#label}: no "${word}" within ${timeoutMs} ms`));
      }, timeoutMs);
      const entry = {
        prefix: word,
        resolve: (rest: string) => (clearTimeout(timer), resolve(rest)),
        reject: (error: Error) => (clearTimeout(timer), reject(error)),
      };
      this.#waiting.push(entry);
    });
  }

  send(line: string): void {
    this.#child.stdin?.write(`${line}\n`);
  }

  async stop(): Promise<void> {
    this.#child.stdin?.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

interface Context {
  options: Options;
  url: string;
  payloadsPath: string;
  serverPid: number | undefined;
}

const cpu = (pid: number | undefined): number => serverCpuSeconds(pid) ?? NaN;

/**
 * A progress line over a timed run, fed by a worker's `progress <n>` lines (rewritten in place on a
 * terminal, one line every few seconds otherwise); `start()` when the timed run begins.
 */
class RunProgress {
  readonly #label: string;
  readonly #seconds: number;
  readonly #tty = process.stderr.isTTY;
  #started = 0;
  #count = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(label: string, seconds: number) {
    this.#label = label;
    this.#seconds = seconds;
  }

  start(): void {
    this.#started = performance.now();
    this.#timer = setInterval(() => this.#print(), this.#tty ? 250 : 3_000);
  }

  /** The operations done since `start()`. */
  set(count: number): void {
    this.#count = count;
  }

  #print(): void {
    const elapsed = (performance.now() - this.#started) / 1000;
    const line = `  ${this.#label}: ${elapsed.toFixed(0)}/${this.#seconds} s, ${this.#count} done, ${formatRate(this.#count / elapsed)}/s`;
    process.stderr.write(this.#tty ? `\r\x1b[K${line}` : `${line}\n`);
  }

  done(): void {
    clearInterval(this.#timer);
    if (this.#tty) process.stderr.write('\r\x1b[K');
  }
}

function workerArgs(context: Context, name: string, inflight: number): string[] {
  const { options } = context;
  return [
    context.url,
    name,
    context.payloadsPath,
    String(inflight),
    String(options.seconds),
    String(options.warmup),
  ];
}

async function requestReply(context: Context, variant: Variant, round: number): Promise<Measurement> {
  const args = workerArgs(context, `benchpeers.${variant}.r${round}`, context.options.inflight);
  const progress = new RunProgress(`round ${round} request-reply ${variant}`, context.options.seconds);
  const responder = new Worker(variant, 'responder', args);
  let requester: Worker | undefined;
  try {
    await responder.next('ready');
    requester = new Worker(variant, 'requester', args, (n) => progress.set(n));
    await requester.next('ready');
    await settle(200);
    const before = [cpu(responder.pid), cpu(context.serverPid)];
    progress.start();
    requester.send('go');
    const result = JSON.parse(await requester.next('result')) as WorkerResult;
    const after = [cpu(responder.pid), cpu(context.serverPid)];
    progress.done();
    const perOp = (i: number): number =>
      (((after[i] as number) - (before[i] as number)) * 1e6) / result.count;
    const extra: Record<string, number> = {
      p50Us: result.p50Us ?? NaN,
      p99Us: result.p99Us ?? NaN,
      requesterCpuUsPerReq: result.cpuUsPerOp,
      responderCpuUsPerReq: perOp(0),
      serverCpuUsPerReq: perOp(1),
    };
    const m: Measurement = {
      phase: 'request-reply',
      variant,
      round,
      count: result.count,
      seconds: result.seconds,
      rate: result.count / result.seconds,
      extra,
    };
    console.log(
      `  request-reply ${variant.padEnd(9)} ${formatRate(m.rate).padStart(8)} req/s  p50 ${extra.p50Us} µs  p99 ${extra.p99Us} µs  ` +
        `CPU µs/req: requester ${extra.requesterCpuUsPerReq?.toFixed(1)}, responder ${extra.responderCpuUsPerReq?.toFixed(1)}, ` +
        `nats-server ${extra.serverCpuUsPerReq?.toFixed(1)}`,
    );
    return m;
  } finally {
    progress.done();
    await requester?.stop();
    await responder.stop();
  }
}

/**
 * The publisher publishes for `seconds` while the consumer handles; timed from `go` until the
 * consumer has handled every event published in that time (or gave up after 60 s: counted lost).
 */
async function events(context: Context, variant: Variant, round: number): Promise<Measurement> {
  const { options } = context;
  const args = workerArgs(context, `benchpeers_${variant}_r${round}`, options.publishInflight);
  const progress = new RunProgress(`round ${round} events ${variant} (handled)`, options.seconds);
  let base = 0;
  const consumer = new Worker(variant, 'consumer', args, (n) => progress.set(n - base));
  let publisher: Worker | undefined;
  try {
    await consumer.next('ready');
    publisher = new Worker(variant, 'publisher', args);
    await publisher.next('ready'); // after its warm-up publishes
    consumer.send(`target ${options.warmup}`);
    base = Number((await consumer.next('done', 60_000)).split(' ')[1]);
    await settle(200);
    const before = [cpu(publisher.pid), cpu(consumer.pid), cpu(context.serverPid)];
    const started = nowMs();
    progress.start();
    publisher.send('go');
    const result = JSON.parse(await publisher.next('result')) as WorkerResult;
    const published = nowMs();
    const target = base + result.count;
    consumer.send(`target ${target}`);
    let finished: number;
    let handled: number;
    try {
      const [at, n] = (await consumer.next('done', 60_000)).split(' ');
      finished = Number(at);
      handled = Number(n) - base;
    } catch {
      finished = nowMs();
      handled = consumer.progress - base;
    }
    const after = [cpu(publisher.pid), cpu(consumer.pid), cpu(context.serverPid)];
    progress.done();
    const seconds = (finished - started) / 1000;
    const perOp = (i: number): number =>
      (((after[i] as number) - (before[i] as number)) * 1e6) / result.count;
    const extra: Record<string, number> = {
      published: result.count,
      publishRate: Math.round(result.count / ((published - started) / 1000)),
      lost: Math.max(0, result.count - handled),
      duplicates: Math.max(0, handled - result.count),
      publisherCpuUsPerMsg: perOp(0),
      consumerCpuUsPerMsg: perOp(1),
      serverCpuUsPerMsg: perOp(2),
    };
    const m: Measurement = {
      phase: 'events',
      variant,
      round,
      count: Math.min(handled, result.count),
      seconds,
      rate: Math.min(handled, result.count) / seconds,
      extra,
    };
    console.log(
      `  events        ${variant.padEnd(9)} ${formatRate(m.rate).padStart(8)} msg/s end to end  ` +
        `(published ${result.count} at ${formatRate(extra.publishRate ?? NaN)}/s, lost ${extra.lost}, duplicates ${extra.duplicates}; ` +
        `CPU µs/msg: publisher ${extra.publisherCpuUsPerMsg?.toFixed(1)}, consumer ${extra.consumerCpuUsPerMsg?.toFixed(1)}, ` +
        `nats-server ${extra.serverCpuUsPerMsg?.toFixed(1)})`,
    );
    return m;
  } finally {
    progress.done();
    await publisher?.stop();
    await consumer.stop();
  }
}

function list<T extends string>(value: string, allowed: readonly T[], what: string): T[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item as T))
      throw new Error(`unknown ${what} "${item}" (known: ${allowed.join(', ')})`);
  }
  return items as T[];
}

export async function run(args: string[]): Promise<void> {
  const options = parseArgs(args, defaults);
  if (options.help) {
    console.log(HELP);
    return;
  }
  const variants = list<Variant>(options.variants, VARIANTS, 'variant');
  const workloads = list<Workload>(options.workloads, WORKLOADS, 'workload');
  if (variants.some((v) => v !== 'toolkit')) await ensurePeers();
  const startedAt = new Date();
  const dir = await mkdtemp(join(tmpdir(), 'orderflow-bench-peers-'));
  const server = await benchServer();
  try {
    const payloads: Payloads = {
      requests: Array.from({ length: 1_000 }, (_, i) => quoteRequest(i)),
      orders: Array.from({ length: 1_000 }, (_, i) => benchOrder(i)),
    };
    const payloadsPath = join(dir, 'payloads.json');
    await writeFile(payloadsPath, JSON.stringify(payloads));
    const probe = await connect({ servers: server.url });
    const version = probe.info?.version ?? 'unknown';
    await probe.close();
    const context: Context = { options, url: server.url, payloadsPath, serverPid: server.pid };
    console.log(
      `peers: ${workloads.join(' and ')}, ${options.seconds} s per run × ${options.rounds} rounds, ` +
        `${options.inflight} requests / ${options.publishInflight} publishes in flight, every side in its own process; ` +
        `nats-server ${version} at ${server.url}${server.owned ? ' (started for this run)' : ''}`,
    );
    const measurements: Measurement[] = [];
    for (let round = 1; round <= options.rounds; round++) {
      console.log(`round ${round}/${options.rounds}`);
      // Rotate who goes first, so no variant always meets a warmer (or busier) machine.
      const shift = (round - 1) % variants.length;
      const ordered = [...variants.slice(shift), ...variants.slice(0, shift)];
      for (const workload of workloads) {
        for (const variant of ordered) {
          await settle(500);
          measurements.push(await (workload === 'events' ? events : requestReply)(context, variant, round));
        }
      }
    }

    const summary = summarise(measurements);
    for (const s of summary) {
      const toolkit = summary.find((t) => t.phase === s.phase && t.variant === 'toolkit');
      if (toolkit && s.variant !== 'toolkit') s.ratio = s.rate / toolkit.rate;
    }
    console.log('\nmedians (ratio = peer / toolkit):');
    for (const s of summary) {
      console.log(
        `  ${s.phase.padEnd(13)} ${s.variant.padEnd(9)} ${formatRate(s.rate).padStart(8)} ${s.phase === 'events' ? 'msg' : 'req'}/s` +
          (s.ratio === undefined ? '' : `  (${s.ratio.toFixed(2)}× the toolkit)`) +
          (s.phase === 'events' && s.variant === 'nest' ? '  core NATS, not durable' : ''),
      );
    }
    const rate = (phase: string, variant: Variant): string => {
      const s = summary.find((r) => r.phase === phase && r.variant === variant);
      if (!s) return '';
      const notes = [
        ...(s.ratio === undefined ? [] : [`${s.ratio.toFixed(2)}×`]),
        ...(phase === 'events' && variant === 'nest' ? ['not durable'] : []),
      ];
      return `${variant} ${Math.round(s.rate)}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
    };
    const headline = `peers: ${workloads
      .map((w) => `${w} ${variants.map((v) => rate(w, v)).join(', ')} ${w === 'events' ? 'msg' : 'req'}/s`)
      .join('; ')}`;
    const report: Report = {
      name: 'peers',
      title: 'Side by side with peers: the toolkit, Moleculer, NestJS microservices on NATS',
      startedAt: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      machine: await machineInfo(version),
      params: options,
      measurements,
      summary,
      headline,
      notes: [
        ...variants.flatMap((v) => workloads.map((w) => `${v}, ${w}: ${DESCRIPTION[v][w]}.`)),
        'Versions: bench/peers/package.json (moleculer 0.14, @moleculer/channels 0.1, @nestjs/* 11, nats 2.29); Moleculer 0.15 needs Node 22.',
        'Every side is its own Node process (bench/peer-toolkit.ts, bench/peers/*.mjs, the protocol in bench/peer-worker.ts); the same payloads (bench/payloads.ts) and the same drivers for all.',
        'request-reply: the requester keeps `inflight` requests outstanding for `seconds`; events: the publisher keeps `publishInflight` publishes unsettled for `seconds`, timed until the consumer has handled all of them.',
        'All processes and nats-server share the machine with whatever else runs on it: see the load average; ratios from one run are the figure to quote.',
      ],
    };
    await finishReport(report);
  } finally {
    await server.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}
