// Composition root of the gateway: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import { runService, tracingSettingsFromEnv } from '@orderflow/messaging';
import { BroadcastStatusFeed } from './adapters/broadcast-status-feed.ts';
import { ObjectStoreInvoices } from './adapters/object-store-invoices.ts';
import { createGateway } from './app.ts';
import { configFromEnv } from './config.ts';
import { listen } from './server.ts';

const config = configFromEnv(process.env);
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });

await runService(
  {
    name: 'gateway',
    version: '0.1.0',
    servers: config.natsUrl,
    streams: topology.streams,
    tracing: tracingSettingsFromEnv(process.env, { serviceName: 'gateway' }),
  },
  async (context) => {
    const statusChanges = new BroadcastStatusFeed(context.transport, topology.notifications.statusChangedAll);
    const app = createGateway({
      topology,
      requester: context.transport,
      invoices: new ObjectStoreInvoices(context.nc, topology.objectStores.invoices),
      statusChanges,
      metrics: context.metrics,
      ready: () => context.readiness().ready, // connected to NATS, started, not draining
      bodyLimitBytes: config.bodyLimitBytes,
      requestTimeoutMs: config.requestTimeoutMs,
      logger: context.logger,
    });
    const server = await listen(app, { port: config.port, host: config.host });
    context.logger.info({ port: server.port }, 'gateway listening');
    // On SIGTERM: end the live event streams (they would hold the close), stop taking requests and
    // finish those in flight while the connection still works.
    context.onDrain(() => {
      statusChanges.close();
      return server.close();
    });
  },
);
