import { EnvSettings, serviceSettings, type ServiceSettings, ConfigError } from '@orderflow/messaging';

/** Settings of an order-status replica. */
export interface OrderStatusConfig extends ServiceSettings {
  /** `KV_REPLICAS`: replicas of the KV bucket (default 1; 3 in a cluster). */
  kvReplicas: number;
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(vars: Record<string, string | undefined>): OrderStatusConfig {
  const env = new EnvSettings(vars);
  const config: OrderStatusConfig = {
    ...serviceSettings(env, { maxDeliver: 10 }),
    kvReplicas: env.int('KV_REPLICAS', 1, 1, 5),
  };
  if (env.problems.length > 0) throw new ConfigError(env.problems);
  return config;
}
