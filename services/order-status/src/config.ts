import { EnvSettings, serviceSettings, type ServiceSettings, ConfigError } from '@orderflow/messaging';
import { sqlStoreSettings, type SqlStoreSettings } from '@orderflow/sql';

/**
 * Settings of an order-status replica. The SQL settings (`DATABASE_URL`, `DATA_DIR`, `DB_SCHEMA`) are
 * used on RabbitMQ only, where the status store is a table of that store instead of a KV bucket.
 */
export interface OrderStatusConfig extends ServiceSettings, SqlStoreSettings {
  /** `KV_REPLICAS`: replicas of the KV bucket (default 1; 3 in a cluster). */
  kvReplicas: number;
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(vars: Record<string, string | undefined>): OrderStatusConfig {
  const env = new EnvSettings(vars);
  const config: OrderStatusConfig = {
    ...serviceSettings(env, { maxDeliver: 10 }),
    ...sqlStoreSettings(env, 'order-status'),
    kvReplicas: env.int('KV_REPLICAS', 1, 1, 5),
  };
  if (env.problems.length > 0) throw new ConfigError(env.problems);
  return config;
}
