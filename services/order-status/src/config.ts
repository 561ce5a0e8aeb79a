import { ConfigError } from './errors.ts';

/** Settings of an order-status replica. */
export interface OrderStatusConfig {
  natsUrl: string;
  /** Health/metrics port; 0 = a free one (default 0). */
  httpPort: number;
  /** Subject namespace (see `orderingTopology`); default none. */
  namespace: string | undefined;
  /** Replicas of the KV bucket (default 1; 3 in a cluster). */
  kvReplicas: number;
  concurrency: number;
  maxDeliver: number;
  retryInitialDelayMs: number;
  retryMaxDelayMs: number;
  drainDeadlineMs: number;
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(env: Record<string, string | undefined>): OrderStatusConfig {
  const issues: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < min || value > max)
      issues.push(`${name} must be an integer in ${min}..${max}`);
    return value;
  };
  const config: OrderStatusConfig = {
    natsUrl: env.NATS_URL ?? 'nats://127.0.0.1:4222',
    httpPort: int('HTTP_PORT', 0, 0, 65_535),
    namespace: env.ORDERFLOW_NAMESPACE || undefined,
    kvReplicas: int('KV_REPLICAS', 1, 1, 5),
    concurrency: int('CONCURRENCY', 16, 1, 1_000),
    maxDeliver: int('MAX_DELIVER', 10, 1, 100),
    retryInitialDelayMs: int('RETRY_INITIAL_DELAY_MS', 250, 1, 600_000),
    retryMaxDelayMs: int('RETRY_MAX_DELAY_MS', 30_000, 1, 3_600_000),
    drainDeadlineMs: int('DRAIN_DEADLINE_MS', 10_000, 0, 600_000),
  };
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}
