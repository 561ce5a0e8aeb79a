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
import { readdirSync, readFileSync } from 'node:fs';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import {
  connectNats,
  DeadLetterTopology,
  declareRabbitBase,
  declareRabbitConsumer,
  declareRabbitStream,
  NatsTransport,
  on,
  RabbitTopology,
  RabbitTransport,
  type Transport,
} from '@orderflow/messaging';
import { createRabbitVhost } from '@orderflow/testing';
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
  finishReport,
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
  /** nats, rabbitmq or both (side by side, each against its own raw client). */
  broker: 'nats',
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
  --broker B         nats (default), rabbitmq, or both: RabbitTransport vs raw amqplib on a fresh vhost
                     of the local RabbitMQ (AMQP_URL's host, guest, rabbitmqctl), variants raw,toolkit

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

function toolkitPublish(transport: Transport, subject: string, orders: readonly BenchOrder[]) {
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
  context: Pick<Context, 'options' | 'serverPid'>,
  phase: Phase,
  variant: Variant,
  round: number,
  body: (progress: Progress) => Promise<void>,
  broker = '',
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
    phase: `${broker}${PHASE_TITLE[phase]}`,
    variant,
    round,
    count,
    seconds,
    rate: count / seconds,
    extra,
  };
  console.log(
    `  ${m.phase.padEnd(broker ? 27 : 18)} ${variant.padEnd(13)} ${formatRate(m.rate).padStart(8)} msg/s  ` +
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

/** Starts `consume`, and `publish` once it says it is consuming; resolves when both are done. */
async function consumeThenPublish(
  consume: (started: () => void) => Promise<void>,
  publish: () => Promise<unknown>,
): Promise<void> {
  let consuming!: () => void;
  const started = new Promise<void>((resolve) => (consuming = resolve));
  await Promise.all([consume(consuming), started.then(publish)]);
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
    const m = await measure(context, 'both', variant, round, (progress) =>
      consumeThenPublish(
        (started) => toolkitConsume(transport, options, stream, 'toolkit', options.count, progress, started),
        () => windowed(options.count, options.inflight, toolkitPublish(transport, subject, orders), noTicks),
      ),
    );
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

type Broker = 'nats' | 'rabbitmq';

interface BrokerRun {
  broker: Broker;
  version: string;
  measurements: Measurement[];
}

export async function run(args: string[]): Promise<void> {
  const options = parseArgs(args, defaults);
  if (options.help) {
    console.log(HELP);
    return;
  }
  const phases = list<Phase>(options.phases, ['publish', 'consume', 'both'], 'phase');
  const brokers = list<Broker>(
    options.broker === 'both' ? 'nats,rabbitmq' : options.broker,
    ['nats', 'rabbitmq'],
    'broker',
  );
  const startedAt = new Date();
  const runs: BrokerRun[] = [];
  for (const broker of brokers) {
    if (broker === 'nats') {
      const variants = list<Variant>(options.variants, ['raw', 'toolkit', 'toolkit-batch'], 'variant');
      runs.push(await runNats(options, phases, variants));
    } else {
      const variants = list<Variant>(options.variants, ['raw', 'toolkit', 'toolkit-batch'], 'variant').filter(
        (v) => v !== 'toolkit-batch',
      );
      runs.push(await runRabbit(options, phases, variants));
    }
  }
  const measurements = runs.flatMap((r) => r.measurements);
  const summary = summarise(measurements);
  for (const s of summary) {
    const raw = summary.find((r) => r.phase === s.phase && r.variant === 'raw');
    if (raw && s.variant !== 'raw') s.ratio = s.rate / raw.rate;
  }
  console.log('\nmedians:');
  for (const s of summary) {
    console.log(
      `  ${s.phase.padEnd(27)} ${s.variant.padEnd(13)} ${formatRate(s.rate).padStart(8)} msg/s` +
        (s.ratio === undefined ? '' : `  (${(100 * s.ratio).toFixed(0)}% of raw)`),
    );
  }
  if (runs.length > 1) {
    console.log("\nside by side (msg/s; toolkit as % of the same broker's raw client):");
    console.log(
      `  ${'phase'.padEnd(18)} ${'NATS raw'.padStart(9)} ${'toolkit'.padStart(9)} ${'%'.padStart(5)}   ${'AMQP raw'.padStart(9)} ${'toolkit'.padStart(9)} ${'%'.padStart(5)}`,
    );
    for (const phase of phases) {
      const cell = (prefix: string, variant: string) =>
        summary.find((s) => s.phase === `${prefix}${PHASE_TITLE[phase]}` && s.variant === variant);
      const row = (prefix: string) => {
        const raw = cell(prefix, 'raw');
        const toolkit = cell(prefix, 'toolkit');
        return `${formatRate(raw?.rate ?? NaN).padStart(9)} ${formatRate(toolkit?.rate ?? NaN).padStart(9)} ${(toolkit?.ratio === undefined ? '–' : `${(100 * toolkit.ratio).toFixed(0)}%`).padStart(5)}`;
      };
      console.log(`  ${PHASE_TITLE[phase].padEnd(18)} ${row('')}   ${row(RABBIT_PHASE_PREFIX)}`);
    }
  }
  const headlinePhase = PHASE_TITLE[phases.includes('both') ? 'both' : (phases[0] as Phase)];
  const headlineOf = (prefix: string, label: string) => {
    const toolkit =
      summary.find((s) => s.phase === `${prefix}${headlinePhase}` && s.variant === 'toolkit')?.rate ?? NaN;
    const raw =
      summary.find((s) => s.phase === `${prefix}${headlinePhase}` && s.variant === 'raw')?.rate ?? NaN;
    return `${label}toolkit ${Math.round(toolkit)} msg/s, raw ${Math.round(raw)} msg/s, ratio ${(toolkit / raw).toFixed(2)}`;
  };
  const headline = `messaging: ${runs
    .map((r) =>
      r.broker === 'nats'
        ? headlineOf('', runs.length > 1 ? 'NATS ' : '')
        : headlineOf(RABBIT_PHASE_PREFIX, 'RabbitMQ '),
    )
    .join('; ')}`;
  const payloadBytes = Buffer.byteLength(JSON.stringify(benchOrder(0)));
  const nats = runs.find((r) => r.broker === 'nats');
  const rabbit = runs.find((r) => r.broker === 'rabbitmq');
  const report: Report = {
    name: brokers.length === 1 && brokers[0] === 'nats' ? 'messaging' : `messaging-${brokers.join('-')}`,
    title:
      brokers.length === 1 && brokers[0] === 'nats'
        ? 'Messaging: toolkit vs raw @nats-io/jetstream'
        : `Messaging: toolkit vs the raw client, ${brokers.map((b) => (b === 'nats' ? 'NATS (@nats-io/jetstream)' : 'RabbitMQ (amqplib)')).join(' and ')}`,
    startedAt: startedAt.toISOString(),
    durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
    machine: await machineInfo(nats?.version ?? `none (RabbitMQ ${rabbit?.version ?? 'unknown'})`),
    params: { ...options, payloadBytes, ...(rabbit && { rabbitmq: rabbit.version }) },
    measurements,
    summary,
    headline,
    notes: [
      `Headline phase: ${headlinePhase}.`,
      ...(nats
        ? [
            'raw: js.publish(subject, JSON.stringify(order), { msgID }) with the same in-flight window; ' +
              'consumer.consume({ max_messages: batch }), msg.json(), msg.ack(); connection with noAsyncTraces.',
            'toolkit: NatsTransport.publish (schema validation, CloudEvents headers, Nats-Msg-Id = ce-id) with the same window; ' +
              'publishBatch as toolkit-batch; NatsTransport.consume with the default middleware ' +
              '(metrics, logging, retry/dead letter, decode + validation, tracing) and prefetch = batch.',
            'consume only: both variants read the same stream, filled by the toolkit, each with its own durable.',
          ]
        : []),
      ...(rabbit ? RABBIT_NOTES : []),
      'Figures on a shared machine are noisy; medians over rounds, variants alternate who goes first.',
    ],
  };
  await finishReport(report);
}

async function runNats(options: Options, phases: Phase[], variants: Variant[]): Promise<BrokerRun> {
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
    return { broker: 'nats', version, measurements };
  } finally {
    await server.dispose();
  }
}

// ───────────────────────────── RabbitMQ: raw amqplib vs RabbitTransport ─────────────────────────────

const RABBIT_PHASE_PREFIX = 'rabbitmq ';

const RABBIT_NOTES = [
  'RabbitMQ raw: amqplib confirm channel, channel.publish(exchange, key, JSON, { persistent, messageId }, callback) ' +
    'with the same in-flight window, into a topic exchange bound to a stream queue (the log) and, for consume phases, ' +
    'a quorum queue; consume with prefetch = batch, JSON.parse, ack each.',
  'RabbitMQ toolkit: RabbitTransport.publish (schema validation, CloudEvents headers, publish confirm) through ' +
    'orderflow.events → stream.<S> → log.<S>; RabbitTransport.consume (quorum queue, default middleware, prefetch = batch). ' +
    'Same work for the broker in both: one stream queue, plus one quorum queue when consuming.',
  'RabbitMQ consume only: both variants read their own quorum queue, filled by the same toolkit publishes.',
];

interface RabbitContext {
  url: string;
  options: Options;
  orders: BenchOrder[];
  serverPid: number | undefined;
  admin: ChannelModel;
}

/** The broker's Erlang VM (`beam.smp` of RabbitMQ), to read its CPU time; Linux only. */
function rabbitPid(): number | undefined {
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        if (argv.includes('beam.smp') && argv.includes('rabbit')) return Number(entry);
      } catch {
        continue;
      }
    }
  } catch {
    // not Linux
  }
  return undefined;
}

function rawRabbitPublish(ch: ConfirmChannel, exchange: string, key: string, orders: readonly BenchOrder[]) {
  return (i: number) => {
    const order = orders[i] as BenchOrder;
    return new Promise<void>((resolve, reject) =>
      ch.publish(
        exchange,
        key,
        Buffer.from(JSON.stringify(order)),
        { persistent: true, messageId: order.orderId, contentType: 'application/json' },
        (error: Error | null) => (error ? reject(error) : resolve()),
      ),
    );
  };
}

async function rawRabbitConsume(
  connection: ChannelModel,
  queue: string,
  options: Options,
  count: number,
  progress: Progress,
  started?: () => void,
): Promise<void> {
  const ch = await connection.createChannel();
  await ch.prefetch(options.batch);
  let n = 0;
  await new Promise<void>((resolve, reject) => {
    void ch
      .consume(queue, (msg) => {
        if (!msg) return;
        const order = JSON.parse(msg.content.toString('utf8')) as BenchOrder;
        if (order.total < 0) throw new Error('impossible');
        ch.ack(msg);
        progress.tick();
        if (++n === count) resolve();
      })
      .then(() => started?.(), reject);
  });
  await ch.close();
}

async function rabbitToolkitConsume(
  transport: RabbitTransport,
  options: Options,
  stream: string,
  name: string,
  count: number,
  progress: Progress,
  started?: () => void,
): Promise<void> {
  let n = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const consumer = await transport.consume({
    name,
    stream,
    handlers: [
      on(BenchOrderPlaced, async (event) => {
        if (event.data.total < 0) throw new Error('impossible');
        progress.tick();
        if (++n === count) done();
      }),
    ],
    prefetch: options.batch,
  });
  started?.();
  await all;
  await consumer.stop();
}

/** A stream of the toolkit's topology (exchange + log queue) and a raw look-alike, per phase and round. */
async function rabbitStreams(context: RabbitContext, tag: string) {
  const ch = await context.admin.createChannel();
  const stream = `BENCH_${tag}`.toUpperCase();
  const subject = `bench.${tag}.order.placed`;
  await declareRabbitBase(ch);
  await declareRabbitStream(ch, { name: stream, subjects: [`bench.${tag}.>`] });
  const rawExchange = `raw.${tag}`;
  await ch.assertExchange(rawExchange, 'topic', { durable: true });
  await ch.assertQueue(`rawlog.${tag}`, { durable: true, arguments: { 'x-queue-type': 'stream' } });
  await ch.bindQueue(`rawlog.${tag}`, rawExchange, '#');
  const rawQueue = async (name: string, exchange = rawExchange) => {
    await ch.assertQueue(name, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await ch.bindQueue(name, exchange, '#');
    return name;
  };
  return { stream, subject, rawExchange, rawQueue, close: () => ch.close() };
}

/** One side of a RabbitMQ phase over a connection of its own: raw amqplib or the toolkit. */
interface RabbitClient {
  /** Publishes order `i` of the phase's orders to the side's exchange; resolves once confirmed. */
  publisher(s: RabbitStreams): (i: number) => Promise<unknown>;
  /** Consumes `count` messages from `queue` (raw: a queue; toolkit: a durable of the stream). */
  consume(s: RabbitStreams, queue: string, progress: Progress, started?: () => void): Promise<void>;
  close(): Promise<void>;
}

type RabbitStreams = Awaited<ReturnType<typeof rabbitStreams>>;

async function rabbitClient(context: RabbitContext, variant: Variant): Promise<RabbitClient> {
  const { options, orders } = context;
  const connection = await amqp.connect(context.url);
  if (variant === 'raw') {
    const ch = await connection.createConfirmChannel();
    return {
      publisher: (s) => rawRabbitPublish(ch, s.rawExchange, s.subject, orders),
      consume: (_s, queue, progress, started) =>
        rawRabbitConsume(connection, queue, options, options.count, progress, started),
      close: () => connection.close(),
    };
  }
  const transport = await RabbitTransport.create(connection, { source: 'orderflow/bench' });
  return {
    publisher: (s) => toolkitPublish(transport, s.subject, orders),
    consume: (s, name, progress, started) =>
      rabbitToolkitConsume(transport, options, s.stream, name, options.count, progress, started),
    close: async () => {
      await transport.close();
      await connection.close();
    },
  };
}

/** Runs `use` with a fresh client of `variant`, closed after. */
async function withRabbitClient<T>(
  context: RabbitContext,
  variant: Variant,
  use: (client: RabbitClient) => Promise<T>,
): Promise<T> {
  const client = await rabbitClient(context, variant);
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

async function rabbitPublishPhase(
  context: RabbitContext,
  variant: Variant,
  round: number,
): Promise<Measurement> {
  const { options } = context;
  const s = await rabbitStreams(context, `p${round}${variant}`);
  try {
    return await withRabbitClient(context, variant, (client) =>
      measure(
        context,
        'publish',
        variant,
        round,
        (progress) => windowed(options.count, options.inflight, client.publisher(s), progress),
        RABBIT_PHASE_PREFIX,
      ),
    );
  } finally {
    await s.close();
  }
}

/** Both variants read their own queue, filled by the same toolkit publishes. */
async function rabbitConsumePhase(
  context: RabbitContext,
  variants: Variant[],
  round: number,
): Promise<Measurement[]> {
  const { options } = context;
  const s = await rabbitStreams(context, `c${round}`);
  const ch = await context.admin.createChannel();
  const toolkitName = `toolkit-${round}`;
  await declareRabbitConsumer(ch, { stream: s.stream, name: toolkitName, ordered: false });
  const rawQueue = await s.rawQueue(`raw-c${round}`, RabbitTopology.streamExchange(s.stream));
  await ch.close();
  try {
    await withRabbitClient(context, 'toolkit', async (client) => {
      const progress = new Progress(`round ${round} filling ${s.stream}`, options.count);
      await windowed(options.count, options.inflight, client.publisher(s), progress);
      progress.done();
    });
    const results: Measurement[] = [];
    for (const variant of variants) {
      await settle(200);
      const queue = variant === 'raw' ? rawQueue : toolkitName;
      results.push(
        await withRabbitClient(context, variant, (client) =>
          measure(
            context,
            'consume',
            variant,
            round,
            (progress) => client.consume(s, queue, progress),
            RABBIT_PHASE_PREFIX,
          ),
        ),
      );
    }
    return results;
  } finally {
    await s.close();
  }
}

/** A consumer is running on an empty queue; the publisher then sends `count`; timed until all are handled. */
async function rabbitBothPhase(
  context: RabbitContext,
  variant: Variant,
  round: number,
): Promise<Measurement> {
  const { options } = context;
  const s = await rabbitStreams(context, `b${round}${variant}`);
  const noTicks = new Progress('unused', 0);
  try {
    const queue = variant === 'raw' ? await s.rawQueue(`raw-b${round}`) : 'toolkit';
    return await withRabbitClient(context, variant, (client) =>
      measure(
        context,
        'both',
        variant,
        round,
        (progress) =>
          consumeThenPublish(
            (started) => client.consume(s, queue, progress, started),
            () => windowed(options.count, options.inflight, client.publisher(s), noTicks),
          ),
        RABBIT_PHASE_PREFIX,
      ),
    );
  } finally {
    await s.close();
  }
}

async function runRabbit(options: Options, phases: Phase[], variants: Variant[]): Promise<BrokerRun> {
  const host = new URL(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
  const base = `${host.protocol}//${host.username || 'guest'}:${host.password || 'guest'}@${host.host}`;
  const vhost = await createRabbitVhost({ base });
  const admin = await amqp.connect(vhost.url);
  const measurements: Measurement[] = [];
  try {
    const version = String(admin.connection.serverProperties.version ?? 'unknown');
    const context: RabbitContext = {
      url: vhost.url,
      options,
      orders: Array.from({ length: options.count }, (_, i) => benchOrder(i)),
      serverPid: rabbitPid(),
      admin,
    };
    console.log(
      `messaging: ${options.count} messages × ${options.rounds} rounds on RabbitMQ ${version} (vhost ${vhost.name}), ` +
        'persistent messages, publisher confirms, manual ack',
    );
    for (let round = 1; round <= options.rounds; round++) {
      console.log(`round ${round}/${options.rounds} (RabbitMQ)`);
      const ordered = round % 2 === 1 ? variants : [...variants].reverse();
      for (const phase of phases) {
        if (phase === 'consume') {
          measurements.push(...(await rabbitConsumePhase(context, ordered, round)));
          continue;
        }
        for (const variant of ordered) {
          await settle(200);
          measurements.push(
            await (phase === 'publish' ? rabbitPublishPhase : rabbitBothPhase)(context, variant, round),
          );
        }
      }
    }
    return { broker: 'rabbitmq', version, measurements };
  } finally {
    await admin.close().catch(() => undefined);
    await vhost.dispose();
  }
}
