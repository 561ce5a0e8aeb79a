import { EnvSettings, serviceSettings, type ServiceSettings, ConfigError } from '@orderflow/messaging';

/** Settings of a payment-processor replica. */
export interface PaymentProcessorConfig extends ServiceSettings {
  /** `PSP_URL`: base URL of the PSP (default http://127.0.0.1:4010). */
  pspUrl: string;
  /** `PSP_TIMEOUT_MS`: deadline of one PSP call (default 5000 ms). */
  pspTimeoutMs: number;
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(vars: Record<string, string | undefined>): PaymentProcessorConfig {
  const env = new EnvSettings(vars);
  const config: PaymentProcessorConfig = {
    ...serviceSettings(env, { maxDeliver: 8 }),
    pspUrl: env.url('PSP_URL', 'http://127.0.0.1:4010'),
    pspTimeoutMs: env.int('PSP_TIMEOUT_MS', 5_000, 1, 600_000),
  };
  if (env.problems.length > 0) throw new ConfigError(env.problems);
  return config;
}
