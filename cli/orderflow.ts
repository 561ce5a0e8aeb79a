// `orderflow` — the command line of the system. The composition root: the only file that reads
// process.env and argv; each subcommand gets a typed options object.
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chaos } from './commands/chaos.ts';
import { doctor, type DoctorPort } from './commands/doctor.ts';
import { FAULT_CLASSES, faultProblems, type FaultClass } from './chaos/faults.ts';
import { dlq, type DlqTarget } from './commands/dlq.ts';
import { consumers, services, streams, traceOrder } from './commands/inspect.ts';
import { replay } from './commands/replay.ts';
import { place } from './commands/place.ts';
import { tail } from './commands/tail.ts';
import { up } from './commands/up.ts';
import { bus } from './commands/bus.ts';
import { provision } from './commands/provision.ts';
import { provisionOrderingRabbit, rabbitPermissionsText } from './rabbit.ts';
import type { NatsTarget } from './bus.ts';
import { CliError, WrongBrokerError } from './errors.ts';
import { brokerOf, readUpState, statePath } from './state.ts';
import {
  devOperatorToken,
  RABBIT_DEFAULTS,
  RUNTIMES,
  SERVICES,
  type Runtime,
  type ServiceName,
} from './system.ts';
import { connectOrderflow } from './nats.ts';
import { OrderingTopology } from '@orderflow/contracts';
import { BrokerKind } from '@orderflow/messaging';
import { orderStorageMigrations } from '@orderflow/order-storage';
import { openServiceStore } from '@orderflow/sql';

const HELP = `orderflow <command> [options]

  up          start the whole system in the foreground (Ctrl-C stops it, draining first)
                --replicas <service>=<n>   repeatable, e.g. --replicas payment-processor=3
                --only <service,…>         start only these services (infrastructure always runs)
                --port <n>                 gateway HTTP port            (env PORT, default 3000)
                --nats-port <n>            private nats-server port     (default 4222; ignored with NATS_URL)
                --nats-monitor-port <n>    private nats-server monitoring (default off)
                --psp-port <n>             fake payment provider        (default 4010)
                --smtp-port <n>            SMTP sink, SMTP              (default 2525)
                --mailbox-port <n>         SMTP sink, HTTP mailbox      (default 8025)
                --data-dir <dir>           (env DATA_DIR, default ./data)
                --raw-logs                 print the services' JSON logs as they are
                --runtime tsx|dist         run services from sources through tsx (default) or from the
                                           bundles of \`npm run build\` (what \`npm start\` does)
                --broker nats|rabbitmq     the broker (env BROKER, default nats). rabbitmq: the local
                                           RabbitMQ, administered with rabbitmqctl (no nats-server);
                                           one user per identity, passwords in DATA_DIR/secrets/rabbitmq
                --amqp-url <amqp://host:port>  RabbitMQ (env AMQP_URL without its credentials and vhost,
                                           default amqp://127.0.0.1:5672)
                --vhost <name>             RabbitMQ vhost of the system (default orderflow; users <vhost>-<identity>)
  place       place a demo order through the gateway and follow its status
                --token tok_visa|tok_decline|tok_insufficient_funds   --country DE|AQ|…   --api <url>
  provision   create the streams, KV bucket and object store as the provisioning identity
                --serve                    then keep answering the services' consumer requests (Ctrl-C stops)
  bus permissions             print who may do what on the bus (the table of docs/security.md)
  bus config [options]        generate the identities' nkeys (and a CA) and print a nats-server config
                --secrets-dir <dir> (default NATS_SECRETS_DIR or DATA_DIR/secrets)  --port <n> --host <h>
                --store-dir <dir> --server-name <n> --cluster-name <n> --cluster-port <n> --routes <url,…>
                --tls-hosts <name,ip,…> (the server certificate's names; default localhost,127.0.0.1)
  rabbit permissions          print each identity's RabbitMQ permissions (derived like the bus's)
  rabbit provision [options]  create the identities' RabbitMQ users (passwords in the secrets dir)
                              and declare the ordering topology; needs rabbitmqctl (root on the broker)
                --url <amqp://host:port> (default AMQP_URL without credentials, or amqp://127.0.0.1:5672)
                --vhost <name> (default /)  --secrets-dir <dir>  --user-prefix <p>
  dlq list [--consumer <durable>] [--limit <n>] [-v]
  dlq show <seq>              one dead letter: reason, headers, payload
  dlq redrive <seq>
  dlq redrive-all [--consumer <durable>]
  dlq discard <seq>           delete a dead letter without redriving it
  services    every instance answering NATS service discovery ($SRV.STATS), with endpoint stats
  streams     every JetStream stream: messages, bytes, consumers, replicas, subjects
  consumers [--stream <name>]   every durable: pending, ack-pending, redelivered, lag
  trace <orderId>             the order's timeline across services (event log, trace ids, dead letters)
                services, streams, consumers and trace find NATS as dlq does (--nats, --data-dir)
  replay      rebuild order-storage's read model (order_summaries) from the order log, with a progress bar
                uses DATABASE_URL (schema order_storage) or, without it, the PGlite data of
                DATA_DIR/order-storage (--data-dir; stop order-storage first: a PGlite directory belongs to one process)
  tail [--order <id>]   print live order.status-changed notifications
                place, dlq and tail find the system \`up\` runs on the data directory (its state file
                DATA_DIR/orderflow-up.json); --nats <url> / NATS_URL and --api <url> / PORT win over it;
                --data-dir <dir> (env DATA_DIR, default ./data). On a system on RabbitMQ only place,
                token and doctor work: the commands that read NATS (dlq, tail, services, streams,
                consumers, trace, replay, provision) say they need NATS and exit 1
  token --operator [--data-dir <dir>] [--subject <name>]
              print an operator token signed with the development key of the system in DATA_DIR
              (for /metrics, all orders, every order's live changes); customers get theirs at sign-up
  doctor      check nats-server, PostgreSQL (DATABASE_URL), ports, data directory; with a running
              \`up\` on the data directory, that system; takes up's port and --data-dir flags, --nats
  chaos       run the whole system under load, inject faults, check the invariants (exit 1 on a violation)
                --orders <n> (default 300)  --seed <n> (default: time)  --rate <orders/s> (default 10)
                --broker nats|rabbitmq (default nats)  --nats single|cluster (NATS only)
                --faults kill,nats-restart,node-kill,broker-restart,pg-outage,psp,rolling-restart,poison
                  (default: those of the broker: nats-restart on one nats-server, node-kill on a cluster,
                  broker-restart on RabbitMQ — it restarts the RabbitMQ node: only on a node you own)
                --kills-per-service <n> (default 2)  --payment-replicas <n> (default 3)
                --report <file.json>        --log <file> (every line the services print, at level info)
                --settle-timeout <s> (default 300: how long the system may take to become consistent)
                PostgreSQL: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); the run uses a
                fresh database on it and drops it afterwards (also on Ctrl-C, which exits 130)
                RabbitMQ: the node of AMQP_URL without credentials (default amqp://127.0.0.1:5672),
                administered with rabbitmqctl (root on the broker's machine); the run makes a fresh
                vhost and its users and deletes them afterwards

Environment: NATS_URL (external NATS, cluster nodes comma-separated; else a private nats-server),
NATS_SECRETS_DIR (bus credentials: <identity>.nk seeds and ca.pem; default DATA_DIR/secrets, which up generates),
NATS_NKEY_SEED_FILE / NATS_CA_FILE / NATS_INBOX_PREFIX (this command's own credentials, default the operator's),
STREAM_REPLICAS (replicas of every stream, bucket and object store; 3 on a 3-node cluster), DATA_DIR, DATABASE_URL (PostgreSQL,
a schema per service; else PGlite under DATA_DIR/<service>), PORT (gateway), LOG_LEVEL.
`;

const env = process.env;
const dataDirOf = (flag: string | undefined): string => flag ?? (env.DATA_DIR || './data');

/**
 * Where `orderflow <command>` finds NATS: `--nats`, else `NATS_URL`, else the running `up` on the data
 * directory, else 4222. A {@link WrongBrokerError} when that `up` runs on RabbitMQ.
 */
function natsUrlFor(flag: string | undefined, dataDir: string, command: string): string {
  if (flag) return flag;
  if (env.NATS_URL) return env.NATS_URL;
  const state = readUpState(dataDir);
  if (!state) return 'nats://127.0.0.1:4222';
  if (state.natsUrl === undefined || brokerOf(state) !== BrokerKind.Nats)
    throw new WrongBrokerError(
      `orderflow ${command}`,
      BrokerKind.Nats,
      brokerOf(state),
      `orderflow up, pid ${state.pid}: ${statePath(dataDir)}; --nats <url> names another system`,
    );
  process.stderr.write(`NATS ${state.natsUrl} (orderflow up, pid ${state.pid}: ${statePath(dataDir)})\n`);
  return state.natsUrl;
}

/** `amqp://host:port` of an AMQP URL, without its credentials and vhost (a service's `AMQP_URL` has both). */
function brokerAddress(url: string): string {
  if (!URL.canParse(url)) throw new UsageError('AMQP_URL / --url: not a URL');
  const base = new URL(url);
  base.username = '';
  base.password = '';
  base.pathname = '';
  return base.toString().replace(/\/$/, '');
}

/** Where a command finds the gateway: `--api`, else `PORT`, else the running `up`, else port 3000. */
function apiUrlFor(flag: string | undefined, dataDir: string): string {
  if (flag) return flag;
  if (env.PORT) return `http://127.0.0.1:${env.PORT}`;
  return readUpState(dataDir)?.apiUrl ?? 'http://127.0.0.1:3000';
}

/** The bus credentials: NATS_SECRETS_DIR, else the ones `up` generated under the data directory. */
const secretsDirOf = (dataDir: string): string => env.NATS_SECRETS_DIR || join(dataDir, 'secrets');

/**
 * As whom a command connects to `servers`: NATS_NKEY_SEED_FILE / NATS_CA_FILE, else the identity's
 * seed and the CA in the secrets directory when they are there (an open server otherwise).
 */
function natsTarget(
  servers: string,
  dataDir: string,
  identity: 'operator' | 'provisioner' | 'order-storage' = 'operator',
): NatsTarget {
  const seed = env.NATS_NKEY_SEED_FILE || join(secretsDirOf(dataDir), `${identity}.nk`);
  const ca = env.NATS_CA_FILE || join(secretsDirOf(dataDir), 'ca.pem');
  return {
    servers,
    ...(existsSync(seed) && {
      nkeySeedFile: seed,
      inboxPrefix: env.NATS_INBOX_PREFIX || `_INBOX_${identity}`,
    }),
    ...(existsSync(ca) && { caFile: ca }),
  };
}

class UsageError extends Error {
  override name = 'UsageError';
}

function int(value: string | undefined, what: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new UsageError(`${what} must be an integer port, got "${value}"`);
  return n;
}

function replicasOf(flags: readonly string[]): Partial<Record<ServiceName, number>> {
  const replicas: Partial<Record<ServiceName, number>> = {};
  for (const flag of flags) {
    const match = /^([a-z-]+)=(\d+)$/.exec(flag);
    if (!match) throw new UsageError(`--replicas expects <service>=<n>, got "${flag}"`);
    const [, name = '', count = ''] = match;
    if (!(SERVICES as readonly string[]).includes(name))
      throw new UsageError(`--replicas: unknown service "${name}" (one of ${SERVICES.join(', ')})`);
    replicas[name as ServiceName] = Number(count);
  }
  return replicas;
}

/** `STREAM_REPLICAS`: 1..5 (3 on a 3-node cluster). */
function replicasCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 5)
    throw new UsageError(`STREAM_REPLICAS must be 1..5, got "${value}"`);
  return n;
}

/**
 * `preferred` when it is free on 127.0.0.1, else a free port chosen by the system: an infrastructure
 * default (4222 for the private nats-server…) may already be taken on a developer's machine.
 */
async function portOrFree(preferred: number): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(undefined));
      server.listen(port, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : undefined));
      });
    });
  return (await tryListen(preferred)) ?? (await tryListen(0)) ?? preferred;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'up': {
      const { values } = parseArgs({
        args: rest,
        options: {
          replicas: { type: 'string', multiple: true, default: [] },
          only: { type: 'string' },
          port: { type: 'string' },
          'nats-port': { type: 'string' },
          'nats-monitor-port': { type: 'string' },
          'psp-port': { type: 'string' },
          'smtp-port': { type: 'string' },
          'mailbox-port': { type: 'string' },
          'data-dir': { type: 'string' },
          'raw-logs': { type: 'boolean', default: false },
          runtime: { type: 'string', default: 'tsx' },
          broker: { type: 'string' },
          'amqp-url': { type: 'string' },
          vhost: { type: 'string' },
        },
      });
      const broker = values.broker ?? (env.BROKER || BrokerKind.Nats);
      if (broker !== BrokerKind.Nats && broker !== BrokerKind.RabbitMQ)
        throw new UsageError(`--broker / BROKER: one of nats, rabbitmq, got "${broker}"`);
      const onRabbit = broker === BrokerKind.RabbitMQ;
      if (!onRabbit && (values['amqp-url'] !== undefined || values.vhost !== undefined))
        throw new UsageError('--amqp-url and --vhost go with --broker rabbitmq');
      if (onRabbit && (values['nats-port'] !== undefined || values['nats-monitor-port'] !== undefined))
        throw new UsageError('--nats-port and --nats-monitor-port go with NATS, not --broker rabbitmq');
      const runtime = values.runtime;
      if (!(RUNTIMES as readonly string[]).includes(runtime))
        throw new UsageError(`--runtime: one of ${RUNTIMES.join(', ')}, got "${runtime}"`);
      const only = values.only?.split(',').map((s) => s.trim());
      for (const name of only ?? [])
        if (!(SERVICES as readonly string[]).includes(name))
          throw new UsageError(`--only: unknown service "${name}"`);
      const monitor = values['nats-monitor-port'];
      const nats = {
        ...(env.NATS_URL && { natsUrl: env.NATS_URL }),
        ...(env.NATS_SECRETS_DIR && { secretsDir: env.NATS_SECRETS_DIR }),
        ...(env.STREAM_REPLICAS && { streamReplicas: replicasCount(env.STREAM_REPLICAS) }),
        natsPort: values['nats-port']
          ? int(values['nats-port'], '--nats-port', 4222)
          : await portOrFree(4222),
        ...(monitor !== undefined && { natsMonitorPort: int(monitor, '--nats-monitor-port', 8222) }),
      };
      const rabbit = {
        broker,
        amqpUrl: values['amqp-url'] ?? (env.AMQP_URL ? brokerAddress(env.AMQP_URL) : RABBIT_DEFAULTS.amqpUrl),
        rabbitVhost: values.vhost ?? RABBIT_DEFAULTS.vhost,
      };
      return up({
        rawLogs: values['raw-logs'],
        system: {
          dataDir: values['data-dir'] ?? (env.DATA_DIR || './data'),
          // The NATS settings of the environment are for NATS systems; on RabbitMQ they do not apply.
          ...(onRabbit ? rabbit : nats),
          ...(env.DATABASE_URL && { databaseUrl: env.DATABASE_URL }),
          gatewayPort: int(values.port ?? env.PORT, '--port / PORT', 3000),
          pspPort: values['psp-port'] ? int(values['psp-port'], '--psp-port', 4010) : await portOrFree(4010),
          smtpPort: values['smtp-port']
            ? int(values['smtp-port'], '--smtp-port', 2525)
            : await portOrFree(2525),
          mailboxPort: values['mailbox-port']
            ? int(values['mailbox-port'], '--mailbox-port', 8025)
            : await portOrFree(8025),
          replicas: replicasOf(values.replicas),
          ...(only && { only: only as ServiceName[] }),
          runtime: runtime as Runtime,
          baseEnv: env,
        },
      });
    }
    case 'place': {
      const { values } = parseArgs({
        args: rest,
        options: {
          api: { type: 'string' },
          'data-dir': { type: 'string' },
          token: { type: 'string', default: 'tok_visa' },
          country: { type: 'string', default: 'DE' },
          timeout: { type: 'string', default: '60000' },
        },
      });
      return place({
        apiUrl: apiUrlFor(values.api, dataDirOf(values['data-dir'])),
        token: values.token,
        country: values.country.toUpperCase(),
        timeoutMs: Number(values.timeout),
      });
    }
    case 'dlq': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          consumer: { type: 'string' },
          limit: { type: 'string', default: '100' },
          verbose: { type: 'boolean', short: 'v', default: false },
          nats: { type: 'string' },
          'data-dir': { type: 'string' },
        },
      });
      const [action, seq] = positionals;
      const target = (): DlqTarget => {
        const dataDir = dataDirOf(values['data-dir']);
        const state = values.nats || env.NATS_URL ? undefined : readUpState(dataDir);
        if (state?.rabbit && brokerOf(state) === BrokerKind.RabbitMQ) {
          process.stderr.write(
            `RabbitMQ ${state.rabbit.url} vhost ${state.rabbit.vhost} as ${state.rabbit.operatorUser} ` +
              `(orderflow up, pid ${state.pid}: ${statePath(dataDir)})\n`,
          );
          return { kind: BrokerKind.RabbitMQ, rabbit: state.rabbit };
        }
        return { kind: BrokerKind.Nats, nats: natsTarget(natsUrlFor(values.nats, dataDir, 'dlq'), dataDir) };
      };
      const consumer = values.consumer === undefined ? {} : { consumer: values.consumer };
      switch (action) {
        case 'list':
        case undefined:
          return dlq(target(), {
            kind: 'list',
            ...consumer,
            limit: Number(values.limit),
            verbose: values.verbose,
          });
        case 'show':
        case 'redrive':
        case 'discard': {
          const n = Number(seq);
          if (!Number.isInteger(n) || n < 1)
            throw new UsageError(`dlq ${action} <seq>: seq is the number \`dlq list\` shows`);
          return dlq(target(), { kind: action, seq: n });
        }
        case 'redrive-all':
          return dlq(target(), { kind: 'redrive-all', ...consumer });
        default:
          throw new UsageError(
            `dlq: unknown action "${action}" (list, show <seq>, redrive <seq>, redrive-all, discard <seq>)`,
          );
      }
    }
    case 'services':
    case 'streams':
    case 'consumers':
    case 'trace': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { stream: { type: 'string' }, nats: { type: 'string' }, 'data-dir': { type: 'string' } },
      });
      if (command === 'trace' && positionals[0] === undefined) throw new UsageError('trace <orderId>');
      const say = (line: string) => process.stdout.write(`${line}\n`);
      const dataDir = dataDirOf(values['data-dir']);
      const nc = await connectOrderflow(
        natsTarget(natsUrlFor(values.nats, dataDir, command), dataDir),
        'orderflow-cli',
      );
      try {
        switch (command) {
          case 'services':
            return (await services(nc, say)).length > 0 ? 0 : 1;
          case 'streams':
            await streams(nc, say);
            return 0;
          case 'consumers':
            await consumers(nc, say, values.stream === undefined ? {} : { stream: values.stream });
            return 0;
          case 'trace':
            return (await traceOrder(nc, positionals[0] ?? '', say)).length > 0 ? 0 : 1;
          default:
            return command satisfies never;
        }
      } finally {
        await nc.close();
      }
    }
    case 'replay': {
      const { values } = parseArgs({
        args: rest,
        options: { nats: { type: 'string' }, 'data-dir': { type: 'string' } },
      });
      const dataDir = dataDirOf(values['data-dir']);
      // The read model is order-storage's: the rebuild reads its log as order-storage does.
      const nc = await connectOrderflow(
        natsTarget(natsUrlFor(values.nats, dataDir, 'replay'), dataDir, 'order-storage'),
        'orderflow-cli',
      );
      const store = await openServiceStore(
        {
          databaseUrl: env.DATABASE_URL || undefined,
          dataDir: join(dataDir, 'order-storage'),
          dbSchema: 'order_storage',
        },
        'order-storage',
        orderStorageMigrations,
      );
      try {
        await replay({ nc, store, topology: OrderingTopology, out: process.stdout });
        return 0;
      } finally {
        await store.close();
        await nc.close();
      }
    }
    case 'token': {
      const { values } = parseArgs({
        args: rest,
        options: {
          operator: { type: 'boolean', default: false },
          'data-dir': { type: 'string' },
          subject: { type: 'string', default: `operator:${env.USER || 'cli'}` },
        },
      });
      if (!values.operator)
        throw new UsageError(
          'token: only --operator; a customer gets their token when signing up (POST /customers answers it)',
        );
      const dataDir = values['data-dir'] ?? (env.DATA_DIR || './data');
      let token: string;
      try {
        token = await devOperatorToken(dataDir, values.subject);
      } catch (error) {
        process.stderr.write(
          `no usable development key under ${dataDir}/auth (${(error as Error).message}); ` +
            '`orderflow up` creates it there, or pass the --data-dir of the running system\n',
        );
        return 1;
      }
      process.stdout.write(`${token}\n`);
      return 0;
    }
    case 'tail': {
      const { values } = parseArgs({
        args: rest,
        options: { order: { type: 'string' }, nats: { type: 'string' }, 'data-dir': { type: 'string' } },
      });
      return tail(
        natsTarget(
          natsUrlFor(values.nats, dataDirOf(values['data-dir']), 'tail'),
          dataDirOf(values['data-dir']),
        ),
        values.order === undefined ? {} : { orderId: values.order },
      );
    }
    case 'chaos': {
      const { values } = parseArgs({
        args: rest,
        options: {
          orders: { type: 'string', default: '300' },
          seed: { type: 'string' },
          rate: { type: 'string', default: '10' },
          broker: { type: 'string', default: 'nats' },
          nats: { type: 'string', default: 'single' },
          faults: { type: 'string' },
          'kills-per-service': { type: 'string', default: '2' },
          'payment-replicas': { type: 'string', default: '3' },
          report: { type: 'string' },
          log: { type: 'string' },
          'settle-timeout': { type: 'string', default: '300' },
        },
      });
      const count = (value: string, what: string, min: number): number => {
        const n = Number(value);
        if (!Number.isInteger(n) || n < min) throw new UsageError(`${what} must be an integer ≥ ${min}`);
        return n;
      };
      if (values.broker !== 'nats' && values.broker !== 'rabbitmq')
        throw new UsageError(`--broker must be nats or rabbitmq, got "${values.broker}"`);
      if (values.nats !== 'single' && values.nats !== 'cluster')
        throw new UsageError(`--nats must be single or cluster, got "${values.nats}"`);
      const faults = values.faults?.split(',').map((f) => f.trim());
      for (const fault of faults ?? [])
        if (!(FAULT_CLASSES as readonly string[]).includes(fault))
          throw new UsageError(`--faults: unknown fault "${fault}" (one of ${FAULT_CLASSES.join(', ')})`);
      const mode = { broker: values.broker, nats: values.nats } as const;
      const problems = faultProblems((faults ?? []) as FaultClass[], mode);
      if (values.broker === 'rabbitmq' && values.nats === 'cluster')
        problems.push('--nats cluster needs --broker nats');
      if (problems.length > 0) throw new UsageError(problems.join('; '));
      return chaos({
        orders: count(values.orders, '--orders', 1),
        seed: values.seed === undefined ? Date.now() % 1_000_000 : count(values.seed, '--seed', 0),
        ratePerSecond: count(values.rate, '--rate', 1),
        broker: values.broker,
        nats: values.nats,
        ...(env.AMQP_URL && { amqpUrl: brokerAddress(env.AMQP_URL) }),
        ...(faults && { faults: faults as FaultClass[] }),
        killsPerService: count(values['kills-per-service'], '--kills-per-service', 0),
        paymentReplicas: count(values['payment-replicas'], '--payment-replicas', 1),
        settleTimeoutMs: count(values['settle-timeout'], '--settle-timeout', 1) * 1_000,
        databaseUrl: env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
        baseEnv: { PATH: env.PATH, HOME: env.HOME },
        logLevel: values.log === undefined ? 'warn' : 'info',
        reportFile: values.report,
        logFile: values.log,
      });
    }
    case 'provision': {
      const { values } = parseArgs({ args: rest, options: { serve: { type: 'boolean', default: false } } });
      return provision(
        natsTarget(
          natsUrlFor(undefined, dataDirOf(undefined), 'provision'),
          dataDirOf(undefined),
          'provisioner',
        ),
        {
          serve: values.serve,
          replicas: env.STREAM_REPLICAS ? replicasCount(env.STREAM_REPLICAS) : 1,
        },
      );
    }
    case 'bus': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          'secrets-dir': { type: 'string' },
          port: { type: 'string', default: '4222' },
          'store-dir': { type: 'string', default: '/var/lib/nats' },
          'server-name': { type: 'string', default: 'orderflow' },
          host: { type: 'string', default: '0.0.0.0' },
          'cluster-name': { type: 'string' },
          'cluster-port': { type: 'string', default: '6222' },
          routes: { type: 'string' },
          'tls-hosts': { type: 'string' },
        },
      });
      const [action] = positionals;
      if (action !== 'permissions' && action !== 'config')
        throw new UsageError('bus: permissions | config [--secrets-dir <dir>] […]');
      const cluster = values['cluster-name'];
      return bus(action, {
        secretsDir: values['secrets-dir'] ?? secretsDirOf(dataDirOf(undefined)),
        serverName: values['server-name'],
        host: values.host,
        port: int(values.port, '--port', 4222),
        storeDir: values['store-dir'],
        ...(values['tls-hosts'] && { tlsHosts: values['tls-hosts'].split(',').map((h) => h.trim()) }),
        ...(cluster && {
          cluster: {
            name: cluster,
            port: int(values['cluster-port'], '--cluster-port', 6222),
            routes: (values.routes ?? '').split(',').filter((r) => r !== ''),
          },
        }),
      });
    }
    case 'rabbit': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          url: { type: 'string' },
          vhost: { type: 'string', default: '/' },
          'secrets-dir': { type: 'string' },
          'user-prefix': { type: 'string', default: '' },
        },
      });
      const [action] = positionals;
      if (action === 'permissions') {
        process.stdout.write(rabbitPermissionsText(OrderingTopology));
        return 0;
      }
      if (action !== 'provision')
        throw new UsageError('rabbit: permissions | provision [--url …] [--vhost …]');
      const access = await provisionOrderingRabbit(OrderingTopology, {
        url: brokerAddress(values.url ?? env.AMQP_URL ?? RABBIT_DEFAULTS.amqpUrl),
        vhost: values.vhost,
        secretsDir: values['secrets-dir'] ?? secretsDirOf(dataDirOf(undefined)),
        userPrefix: values['user-prefix'],
      });
      for (const [name, a] of access) process.stdout.write(`${name}\t${a.user}\t${a.passwordFile}\n`);
      return 0;
    }
    case 'doctor': {
      // The flags of `up` that choose ports and the data directory, so doctor checks what up would do.
      const { values } = parseArgs({
        args: rest,
        options: {
          nats: { type: 'string' },
          port: { type: 'string' },
          'nats-port': { type: 'string' },
          'nats-monitor-port': { type: 'string' },
          'psp-port': { type: 'string' },
          'smtp-port': { type: 'string' },
          'mailbox-port': { type: 'string' },
          'data-dir': { type: 'string' },
        },
      });
      const dataDir = dataDirOf(values['data-dir']);
      const external = values.nats ?? (env.NATS_URL || undefined);
      // `up` moves an infrastructure port that is taken unless a flag chose it.
      const infra = (flag: string, what: string, fallback: number): DoctorPort => {
        const value = values[flag as keyof typeof values];
        return value === undefined
          ? { what, port: fallback, movable: { flag: `--${flag}` } }
          : { what, port: int(value, `--${flag}`, fallback) };
      };
      const monitor = values['nats-monitor-port'];
      return doctor({
        natsUrl: external,
        natsCredentials: natsTarget('', dataDir),
        databaseUrl: env.DATABASE_URL || undefined,
        dataDir,
        running: readUpState(dataDir),
        ports: [
          { what: 'gateway', port: int(values.port ?? env.PORT, '--port / PORT', 3000) },
          infra('psp-port', 'payment-provider', 4010),
          infra('smtp-port', 'smtp-sink SMTP', 2525),
          infra('mailbox-port', 'smtp-sink mailbox', 8025),
          ...(external === undefined ? [infra('nats-port', 'private nats-server', 4222)] : []),
          ...(external === undefined && monitor !== undefined
            ? [{ what: 'nats-server monitoring', port: int(monitor, '--nats-monitor-port', 8222) }]
            : []),
        ],
      });
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return command === undefined ? 1 : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(error as Error).message}\n\n${HELP}`);
      process.exit(2);
    }
    if (error instanceof CliError) {
      process.stderr.write(`orderflow: ${error.message}\n`);
      process.exit(1);
    }
    process.stderr.write(
      `orderflow: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
