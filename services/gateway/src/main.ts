// Composition root of the gateway: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import { blobStoresFor, BrokerKind, runService, tracingSettingsFromEnv } from '@orderflow/messaging';
import { BroadcastStatusFeed } from './adapters/broadcast-status-feed.ts';
import { DEV_ALGORITHM, DevIssuer } from './adapters/dev-issuer.ts';
import { JwtAuthenticator } from './adapters/jwt-authenticator.ts';
import { natsOperations } from './adapters/nats-operations.ts';
import { ObjectStoreInvoices } from './adapters/object-store-invoices.ts';
import { createGateway } from './app.ts';
import { configFromEnv } from './config.ts';
import { listen } from './server.ts';

const config = configFromEnv(process.env);
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });
const { auth } = config;
const devIssuer =
  auth.kind === 'development'
    ? await DevIssuer.open(auth.keyFile, {
        issuer: auth.issuer,
        audience: auth.audience,
        customerTokenTtlS: auth.customerTokenTtlS,
      })
    : undefined;
const authenticator = new JwtAuthenticator(
  auth.kind === 'development'
    ? {
        keys: { jwks: (devIssuer as DevIssuer).jwks },
        issuer: auth.issuer,
        audience: auth.audience,
        algorithms: [DEV_ALGORITHM],
        clockToleranceS: auth.clockToleranceS,
      }
    : {
        keys: { jwksUrl: auth.jwksUrl },
        issuer: auth.issuer,
        audience: auth.audience,
        algorithms: auth.algorithms,
        customerClaim: auth.customerClaim,
        operatorScope: auth.operatorScope,
        clockToleranceS: auth.clockToleranceS,
      },
);

await runService(
  // It binds to nothing it would provision: it only requests, reads invoices and listens.
  {
    name: 'gateway',
    version: '0.1.0',
    broker: config.broker,
    tracing: tracingSettingsFromEnv(process.env, { serviceName: 'gateway' }),
  },
  async (context) => {
    const statusChanges = new BroadcastStatusFeed(context.transport, topology.notifications.statusChangedAll);
    const app = createGateway({
      topology,
      requester: context.transport,
      // The JetStream object store on NATS; on RabbitMQ the files in BLOB_DIR create-invoice writes.
      invoices: new ObjectStoreInvoices(
        blobStoresFor(context.broker, config.blobDir),
        topology.objectStores.invoices,
      ),
      statusChanges,
      metrics: context.metrics,
      ready: () => context.readiness().ready, // connected to the broker, started, not draining
      bodyLimitBytes: config.bodyLimitBytes,
      requestTimeoutMs: config.requestTimeoutMs,
      logger: context.logger,
      authenticator,
      ...(devIssuer && { tokens: devIssuer }),
      limits: config.limits,
      ...(config.hstsMaxAgeS !== undefined && { hstsMaxAgeS: config.hstsMaxAgeS }),
      // The console inspects JetStream and $SRV discovery: on RabbitMQ its routes answer 503.
      ...(context.broker.kind === BrokerKind.Nats
        ? {
            console: {
              operations: natsOperations(context.broker.nc, context.broker.transport),
              ...config.console,
            },
          }
        : {
            consoleUnavailable:
              'the operations console needs NATS (BROKER=nats); this gateway runs on RabbitMQ',
          }),
    });
    const server = await listen(app, { port: config.port, host: config.host, timeouts: config.timeouts });
    context.logger.info(
      { port: server.port, host: config.host, auth: auth.kind, issuer: auth.issuer },
      'gateway listening',
    );
    if (auth.kind === 'development') {
      context.logger.warn(
        { keyFile: auth.keyFile },
        'development authentication: sign-up answers tokens signed by a local key; not for production ' +
          '(set AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE)',
      );
    }
    // On SIGTERM: end the live event streams (they would hold the close), stop taking requests and
    // finish those in flight while the connection still works.
    context.onDrain(() => {
      statusChanges.close();
      return server.close();
    });
  },
);
