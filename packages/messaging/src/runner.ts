import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { pino, type Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { connectNats, type ServerFeatures } from './connection.ts';
import { MessagingError } from './errors.ts';
import type { IdempotencyStore } from './middleware/idempotency.ts';
import { startTracing, type TracingHandle, type TracingSettings } from './telemetry.ts';
import type { StreamDeclaration } from './topology.ts';
import { inboxPrefix } from './security/permissions.ts';
import { ProvisioningTopology, RemoteProvisioner } from './security/provisioning.ts';
import type { NatsAuth } from './service-settings.ts';
import { NatsTransport, type NatsTransportOptions } from './transport.ts';

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
  /** Service name: `ce-source` is `orderflow/<name>`, and the `$SRV` name. */
  name: string;
  version: string;
  /** NATS URL(s). */
  servers: string | string[];
  /**
   * Credentials on a secured bus. With an nkey the service is one identity of the server's config:
   * its inbox prefix is `_INBOX_<name>`, and its durable consumers are created by the provisioner
   * (`ProvisioningTopology.subject(name)`), since the service may not create them itself.
   */
  auth?: NatsAuth;
  /** Port of the health and metrics HTTP server; 0 picks a free one (default 0). */
  httpPort?: number;
  /** Time in-flight handlers get to finish on SIGTERM before they are nak'd (default 10 000 ms). */
  drainDeadlineMs?: number;
  /** Streams to provision before anything starts. */
  streams?: readonly StreamDeclaration[];
  /** Replicas of the dead-letter stream (default 1; 3 in a cluster). */
  deadLetterReplicas?: number;
  logger?: Logger;
  /** Install SIGTERM/SIGINT handlers that drain and exit (default true). */
  handleSignals?: boolean;
  idempotency?: IdempotencyStore;
  /**
   * Export spans with the OpenTelemetry SDK (from `tracingSettingsFromEnv(process.env, …)` in
   * `main.ts`). Unset: no SDK is loaded and tracing costs next to nothing.
   */
  tracing?: TracingSettings | undefined;
}

/** What `/readyz` reports. */
export interface Readiness {
  /** Started, not draining, connected to NATS and every consumer consuming: `/readyz` answers 200. */
  readonly ready: boolean;
  /** `setup` finished (consumers and endpoints started). */
  readonly started: boolean;
  readonly draining: boolean;
  /** Connected to a NATS server now (false from a disconnect until the reconnect). */
  readonly connected: boolean;
  /** Consumers not pulling right now (see {@link RunningConsumer.consuming}). */
  readonly notConsuming: readonly string[];
}

export interface ServiceContext {
  readonly transport: NatsTransport;
  readonly nc: NatsConnection;
  readonly features: ServerFeatures;
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

export interface RunningService extends ServiceContext {
  /** Port of the health/metrics server. */
  readonly httpPort: number;
  /** Drains and closes everything; resolves when done. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs a service: connects (reconnecting forever, checking the server version), provisions streams,
 * lets `setup` start consumers and endpoints, serves `/healthz` (alive), `/readyz` (200 only while
 * started, not draining, connected to NATS and every consumer consuming; 503 with the reasons
 * otherwise, see {@link Readiness}) and `/metrics`, and on SIGTERM/SIGINT drains: stops pulling,
 * lets in-flight handlers finish within `drainDeadlineMs`, naks the rest, closes the connection.
 */
export async function runService(
  config: ServiceConfig,
  setup: (context: ServiceContext) => Promise<void>,
): Promise<RunningService> {
  const logger = config.logger ?? pino({ name: config.name });
  const metricsRegistry = new Registry();
  metricsRegistry.setDefaultLabels({ service: config.name });
  collectProcessMetrics(metricsRegistry);
  const cleanups: (() => Promise<void> | void)[] = [];
  const drainSteps: (() => Promise<void> | void)[] = [];
  let ready = false;
  let stopping: Promise<void> | undefined;

  // Before anything starts a span; shut down last, so the spans of the drain are exported too.
  const tracing: TracingHandle | undefined = config.tracing ? await startTracing(config.tracing) : undefined;
  if (tracing) logger.info({ url: config.tracing?.url, protocol: config.tracing?.protocol }, 'tracing on');

  const secured = config.auth?.nkeySeedFile !== undefined;
  const { nc, features } = await connectNats({
    servers: config.servers,
    name: config.name,
    ...config.auth,
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
  const options: NatsTransportOptions = {
    source: `orderflow/${config.name}`,
    logger,
    metrics: metricsRegistry,
    service: { name: config.name, version: config.version },
    ...(config.deadLetterReplicas !== undefined && { deadLetterReplicas: config.deadLetterReplicas }),
    ...(config.idempotency && { idempotency: config.idempotency }),
  };
  if (secured) {
    const subject = ProvisioningTopology.subject(config.name);
    options.ensureConsumer = new RemoteProvisioner(nc, await jetstreamManager(nc), subject).ensureConsumer;
  }
  const transport = await NatsTransport.create(nc, options);

  const readiness = (): Readiness => {
    const draining = stopping !== undefined || nc.isDraining();
    const up = connected && !nc.isClosed();
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
    nc,
    features,
    logger,
    metrics: metricsRegistry,
    onStop: (cleanup) => cleanups.push(cleanup),
    onDrain: (step) => drainSteps.push(step),
    readiness,
  };

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
      await nc.drain().catch(() => nc.close());
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: error }, 'span export failed'));
      logger.info('stopped');
    })());

  try {
    await transport.provision(config.streams ?? []);
    await setup(context);
  } catch (error) {
    await stop();
    throw error instanceof MessagingError
      ? error
      : new MessagingError('START_FAILED', `${config.name} failed to start`, { cause: error });
  }
  ready = true;
  logger.info({ httpPort }, 'started');

  if (config.handleSignals ?? true) {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        void stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      });
    }
  }
  return { ...context, httpPort, stop };
}
