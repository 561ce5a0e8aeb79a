// Composition root of order-status: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import {
  BrokerKind,
  NatsKeyValueStores,
  runService,
  tracingSettingsFromEnv,
  type KeyValueStores,
  type SetupContext,
} from '@orderflow/messaging';
import { openSqlStore, SqlKeyValueStores } from '@orderflow/sql';
import { KvStatusStore } from './adapters/kv-status-store.ts';
import { startOrderStatus } from './app.ts';
import { configFromEnv } from './config.ts';

const config = configFromEnv(process.env);
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });

/**
 * The status store's buckets: the JetStream KV store on NATS; on RabbitMQ the `orderflow_kv` table of
 * the service's SQL store (PostgreSQL with `DATABASE_URL`, else PGlite in `DATA_DIR`), closed on stop.
 */
async function keyValueStores(context: SetupContext): Promise<KeyValueStores> {
  if (context.broker.kind === BrokerKind.Nats) return new NatsKeyValueStores(context.broker.nc);
  const store = await openSqlStore({
    ...(config.databaseUrl !== undefined && { databaseUrl: config.databaseUrl }),
    dataDir: config.dataDir,
    schema: config.dbSchema,
  });
  context.onStop(() => store.close());
  return new SqlKeyValueStores(store);
}

await runService(
  {
    name: 'order-status',
    tracing: tracingSettingsFromEnv(process.env, { serviceName: 'order-status' }),
    version: '0.1.0',
    broker: config.broker,
    httpPort: config.httpPort,
    drainDeadlineMs: config.drainDeadlineMs,
    streams: topology.streams,
  },
  async (context) =>
    startOrderStatus(context, {
      topology,
      store: await KvStatusStore.open(await keyValueStores(context), topology.kv.orderStatus, {
        replicas: config.kvReplicas,
      }),
      broadcaster: context.transport,
      concurrency: config.concurrency,
      maxDeliver: config.maxDeliver,
      retry: { initialDelayMs: config.retryInitialDelayMs, maxDelayMs: config.retryMaxDelayMs },
    }),
);
