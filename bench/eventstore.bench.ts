// `npm run bench -- eventstore`: the event store on JetStream. Appends per second to one hot aggregate
// (each append waits for the previous one: optimistic concurrency serialises them) and to many
// aggregates at once; load time against stream length, replaying everything or from a snapshot.
import { Type } from '@sinclair/typebox';
import { connectNats, defineEvent, ensureStream } from '@orderflow/messaging';
import {
  AggregateStore,
  commandHandler,
  defineAggregate,
  JetStreamEventLog,
  KvSnapshotStore,
  type EventOf,
  type LoadedAggregate,
} from '@orderflow/eventstore';
import {
  benchServer,
  formatRate,
  machineInfo,
  median,
  parseArgs,
  Progress,
  summarise,
  writeReport,
  type Measurement,
} from './support.ts';

const defaults = {
  /** Appends per append phase. */
  count: 3_000,
  /** Aggregates the many-aggregates phase spreads its appends over. */
  aggregates: 500,
  /** Appends in flight at once in the many-aggregates phase. */
  concurrency: 64,
  /** Stream lengths (events of one aggregate) for the load phase, comma-separated. */
  lengths: '100,1000,10000',
  /** Loads timed per length and variant (the median is reported). */
  loads: 5,
  /** Commits replayed after the snapshot in the snapshot variant (a snapshot every 2×tail on average). */
  tail: 50,
  /** Stream storage. */
  storage: 'file',
  /** Rounds of each append phase (median reported). */
  rounds: 3,
  help: false,
};

const HELP = `eventstore benchmark: appends/s (one hot aggregate, many aggregates) and load time vs stream length

  --count N        appends per append phase and round (default ${defaults.count})
  --aggregates N   aggregates in the many-aggregates phase (default ${defaults.aggregates})
  --concurrency N  appends in flight in the many-aggregates phase (default ${defaults.concurrency})
  --lengths LIST   events per aggregate for the load phase (default ${defaults.lengths})
  --loads N        timed loads per length and variant (default ${defaults.loads})
  --tail N         commits after the snapshot in the snapshot variant (default ${defaults.tail})
  --storage S      file or memory (default ${defaults.storage})
  --rounds N       rounds of each append phase (default ${defaults.rounds})
NATS_URL uses a running server instead of starting one.`;

const Incremented = defineEvent({
  name: 'counter.incremented',
  schema: Type.Object({ by: Type.Integer({ minimum: 1 }) }),
});
type CounterEvent = EventOf<typeof Incremented>;

function counterAggregate(stream: string) {
  return defineAggregate<{ total: number }, { by: number }, CounterEvent>({
    name: 'counter',
    stream,
    subjectPrefix: stream.toLowerCase(),
    events: [Incremented],
    snapshotVersion: 1,
    initialState: () => ({ total: 0 }),
    evolve: (state, event) => ({ total: state.total + event.data.by }),
    decide: (command) => [{ type: 'counter.incremented', data: { by: command.by } }],
  });
}

const increment: CounterEvent[] = [{ type: 'counter.incremented', data: { by: 1 } }];

export async function run(args: string[]): Promise<void> {
  const options = parseArgs(args, defaults);
  if (options.help) {
    console.log(HELP);
    return;
  }
  const startedAt = new Date();
  const server = await benchServer();
  const { nc, features } = await connectNats({ servers: server.url, name: 'bench-eventstore' });
  const log = await JetStreamEventLog.create(nc, { source: 'orderflow/bench' });
  const run = Date.now().toString(36).toUpperCase();
  const stream = `BENCH_ES_${run}`;
  const counter = counterAggregate(stream);
  await ensureStream(log.jsm, {
    ...counter.streamDeclaration({ storage: options.storage === 'memory' ? 'memory' : 'file' }),
    denyPurge: false,
  });
  const bucket = `bench_es_${run.toLowerCase()}`;
  const snapshots = await KvSnapshotStore.create(nc, { bucket });
  // No in-memory state for the measured stores: every load goes to the log (and the KV snapshot).
  const plain = new AggregateStore(counter, { log, cacheSize: 0 });
  const measurements: Measurement[] = [];
  const record = (
    phase: string,
    variant: string,
    round: number,
    count: number,
    seconds: number,
    extra?: Record<string, number>,
  ) => {
    const m: Measurement = {
      phase,
      variant,
      round,
      count,
      seconds,
      rate: count / seconds,
      ...(extra && { extra }),
    };
    measurements.push(m);
    return m;
  };

  try {
    console.log(`eventstore benchmark on nats-server ${features.version} (${options.storage} storage)`);

    // ── one hot aggregate: appends chained on the version of the previous one ──
    for (let round = 1; round <= options.rounds; round++) {
      const id = `hot${round}`;
      const progress = new Progress(`hot aggregate, round ${round}`, options.count);
      let loaded: LoadedAggregate<{ total: number }> = await plain.load(id);
      const started = performance.now();
      for (let i = 0; i < options.count; i++) {
        loaded = await plain.append(loaded, increment);
        progress.tick();
      }
      progress.done();
      const m = record(
        'append',
        'one hot aggregate',
        round,
        options.count,
        (performance.now() - started) / 1000,
      );
      console.log(`  one hot aggregate, round ${round}: ${formatRate(m.rate)} appends/s`);
    }

    // ── the same through the command handler: load (from a snapshot) + decide + append ──
    const withSnapshots = new AggregateStore(counter, { log, snapshots, snapshotEvery: 100, cacheSize: 0 });
    const handle = commandHandler(new AggregateStore(counter, { log, snapshots, snapshotEvery: 100 }));
    for (let round = 1; round <= options.rounds; round++) {
      const id = `cmd${round}`;
      const commands = Math.max(1, Math.floor(options.count / 3));
      const progress = new Progress(`command handler, round ${round}`, commands);
      const started = performance.now();
      for (let i = 0; i < commands; i++) {
        await handle(id, { by: 1 });
        progress.tick();
      }
      progress.done();
      const m = record(
        'append',
        'command handler (load+decide+append)',
        round,
        commands,
        (performance.now() - started) / 1000,
      );
      console.log(
        `  command handler on one aggregate (state cached in memory), round ${round}: ${formatRate(m.rate)} commands/s`,
      );
    }

    // ── many aggregates: `concurrency` appends in flight, each to its own aggregate ──
    for (let round = 1; round <= options.rounds; round++) {
      const versions = new Map<string, LoadedAggregate<{ total: number }>>();
      const progress = new Progress(`many aggregates, round ${round}`, options.count);
      let next = 0;
      const started = performance.now();
      const workers = Math.min(options.concurrency, options.aggregates);
      const worker = async (w: number) => {
        // Worker w owns the aggregates ≡ w (mod workers): no two appends race on one aggregate.
        const owned = Array.from(
          { length: Math.ceil((options.aggregates - w) / workers) },
          (_, k) => `many${round}_${w + k * workers}`,
        );
        for (let k = 0; next++ < options.count; k++) {
          const id = owned[k % owned.length] as string;
          const loaded = versions.get(id) ?? (await plain.load(id));
          versions.set(id, await plain.append(loaded, increment));
          progress.tick();
        }
      };
      await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
      progress.done();
      const m = record(
        'append',
        `many aggregates (${options.aggregates}, ${options.concurrency} in flight)`,
        round,
        options.count,
        (performance.now() - started) / 1000,
      );
      console.log(`  many aggregates, round ${round}: ${formatRate(m.rate)} appends/s`);
    }

    // ── load time against stream length ──
    const lengths = String(options.lengths)
      .split(',')
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
    for (const length of lengths) {
      const id = `load${length}`;
      const progress = new Progress(`writing ${length} events`, length);
      let loaded = await plain.load(id);
      const snapshotAt = Math.max(0, length - options.tail);
      for (let i = 0; i < length; i++) {
        loaded = await plain.append(loaded, increment);
        if (i + 1 === snapshotAt) await withSnapshots.snapshot(loaded);
        progress.tick();
      }
      progress.done();
      for (const [variant, store] of [
        ['replay all', plain],
        [`from snapshot (+${Math.min(options.tail, length)} commits)`, withSnapshots],
      ] as const) {
        const times: number[] = [];
        let replayed = 0;
        for (let i = 0; i < options.loads; i++) {
          const started = performance.now();
          const result = await store.load(id);
          times.push(performance.now() - started);
          replayed = result.replayedCommits;
          if (result.state.total !== length)
            throw new Error(`load of ${id} gave ${result.state.total}, not ${length}`);
        }
        const ms = median(times);
        record(`load ${length} events`, variant, 1, 1, ms / 1000, { ms, replayed });
        console.log(
          `  load ${length} events, ${variant}: ${ms.toFixed(1)} ms (replayed ${replayed} commits)`,
        );
      }
    }

    const summary = summarise(measurements);
    const hot = summary.find((s) => s.variant === 'one hot aggregate')?.rate ?? NaN;
    const many = summary.find((s) => s.variant.startsWith('many'))?.rate ?? NaN;
    const headline = `eventstore: ${formatRate(hot)} appends/s on one hot aggregate, ${formatRate(many)} appends/s over ${options.aggregates} aggregates`;
    const paths = await writeReport({
      name: 'eventstore',
      title: 'Event store on JetStream',
      startedAt: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      machine: await machineInfo(features.version),
      params: options,
      measurements,
      summary,
      headline,
      notes: [
        'One hot aggregate: each append carries Nats-Expected-Last-Subject-Sequence of the previous one, so appends to one aggregate are sequential by design (one round trip each).',
        'Load: an ordered consumer replays the aggregate subject up to the last sequence at start; the snapshot variant starts after a KV snapshot taken `tail` commits before the end.',
        'Load figures are per load (ms, median); their "rate" column is loads per second.',
      ],
    });
    console.log(`  report: ${paths.join(', ')}`);
    console.log(headline);
  } finally {
    await log.jsm.streams.delete(stream).catch(() => undefined);
    await snapshots.kv.destroy().catch(() => undefined);
    await nc.close();
    await server.dispose();
  }
}
