// Composition root of assign-delivery: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import { runService, tracingSettingsFromEnv } from '@orderflow/messaging';
import { openServiceStore } from '@orderflow/sql';
import { deliveryMigrations, SqlDispatch } from './adapters/sql-dispatch.ts';
import { startAssignDelivery } from './app.ts';
import { configFromEnv } from './config.ts';

const config = configFromEnv(process.env);
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });
const store = await openServiceStore(config, 'assign-delivery', deliveryMigrations);
await SqlDispatch.seed(store, config.couriers);

await runService(
  {
    name: 'assign-delivery',
    tracing: tracingSettingsFromEnv(process.env, { serviceName: 'assign-delivery' }),
    version: '0.1.0',
    broker: config.broker,
    httpPort: config.httpPort,
    drainDeadlineMs: config.drainDeadlineMs,
    streams: topology.streams,
  },
  async (context) => {
    context.onStop(() => store.close());
    await startAssignDelivery(context, {
      topology,
      dispatch: new SqlDispatch(store, { consumer: topology.consumers.assignDelivery.all.name }),
      concurrency: config.concurrency,
      maxDeliver: config.maxDeliver,
      retry: { initialDelayMs: config.retryInitialDelayMs, maxDelayMs: config.retryMaxDelayMs },
    });
  },
);
