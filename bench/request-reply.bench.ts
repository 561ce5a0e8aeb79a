// `npm run bench -- request-reply`: request-reply with a fixed number of requests in flight to a
// responder in ANOTHER process: raw nats.js `request()` against a raw responder, and the toolkit's
// RpcClient against its RpcServer (typed validation of request and response on both sides).
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { connectNats, RpcClient } from '@orderflow/messaging';
import { quoteEndpoint, quoteRequest, type QuoteRequest, type QuoteResponse } from './fixtures.ts';
import {
  benchDir,
  benchServer,
  formatRate,
  machineInfo,
  parseArgs,
  Progress,
  profiled,
  serverCpuSeconds,
  settle,
  summarise,
  syscallCounts,
  finishReport,
  type Measurement,
  type Report,
} from './support.ts';

const defaults = {
  /** Requests per round and variant. */
  count: 100_000,
  /** Requests in flight at once. */
  inflight: 100,
  rounds: 3,
  /** Requests before the timed part of each round (JIT, connections, caches). */
  warmup: 5_000,
  /** Comma-separated subset of raw,toolkit. */
  variants: 'raw,toolkit',
  /** Directory for a CPU profile of each responder process (node --cpu-prof); empty = none. */
  profileResponder: '',
  /** Directory for a CPU profile of the client over each timed run (node:inspector); empty = none. */
  profileClient: '',
  help: false,
};
type Options = typeof defaults;
type Variant = 'raw' | 'toolkit';

const HELP = `request-reply benchmark: RpcClient/RpcServer vs raw nats.js request(), responder in another process

  --count N     requests per round and variant (default ${defaults.count})
  --inflight N  requests in flight (default ${defaults.inflight})
  --rounds N    rounds; variants alternate who goes first (default ${defaults.rounds})
  --warmup N    untimed requests before each round (default ${defaults.warmup})
  --variants L  raw,toolkit (default both)
  --profileResponder DIR  write a .cpuprofile of each responder process into DIR
  --profileClient DIR     write a .cpuprofile of the client's timed part of each round into DIR

Uses NATS_URL when set, else starts nats-server on a free port.`;

interface Responder {
  readonly pid: number;
  stop(): Promise<void>;
}

/** Spawns `node --import tsx bench/rpc-responder.ts` and waits for its "ready" line. */
async function startResponder(
  url: string,
  mode: Variant,
  subject: string,
  profileDir: string,
): Promise<Responder> {
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const child: ChildProcess = spawn(
    process.execPath,
    [...profile, '--import', 'tsx', join(benchDir, 'rpc-responder.ts'), url, mode, subject],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) =>
      line === 'ready' ? resolve() : reject(new Error(`responder said "${line}"`)),
    );
    child.once('exit', (code) => reject(new Error(`responder exited with ${code} before it was ready`)));
  });
  return {
    pid: child.pid!,
    async stop() {
      child.stdin?.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

type Call = (request: QuoteRequest) => Promise<QuoteResponse>;

/** Keeps `inflight` calls outstanding until `count` completed; records each call's latency in µs. */
function drive(
  count: number,
  inflight: number,
  call: Call,
  progress: Progress,
  latencies?: Float64Array,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let next = 0;
    let done = 0;
    const launch = (): void => {
      const i = next++;
      const started = latencies ? performance.now() : 0;
      call(quoteRequest(i)).then((response) => {
        if (response.totalCents <= 0) return reject(new Error('bad response'));
        if (latencies) latencies[i] = (performance.now() - started) * 1000;
        progress.tick();
        if (++done === count) resolve();
        else if (next < count) launch();
      }, reject);
    };
    for (let k = 0; k < Math.min(inflight, count); k++) launch();
  });
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

interface Client {
  call: Call;
  close(): Promise<void>;
}

async function client(url: string, variant: Variant, subject: string): Promise<Client> {
  if (variant === 'raw') {
    // What a good nats.js user writes: request() (muxed inbox), async traces off.
    const nc: NatsConnection = await connect({ servers: url, name: 'bench-rr-raw', noAsyncTraces: true });
    return {
      call: async (request) =>
        (await nc.request(subject, JSON.stringify(request), { timeout: 5_000 })).json<QuoteResponse>(),
      close: () => nc.close(),
    };
  }
  const { nc } = await connectNats({ servers: url, name: 'bench-rr-toolkit' });
  const rpc = new RpcClient(nc);
  const endpoint = quoteEndpoint(subject);
  return {
    call: (request) => rpc.request(endpoint, request, { timeoutMs: 5_000 }),
    async close() {
      rpc.close();
      await nc.close();
    },
  };
}

async function measure(
  options: Options,
  url: string,
  variant: Variant,
  round: number,
  serverPid: number | undefined,
): Promise<Measurement> {
  const subject = `bench.rpc.${variant}.${round}`;
  const responder = await startResponder(url, variant, subject, options.profileResponder);
  const c = await client(url, variant, subject);
  try {
    await drive(options.warmup, options.inflight, c.call, new Progress('warm-up', 0));
    await settle(100);
    const progress = new Progress(`round ${round} ${variant}`, options.count);
    const latencies = new Float64Array(options.count);
    const responderBefore = serverCpuSeconds(responder.pid);
    const serverBefore = serverCpuSeconds(serverPid);
    const syscallsBefore = [process.pid, responder.pid].map(syscallCounts);
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await profiled(options.profileClient, `client-${variant}-r${round}`, () =>
      drive(options.count, options.inflight, c.call, progress, latencies),
    );
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const responderAfter = serverCpuSeconds(responder.pid);
    const serverAfter = serverCpuSeconds(serverPid);
    const syscallsAfter = [process.pid, responder.pid].map(syscallCounts);
    progress.done();
    latencies.sort();
    const extra: Record<string, number> = {
      p50Us: Math.round(percentile(latencies, 50)),
      p99Us: Math.round(percentile(latencies, 99)),
      clientCpuUsPerReq: (cpu.user + cpu.system) / options.count,
    };
    if (responderBefore !== undefined && responderAfter !== undefined) {
      extra.responderCpuUsPerReq = ((responderAfter - responderBefore) * 1e6) / options.count;
    }
    if (serverBefore !== undefined && serverAfter !== undefined) {
      extra.serverCpuUsPerReq = ((serverAfter - serverBefore) * 1e6) / options.count;
    }
    (['client', 'responder'] as const).forEach((who, i) => {
      const before = syscallsBefore[i];
      const after = syscallsAfter[i];
      if (before && after) extra[`${who}WritesPerReq`] = (after.writes - before.writes) / options.count;
    });
    const m: Measurement = {
      phase: 'request-reply',
      variant,
      round,
      count: options.count,
      seconds,
      rate: options.count / seconds,
      extra,
    };
    console.log(
      `  ${variant.padEnd(8)} ${formatRate(m.rate).padStart(8)} req/s  p50 ${extra.p50Us} µs  p99 ${extra.p99Us} µs  ` +
        `CPU µs/req: client ${extra.clientCpuUsPerReq?.toFixed(1)}, responder ${extra.responderCpuUsPerReq?.toFixed(1) ?? '?'}, ` +
        `nats-server ${extra.serverCpuUsPerReq?.toFixed(1) ?? '?'}; write(2) per req: client ` +
        `${extra.clientWritesPerReq?.toFixed(3) ?? '?'}, responder ${extra.responderWritesPerReq?.toFixed(3) ?? '?'}`,
    );
    return m;
  } finally {
    await c.close();
    await responder.stop();
  }
}

export async function run(args: string[]): Promise<void> {
  const options = parseArgs(args, defaults);
  if (options.help) {
    console.log(HELP);
    return;
  }
  const names = options.variants.split(',').map((v) => v.trim());
  for (const v of names) if (v !== 'raw' && v !== 'toolkit') throw new Error(`unknown variant "${v}"`);
  const variants = names as Variant[];
  const startedAt = new Date();
  const server = await benchServer();
  try {
    const probe = await connect({ servers: server.url });
    const version = probe.info?.version ?? 'unknown';
    await probe.close();
    console.log(
      `request-reply: ${options.count} requests × ${options.rounds} rounds, ${options.inflight} in flight, ` +
        `responder in another process; nats-server ${version} at ${server.url}`,
    );
    const measurements: Measurement[] = [];
    for (let round = 1; round <= options.rounds; round++) {
      console.log(`round ${round}/${options.rounds}`);
      for (const variant of round % 2 === 1 ? variants : [...variants].reverse()) {
        measurements.push(await measure(options, server.url, variant, round, server.pid));
      }
    }
    const summary = summarise(measurements);
    const rawRate = summary.find((s) => s.variant === 'raw')?.rate ?? NaN;
    for (const s of summary) if (s.variant !== 'raw') s.ratio = s.rate / rawRate;
    const toolkitRate = summary.find((s) => s.variant === 'toolkit')?.rate ?? NaN;
    console.log('\nmedians:');
    for (const s of summary) {
      console.log(
        `  ${s.variant.padEnd(8)} ${formatRate(s.rate).padStart(8)} req/s` +
          (s.ratio === undefined ? '' : `  (${s.ratio.toFixed(2)}× raw)`),
      );
    }
    const headline = `request-reply: toolkit ${Math.round(toolkitRate)} req/s, raw ${Math.round(rawRate)} req/s, ratio ${(toolkitRate / rawRate).toFixed(2)}`;
    const report: Report = {
      name: 'request-reply',
      title: 'Request-reply: RpcClient/RpcServer vs raw nats.js request()',
      startedAt: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      machine: await machineInfo(version),
      params: options,
      measurements,
      summary,
      headline,
      notes: [
        'raw: nc.request(subject, JSON.stringify(req), { timeout }) then msg.json(); responder: queue subscription with a callback, msg.json(), msg.respond(JSON.stringify(res)); both connections with noAsyncTraces.',
        'toolkit: RpcClient.request(endpoint, req) (request validated, response validated) against RpcServer.serve (request validated, response validated, $SRV stats).',
        'The responder is a separate Node process (bench/rpc-responder.ts), started per round and variant, warmed up before timing.',
        'Client, responder and nats-server share the machine: CPU µs per request show where the time goes.',
      ],
    };
    await finishReport(report);
  } finally {
    await server.dispose();
  }
}
