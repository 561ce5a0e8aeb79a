import { ConfigError } from './errors.ts';

/** Settings of a payment-processor replica. */
export interface PaymentProcessorConfig {
  natsUrl: string;
  /** Base URL of the PSP (default http://127.0.0.1:4010). */
  pspUrl: string;
  /** Deadline of one PSP call (default 5000 ms). */
  pspTimeoutMs: number;
  /** Health/metrics port; 0 = a free one (default 0). */
  httpPort: number;
  /** Subject namespace (see `orderingTopology`); default none. */
  namespace: string | undefined;
  concurrency: number;
  maxDeliver: number;
  retryInitialDelayMs: number;
  retryMaxDelayMs: number;
  drainDeadlineMs: number;
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(env: Record<string, string | undefined>): PaymentProcessorConfig {
  const issues: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < min || value > max)
      issues.push(`${name} must be an integer in ${min}..${max}`);
    return value;
  };
  const pspUrl = env.PSP_URL ?? 'http://127.0.0.1:4010';
  if (!URL.canParse(pspUrl)) issues.push(`PSP_URL is not a URL: ${pspUrl}`);
  const config: PaymentProcessorConfig = {
    natsUrl: env.NATS_URL ?? 'nats://127.0.0.1:4222',
    pspUrl,
    pspTimeoutMs: int('PSP_TIMEOUT_MS', 5_000, 1, 600_000),
    httpPort: int('HTTP_PORT', 0, 0, 65_535),
    namespace: env.ORDERFLOW_NAMESPACE || undefined,
    concurrency: int('CONCURRENCY', 16, 1, 1_000),
    maxDeliver: int('MAX_DELIVER', 8, 1, 100),
    retryInitialDelayMs: int('RETRY_INITIAL_DELAY_MS', 250, 1, 600_000),
    retryMaxDelayMs: int('RETRY_MAX_DELAY_MS', 30_000, 1, 3_600_000),
    drainDeadlineMs: int('DRAIN_DEADLINE_MS', 10_000, 0, 600_000),
  };
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}
