import { EnvSettings, serviceSettings, type ServiceSettings, ConfigError } from '@orderflow/messaging';

/** Settings of a payment-processor replica. */
export interface PaymentProcessorConfig extends ServiceSettings {
  /** `PSP_URL`: base URL of the PSP (default http://127.0.0.1:4010). */
  pspUrl: string;
  /** `PSP_TIMEOUT_MS`: deadline of one PSP call (default 5000 ms). */
  pspTimeoutMs: number;
  /**
   * `ACK_WAIT_MS`: how long the broker waits for a replica's ack before it hands the message to
   * another one — what a crashed replica's charge waits (default the larger of 30 s and twice
   * `PSP_TIMEOUT_MS`; the runtime extends it while a handler runs). Must exceed `PSP_TIMEOUT_MS`.
   */
  ackWaitMs: number;
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(vars: Record<string, string | undefined>): PaymentProcessorConfig {
  const env = new EnvSettings(vars);
  const pspTimeoutMs = env.int('PSP_TIMEOUT_MS', 5_000, 1, 600_000);
  const config: PaymentProcessorConfig = {
    ...serviceSettings(env, { maxDeliver: 8 }),
    pspUrl: env.url('PSP_URL', 'http://127.0.0.1:4010'),
    pspTimeoutMs,
    ackWaitMs: env.int('ACK_WAIT_MS', Math.max(30_000, pspTimeoutMs * 2), 1_000, 3_600_000),
  };
  if (config.ackWaitMs <= pspTimeoutMs)
    env.problems.push(`ACK_WAIT_MS (${config.ackWaitMs}) must exceed PSP_TIMEOUT_MS (${pspTimeoutMs})`);
  if (env.problems.length > 0) throw new ConfigError(env.problems);
  return config;
}
