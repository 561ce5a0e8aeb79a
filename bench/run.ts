// `npm run bench -- <name> [args]`: runs bench/<file>.bench.ts (each exports `run(args)`).
// With no name, lists the benchmarks.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchDir } from './support.ts';

interface BenchmarkModule {
  run(args: string[]): Promise<void>;
}

/** Each benchmark name and the files it runs, in order (a file that does not exist yet is skipped). */
const benchmarks: Record<string, { files: string[]; about: string }> = {
  messaging: {
    files: ['messaging.bench.ts'],
    about: 'JetStream publish / consume through the toolkit vs raw @nats-io/jetstream',
  },
  'request-reply': {
    files: ['request-reply.bench.ts'],
    about: 'request-reply with 100 in flight to a responder process: RpcClient/RpcServer vs raw request()',
  },
  eventstore: {
    files: ['eventstore.bench.ts', 'inbox-outbox.bench.ts'],
    about: 'event store append/load, then the SQL inbox and outbox relay',
  },
  sql: {
    files: ['sql.bench.ts'],
    about: "PGlite statements through the SQL port's adapter vs raw PGlite query()",
  },
  peers: {
    files: ['peers.bench.ts'],
    about:
      'request-reply and durable events: the toolkit vs Moleculer and NestJS microservices (bench/peers/)',
  },
  orders: {
    files: ['orders.bench.ts'],
    about: 'the whole system: closed-loop orders through the HTTP API, CPU/NATS/RSS per process',
  },
};

function list(): void {
  console.log(
    'usage: npm run bench -- <name> [--option value ...]   (--help after a name for its options)\n',
  );
  console.log('benchmarks:');
  const width = Math.max(...Object.keys(benchmarks).map((n) => n.length));
  for (const [name, { files, about }] of Object.entries(benchmarks)) {
    const present = files.filter((f) => existsSync(join(benchDir, f)));
    const missing = present.length === 0 ? '  (not written yet)' : '';
    console.log(`  ${name.padEnd(width)}  ${about}${missing}`);
  }
}

async function main(argv: string[]): Promise<void> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'list') {
    list();
    return;
  }
  const benchmark = benchmarks[name];
  if (!benchmark) {
    console.error(`unknown benchmark "${name}"\n`);
    list();
    process.exitCode = 2;
    return;
  }
  const files = benchmark.files.filter((f) => existsSync(join(benchDir, f)));
  if (files.length === 0) {
    console.error(`benchmark "${name}" has no file yet (expected ${benchmark.files.join(', ')} in bench/)`);
    process.exitCode = 2;
    return;
  }
  for (const file of files) {
    if (files.length > 1) console.log(`\n=== ${file} ===`);
    const module = (await import(pathToFileURL(join(benchDir, file)).href)) as BenchmarkModule;
    await module.run(args);
  }
}

main(process.argv.slice(2)).then(
  // Benchmarks close what they open; exit anyway so a stray handle cannot hang the run.
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
