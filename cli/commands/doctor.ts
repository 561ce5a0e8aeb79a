import { execFile } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { OrderingTopology } from '@orderflow/contracts';
import { compareVersions, connectNats, RabbitTopology } from '@orderflow/messaging';
import pg from 'pg';
import { reasonOf } from '../errors.ts';
import type { NatsTarget } from '../bus.ts';
import { connectOrderflow } from '../nats.ts';
import { connectAsOperator } from '../rabbit.ts';
import { describeBus, type UpState } from '../state.ts';
import { SERVICES, serviceExists } from '../system.ts';
import { ROOT_DIR } from '../root.ts';

/** A port `up` would listen on. */
export interface DoctorPort {
  /** What listens there (`gateway`, `private nats-server`…). */
  readonly what: string;
  readonly port: number;
  /**
   * `up` takes a free port instead when this one is taken (an infrastructure default no flag fixed):
   * a taken port is then a note, not a failure. The flag that would fix it, for the note.
   */
  readonly movable?: { readonly flag: string };
}

export interface DoctorOptions {
  /** `--nats` or `NATS_URL`: the external NATS `up` would use. */
  readonly natsUrl: string | undefined;
  /** The operator's bus credentials (nkey seed, CA), when there are any. */
  readonly natsCredentials?: Omit<NatsTarget, 'servers'>;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly ports: readonly DoctorPort[];
  /** The `up` running on `dataDir` (its state file), if any: doctor reports on it instead of flagging its ports. */
  readonly running: UpState | undefined;
  /** Where the report goes (default stdout). */
  readonly say?: (line: string) => void;
}

type Check = { ok: true; detail: string } | { ok: false; detail: string; hint?: string } | { warn: string };

const rootDir = ROOT_DIR;
const MIN_NATS = '2.9.0';

/**
 * `orderflow doctor`: checks what `up` needs — Node, nats-server (version, JetStream), PostgreSQL when
 * `DATABASE_URL` is set, free ports (a taken port `up` would move away from is a note), a writable
 * data directory — and prints one line per check. With an `up` running on the data directory it
 * checks that system (its NATS and streams, its gateway's readiness) and counts its ports as its own.
 * Exit code 1 when a check failed.
 */
export async function doctor(options: DoctorOptions): Promise<number> {
  const out = options.say ?? ((line: string) => process.stdout.write(`${line}\n`));
  let failed = 0;
  const report = async (name: string, check: () => Promise<Check>) => {
    let result: Check;
    try {
      result = await check();
    } catch (error) {
      result = { ok: false, detail: error instanceof Error ? error.message : String(error) };
    }
    if ('warn' in result) {
      out(`  !  ${name.padEnd(22)} ${result.warn}`);
    } else if (result.ok) {
      out(`  ✔  ${name.padEnd(22)} ${result.detail}`);
    } else {
      failed += 1;
      out(`  ✘  ${name.padEnd(22)} ${result.detail}${result.hint ? `\n       → ${result.hint}` : ''}`);
    }
  };

  await report('node', async () => {
    const ok = supportedNode(process.versions.node);
    return ok
      ? { ok, detail: `v${process.versions.node}` }
      : { ok, detail: `v${process.versions.node} is not supported`, hint: `install Node ${SUPPORTED_NODE}` };
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

  const running = options.running;
  if (running) {
    await report('orderflow up', async () => ({
      ok: true,
      detail: `running (pid ${running.pid}, since ${running.startedAt}): API ${running.apiUrl}, ${describeBus(running)}`,
    }));
    const rabbit = running.rabbit;
    const natsUrl = rabbit ? undefined : (options.natsUrl ?? running.natsUrl);
    if (rabbit)
      await report('running RabbitMQ', async () => {
        // As the operator, who may read the dead-letter queue the provisioning declared.
        const connection = await connectAsOperator(rabbit, 'orderflow-doctor');
        try {
          const ch = await connection.createChannel();
          ch.on('error', () => undefined);
          const { messageCount } = await ch.checkQueue(RabbitTopology.deadLetterQueue);
          return {
            ok: true,
            detail: `${rabbit.url} vhost ${rabbit.vhost} as ${rabbit.operatorUser}: ${messageCount} dead letter(s)`,
          };
        } finally {
          await connection.close().catch(() => undefined);
        }
      });
    if (natsUrl !== undefined)
      await report('running NATS', async () => {
        const nc = await connectOrderflow(
          { ...options.natsCredentials, servers: natsUrl },
          'orderflow-doctor',
        );
        const version = nc.info?.version ?? '?';
        await nc.close();
        return {
          ok: true,
          detail: `${natsUrl}: nats-server ${version}, ${OrderingTopology.stream} stream present`,
        };
      });
    await report('running gateway', async () => {
      const response = await fetch(`${running.apiUrl}/readyz`, { signal: AbortSignal.timeout(5_000) }).catch(
        (error: unknown) => {
          throw new Error(`cannot reach ${running.apiUrl} (${reasonOf(error)})`);
        },
      );
      return response.status === 200
        ? { ok: true, detail: `${running.apiUrl}/readyz: ready` }
        : { ok: false, detail: `${running.apiUrl}/readyz: ${response.status} ${await response.text()}` };
    });
  } else if (options.natsUrl) {
    await report('NATS_URL', async () => {
      let connected;
      try {
        connected = await connectNats({
          ...options.natsCredentials,
          servers: options.natsUrl!,
          name: 'orderflow-doctor',
          maxReconnectAttempts: 0,
          waitOnFirstConnect: false,
        });
      } catch (error) {
        return { ok: false, detail: `cannot reach ${options.natsUrl} (${reasonOf(error)})` };
      }
      const { nc, features } = connected;
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

  const ownPorts = new Map(Object.entries(running?.ports ?? {}).map(([what, port]) => [port, what]));
  for (const { what, port, movable } of options.ports) {
    await report(`port ${port}`, async () => {
      const owner = ownPorts.get(port);
      if (owner !== undefined) return { ok: true, detail: `in use by the running system (${owner})` };
      if (await portFree(port)) return { ok: true, detail: `free (${what})` };
      if (movable)
        return {
          warn: `in use (${what}): up will take a free port instead (or choose one: ${movable.flag})`,
        };
      return {
        ok: false,
        detail: `in use (${what})`,
        hint: 'stop what listens there, or choose another port (see --help)',
      };
    });
  }

  await report('services', async () => {
    const missing = SERVICES.filter((name) => !serviceExists(rootDir, name));
    return missing.length === 0
      ? { ok: true, detail: `all ${SERVICES.length} present` }
      : { warn: `not present yet (up skips them): ${missing.join(', ')}` };
  });

  out(failed === 0 ? 'all checks passed' : `${failed} check(s) failed`);
  return failed === 0 ? 0 : 1;
}

/** The Node versions of package.json `engines`. */
const SUPPORTED_NODE = '20.19+, 22.13+ or 24+';

function supportedNode(version: string): boolean {
  const major = Number(version.split('.')[0]);
  if (major === 20) return compareVersions(version, '20.19.0') >= 0;
  if (major === 22) return compareVersions(version, '22.13.0') >= 0;
  return major >= 24;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.once('error', () => resolvePort(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePort(true)));
  });
}
