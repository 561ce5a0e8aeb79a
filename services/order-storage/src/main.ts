// Composition root of order-storage: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import { requireNatsBroker, runService, tracingSettingsFromEnv } from '@orderflow/messaging';
import { openServiceStore } from '@orderflow/sql';
import { orderStorageMigrations } from './adapters/sql-db.ts';
import { startOrderStorage } from './app.ts';
import { configFromEnv } from './config.ts';

const config = configFromEnv(process.env);
const broker = requireNatsBroker(config.broker, 'order-storage', [
  'the order event log and its outbox relay (JetStream)',
  'the order history (JetStream message gets)',
  'the read-model projection (JetStream ordered consumer)',
]);
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });
const store = await openServiceStore(config, 'order-storage', orderStorageMigrations);

await runService(
  {
    name: 'order-storage',
    tracing: tracingSettingsFromEnv(process.env, { serviceName: 'order-storage' }),
    version: '0.1.0',
    broker,
    httpPort: config.httpPort,
    drainDeadlineMs: config.drainDeadlineMs,
    streams: topology.streams,
  },
  async (context) => {
    context.onStop(() => store.close());
    await startOrderStorage(context, {
      topology,
      store,
      nats: context.broker,
      ...(config.concurrency !== undefined && { concurrency: config.concurrency }),
      maxDeliver: config.maxDeliver,
      retry: { initialDelayMs: config.retryInitialDelayMs, maxDelayMs: config.retryMaxDelayMs },
    });
  },
);
