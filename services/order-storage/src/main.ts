// Composition root of order-storage: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import {
  BrokerKind,
  requireNatsBroker,
  runService,
  tracingSettingsFromEnv,
  type BrokerConnection,
  type ServiceContext,
} from '@orderflow/messaging';
import { openServiceStore } from '@orderflow/sql';
import { jetStreamPorts } from './adapters/jetstream-ports.ts';
import { sqlPorts } from './adapters/sql-ports.ts';
import { orderStorageMigrations } from './adapters/sql-db.ts';
import { startOrderStorage } from './app.ts';
import { configFromEnv, EventLogKind } from './config.ts';

const config = configFromEnv(process.env);
// The JetStream log is the bus's own stream: only NATS has it. The SQL log runs on any broker.
const broker =
  config.eventLog === EventLogKind.JetStream
    ? requireNatsBroker(config.broker, 'order-storage', [
        'the order event log on JetStream (ORDER_EVENT_LOG=sql keeps it in SQL instead)',
      ])
    : config.broker;
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });
const store = await openServiceStore(config, 'order-storage', orderStorageMigrations);

/**
 * The event log and history: on JetStream the aggregate's log is the bus's stream and the history is
 * read from it; on SQL both live in the store and a forwarder publishes each commit (stopped after
 * order-storage, since stop steps run last registered first).
 */
async function ports(context: ServiceContext, connection: BrokerConnection) {
  if (config.eventLog === EventLogKind.JetStream && connection.kind === BrokerKind.Nats)
    return jetStreamPorts(connection.transport, topology);
  const { forwarder, ...sql } = await sqlPorts(store, context.transport, topology, {
    registry: context.metrics,
    logger: context.logger,
  });
  await forwarder.start();
  context.onStop(() => forwarder.stop());
  return sql;
}

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
      ...(await ports(context, context.broker)),
      ...(config.concurrency !== undefined && { concurrency: config.concurrency }),
      maxDeliver: config.maxDeliver,
      retry: { initialDelayMs: config.retryInitialDelayMs, maxDelayMs: config.retryMaxDelayMs },
    });
  },
);
