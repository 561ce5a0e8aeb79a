import { DEFAULT_COURIERS, poolProblems, type Courier } from './domain/couriers.ts';
import { ConfigError } from './errors.ts';

/** Settings of an assign-delivery replica. */
export interface AssignDeliveryConfig {
  natsUrl: string;
  /** PostgreSQL URL; without it the embedded PGlite database in `dataDir` is used. */
  databaseUrl: string | undefined;
  dataDir: string;
  /** PostgreSQL schema (default `assign_delivery`). */
  dbSchema: string;
  /** Couriers seeded at start (`COURIER_POOL`, JSON array of `{courierId, name, country, capacity}`). */
  couriers: readonly Courier[];
  httpPort: number;
  namespace: string | undefined;
  concurrency: number;
  maxDeliver: number;
  retryInitialDelayMs: number;
  retryMaxDelayMs: number;
  drainDeadlineMs: number;
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(env: Record<string, string | undefined>): AssignDeliveryConfig {
  const issues: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < min || value > max)
      issues.push(`${name} must be an integer in ${min}..${max}`);
    return value;
  };
  let couriers: readonly Courier[] = DEFAULT_COURIERS;
  if (env.COURIER_POOL) {
    try {
      const parsed = JSON.parse(env.COURIER_POOL) as unknown;
      if (!Array.isArray(parsed)) throw new Error('not an array');
      couriers = parsed as Courier[];
      issues.push(...poolProblems(couriers).map((p) => `COURIER_POOL: ${p}`));
    } catch (error) {
      issues.push(`COURIER_POOL must be a JSON array of couriers: ${(error as Error).message}`);
    }
  }
  const config: AssignDeliveryConfig = {
    natsUrl: env.NATS_URL ?? 'nats://127.0.0.1:4222',
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: env.DATA_DIR ?? 'data/assign-delivery',
    dbSchema: env.DB_SCHEMA ?? 'assign_delivery',
    couriers,
    httpPort: int('HTTP_PORT', 0, 0, 65_535),
    namespace: env.ORDERFLOW_NAMESPACE || undefined,
    concurrency: int('CONCURRENCY', 16, 1, 1_000),
    maxDeliver: int('MAX_DELIVER', 10, 1, 100),
    retryInitialDelayMs: int('RETRY_INITIAL_DELAY_MS', 250, 1, 600_000),
    retryMaxDelayMs: int('RETRY_MAX_DELAY_MS', 30_000, 1, 3_600_000),
    drainDeadlineMs: int('DRAIN_DEADLINE_MS', 10_000, 0, 600_000),
  };
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}
