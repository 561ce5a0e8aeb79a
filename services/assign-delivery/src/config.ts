import { EnvSettings, serviceSettings, type ServiceSettings, ConfigError } from '@orderflow/messaging';
import { sqlStoreSettings, type SqlStoreSettings } from '@orderflow/sql';
import { DEFAULT_COURIERS, poolProblems, type Courier } from './domain/couriers.ts';

/** Settings of an assign-delivery replica. */
export interface AssignDeliveryConfig extends ServiceSettings, SqlStoreSettings {
  /** Couriers seeded at start (`COURIER_POOL`, JSON array of `{courierId, name, country, capacity}`). */
  couriers: readonly Courier[];
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(vars: Record<string, string | undefined>): AssignDeliveryConfig {
  const env = new EnvSettings(vars);
  let couriers: readonly Courier[] = DEFAULT_COURIERS;
  const pool = env.optionalText('COURIER_POOL');
  if (pool !== undefined) {
    try {
      const parsed = JSON.parse(pool) as unknown;
      if (!Array.isArray(parsed)) throw new Error('not an array');
      couriers = parsed as Courier[];
      env.problems.push(...poolProblems(couriers).map((p) => `COURIER_POOL: ${p}`));
    } catch (error) {
      env.problems.push(`COURIER_POOL must be a JSON array of couriers: ${(error as Error).message}`);
    }
  }
  const config: AssignDeliveryConfig = {
    ...serviceSettings(env, { maxDeliver: 10 }),
    ...sqlStoreSettings(env, 'assign-delivery'),
    couriers,
  };
  if (env.problems.length > 0) throw new ConfigError(env.problems);
  return config;
}
