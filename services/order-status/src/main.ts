// Composition root of order-status: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import {
  NatsKeyValueStores,
  requireNatsBroker,
  runService,
  tracingSettingsFromEnv,
} from '@orderflow/messaging';
import { KvStatusStore } from './adapters/kv-status-store.ts';
import { startOrderStatus } from './app.ts';
import { configFromEnv } from './config.ts';

const config = configFromEnv(process.env);
const broker = requireNatsBroker(config.broker, 'order-status', [
  'the order status store (JetStream KV bucket)',
]);
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });

await runService(
  {
    name: 'order-status',
    tracing: tracingSettingsFromEnv(process.env, { serviceName: 'order-status' }),
    version: '0.1.0',
    broker,
    httpPort: config.httpPort,
    drainDeadlineMs: config.drainDeadlineMs,
    streams: topology.streams,
  },
  async (context) =>
    startOrderStatus(context, {
      topology,
      store: await KvStatusStore.open(new NatsKeyValueStores(context.broker.nc), topology.kv.orderStatus, {
        replicas: config.kvReplicas,
      }),
      broadcaster: context.transport,
      concurrency: config.concurrency,
      maxDeliver: config.maxDeliver,
      retry: { initialDelayMs: config.retryInitialDelayMs, maxDelayMs: config.retryMaxDelayMs },
    }),
);
