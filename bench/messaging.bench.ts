// `npm run bench -- messaging`: JetStream publish and consume through the toolkit (NatsTransport with
// its default middleware: metrics, logging, retry/dead letter, decode + schema validation, tracing)
// against what a good raw @nats-io/jetstream user writes, in the same run, interleaved by round.
import {
  AckPolicy,
  jetstream,
  jetstreamManager,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { connectNats, DeadLetterTopology, NatsTransport, on } from '@orderflow/messaging';
import { BenchOrderPlaced, benchOrder, type BenchOrder } from './fixtures.ts';
import {
  benchServer,
  formatRate,
  machineInfo,
  Progress,
  parseArgs,
  profiled,
  serverCpuSeconds,
  settle,
  summarise,
  syscallCounts,
  writeReport,
  type Measurement,
  type Report,
} from './support.ts';

const defaults = {
  /** Messages per phase and variant. */
  count: 50_000,
  /** Rounds; each phase alternates which variant goes first. Figures are medians over rounds. */
  rounds: 3,
  /** Unacknowledged publishes at once (both variants). */
  inflight: 256,
  /** Messages pulled per request: raw `consume({ max_messages })`, toolkit `prefetch`. */
  batch: 1_000,
  /** `max_ack_pending` of both durable consumers. */
  maxAckPending: 10_000,
  /** Comma-separated subset of publish,consume,both. */
  phases: 'publish,consume,both',
  /** Comma-separated subset of raw,toolkit,toolkit-batch (publishBatch; publish phase only). */
  variants: 'raw,toolkit,toolkit-batch',
  /** Directory for a CPU profile of each timed phase (this process, timed part only); empty = none. */
  profile: '',
  help: false,
};
type Options = typeof defaults;

const PHASE_TITLE = { publish: 'publish only', consume: 'consume only', both: 'publish + consume' } as const;
type Phase = keyof typeof PHASE_TITLE;
type Variant = 'raw' | 'toolkit' | 'toolkit-batch';

const HELP = `messaging benchmark: JetStream through the toolkit vs raw @nats-io/jetstream

  --count N          messages per phase and variant (default ${defaults.count})
  --rounds N         rounds, variants alternate who goes first (default ${defaults.rounds})
  --inflight N       unacked publishes at once (default ${defaults.inflight})
  --batch N          pull batch: raw max_messages / toolkit prefetch (default ${defaults.batch})
  --maxAckPending N  both consumers (default ${defaults.maxAckPending})
  --phases LIST      publish,consume,both (default all)
  --variants LIST    raw,toolkit,toolkit-batch (default all)
  --profile DIR      write a .cpuprofile of each timed phase into DIR (node:inspector)

Uses NATS_URL when set, else starts nats-server on a free port with a temporary store.`;

/** Runs `send(i)` for i in [0, count) with at most `inflight` unsettled; the same driver for both variants. */
function windowed(
  count: number,
  inflight: number,
  send: (i: number) => Promise<unknown>,
  progress: Progress,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (count === 0) return resolve();
    let next = 0;
    let done = 0;
    const settled = (): void => {
      progress.tick();
      if (++done === count) resolve();
      else if (next < count) launch();
    };
    const launch = (): void => {
      send(next++).then(settled, reject);
    };
    for (let k = 0; k < Math.min(inflight, count); k++) launch();
  });
}

interface Phaser {
  /** Creates the stream for `variant`; returns its name and the subject to publish on. */
  stream(variant: string): Promise<{ stream: string; subject: string }>;
  cleanup(): Promise<void>;
}

function phaser(jsm: JetStreamManager, tag: string): Phaser {
  const created: string[] = [];
  return {
    async stream(variant) {
      const id = `${tag}_${variant}`.replace(/[^A-Za-z0-9]/g, '_').toUpperCase();
      const stream = `BENCH_${id}`;
      // Same configuration the toolkit provisions: file storage, limits, 2-minute duplicate window.
      await jsm.streams.add({
        name: stream,
        subjects: [`bench.${id.toLowerCase()}.>`],
        storage: StorageType.File,
        duplicate_window: nanos(120_000),
      });
      created.push(stream);
      return { stream, subject: `bench.${id.toLowerCase()}.order.placed` };
    },
    async cleanup() {
      for (const stream of created.splice(0)) await jsm.streams.delete(stream).catch(() => false);
    },
  };
}

// ───────────────────────────── raw @nats-io/jetstream ─────────────────────────────

async function rawConnect(url: string): Promise<NatsConnection> {
  return connect({ servers: url, name: 'bench-raw', noAsyncTraces: true });
}

function rawPublish(js: JetStreamClient, subject: string, orders: readonly BenchOrder[]) {
  return (i: number) => {
    const order = orders[i] as BenchOrder;
    return js.publish(subject, JSON.stringify(order), { msgID: order.orderId });
  };
}

async function rawConsume(
  nc: NatsConnection,
  options: Options,
  stream: string,
  durable: string,
  count: number,
  progress: Progress,
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(30_000),
    max_ack_pending: options.maxAckPending,
  });
  const consumer = await jetstream(nc).consumers.get(stream, durable);
  const messages = await consumer.consume({ max_messages: options.batch });
  let n = 0;
  for await (const msg of messages) {
    // What any handler does: read the payload, then ack.
    const order = msg.json<BenchOrder>();
    if (order.total < 0) throw new Error('impossible');
    msg.ack();
    progress.tick();
    if (++n === count) break;
  }
  await nc.flush(); // the last acks reached the server
}

// ───────────────────────────── toolkit ─────────────────────────────

async function toolkitConnect(url: string): Promise<{ nc: NatsConnection; transport: NatsTransport }> {
  const { nc } = await connectNats({ servers: url, name: 'bench-toolkit' });
  return { nc, transport: await NatsTransport.create(nc, { source: 'orderflow/bench' }) };
}

function toolkitPublish(transport: NatsTransport, subject: string, orders: readonly BenchOrder[]) {
  return (i: number) => {
    const order = orders[i] as BenchOrder;
    return transport.publish(BenchOrderPlaced, order, { subject, about: order.orderId });
  };
}

async function toolkitConsume(
  transport: NatsTransport,
  options: Options,
  stream: string,
  durable: string,
  count: number,
  progress: Progress,
  started?: () => void,
): Promise<void> {
  let n = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const consumer = await transport.consume({
    name: durable,
    stream,
    handlers: [
      on(BenchOrderPlaced, async (event) => {
        if (event.data.total < 0) throw new Error('impossible');
        progress.tick();
        if (++n === count) done();
      }),
    ],
    prefetch: options.batch,
    maxAckPending: options.maxAckPending,
  });
  started?.();
  await all;
  await transport.nc.flush(); // the last acks reached the server
  await consumer.stop();
  await transport.jsm.consumers
    .delete(DeadLetterTopology.stream, DeadLetterTopology.redriveDurable(stream, durable))
    .catch(() => false);
}

// ───────────────────────────── phases ─────────────────────────────

interface Context {
  url: string;
  options: Options;
  orders: BenchOrder[];
  serverPid: number | undefined;
  jsm: JetStreamManager;
}

async function measure(
  context: Context,
  phase: Phase,
  variant: Variant,
  round: number,
  body: (progress: Progress) => Promise<void>,
): Promise<Measurement> {
  const count = context.options.count;
  const progress = new Progress(`round ${round} ${PHASE_TITLE[phase]} ${variant}`, count);
  const serverBefore = serverCpuSeconds(context.serverPid);
  const syscallsBefore = syscallCounts(process.pid);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await profiled(context.options.profile, `${phase}-${variant}-r${round}`, () => body(progress));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const serverAfter = serverCpuSeconds(context.serverPid);
  const syscallsAfter = syscallCounts(process.pid);
  progress.done();
  const extra: Record<string, number> = { clientCpuUsPerMsg: (cpu.user + cpu.system) / count };
  if (serverBefore !== undefined && serverAfter !== undefined) {
    extra.serverCpuUsPerMsg = ((serverAfter - serverBefore) * 1e6) / count;
  }
  if (syscallsBefore && syscallsAfter) {
    extra.clientWritesPerMsg = (syscallsAfter.writes - syscallsBefore.writes) / count;
  }
  const m: Measurement = {
    phase: PHASE_TITLE[phase],
    variant,
    round,
    count,
    seconds,
    rate: count / seconds,
    extra,
  };
  console.log(
    `  ${m.phase.padEnd(18)} ${variant.padEnd(13)} ${formatRate(m.rate).padStart(8)} msg/s  ` +
      `(${seconds.toFixed(2)} s, client CPU ${extra.clientCpuUsPerMsg?.toFixed(1)} µs/msg` +
      `${extra.serverCpuUsPerMsg === undefined ? '' : `, server CPU ${extra.serverCpuUsPerMsg.toFixed(1)} µs/msg`}` +
      `${extra.clientWritesPerMsg === undefined ? '' : `, client write(2) per msg ${extra.clientWritesPerMsg.toFixed(3)}`})`,
  );
  return m;
}

async function publishPhase(context: Context, variant: Variant, round: number): Promise<Measurement> {
  const { options, orders } = context;
  const streams = phaser(context.jsm, `p${round}`);
  const { subject } = await streams.stream(variant);
  try {
    if (variant === 'raw') {
      const nc = await rawConnect(context.url);
      const js = jetstream(nc);
      const m = await measure(context, 'publish', variant, round, (progress) =>
        windowed(options.count, options.inflight, rawPublish(js, subject, orders), progress),
      );
      await nc.close();
      return m;
    }
    const { nc, transport } = await toolkitConnect(context.url);
    const m = await measure(context, 'publish', variant, round, async (progress) => {
      if (variant === 'toolkit') {
        await windowed(options.count, options.inflight, toolkitPublish(transport, subject, orders), progress);
      } else {
        await transport.publishBatch(
          orders.map((order) => ({
            contract: BenchOrderPlaced,
            data: order,
            options: { subject, about: order.orderId },
          })),
          { maxInFlight: options.inflight },
        );
        progress.tick(orders.length);
      }
    });
    await transport.close();
    await nc.close();
    return m;
  } finally {
    await streams.cleanup();
  }
}

/** Both variants read the same stream (published by the toolkit), each with its own durable. */
async function consumePhase(context: Context, variants: Variant[], round: number): Promise<Measurement[]> {
  const { options } = context;
  const streams = phaser(context.jsm, `c${round}`);
  const { stream, subject } = await streams.stream('shared');
  try {
    {
      const { nc, transport } = await toolkitConnect(context.url);
      const progress = new Progress(`round ${round} filling ${stream}`, options.count);
      await windowed(
        options.count,
        options.inflight,
        toolkitPublish(transport, subject, context.orders),
        progress,
      );
      progress.done();
      await transport.close();
      await nc.close();
    }
    const results: Measurement[] = [];
    for (const variant of variants) {
      await settle(200);
      if (variant === 'raw') {
        const nc = await rawConnect(context.url);
        results.push(
          await measure(context, 'consume', variant, round, (progress) =>
            rawConsume(nc, options, stream, `raw-${round}`, options.count, progress),
          ),
        );
        await nc.close();
      } else {
        const { nc, transport } = await toolkitConnect(context.url);
        results.push(
          await measure(context, 'consume', variant, round, (progress) =>
            toolkitConsume(transport, options, stream, `toolkit-${round}`, options.count, progress),
          ),
        );
        await transport.close();
        await nc.close();
      }
    }
    return results;
  } finally {
    await streams.cleanup();
  }
}

/** A consumer is running on an empty stream; the publisher then sends `count`; timed until all are handled. */
async function bothPhase(context: Context, variant: Variant, round: number): Promise<Measurement> {
  const { options, orders } = context;
  const streams = phaser(context.jsm, `b${round}`);
  const { stream, subject } = await streams.stream(variant);
  try {
    if (variant === 'raw') {
      const nc = await rawConnect(context.url);
      const js = jetstream(nc);
      const noTicks = new Progress('unused', 0);
      const m = await measure(context, 'both', variant, round, (progress) =>
        Promise.all([
          rawConsume(nc, options, stream, 'raw', options.count, progress),
          windowed(options.count, options.inflight, rawPublish(js, subject, orders), noTicks),
        ]).then(() => undefined),
      );
      await nc.close();
      return m;
    }
    const { nc, transport } = await toolkitConnect(context.url);
    const noTicks = new Progress('unused', 0);
    const m = await measure(context, 'both', variant, round, async (progress) => {
      let consuming!: () => void;
      const started = new Promise<void>((resolve) => (consuming = resolve));
      await Promise.all([
        toolkitConsume(transport, options, stream, 'toolkit', options.count, progress, consuming),
        started.then(() =>
          windowed(options.count, options.inflight, toolkitPublish(transport, subject, orders), noTicks),
        ),
      ]);
    });
    await transport.close();
    await nc.close();
    return m;
  } finally {
    await streams.cleanup();
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
  const phases = list<Phase>(options.phases, ['publish', 'consume', 'both'], 'phase');
  const variants = list<Variant>(options.variants, ['raw', 'toolkit', 'toolkit-batch'], 'variant');
  const startedAt = new Date();
  const server = await benchServer();
  const measurements: Measurement[] = [];
  try {
    const admin = await rawConnect(server.url);
    const context: Context = {
      url: server.url,
      options,
      orders: Array.from({ length: options.count }, (_, i) => benchOrder(i)),
      serverPid: server.pid,
      jsm: await jetstreamManager(admin),
    };
    const version = admin.info?.version ?? 'unknown';
    const payloadBytes = Buffer.byteLength(JSON.stringify(context.orders[0]));
    console.log(
      `messaging: ${options.count} messages × ${options.rounds} rounds, ≈${payloadBytes}-byte payload, ` +
        `file storage, explicit ack; nats-server ${version} at ${server.url}${server.owned ? ' (started for this run)' : ''}`,
    );
    for (let round = 1; round <= options.rounds; round++) {
      console.log(`round ${round}/${options.rounds}`);
      // Alternate which variant goes first, so neither always meets a warmer (or busier) server.
      const ordered = round % 2 === 1 ? variants : [...variants].reverse();
      for (const phase of phases) {
        if (phase === 'consume') {
          const readers = ordered.filter((v) => v !== 'toolkit-batch');
          measurements.push(...(await consumePhase(context, readers, round)));
          continue;
        }
        for (const variant of ordered) {
          if (phase === 'both' && variant === 'toolkit-batch') continue;
          await settle(200);
          measurements.push(await (phase === 'publish' ? publishPhase : bothPhase)(context, variant, round));
        }
      }
    }
    await admin.close();

    const summary = summarise(measurements);
    for (const s of summary) {
      const raw = summary.find((r) => r.phase === s.phase && r.variant === 'raw');
      if (raw && s.variant !== 'raw') s.ratio = s.rate / raw.rate;
    }
    console.log('\nmedians:');
    for (const s of summary) {
      console.log(
        `  ${s.phase.padEnd(18)} ${s.variant.padEnd(13)} ${formatRate(s.rate).padStart(8)} msg/s` +
          (s.ratio === undefined ? '' : `  (${(100 * s.ratio).toFixed(0)}% of raw)`),
      );
    }
    // The headline is publish + consume at once (end to end), or the first phase that ran.
    const headlinePhase = PHASE_TITLE[phases.includes('both') ? 'both' : (phases[0] as Phase)];
    const toolkit = summary.find((s) => s.phase === headlinePhase && s.variant === 'toolkit')?.rate ?? NaN;
    const raw = summary.find((s) => s.phase === headlinePhase && s.variant === 'raw')?.rate ?? NaN;
    const headline = `messaging: toolkit ${Math.round(toolkit)} msg/s, raw ${Math.round(raw)} msg/s, ratio ${(toolkit / raw).toFixed(2)}`;
    const report: Report = {
      name: 'messaging',
      title: 'Messaging: toolkit vs raw @nats-io/jetstream',
      startedAt: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      machine: await machineInfo(version),
      params: { ...options, payloadBytes },
      measurements,
      summary,
      headline,
      notes: [
        `Headline phase: ${headlinePhase}.`,
        'raw: js.publish(subject, JSON.stringify(order), { msgID }) with the same in-flight window; ' +
          'consumer.consume({ max_messages: batch }), msg.json(), msg.ack(); connection with noAsyncTraces.',
        'toolkit: NatsTransport.publish (schema validation, CloudEvents headers, Nats-Msg-Id = ce-id) with the same window; ' +
          'publishBatch as toolkit-batch; NatsTransport.consume with the default middleware ' +
          '(metrics, logging, retry/dead letter, decode + validation, tracing) and prefetch = batch.',
        'consume only: both variants read the same stream, filled by the toolkit, each with its own durable.',
        'Figures on a shared machine are noisy; medians over rounds, variants alternate who goes first.',
      ],
    };
    const paths = await writeReport(report);
    console.log(`\nreport: ${paths.join(', ')}`);
    console.log(headline);
  } finally {
    await server.dispose();
  }
}
