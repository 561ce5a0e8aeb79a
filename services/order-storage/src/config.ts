import { EnvSettings, serviceSettings, type ServiceSettings, ConfigError } from '@orderflow/messaging';
import { sqlStoreSettings, type SqlStoreSettings } from '@orderflow/sql';

/** Settings of an order-storage replica. */
export type OrderStorageConfig = ServiceSettings & SqlStoreSettings;

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(vars: Record<string, string | undefined>): OrderStorageConfig {
  const env = new EnvSettings(vars);
  const config: OrderStorageConfig = {
    ...serviceSettings(env, { maxDeliver: 8 }),
    ...sqlStoreSettings(env, 'order-storage'),
  };
  if (env.problems.length > 0) throw new ConfigError(env.problems);
  return config;
}
