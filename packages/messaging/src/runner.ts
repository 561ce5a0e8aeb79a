import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jetstreamManager } from '@nats-io/jetstream';
import { pino, type Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import {
  BrokerKind,
  type BrokerConfig,
  type BrokerConnection,
  type ConnectionOf,
  type NatsBrokerConfig,
  type RabbitBrokerConfig,
} from './broker.ts';
import { connectNats } from './connection.ts';
import { MessagingError } from './errors.ts';
import { connectRabbit, redactedUrl } from './rabbitmq/connection.ts';
import { RabbitTransport } from './rabbitmq/transport.ts';
import { startTracing, type TracingHandle, type TracingSettings } from './telemetry.ts';
import type { StreamDeclaration } from './topology.ts';
import { inboxPrefix } from './security/permissions.ts';
import { ProvisioningTopology, RemoteProvisioner } from './security/provisioning.ts';
import { NatsTransport, type NatsTransportOptions, type Transport } from './transport.ts';

/**
 * prom-client's process metrics, less the three `nodejs_active_*_total` gauges: a gauge named
 * `_total` fails `promtool check metrics`, and each is the sum of its per-type `nodejs_active_*`.
 */
function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ])
    registry.removeSingleMetric(name);
}

/** Settings of one service process. Only the composition root (`main.ts`) builds this from the environment. */
export interface ServiceConfig {
  /** Service name: `ce-source` is `orderflow/<name>`, the `$SRV` name and the broker connection's name. */
  name: string;
  version: string;
  /** The broker and how to reach it (`brokerSettings` reads `BROKER`, `NATS_URL`, `AMQP_URL`…). */
  broker: BrokerConfig;
  /** Port of the health and metrics HTTP server; 0 picks a free one (default 0). */
  httpPort?: number;
  /** Time in-flight handlers get to finish on SIGTERM before they are nak'd (default 10 000 ms). */
  drainDeadlineMs?: number;
  /** Streams to provision before anything starts. */
  streams?: readonly StreamDeclaration[];
  logger?: Logger;
  /**
   * The runner owns the process (default true): SIGTERM/SIGINT drain and exit 0, and a broker
   * connection lost for good (RabbitMQ does not reconnect) drains and exits 1, for the supervisor to
   * restart the service.
   */
  handleSignals?: boolean;
  /**
   * Export spans with the OpenTelemetry SDK (from `tracingSettingsFromEnv(process.env, …)` in
   * `main.ts`). Unset: no SDK is loaded and tracing costs next to nothing.
   */
  tracing?: TracingSettings | undefined;
}

/** What `/readyz` reports. */
export interface Readiness {
  /** Started, not draining, connected to the broker and every consumer consuming: `/readyz` answers 200. */
  readonly ready: boolean;
  /** `setup` finished (consumers and endpoints started). */
  readonly started: boolean;
  readonly draining: boolean;
  /**
   * Connected to the broker now: on NATS false from a disconnect until the reconnect; on RabbitMQ false
   * from the loss of the connection on (it is not reopened).
   */
  readonly connected: boolean;
  /** Consumers not pulling right now (see {@link RunningConsumer.consuming}). */
  readonly notConsuming: readonly string[];
}

/** What a service's `app.ts` gets: the broker-neutral transport and the process's facilities. */
export interface ServiceContext {
  readonly transport: Transport;
  readonly logger: Logger;
  readonly metrics: Registry;
  /** Registers a clean-up run after consumers and endpoints stopped, before the connection closes (last registered first). */
  onStop(cleanup: () => Promise<void> | void): void;
  /**
   * Registers work run first when the service drains, before consumers and endpoints stop: stop
   * taking outside work (an HTTP server) so requests in flight can still reach the other services.
   */
  onDrain(step: () => Promise<void> | void): void;
  /** The service's readiness now, as `/readyz` answers it (for a process that serves its own). */
  readiness(): Readiness;
}

/**
 * What the composition root's `setup` gets: the {@link ServiceContext} plus the concrete connection, to
 * build broker-specific adapters (`new NatsBlobStores(broker.nc)`).
 */
export type SetupContext<K extends BrokerKind = BrokerKind> = ServiceContext & {
  readonly broker: ConnectionOf<K>;
};

/** A started service; `K` is its broker's kind (`RunningService<'nats'>` has `broker.nc`). */
export interface RunningService<K extends BrokerKind = BrokerKind> extends ServiceContext {
  readonly broker: ConnectionOf<K>;
  /** Port of the health/metrics server. */
  readonly httpPort: number;
  /** Drains and closes everything; resolves when done. Idempotent. */
  stop(): Promise<void>;
}

/** The runner's view of an open broker connection. */
interface OpenBroker {
  readonly connection: BrokerConnection;
  readonly transport: Transport;
  connected(): boolean;
  draining(): boolean;
  /** Closes the connection (after the transport closed). */
  close(): Promise<void>;
}

async function openNats(
  config: ServiceConfig,
  broker: NatsBrokerConfig,
  options: { logger: Logger; metrics: Registry },
): Promise<OpenBroker> {
  const { logger } = options;
  const secured = broker.auth?.nkeySeedFile !== undefined;
  const { nc, features } = await connectNats({
    servers: broker.servers,
    name: config.name,
    ...broker.auth,
    ...(secured && { inboxPrefix: inboxPrefix(config.name) }),
  });
  logger.info({ server: nc.getServer(), version: features.version }, 'connected to NATS');
  let connected = true;
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect') {
        connected = status.type === 'reconnect';
        logger.warn({ status: status.type }, 'NATS connection');
      }
    }
  })();
  const transportOptions: NatsTransportOptions = {
    source: `orderflow/${config.name}`,
    logger,
    metrics: options.metrics,
    service: { name: config.name, version: config.version },
    ...(broker.deadLetterReplicas !== undefined && { deadLetterReplicas: broker.deadLetterReplicas }),
  };
  if (secured) {
    const subject = ProvisioningTopology.subject(config.name);
    transportOptions.ensureConsumer = new RemoteProvisioner(
      nc,
      await jetstreamManager(nc),
      subject,
    ).ensureConsumer;
  }
  const transport = await NatsTransport.create(nc, transportOptions).catch(async (error: unknown) => {
    await nc.close();
    throw error;
  });
  return {
    connection: { kind: BrokerKind.Nats, nc, transport, features },
    transport,
    connected: () => connected && !nc.isClosed(),
    draining: () => nc.isDraining(),
    close: () => nc.drain().catch(() => nc.close()),
  };
}

async function openRabbit(
  config: ServiceConfig,
  broker: RabbitBrokerConfig,
  options: { logger: Logger; metrics: Registry; lost: (error: unknown) => void },
): Promise<OpenBroker> {
  const { logger } = options;
  const connection = await connectRabbit({ url: broker.url, name: config.name, logger });
  logger.info({ url: redactedUrl(broker.url) }, 'connected to RabbitMQ');
  let connected = true;
  let closing = false;
  // amqplib emits 'error' before 'close' on a failure; without a listener it would crash the process.
  connection.on('error', (error: unknown) => logger.warn({ err: error }, 'RabbitMQ connection error'));
  connection.on('close', (error: unknown) => {
    connected = false;
    if (!closing) options.lost(error);
  });
  const transport = await RabbitTransport.create(connection, {
    source: `orderflow/${config.name}`,
    identity: config.name,
    ...(broker.provisioned === true && { provisioned: true }),
    logger,
    metrics: options.metrics,
  }).catch(async (error: unknown) => {
    closing = true;
    await connection.close().catch(() => undefined);
    throw error;
  });
  return {
    connection: { kind: BrokerKind.RabbitMQ, connection, transport },
    transport,
    connected: () => connected,
    draining: () => false,
    close: async () => {
      closing = true;
      if (connected) await connection.close().catch(() => undefined);
    },
  };
}

/**
 * Runs a service: connects to the configured broker (NATS: reconnecting forever, checking the server
 * version; RabbitMQ: waiting for the broker at start, see below), provisions streams, lets `setup`
 * start consumers and endpoints, serves `/healthz` (alive), `/readyz` (200 only while started, not
 * draining, connected to the broker and every consumer consuming; 503 with the reasons otherwise, see
 * {@link Readiness}) and `/metrics`, and on SIGTERM/SIGINT drains: stops pulling, lets in-flight
 * handlers finish within `drainDeadlineMs`, naks the rest, closes the connection.
 *
 * RabbitMQ connections are not reopened once lost (their channels and consumers went with them):
 * readiness turns 503 at once, and a runner that owns the process (`handleSignals`) drains and exits
 * with code 1 so its supervisor starts a fresh process.
 */
export async function runService<B extends BrokerConfig>(
  config: ServiceConfig & { readonly broker: B },
  setup: (context: SetupContext<B['kind']>) => Promise<void>,
): Promise<RunningService<B['kind']>> {
  const logger = config.logger ?? pino({ name: config.name });
  const metricsRegistry = new Registry();
  metricsRegistry.setDefaultLabels({ service: config.name });
  collectProcessMetrics(metricsRegistry);
  const cleanups: (() => Promise<void> | void)[] = [];
  const drainSteps: (() => Promise<void> | void)[] = [];
  const ownsProcess = config.handleSignals ?? true;
  let ready = false;
  let stopping: Promise<void> | undefined;
  const started: { stop?: () => Promise<void> } = {}; // `stop` once there is something to stop

  // Before anything starts a span; shut down last, so the spans of the drain are exported too.
  const tracing: TracingHandle | undefined = config.tracing ? await startTracing(config.tracing) : undefined;
  if (tracing) logger.info({ url: config.tracing?.url, protocol: config.tracing?.protocol }, 'tracing on');

  const onLost = (error: unknown): void => {
    logger.error({ err: error }, 'broker connection lost; it is not reopened');
    if (!ownsProcess || stopping || !started.stop) return;
    void started.stop().then(
      () => process.exit(1),
      () => process.exit(1),
    );
  };
  const broker: BrokerConfig = config.broker;
  let open: OpenBroker;
  try {
    open =
      broker.kind === BrokerKind.Nats
        ? await openNats(config, broker, { logger, metrics: metricsRegistry })
        : await openRabbit(config, broker, { logger, metrics: metricsRegistry, lost: onLost });
  } catch (error) {
    await tracing?.shutdown().catch(() => undefined);
    throw error instanceof MessagingError
      ? error
      : new MessagingError('START_FAILED', `${config.name} failed to start`, { cause: error });
  }
  const { transport } = open;

  const readiness = (): Readiness => {
    const draining = stopping !== undefined || open.draining();
    const up = open.connected();
    const notConsuming = transport.consumers.filter((c) => !c.consuming).map((c) => c.name);
    return {
      ready: ready && !draining && up && notConsuming.length === 0,
      started: ready,
      draining,
      connected: up,
      notConsuming,
    };
  };

  const http: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
    } else if (path === '/readyz') {
      const state = readiness();
      res
        .writeHead(state.ready ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify(state));
    } else if (path === '/metrics') {
      metricsRegistry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metricsRegistry.contentType }).end(body),
        (error: unknown) => res.writeHead(500).end(String(error)),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => http.listen(config.httpPort ?? 0, '127.0.0.1', resolve));
  const httpPort = (http.address() as AddressInfo).port;

  const context: ServiceContext = {
    transport,
    logger,
    metrics: metricsRegistry,
    onStop: (cleanup) => cleanups.push(cleanup),
    onDrain: (step) => drainSteps.push(step),
    readiness,
  };
  // openNats/openRabbit built the connection of the kind `config.broker` names.
  const connection = open.connection as ConnectionOf<B['kind']>;

  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      logger.info('draining');
      for (const step of drainSteps) {
        try {
          await step();
        } catch (error) {
          logger.error({ err: error }, 'drain step failed');
        }
      }
      await transport.close({ deadlineMs: config.drainDeadlineMs ?? 10_000 });
      for (const cleanup of cleanups.reverse()) {
        try {
          await cleanup();
        } catch (error) {
          logger.error({ err: error }, 'clean-up failed');
        }
      }
      await open.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: error }, 'span export failed'));
      logger.info('stopped');
    })());
  started.stop = stop;

  try {
    await transport.provision(config.streams ?? []);
    await setup({ ...context, broker: connection });
  } catch (error) {
    await stop();
    throw error instanceof MessagingError
      ? error
      : new MessagingError('START_FAILED', `${config.name} failed to start`, { cause: error });
  }
  ready = true;
  logger.info({ httpPort, broker: broker.kind }, 'started');

  if (ownsProcess) {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        void stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      });
    }
  }
  return { ...context, broker: connection, httpPort, stop };
}
