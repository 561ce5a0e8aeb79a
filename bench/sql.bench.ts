// `npm run bench -- sql`: parameterised statements on PGlite through the SQL port's adapter
// (`openPglite`: one protocol call per statement, each text prepared once) vs raw PGlite `query()`
// (six protocol calls per statement, parsed and planned every time), on two databases of the same
// schema in data directories, in one process. Each round alternates who goes first.
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

const HELP = `sql benchmark: PGlite statements through the SQL port's adapter vs raw PGlite query()

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
  const variants: [string, SqlExecutor][] = [
    ['adapter', store],
    ['raw query()', { query: (sql, params) => raw.query(sql, params ? [...params] : []) as never }],
  ];
  const measurements: Measurement[] = [];
  const payload = new Uint8Array(200).fill(7);
  console.log(`sql: ${options.count} events (3 statements each) x ${options.rounds} rounds per variant`);
  try {
    await store.query(SCHEMA);
    await raw.exec(SCHEMA);
    for (let round = 1; round <= options.rounds; round++) {
      const order = round % 2 ? variants : [...variants].reverse();
      for (const [variant, db] of order) {
        const progress = new Progress(`${variant} round ${round}`, options.count);
        const cpu = process.cpuUsage();
        const start = performance.now();
        for (let i = 0; i < options.count; i++) {
          await handle(db, `k${i % options.keys}`, `r${round}-${i}`, payload);
          progress.tick();
        }
        const seconds = (performance.now() - start) / 1000;
        const used = process.cpuUsage(cpu);
        progress.done();
        const statements = options.count * 3;
        const cpuUsPerStatement = (used.user + used.system) / statements;
        measurements.push({
          phase: 'statements',
          variant,
          round,
          count: statements,
          seconds,
          rate: statements / seconds,
          extra: { cpuUsPerStatement },
        });
        console.log(
          `  ${variant.padEnd(12)} round ${round}: ${formatRate(statements / seconds)} statements/s, ` +
            `${cpuUsPerStatement.toFixed(1)} µs CPU per statement`,
        );
      }
    }
    const summary = summarise(measurements);
    const rateOf = (variant: string) => summary.find((s) => s.variant === variant)?.rate ?? NaN;
    for (const s of summary) s.ratio = s.rate / rateOf('raw query()');
    const cpuOf = (variant: string) => {
      const values = measurements
        .filter((m) => m.variant === variant)
        .map((m) => m.extra!.cpuUsPerStatement!);
      return values.sort((a, b) => a - b)[values.length >> 1]!;
    };
    const headline =
      `sql: adapter ${formatRate(rateOf('adapter'))} statements/s (${cpuOf('adapter').toFixed(0)} µs CPU), ` +
      `raw query() ${formatRate(rateOf('raw query()'))} (${cpuOf('raw query()').toFixed(0)} µs CPU), ` +
      `ratio ${(rateOf('adapter') / rateOf('raw query()')).toFixed(2)}`;
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
        'One event = a select by key, an upsert with a 200-byte bytea and a timestamptz, an insert-once; autocommitted, one after the other.',
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
