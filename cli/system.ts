import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { orderingBusIdentities, orderingTopology, type BusIdentityName } from '@orderflow/contracts';
import {
  BrokerKind,
  connectNats,
  connectRabbit,
  NatsTransport,
  RabbitTransport,
  type BrokerConnection,
  type ProvisioningResponder,
  type RabbitIdentityAccess,
} from '@orderflow/messaging';
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
import { orderingRabbitAccess, provisionOrderingRabbit } from './rabbit.ts';
import { WrongBrokerError } from './errors.ts';
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
 *
 * On RabbitMQ (`broker: 'rabbitmq'`) the broker is not one of the programs: it is the RabbitMQ at
 * `amqpUrl`, administered with `rabbitmqctl` on this machine. Before the services start, one user per
 * identity is made in `rabbitVhost` with that identity's permissions and the topology is declared
 * (`provisionOrderingRabbit`); every service then connects as its own user.
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

/** Defaults of the RabbitMQ settings of {@link SystemConfig}. */
export const RABBIT_DEFAULTS = { amqpUrl: 'amqp://127.0.0.1:5672', vhost: 'orderflow' } as const;

export interface SystemConfig {
  /** Root of the repository (default: the parent of `cli/`). */
  rootDir?: string;
  /**
   * Data of the private nats-server (`<dataDir>/nats`), the PSP and every PGlite database; on RabbitMQ
   * also the invoice PDFs the services share (`<dataDir>/blobs`, their `BLOB_DIR`).
   */
  dataDir: string;
  /**
   * The broker every service runs on (default `nats`). With `rabbitmq` the NATS settings below
   * (`natsUrl`, `natsPort`, `natsMonitorPort`, `streamReplicas`) do not apply and are refused.
   */
  broker?: BrokerKind;
  /**
   * RabbitMQ without credentials or vhost (default `amqp://127.0.0.1:5672`); only with `broker:
   * 'rabbitmq'`. Each process gets its own user's URL on it, with this URL's query (e.g.
   * `?heartbeat=60`, in seconds; the services ask for 15 without one).
   */
  amqpUrl?: string;
  /**
   * The vhost of the system (default `orderflow`; created by the provisioning if missing). The users
   * are named `<vhost>-<identity>` (RabbitMQ users are per broker, not per vhost), so systems on
   * different vhosts of one broker do not share passwords.
   */
  rabbitVhost?: string;
  /** External NATS (several cluster nodes comma-separated); when absent a private nats-server is started on `natsPort`. */
  natsUrl?: string;
  /**
   * Directory of the bus credentials (`<identity>.nk` nkey seeds, `ca.pem`): generated under
   * `<dataDir>/secrets` for the private nats-server (default); with `natsUrl`, the credentials that
   * server's config names (see docs/security.md), or none for an open server. On RabbitMQ the
   * identities' passwords are generated in `<secretsDir>/rabbitmq` (`<identity>.amqp-password`, 0600).
   */
  secretsDir?: string;
  /** Also generate the chaos harness's identity (it forges poison events), on either broker. */
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

/** Where a system on RabbitMQ is. */
export interface RabbitSystem {
  /** The broker without credentials, e.g. `amqp://127.0.0.1:5672`. */
  readonly url: string;
  readonly vhost: string;
  /** Prefix of every user name (`<vhost>-`): the user of identity `x` is `<userPrefix>x`. */
  readonly userPrefix: string;
  /** The identities that have a user (what `removeRabbitUsers` takes to delete them). */
  readonly identities: readonly BusIdentityName[];
  /** Where the passwords are (`<identity>.amqp-password`, mode 0600). */
  readonly secretsDir: string;
}

/**
 * A toolkit `Transport` of the system's broker as one identity, over a connection of its own: the
 * NATS or RabbitMQ {@link BrokerConnection} (narrow on `kind` for the concrete transport).
 */
export type SystemTransport = BrokerConnection & {
  /** Stops the transport (its consumers, endpoints, listeners) and closes its connection. Idempotent. */
  close(): Promise<void>;
};

/** The system's programs and addresses (started by `startSystem`, or by `supervisor.start()`). */
export interface RunningSystem {
  readonly supervisor: Supervisor;
  readonly broker: BrokerKind;
  /** The NATS the system runs on; undefined on RabbitMQ. */
  readonly natsUrl: string | undefined;
  /** The RabbitMQ the system runs on; undefined on NATS. */
  readonly rabbit: RabbitSystem | undefined;
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
  /**
   * Refusals of the broker's permissions. On NATS: the lines the private nats-server logged about
   * refused publishes or subscriptions (none are seen on an external server). On RabbitMQ: the lines
   * in which a service logged a refusal, `ACCESS_REFUSED` (the broker closed a channel over a publish,
   * consume, bind or declare the user may not do; the transport logs every such close) or
   * `BROKER_REFUSED` (its login or vhost refused). The broker's own log is not read: it is on the
   * broker's machine, shared with other vhosts. Refusals met by clients other than the services (e.g.
   * a {@link transport} of a test) are not in it.
   */
  permissionViolations(): readonly string[];
  /**
   * Connects to the system's NATS as `identity` (default `operator`; anonymous on an open server).
   * On RabbitMQ it rejects with a {@link WrongBrokerError}: use {@link transport}.
   */
  connect(name: string, identity?: Parameters<typeof busCredentials>[1]): Promise<NatsConnection>;
  /**
   * A toolkit `Transport` as `identity` (default `operator`) on the system's broker, connection named
   * `name`: a `NatsTransport` (on the identity's nkey) or a `RabbitTransport` (as the identity's user,
   * in provisioned mode: it declares only its private queues). It fails fast when the broker does not
   * answer. The caller may close it; {@link stop} closes every one still open, before the broker goes.
   * On RabbitMQ only once the system started (the users are made then).
   */
  transport(name: string, identity?: BusIdentityName): Promise<SystemTransport>;
  /**
   * `amqp://<user>:<password>@host:port/<vhost>` of `identity` on a system on RabbitMQ (e.g. to
   * publish raw AMQP). Throws a {@link WrongBrokerError} on NATS, a `SupervisorError` (`NOT_READY`)
   * before the system started.
   */
  amqpUrl(identity: BusIdentityName): string;
  /**
   * The development signing key of the gateway (`<dataDir>/auth/dev-signing-key.jwk`, mode 0600, made
   * once and reused): sign-up tokens are signed with it; so is {@link operatorToken}.
   */
  readonly devKeyFile: string;
  /** A fresh operator token signed with the development key (what `orderflow token --operator` prints). */
  operatorToken(subject?: string): Promise<string>;
  /** Stops everything: the transports still open, the services, the infrastructure, NATS last. */
  stop(): Promise<void>;
}

/** Where `up` keeps the gateway's development signing key under `dataDir`. */
const devKeyFileIn = (dataDir: string): string => join(resolve(dataDir), 'auth', 'dev-signing-key.jwk');

/** An operator token signed with the development key of the system whose data is in `dataDir`. */
export async function devOperatorToken(dataDir: string, subject = 'operator:cli'): Promise<string> {
  return (await DevIssuer.open(devKeyFileIn(dataDir))).operatorToken(subject);
}

/**
 * How every Node program of the system runs, for its resident memory (docs/performance.md, "Idle
 * memory"); an inherited environment variable of the same name wins.
 * - `--max-semi-space-size=4` (MB): V8's semi-spaces grow to 16 MB each by default and stay
 *   resident once grown; at these allocation rates 4 MB semi-spaces cost no measurable CPU.
 * - `MALLOC_MMAP_THRESHOLD_=32768`: glibc serves allocations of 32 KiB and more with their own mapping,
 *   returned to the system when freed. V8's compilers (TurboFan tiering up PGlite's WebAssembly in
 *   background threads) allocate their zones in such blocks; in per-thread malloc arenas they left
 *   ≈ 50–75 MB behind in each PGlite service, freed but resident.
 */
export const NODE_MEMORY_ARGS: readonly string[] = ['--max-semi-space-size=4'];
export const NODE_MEMORY_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '32768' };

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
  'BROKER',
  'AMQP_URL',
  'AMQP_PROVISIONED',
  'BLOB_DIR',
  // The gateway's authentication is the system's to set (a development key under DATA_DIR).
  'AUTH_DEV_KEY_FILE',
  'AUTH_JWKS_URL',
  'AUTH_ISSUER',
  'AUTH_AUDIENCE',
  'AUTH_ALGORITHMS',
];

/** A service's log line about a refusal by RabbitMQ (see `RunningSystem.permissionViolations`). */
const RABBIT_REFUSAL = /ACCESS[_-]REFUSED|BROKER_REFUSED/;

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
  const issues: string[] = [...brokerIssues(config)];
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

/** A vhost name that also makes a readable user-name prefix. */
const VHOST_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function brokerIssues(config: SystemConfig): string[] {
  // A string from the command line or the environment may be anything.
  const broker: string = config.broker ?? BrokerKind.Nats;
  if (broker !== BrokerKind.Nats && broker !== BrokerKind.RabbitMQ)
    return [`broker: one of ${BrokerKind.Nats}, ${BrokerKind.RabbitMQ} (got "${broker}")`];
  const issues: string[] = [];
  const given = (settings: Partial<Record<keyof SystemConfig, unknown>>) =>
    Object.entries(settings)
      .filter(([, value]) => value !== undefined)
      .map(([name]) => name);
  if (broker === BrokerKind.Nats) {
    for (const name of given({ amqpUrl: config.amqpUrl, rabbitVhost: config.rabbitVhost }))
      issues.push(`${name}: only with broker ${BrokerKind.RabbitMQ}`);
    return issues;
  }
  for (const name of given({
    natsUrl: config.natsUrl,
    natsPort: config.natsPort,
    natsMonitorPort: config.natsMonitorPort,
    streamReplicas: config.streamReplicas,
  }))
    issues.push(`${name}: only with broker ${BrokerKind.Nats}`);
  const url = config.amqpUrl ?? RABBIT_DEFAULTS.amqpUrl;
  if (!URL.canParse(url) || !['amqp:', 'amqps:'].includes(new URL(url).protocol))
    issues.push(`amqpUrl: not an amqp:// or amqps:// URL: ${url}`);
  else {
    const parsed = new URL(url);
    // Not echoed: it may hold a password.
    if (parsed.username !== '' || parsed.password !== '')
      issues.push('amqpUrl: without credentials (every process gets its own user)');
    if (parsed.pathname !== '' && parsed.pathname !== '/')
      issues.push(`amqpUrl: without a vhost (the system's is rabbitVhost): ${url}`);
  }
  const vhost = config.rabbitVhost ?? RABBIT_DEFAULTS.vhost;
  if (!VHOST_NAME.test(vhost)) issues.push(`rabbitVhost: must match ${VHOST_NAME.source} (got "${vhost}")`);
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

  const nodeBase: Record<string, string> = { ...NODE_MEMORY_ENV, ...base };
  const broker = config.broker ?? BrokerKind.Nats;
  const onRabbit = broker === BrokerKind.RabbitMQ;
  const natsPort = config.natsPort ?? 4222;
  const natsUrl = onRabbit ? undefined : (config.natsUrl ?? `nats://127.0.0.1:${natsPort}`);
  const privateNats = !onRabbit && config.natsUrl === undefined;
  const pspPort = config.pspPort ?? 4010;
  const smtpPort = config.smtpPort ?? 2525;
  const mailboxPort = config.mailboxPort ?? 8025;
  const gatewayPort = config.gatewayPort ?? 3000;
  const pspUrl = `http://127.0.0.1:${pspPort}`;
  const runtime = config.runtime ?? 'tsx';
  const node = (name: ProgramName): Pick<ProgramSpec, 'command' | 'args' | 'cwd'> => ({
    command: process.execPath,
    args: [
      ...NODE_MEMORY_ARGS,
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
    secretsDir === undefined || onRabbit
      ? undefined
      : config.natsUrl === undefined
        ? await prepareBusSecrets(secretsDir, topology, { chaos })
        : {
            dir: secretsDir,
            ...(existsSync(join(secretsDir, 'ca.pem')) && { tls: { caFile: join(secretsDir, 'ca.pem') } }),
          };
  const credentials = (identity: Parameters<typeof busCredentials>[1]): BusCredentials | undefined =>
    secrets && busCredentials(secrets, identity);

  const rabbit: RabbitSystem | undefined = onRabbit
    ? {
        url: config.amqpUrl ?? RABBIT_DEFAULTS.amqpUrl,
        vhost: config.rabbitVhost ?? RABBIT_DEFAULTS.vhost,
        userPrefix: `${config.rabbitVhost ?? RABBIT_DEFAULTS.vhost}-`,
        identities: orderingBusIdentities(topology, { chaos }).map((i) => i.name as BusIdentityName),
        secretsDir: join(secretsDir ?? join(dataDir, 'secrets'), 'rabbitmq'),
      }
    : undefined;
  const rabbitOptions = rabbit && {
    url: rabbit.url,
    vhost: rabbit.vhost,
    secretsDir: rabbit.secretsDir,
    userPrefix: rabbit.userPrefix,
    chaos,
  };
  // Every process's URL before the users exist (the provisioning, before tier 2, makes them).
  const rabbitAccess = rabbitOptions && (await orderingRabbitAccess(topology, rabbitOptions));
  let rabbitProvisioned = false;

  const programs: ProgramSpec[] = [];
  const violations: string[] = [];
  if (privateNats) {
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
        ...nodeBase,
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
        ...nodeBase,
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
    const bus: Record<string, string> = rabbitAccess
      ? {
          BROKER: BrokerKind.RabbitMQ,
          AMQP_URL: rabbitAccess.get(name)?.url ?? '',
          AMQP_PROVISIONED: 'true',
          // Where create-invoice writes the invoice PDFs that email-notify and the gateway read.
          BLOB_DIR: join(dataDir, 'blobs'),
        }
      : { BROKER: BrokerKind.Nats, NATS_URL: natsUrl ?? '', ...(own && credentialsEnv(own)) };
    const common: Record<string, string> = {
      ...nodeBase,
      ...bus,
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
    if (provisioner || natsUrl === undefined) return;
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
  // On RabbitMQ there is no provisioner left running: the services only check what it declared.
  const provisionRabbit = async (): Promise<void> => {
    if (rabbitProvisioned || !rabbitOptions || !rabbitAccess) return;
    const made = await provisionOrderingRabbit(topology, rabbitOptions);
    const differing = [...rabbitAccess].filter(([name, access]) => made.get(name)?.url !== access.url);
    if (differing.length > 0)
      throw new SupervisorError(
        'INVALID_CONFIG',
        `the RabbitMQ provisioning made other users than the services were given: ${differing.map(([n]) => n).join(', ')}`,
      );
    rabbitProvisioned = true;
  };
  const serviceNames: readonly string[] = services;
  const onLog = (line: LogLine): void => {
    if (
      onRabbit
        ? serviceNames.includes(line.program) && RABBIT_REFUSAL.test(line.line)
        : line.program === 'nats-server' && PERMISSION_VIOLATION.test(line.line)
    )
      violations.push(line.line);
    config.onLog?.(line);
  };

  const transports = new Set<SystemTransport>();
  const openTransport = async (name: string, identity: BusIdentityName): Promise<SystemTransport> => {
    const source = `orderflow/${identity}`;
    let opened: BrokerConnection;
    if (rabbit) {
      const connection = await connectRabbit({ url: amqpUrl(identity), name, waitOnFirstConnect: false });
      // amqplib emits 'error' before 'close' on a failure; without a listener it would throw.
      connection.on('error', () => undefined);
      const transport = await RabbitTransport.create(connection, {
        source,
        identity,
        provisioned: true,
      }).catch(async (error: unknown) => {
        await connection.close().catch(() => undefined);
        throw error;
      });
      opened = { kind: BrokerKind.RabbitMQ, connection, transport };
    } else {
      const { nc, features } = await connectNats({
        servers: natsUrl ?? '',
        name,
        ...credentials(identity),
      });
      const transport = await NatsTransport.create(nc, { source }).catch(async (error: unknown) => {
        await nc.close();
        throw error;
      });
      opened = { kind: BrokerKind.Nats, nc, transport, features };
    }
    let closing: Promise<void> | undefined;
    const handle: SystemTransport = {
      ...opened,
      close: () =>
        (closing ??= (async () => {
          transports.delete(handle);
          try {
            await opened.transport.close({ deadlineMs: 2_000 });
          } finally {
            if (opened.kind === BrokerKind.Nats) await opened.nc.close();
            else await opened.connection.close().catch(() => undefined);
          }
        })()),
    };
    transports.add(handle);
    return handle;
  };
  const amqpUrl = (identity: BusIdentityName): string => {
    if (!rabbitAccess) throw new WrongBrokerError('an AMQP URL', BrokerKind.RabbitMQ, broker);
    if (!rabbitProvisioned)
      throw new SupervisorError(
        'NOT_READY',
        'the RabbitMQ users are made when the system starts: start it first',
      );
    const access: RabbitIdentityAccess | undefined = rabbitAccess.get(identity);
    if (!access)
      throw new SupervisorError(
        'INVALID_CONFIG',
        `no RabbitMQ user for ${identity}${identity === 'chaos' ? ' (set chaosIdentity)' : ''}`,
      );
    return access.url;
  };

  const supervisor = new Supervisor({
    programs,
    onLog,
    beforeTier: async (tier) => {
      // Before the first service tier started.
      if (tier >= 2 && onRabbit) await provisionRabbit();
      else if (tier >= 2 && secrets) await provision();
    },
    ...(config.onEvent && { onEvent: config.onEvent }),
    ...(config.restart && { restart: config.restart }),
    ...(config.stopDeadlineMs !== undefined && { stopDeadlineMs: config.stopDeadlineMs }),
    ...(config.readyTimeoutMs !== undefined && { readyTimeoutMs: config.readyTimeoutMs }),
    ...(config.ownProcessGroup !== undefined && { ownProcessGroup: config.ownProcessGroup }),
    allocatePort: allocateFreePort,
    reservedPorts: [
      ...(privateNats ? [natsPort] : []),
      ...(config.natsMonitorPort !== undefined ? [config.natsMonitorPort] : []),
      pspPort,
      smtpPort,
      mailboxPort,
      gatewayPort,
    ],
  });
  return {
    supervisor,
    broker,
    natsUrl,
    rabbit,
    apiUrl: `http://127.0.0.1:${gatewayPort}`,
    mailboxUrl: `http://127.0.0.1:${mailboxPort}`,
    pspUrl,
    smtpPort,
    services,
    skipped,
    operatorCredentials: credentials('operator'),
    credentials,
    permissionViolations: () => violations,
    connect: async (name, identity = 'operator') => {
      if (natsUrl === undefined) throw new WrongBrokerError('a NATS connection', BrokerKind.Nats, broker);
      return (await connectNats({ servers: natsUrl, name, ...credentials(identity) })).nc;
    },
    transport: (name, identity = 'operator') => openTransport(name, identity),
    amqpUrl,
    devKeyFile,
    operatorToken: (subject) => devOperatorToken(dataDir, subject),
    stop: async () => {
      try {
        await Promise.all([...transports].map((t) => t.close().catch(() => undefined)));
        await supervisor.stop();
      } finally {
        provisioner?.responder.stop();
        await provisioner?.nc.close();
        provisioner = undefined;
      }
    },
  };
}
