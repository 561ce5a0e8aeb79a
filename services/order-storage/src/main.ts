// Composition root of order-storage: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import { runService, tracingSettingsFromEnv } from '@orderflow/messaging';
import { openServiceStore } from '@orderflow/sql';
import { jetStreamPorts } from './adapters/jetstream-ports.ts';
import { orderStorageMigrations } from './adapters/sql-db.ts';
import { startOrderStorage } from './app.ts';
import { configFromEnv } from './config.ts';

const config = configFromEnv(process.env);
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });
const store = await openServiceStore(config, 'order-storage', orderStorageMigrations);

await runService(
  {
    name: 'order-storage',
    tracing: tracingSettingsFromEnv(process.env, { serviceName: 'order-storage' }),
    version: '0.1.0',
    servers: config.natsUrl,
    auth: config.natsAuth,
    httpPort: config.httpPort,
    drainDeadlineMs: config.drainDeadlineMs,
    streams: topology.streams,
    deadLetterReplicas: config.streamReplicas,
  },
  async (context) => {
    context.onStop(() => store.close());
    await startOrderStorage(context, {
      topology,
      store,
      // On NATS: the aggregate's log is the bus's stream, the history is read from it.
      ...jetStreamPorts(context.transport, topology),
      ...(config.concurrency !== undefined && { concurrency: config.concurrency }),
      maxDeliver: config.maxDeliver,
      retry: { initialDelayMs: config.retryInitialDelayMs, maxDelayMs: config.retryMaxDelayMs },
    });
  },
);
