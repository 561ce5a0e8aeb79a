// `npm run bench -- sql`: parameterised statements on PGlite through the SQL port's adapter
// (`openPglite`: one protocol call per statement, each text prepared once; a transaction's BEGIN sent
// with its first statement, its COMMIT one call) vs raw PGlite `query()` (six protocol calls per
// statement, parsed and planned every time) and `transaction()` (two calls each for BEGIN and COMMIT),
// on two databases of the same schema in data directories, in one process. Two phases: the statements
// autocommitted, then each event's three in one transaction. Each round alternates who goes first.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { openPglite, type SqlExecutor } from '@orderflow/sql';
import { pgliteStartParams } from '../packages/sql/src/pglite.ts';
import {
  formatRate,
  machineInfo,
  natsServerBinaryVersion,
  parseArgs,
  Progress,
  summarise,
  finishReport,
  type Measurement,
  type Report,
} from './support.ts';

const defaults = {
  /** Handled "events" per variant and round; each is 3 statements. */
  count: 3_000,
  rounds: 3,
  /** Distinct keys the upserts are spread over. */
  keys: 500,
  help: false,
};

const HELP = `sql benchmark: PGlite statements through the SQL port's adapter vs raw PGlite query(),
autocommitted and then three per transaction

  --count N    handled events per variant and round, 3 statements each (default ${defaults.count})
  --rounds N   rounds (default ${defaults.rounds})
  --keys N     distinct keys (default ${defaults.keys})`;

const SCHEMA = `CREATE TABLE totals (key text PRIMARY KEY, total int NOT NULL, last bytea, updated_at timestamptz);
  CREATE TABLE seen (id text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`;

/** One handled event as services do it: a read, an upsert, an insert-once. */
async function handle(db: SqlExecutor, key: string, id: string, payload: Uint8Array): Promise<void> {
  await db.query('SELECT total, last FROM totals WHERE key = $1', [key]);
  await db.query(
    `INSERT INTO totals (key, total, last, updated_at) VALUES ($1, 1, $2, $3)
     ON CONFLICT (key) DO UPDATE SET total = totals.total + 1, last = excluded.last, updated_at = excluded.updated_at`,
    [key, payload, new Date()],
  );
  await db.query('INSERT INTO seen (id) VALUES ($1) ON CONFLICT DO NOTHING', [id]);
}

export async function run(args: string[]): Promise<void> {
  const options = parseArgs(args, defaults);
  if (options.help) {
    console.log(HELP);
    return;
  }
  const startedAt = new Date();
  const dir = await mkdtemp(join(tmpdir(), 'orderflow-bench-sql-'));
  const store = await openPglite({ dataDir: join(dir, 'adapter') });
  const raw = await PGlite.create({ dataDir: join(dir, 'raw'), startParams: pgliteStartParams() });
  const rawExecutor = (db: Pick<PGlite, 'query'>): SqlExecutor => ({
    query: (sql, params) => db.query(sql, params ? [...params] : []) as never,
  });
  /** How each variant handles one event, per phase. */
  type Handler = (key: string, id: string) => Promise<void>;
  const phases: { phase: string; variants: [string, Handler][] }[] = [
    {
      phase: 'statements',
      variants: [
        ['adapter', (key, id) => handle(store, key, id, payload)],
        ['raw query()', (key, id) => handle(rawExecutor(raw), key, id, payload)],
      ],
    },
    {
      phase: 'transactions',
      variants: [
        ['adapter', (key, id) => store.transaction((tx) => handle(tx, key, id, payload))],
        ['raw query()', (key, id) => raw.transaction((tx) => handle(rawExecutor(tx), key, id, payload))],
      ],
    },
  ];
  const measurements: Measurement[] = [];
  const payload = new Uint8Array(200).fill(7);
  console.log(
    `sql: ${options.count} events (3 statements each) x ${options.rounds} rounds per variant and phase`,
  );
  try {
    await store.query(SCHEMA);
    await raw.exec(SCHEMA);
    for (const { phase, variants } of phases) {
      for (let round = 1; round <= options.rounds; round++) {
        const order = round % 2 ? variants : [...variants].reverse();
        for (const [variant, handleEvent] of order) {
          const progress = new Progress(`${phase}: ${variant} round ${round}`, options.count);
          const cpu = process.cpuUsage();
          const start = performance.now();
          for (let i = 0; i < options.count; i++) {
            await handleEvent(`k${i % options.keys}`, `${phase}-r${round}-${i}`);
            progress.tick();
          }
          const seconds = (performance.now() - start) / 1000;
          const used = process.cpuUsage(cpu);
          progress.done();
          const statements = options.count * 3;
          const cpuUsPerStatement = (used.user + used.system) / statements;
          measurements.push({
            phase,
            variant,
            round,
            count: statements,
            seconds,
            rate: statements / seconds,
            extra: { cpuUsPerStatement },
          });
          console.log(
            `  ${phase.padEnd(12)} ${variant.padEnd(12)} round ${round}: ` +
              `${formatRate(statements / seconds)} statements/s, ${cpuUsPerStatement.toFixed(1)} µs CPU per statement`,
          );
        }
      }
    }
    const summary = summarise(measurements);
    const rateOf = (phase: string, variant: string) =>
      summary.find((s) => s.phase === phase && s.variant === variant)?.rate ?? NaN;
    for (const s of summary) s.ratio = s.rate / rateOf(s.phase, 'raw query()');
    const cpuOf = (phase: string, variant: string) => {
      const values = measurements
        .filter((m) => m.phase === phase && m.variant === variant)
        .map((m) => m.extra!.cpuUsPerStatement!);
      return values.sort((a, b) => a - b)[values.length >> 1]!;
    };
    const figures = (phase: string) =>
      `${phase}: adapter ${formatRate(rateOf(phase, 'adapter'))} statements/s ` +
      `(${cpuOf(phase, 'adapter').toFixed(0)} µs CPU), raw ${formatRate(rateOf(phase, 'raw query()'))} ` +
      `(${cpuOf(phase, 'raw query()').toFixed(0)} µs CPU), ratio ` +
      (rateOf(phase, 'adapter') / rateOf(phase, 'raw query()')).toFixed(2);
    const headline = `sql: ${phases.map(({ phase }) => figures(phase)).join('; ')}`;
    const report: Report = {
      name: 'sql',
      title: 'PGlite statements: the SQL port adapter vs raw query()',
      startedAt: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      machine: await machineInfo(await natsServerBinaryVersion()),
      params: options,
      measurements,
      summary,
      headline,
      notes: [
        'One event = a select by key, an upsert with a 200-byte bytea and a timestamptz, an insert-once; one event after the other, its statements autocommitted (phase statements) or in one transaction (phase transactions).',
        'CPU is this process (PGlite runs in it), per statement; both databases are data directories in the temp dir.',
      ],
    };
    await finishReport(report);
  } finally {
    await store.close();
    await raw.close();
    await rm(dir, { recursive: true, force: true });
  }
}
