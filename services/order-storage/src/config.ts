import {
  BrokerKind,
  EnvSettings,
  serviceSettings,
  type ServiceSettings,
  ConfigError,
} from '@orderflow/messaging';
import { sqlStoreSettings, type SqlStoreSettings } from '@orderflow/sql';

/** Where the Order aggregate's log lives (`ORDER_EVENT_LOG`). */
export const EventLogKind = { JetStream: 'jetstream', Sql: 'sql' } as const;
export type EventLogKind = (typeof EventLogKind)[keyof typeof EventLogKind];

/** Settings of an order-storage replica. */
export type OrderStorageConfig = ServiceSettings &
  SqlStoreSettings & {
    /**
     * `jetstream` (default): the log is `orders.<id>` in the bus's stream. `sql`: a SQL event log in
     * the service's store, forwarded to the bus (for a broker without a stream to append to).
     */
    readonly eventLog: EventLogKind;
  };

/** Default: JetStream on NATS; SQL on a broker without a stream to append to (RabbitMQ). */
function eventLogKind(env: EnvSettings, broker: BrokerKind): EventLogKind {
  const value = env.text(
    'ORDER_EVENT_LOG',
    broker === BrokerKind.Nats ? EventLogKind.JetStream : EventLogKind.Sql,
  );
  const kinds: readonly string[] = Object.values(EventLogKind);
  if (kinds.includes(value)) return value as EventLogKind;
  env.problems.push(`ORDER_EVENT_LOG must be one of ${kinds.join(', ')}: ${value}`);
  return EventLogKind.JetStream;
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(vars: Record<string, string | undefined>): OrderStorageConfig {
  const env = new EnvSettings(vars);
  const service = serviceSettings(env, { maxDeliver: 8 });
  const config: OrderStorageConfig = {
    ...service,
    ...sqlStoreSettings(env, 'order-storage'),
    eventLog: eventLogKind(env, service.broker.kind),
  };
  if (env.problems.length > 0) throw new ConfigError(env.problems);
  return config;
}
