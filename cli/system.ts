import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { orderingTopology } from '@orderflow/contracts';
import { connectNats, type ProvisioningResponder } from '@orderflow/messaging';
import {
  busCredentials,
  busServerConfig,
  credentialsEnv,
  PERMISSION_VIOLATION,
  prepareBusSecrets,
  type BusCredentials,
} from './bus.ts';
import type { BusSecrets } from '@orderflow/messaging';
import { provisionOrdering, startProvisioningResponder } from './provision.ts';
import { DevIssuer, ensureDevSigningKey } from '@orderflow/gateway/dev-issuer';
import {
  allocateFreePort,
  Supervisor,
  SupervisorError,
  type LogLine,
  type ProgramSpec,
  type RestartPolicy,
  type SupervisorEvent,
} from './supervisor.ts';
import { ROOT_DIR } from './root.ts';

/**
 * The whole Orderflow system as supervised processes: a private nats-server (unless `natsUrl` is
 * given), the fake PSP and the SMTP sink, then every service of the ordering context. Used by
 * `orderflow up` and by the system tests; nothing here reads `process.env` (the caller passes it).
 */

/** The services of the ordering context, in the order they are listed. */
export const SERVICES = [
  'order-storage',
  'order-status',
  'payment-processor',
  'create-invoice',
  'assign-delivery',
  'email-notify',
  'gateway',
] as const;
export type ServiceName = (typeof SERVICES)[number];

const INFRASTRUCTURE = ['nats-server', 'payment-provider', 'smtp-sink'] as const;
export type ProgramName = ServiceName | (typeof INFRASTRUCTURE)[number];

export const RUNTIMES = ['tsx', 'dist'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export interface SystemConfig {
  /** Root of the repository (default: the parent of `cli/`). */
  rootDir?: string;
  /** Data of the private nats-server (`<dataDir>/nats`), the PSP and every PGlite database. */
  dataDir: string;
  /** External NATS (several cluster nodes comma-separated); when absent a private nats-server is started on `natsPort`. */
  natsUrl?: string;
  /**
   * Directory of the bus credentials (`<identity>.nk` nkey seeds, `ca.pem`): generated under
   * `<dataDir>/secrets` for the private nats-server (default); with `natsUrl`, the credentials that
   * server's config names (see docs/security.md), or none for an open server.
   */
  secretsDir?: string;
  /** Also generate the chaos harness's identity (it forges poison events). */
  chaosIdentity?: boolean;
  /**
   * Replicas of every stream, dead-letter stream, KV bucket and object store the services create
   * (default 1; 3 on a 3-node JetStream cluster given as `natsUrl`).
   */
  streamReplicas?: number;
  /** Port of the private nats-server (default 4222). */
  natsPort?: number;
  /** Monitoring port of the private nats-server (default: none). */
  natsMonitorPort?: number;
  /** PostgreSQL (a schema per service); when absent each service uses PGlite in `<dataDir>/<service>`. */
  databaseUrl?: string;
  /** Gateway HTTP port (default 3000). */
  gatewayPort?: number;
  /** Fake PSP port (default 4010). */
  pspPort?: number;
  /** SMTP sink ports (defaults 2525 and 8025). */
  smtpPort?: number;
  mailboxPort?: number;
  /**
   * How services run: `tsx` (default) runs `src/main.ts` through tsx, as the tests do; `dist` runs
   * the bundles `npm run build` writes (`services/<name>/dist/main.mjs`) with plain node — what
   * `npm start` does: no TypeScript compiler or esbuild helper in each process.
   */
  runtime?: Runtime;
  /** Replicas per service (default 1 each). */
  replicas?: Partial<Record<ServiceName, number>>;
  /** Only these services (default all that exist). Infrastructure always runs. */
  only?: readonly ServiceName[];
  /** Extra node options per program, before its script (e.g. `--cpu-prof`, which `NODE_OPTIONS` refuses). */
  nodeArgs?: Partial<Record<ProgramName, readonly string[]>>;
  /** Extra environment per program (e.g. `MAX_DELIVER`), applied last. */
  env?: Partial<Record<ProgramName, Record<string, string>>>;
  /** Environment every child inherits (PATH, LOG_LEVEL…). Service settings are never taken from it. */
  baseEnv?: Record<string, string | undefined>;
  restart?: Partial<RestartPolicy>;
  stopDeadlineMs?: number;
  readyTimeoutMs?: number;
  /** See `SupervisorOptions.ownProcessGroup` (default true). */
  ownProcessGroup?: boolean;
  onLog?: (line: LogLine) => void;
  onEvent?: (event: SupervisorEvent) => void;
  /** Called for services that are skipped (not in services/ yet). */
  onWarning?: (message: string) => void;
}

/** The system's programs and addresses (started by `startSystem`, or by `supervisor.start()`). */
export interface RunningSystem {
  readonly supervisor: Supervisor;
  readonly natsUrl: string;
  /** Gateway base URL, e.g. `http://127.0.0.1:3000`. */
  readonly apiUrl: string;
  /** SMTP sink mailbox (HTTP), e.g. `http://127.0.0.1:8025`. */
  readonly mailboxUrl: string;
  readonly pspUrl: string;
  readonly smtpPort: number;
  /** Services that run (the others were skipped). */
  readonly services: readonly ServiceName[];
  readonly skipped: readonly ServiceName[];
  /** How the operator (CLI) connects; undefined on an open external server. */
  readonly operatorCredentials: BusCredentials | undefined;
  /** Credentials of any identity (the chaos harness's too when `chaosIdentity` is set). */
  credentials(identity: Parameters<typeof busCredentials>[1]): BusCredentials | undefined;
  /** Lines the private nats-server logged about refused publishes or subscriptions. */
  permissionViolations(): readonly string[];
  /** Connects to the system's NATS as `identity` (default `operator`; anonymous on an open server). */
  connect(name: string, identity?: Parameters<typeof busCredentials>[1]): Promise<NatsConnection>;
  /**
   * The development signing key of the gateway (`<dataDir>/auth/dev-signing-key.jwk`, mode 0600, made
   * once and reused): sign-up tokens are signed with it; so is {@link operatorToken}.
   */
  readonly devKeyFile: string;
  /** A fresh operator token signed with the development key (what `orderflow token --operator` prints). */
  operatorToken(subject?: string): Promise<string>;
  /** Stops everything, services first, NATS last. */
  stop(): Promise<void>;
}

/** Where `up` keeps the gateway's development signing key under `dataDir`. */
const devKeyFileIn = (dataDir: string): string => join(resolve(dataDir), 'auth', 'dev-signing-key.jwk');

/** An operator token signed with the development key of the system whose data is in `dataDir`. */
export async function devOperatorToken(dataDir: string, subject = 'operator:cli'): Promise<string> {
  return (await DevIssuer.open(devKeyFileIn(dataDir))).operatorToken(subject);
}

/** Settings the system sets for every child; inherited values of these names are dropped. */
const MANAGED_ENV = [
  'NATS_URL',
  'NATS_NKEY_SEED_FILE',
  'NATS_CA_FILE',
  'DATA_DIR',
  'DATABASE_URL',
  'DB_SCHEMA',
  'PORT',
  'HOST',
  'HTTP_PORT',
  'PSP_URL',
  'MAILBOX_URL',
  'SMTP_HOST',
  'SMTP_PORT',
  'ORDERFLOW_NAMESPACE',
  'STREAM_REPLICAS',
  'KV_REPLICAS',
  'OBJECT_STORE_REPLICAS',
  // The gateway's authentication is the system's to set (a development key under DATA_DIR).
  'AUTH_DEV_KEY_FILE',
  'AUTH_JWKS_URL',
  'AUTH_ISSUER',
  'AUTH_AUDIENCE',
  'AUTH_ALGORITHMS',
];

/** Whether `services/<name>/src/main.ts` exists. */
export function serviceExists(rootDir: string, name: string): boolean {
  return existsSync(join(rootDir, 'services', name, 'src', 'main.ts'));
}

/** The file a program runs from, relative to the root (see `SystemConfig.runtime`). */
export function programFile(name: string, runtime: Runtime): string {
  switch (runtime) {
    case 'tsx':
      return join('services', name, 'src', 'main.ts');
    case 'dist':
      return join('services', name, 'dist', 'main.mjs');
    default:
      return runtime satisfies never;
  }
}

/** Whether the service keeps data in the SQL store (its package depends on `@orderflow/sql`). */
function usesSql(rootDir: string, name: string): boolean {
  try {
    const pkg = JSON.parse(readFileSync(join(rootDir, 'services', name, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    return pkg.dependencies?.['@orderflow/sql'] !== undefined;
  } catch {
    return false;
  }
}

/** Problems with a configuration, all at once (empty when it is fine). */
export function checkSystemConfig(config: SystemConfig): string[] {
  const rootDir = config.rootDir ?? ROOT_DIR;
  const issues: string[] = [];
  if (config.runtime === 'dist') {
    const missing = [
      ...INFRASTRUCTURE.filter((n) => n !== 'nats-server'),
      ...(config.only ?? SERVICES),
    ].filter((name) => serviceExists(rootDir, name) && !existsSync(join(rootDir, programFile(name, 'dist'))));
    if (missing.length > 0)
      issues.push(`runtime dist: no build of ${missing.join(', ')} (run \`npm run build\` first)`);
  }
  for (const [name, count] of Object.entries(config.replicas ?? {})) {
    if (!(SERVICES as readonly string[]).includes(name)) {
      issues.push(`--replicas: unknown service "${name}" (one of ${SERVICES.join(', ')})`);
      continue;
    }
    if (!Number.isInteger(count) || count < 1 || count > 32)
      issues.push(`--replicas ${name}: must be an integer in 1..32`);
    else if (name === 'gateway' && count > 1)
      issues.push('--replicas gateway: one gateway per PORT (put a load balancer in front of several)');
    else if (count > 1 && config.databaseUrl === undefined && usesSql(rootDir, name))
      issues.push(
        `--replicas ${name}=${count}: ${name} keeps its data in embedded PGlite, which one process owns; ` +
          'set DATABASE_URL (PostgreSQL) to run several replicas',
      );
  }
  return issues;
}

/** Starts the system and resolves when every program is ready. Stops what it started if that fails. */
export async function startSystem(config: SystemConfig): Promise<RunningSystem> {
  const system = await createSystem(config);
  try {
    await system.supervisor.start();
  } catch (error) {
    await system.stop();
    throw error;
  }
  return system;
}

/** Prepares the system (directories, programs) without starting anything: `supervisor.start()` does. */
export async function createSystem(config: SystemConfig): Promise<RunningSystem> {
  const issues = checkSystemConfig(config);
  if (issues.length > 0) throw new SupervisorError('INVALID_CONFIG', issues.join('; '));
  const rootDir = config.rootDir ?? ROOT_DIR;
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  const devKeyFile = await ensureDevSigningKey(devKeyFileIn(dataDir));

  const base: Record<string, string> = {};
  for (const [key, value] of Object.entries(config.baseEnv ?? {}))
    if (value !== undefined && !MANAGED_ENV.includes(key)) base[key] = value;

  const natsPort = config.natsPort ?? 4222;
  const natsUrl = config.natsUrl ?? `nats://127.0.0.1:${natsPort}`;
  const pspPort = config.pspPort ?? 4010;
  const smtpPort = config.smtpPort ?? 2525;
  const mailboxPort = config.mailboxPort ?? 8025;
  const gatewayPort = config.gatewayPort ?? 3000;
  const pspUrl = `http://127.0.0.1:${pspPort}`;
  const runtime = config.runtime ?? 'tsx';
  const node = (name: ProgramName): Pick<ProgramSpec, 'command' | 'args' | 'cwd'> => ({
    command: process.execPath,
    args: [
      ...(config.nodeArgs?.[name] ?? []),
      ...(runtime === 'dist' ? [] : ['--import', 'tsx']),
      programFile(name, runtime),
    ],
    cwd: rootDir,
  });
  const extra = (name: ProgramName): Record<string, string> => config.env?.[name] ?? {};

  const topology = orderingTopology();
  const chaos = config.chaosIdentity ?? false;
  const secretsDir =
    config.secretsDir !== undefined
      ? resolve(config.secretsDir)
      : config.natsUrl === undefined
        ? join(dataDir, 'secrets')
        : undefined;
  const secrets =
    secretsDir === undefined
      ? undefined
      : config.natsUrl === undefined
        ? await prepareBusSecrets(secretsDir, topology, { chaos })
        : {
            dir: secretsDir,
            ...(existsSync(join(secretsDir, 'ca.pem')) && { tls: { caFile: join(secretsDir, 'ca.pem') } }),
          };
  const credentials = (identity: Parameters<typeof busCredentials>[1]): BusCredentials | undefined =>
    secrets && busCredentials(secrets, identity);

  const programs: ProgramSpec[] = [];
  const violations: string[] = [];
  if (config.natsUrl === undefined) {
    const storeDir = join(dataDir, 'nats');
    await mkdir(storeDir, { recursive: true });
    const configFile = join(dataDir, 'nats-server.conf');
    await writeFile(
      configFile,
      busServerConfig(secrets as BusSecrets, topology, {
        serverName: 'orderflow',
        port: natsPort,
        storeDir,
        chaos,
        ...(config.natsMonitorPort !== undefined && { monitorPort: config.natsMonitorPort }),
      }),
      { mode: 0o600 },
    );
    programs.push({
      name: 'nats-server',
      command: 'nats-server',
      args: ['-c', configFile],
      env: base,
      tier: 0,
      readiness: { kind: 'tcp', port: natsPort },
    });
  }
  programs.push(
    {
      name: 'payment-provider',
      ...node('payment-provider'),
      env: {
        ...base,
        PORT: String(pspPort),
        HOST: '127.0.0.1',
        DATA_DIR: join(dataDir, 'payment-provider'),
        ...extra('payment-provider'),
      },
      tier: 1,
      readiness: { kind: 'tcp', port: pspPort },
    },
    {
      name: 'smtp-sink',
      ...node('smtp-sink'),
      env: {
        ...base,
        SMTP_PORT: String(smtpPort),
        HTTP_PORT: String(mailboxPort),
        HOST: '127.0.0.1',
        ...extra('smtp-sink'),
      },
      tier: 1,
      readiness: { kind: 'http', url: `http://127.0.0.1:${mailboxPort}/messages?to=readiness@probe` },
    },
  );

  const wanted = config.only ?? SERVICES;
  const services: ServiceName[] = [];
  const skipped: ServiceName[] = [];
  for (const name of SERVICES) {
    if (!wanted.includes(name)) continue;
    if (!serviceExists(rootDir, name)) {
      skipped.push(name);
      config.onWarning?.(`${name}: services/${name}/src/main.ts does not exist yet; skipped`);
      continue;
    }
    services.push(name);
    const own = credentials(name);
    const common: Record<string, string> = {
      ...base,
      NATS_URL: natsUrl,
      ...(own && credentialsEnv(own)),
      DATA_DIR: join(dataDir, name),
      DB_SCHEMA: name.replace(/-/g, '_'),
      ...(config.databaseUrl !== undefined && { DATABASE_URL: config.databaseUrl }),
      ...(config.streamReplicas !== undefined && {
        STREAM_REPLICAS: String(config.streamReplicas),
        KV_REPLICAS: String(config.streamReplicas),
        OBJECT_STORE_REPLICAS: String(config.streamReplicas),
      }),
    };
    const specific: Record<string, string> =
      name === 'payment-processor'
        ? { PSP_URL: pspUrl }
        : name === 'email-notify'
          ? { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(smtpPort) }
          : name === 'gateway'
            ? {
                PORT: String(gatewayPort),
                HOST: '127.0.0.1',
                AUTH_DEV_KEY_FILE: devKeyFile,
                // The operations console shows the development mailbox and the PSP's ledger.
                MAILBOX_URL: `http://127.0.0.1:${mailboxPort}`,
                PSP_URL: pspUrl,
              }
            : {};
    programs.push({
      name,
      ...node(name),
      env: { ...common, ...specific, ...extra(name) },
      replicas: config.replicas?.[name] ?? 1,
      // The gateway starts last and stops first: no HTTP request finds the services gone.
      ...(name === 'gateway'
        ? // It serves /healthz, /readyz and /metrics on its API port (it ignores HTTP_PORT).
          { tier: 3, readiness: { kind: 'http', url: `http://127.0.0.1:${gatewayPort}/readyz` } }
        : {
            tier: 2,
            portEnv: 'HTTP_PORT',
            readiness: { kind: 'http', url: 'http://127.0.0.1:{port}/readyz' },
          }),
    });
  }

  // The provisioner creates streams and buckets before the services start, and stays to create
  // their durables on request (they may not do it themselves).
  let provisioner: { nc: NatsConnection; responder: ProvisioningResponder } | undefined;
  const provision = async (): Promise<void> => {
    if (provisioner) return;
    const own = credentials('provisioner');
    const { nc } = await connectNats({ servers: natsUrl, name: 'orderflow-provisioner', ...own });
    try {
      await provisionOrdering(nc, topology, { replicas: config.streamReplicas ?? 1 });
      provisioner = { nc, responder: await startProvisioningResponder(nc, topology) };
    } catch (error) {
      await nc.close();
      throw error;
    }
  };
  const onLog = (line: LogLine): void => {
    if (line.program === 'nats-server' && PERMISSION_VIOLATION.test(line.line)) violations.push(line.line);
    config.onLog?.(line);
  };

  const supervisor = new Supervisor({
    programs,
    onLog,
    beforeTier: async (tier) => {
      if (tier >= 2 && secrets) await provision(); // before the first service tier started
    },
    ...(config.onEvent && { onEvent: config.onEvent }),
    ...(config.restart && { restart: config.restart }),
    ...(config.stopDeadlineMs !== undefined && { stopDeadlineMs: config.stopDeadlineMs }),
    ...(config.readyTimeoutMs !== undefined && { readyTimeoutMs: config.readyTimeoutMs }),
    ...(config.ownProcessGroup !== undefined && { ownProcessGroup: config.ownProcessGroup }),
    allocatePort: allocateFreePort,
  });
  return {
    supervisor,
    natsUrl,
    apiUrl: `http://127.0.0.1:${gatewayPort}`,
    mailboxUrl: `http://127.0.0.1:${mailboxPort}`,
    pspUrl,
    smtpPort,
    services,
    skipped,
    operatorCredentials: credentials('operator'),
    credentials,
    permissionViolations: () => violations,
    connect: async (name, identity = 'operator') =>
      (await connectNats({ servers: natsUrl, name, ...credentials(identity) })).nc,
    devKeyFile,
    operatorToken: (subject) => devOperatorToken(dataDir, subject),
    stop: async () => {
      try {
        await supervisor.stop();
      } finally {
        provisioner?.responder.stop();
        await provisioner?.nc.close();
        provisioner = undefined;
      }
    },
  };
}
