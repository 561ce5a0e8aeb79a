import { execFile } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { compareVersions, connectNats } from '@orderflow/messaging';
import pg from 'pg';
import { SERVICES, serviceExists } from '../system.ts';

export interface DoctorOptions {
  readonly natsUrl: string | undefined;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  /** Ports `up` would listen on, by what listens there. */
  readonly ports: Readonly<Record<string, number>>;
}

type Check = { ok: true; detail: string } | { ok: false; detail: string; hint?: string } | { warn: string };

const rootDir = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const MIN_NATS = '2.9.0';

/**
 * `orderflow doctor`: checks what `up` needs — Node, nats-server (version, JetStream), PostgreSQL when
 * `DATABASE_URL` is set, free ports, a writable data directory — and prints one line per check.
 * Exit code 1 when a check failed.
 */
export async function doctor(options: DoctorOptions): Promise<number> {
  let failed = 0;
  const report = async (name: string, check: () => Promise<Check>) => {
    let result: Check;
    try {
      result = await check();
    } catch (error) {
      result = { ok: false, detail: error instanceof Error ? error.message : String(error) };
    }
    if ('warn' in result) {
      process.stdout.write(`  !  ${name.padEnd(22)} ${result.warn}\n`);
    } else if (result.ok) {
      process.stdout.write(`  ✔  ${name.padEnd(22)} ${result.detail}\n`);
    } else {
      failed += 1;
      process.stdout.write(
        `  ✘  ${name.padEnd(22)} ${result.detail}${result.hint ? `\n       → ${result.hint}` : ''}\n`,
      );
    }
  };

  await report('node', async () => {
    const ok = compareVersions(process.versions.node, '20.10.0') >= 0;
    return ok
      ? { ok, detail: `v${process.versions.node}` }
      : { ok, detail: `v${process.versions.node} is too old`, hint: 'install Node 20.10 or newer' };
  });

  await report('nats-server binary', async () => {
    let output: string;
    try {
      output = (await promisify(execFile)('nats-server', ['--version'])).stdout;
    } catch {
      return options.natsUrl
        ? { warn: 'not on PATH (fine: NATS_URL is set)' }
        : { ok: false, detail: 'not on PATH', hint: 'apt-get install nats-server, or set NATS_URL' };
    }
    const version = /v?(\d+\.\d+\.\d+)/.exec(output)?.[1] ?? '0.0.0';
    return compareVersions(version, MIN_NATS) >= 0
      ? { ok: true, detail: `v${version}` }
      : { ok: false, detail: `v${version} is older than ${MIN_NATS}` };
  });

  if (options.natsUrl) {
    await report('NATS_URL', async () => {
      const { nc, features } = await connectNats({
        servers: options.natsUrl!,
        name: 'orderflow-doctor',
        maxReconnectAttempts: 0,
      });
      await nc.close();
      const notes = features.multipleFilterSubjects ? '' : ' (one filter subject per consumer)';
      return {
        ok: true,
        detail: `${options.natsUrl}: nats-server ${features.version}, JetStream on${notes}`,
      };
    });
  }

  if (options.databaseUrl) {
    await report('PostgreSQL', async () => {
      const client = new pg.Client({ connectionString: options.databaseUrl, connectionTimeoutMillis: 5_000 });
      await client.connect();
      try {
        const { rows } = await client.query<{ version: string; create: boolean }>(
          "select current_setting('server_version') as version, has_database_privilege(current_database(), 'CREATE') as create",
        );
        const row = rows[0];
        if (!row?.create)
          return {
            ok: false,
            detail: 'connected, but may not create schemas',
            hint: 'grant CREATE on the database',
          };
        return { ok: true, detail: `PostgreSQL ${row.version}; a schema per service will be created` };
      } finally {
        await client.end();
      }
    });
  } else {
    await report('database', async () => ({ ok: true, detail: 'embedded PGlite (DATABASE_URL not set)' }));
  }

  await report('data directory', async () => {
    const dir = resolve(options.dataDir);
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
    return { ok: true, detail: `${dir} is writable` };
  });

  for (const [what, port] of Object.entries(options.ports)) {
    await report(`port ${port}`, async () =>
      (await portFree(port))
        ? { ok: true, detail: `free (${what})` }
        : {
            ok: false,
            detail: `in use (${what})`,
            hint: 'stop what listens there, or choose another port (see --help)',
          },
    );
  }

  await report('services', async () => {
    const missing = SERVICES.filter((name) => !serviceExists(rootDir, name));
    return missing.length === 0
      ? { ok: true, detail: `all ${SERVICES.length} present` }
      : { warn: `not present yet (up skips them): ${missing.join(', ')}` };
  });

  process.stdout.write(failed === 0 ? 'all checks passed\n' : `${failed} check(s) failed\n`);
  return failed === 0 ? 0 : 1;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.once('error', () => resolvePort(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePort(true)));
  });
}
