import { ConfigError } from './errors.ts';

/** Settings of an order-storage replica. */
export interface OrderStorageConfig {
  natsUrl: string;
  /** PostgreSQL URL; without it the embedded PGlite database in `dataDir` is used. */
  databaseUrl: string | undefined;
  dataDir: string;
  /** PostgreSQL schema (default `order_storage`). */
  dbSchema: string;
  httpPort: number;
  namespace: string | undefined;
  concurrency: number | undefined;
  maxDeliver: number;
  retryInitialDelayMs: number;
  retryMaxDelayMs: number;
  drainDeadlineMs: number;
}

export function configFromEnv(env: Record<string, string | undefined>): OrderStorageConfig {
  const issues: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < min || value > max)
      issues.push(`${name} must be an integer in ${min}..${max}`);
    return value;
  };
  const config: OrderStorageConfig = {
    natsUrl: env.NATS_URL ?? 'nats://127.0.0.1:4222',
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: env.DATA_DIR ?? 'data/order-storage',
    dbSchema: env.DB_SCHEMA ?? 'order_storage',
    httpPort: int('HTTP_PORT', 0, 0, 65_535),
    namespace: env.ORDERFLOW_NAMESPACE || undefined,
    concurrency: env.CONCURRENCY ? int('CONCURRENCY', 16, 1, 1_000) : undefined,
    maxDeliver: int('MAX_DELIVER', 8, 1, 100),
    retryInitialDelayMs: int('RETRY_INITIAL_DELAY_MS', 250, 1, 600_000),
    retryMaxDelayMs: int('RETRY_MAX_DELAY_MS', 30_000, 1, 3_600_000),
    drainDeadlineMs: int('DRAIN_DEADLINE_MS', 10_000, 0, 600_000),
  };
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}
