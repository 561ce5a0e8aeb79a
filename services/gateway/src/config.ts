import { EnvSettings, natsAuthSettings, type NatsAuth } from '@orderflow/messaging';
import { ConfigError } from './errors.ts';

/** Settings of a gateway replica. */
export interface GatewayConfig {
  natsUrl: string;
  /** `NATS_NKEY_SEED_FILE`, `NATS_CA_FILE`: the gateway's own credentials on a secured bus. */
  natsAuth: NatsAuth;
  /** Public HTTP port of the API (default 3000). */
  port: number;
  /** Bind address (default 0.0.0.0). */
  host: string;
  /** Largest accepted request body in bytes (default 65 536). */
  bodyLimitBytes: number;
  /** Time a service gets to answer a request (default 5000 ms). */
  requestTimeoutMs: number;
  namespace: string | undefined;
  /** `STREAM_REPLICAS`: replicas of the ORDERING stream if the gateway creates it (default 1; 3 in a cluster). */
  streamReplicas: number;
}

export function configFromEnv(env: Record<string, string | undefined>): GatewayConfig {
  const issues: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < min || value > max)
      issues.push(`${name} must be an integer in ${min}..${max}`);
    return value;
  };
  const config: GatewayConfig = {
    natsUrl: env.NATS_URL ?? 'nats://127.0.0.1:4222',
    natsAuth: natsAuthSettings(new EnvSettings(env)),
    port: int('PORT', 3000, 0, 65_535),
    host: env.HOST ?? '0.0.0.0',
    bodyLimitBytes: int('BODY_LIMIT_BYTES', 64 * 1024, 1, 10 * 1024 * 1024),
    requestTimeoutMs: int('REQUEST_TIMEOUT_MS', 5_000, 1, 120_000),
    namespace: env.ORDERFLOW_NAMESPACE || undefined,
    streamReplicas: int('STREAM_REPLICAS', 1, 1, 5),
  };
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}
