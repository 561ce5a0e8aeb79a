import {
  blobDirProblems,
  brokerSettings,
  EnvSettings,
  type BrokerConfig,
  ConfigError,
} from '@orderflow/messaging';
import type { GatewayLimits } from './app.ts';
import { ASYMMETRIC_ALGORITHMS, type AsymmetricAlgorithm } from './adapters/jwt-authenticator.ts';
import { DEFAULT_AUDIENCE, DEV_ISSUER } from './adapters/dev-issuer.ts';
import { OPERATOR_SCOPE } from './domain/access.ts';
import type { ServerTimeouts } from './server.ts';

/**
 * How the gateway authenticates callers: exactly one of
 * - `development` (`AUTH_DEV_KEY_FILE`): the key file `orderflow up` generates; the gateway signs a
 *   token for each customer who signs up and verifies tokens with the same key (EdDSA);
 * - `issuer` (`AUTH_JWKS_URL`, `AUTH_ISSUER`, `AUTH_AUDIENCE`, `AUTH_ALGORITHMS`): a real identity
 *   provider; the gateway only verifies.
 */
export type AuthConfig =
  | {
      readonly kind: 'development';
      readonly keyFile: string;
      readonly issuer: string;
      readonly audience: string;
      /** `DEV_TOKEN_TTL_S`: lifetime of a sign-up token (default 86 400 s). */
      readonly customerTokenTtlS: number;
      readonly clockToleranceS: number;
    }
  | {
      readonly kind: 'issuer';
      readonly jwksUrl: URL;
      readonly issuer: string;
      readonly audience: string;
      /** `AUTH_ALGORITHMS`, comma-separated (default `ES256`); asymmetric only. */
      readonly algorithms: readonly AsymmetricAlgorithm[];
      /** `AUTH_CUSTOMER_CLAIM`: the claim that holds the customer id (default `sub`). */
      readonly customerClaim: string;
      /** `AUTH_OPERATOR_SCOPE` (default `orderflow:operator`). */
      readonly operatorScope: string;
      readonly clockToleranceS: number;
    };

/** Settings of a gateway replica. */
export interface GatewayConfig {
  /**
   * `BROKER` (`nats` default, `rabbitmq`) with `NATS_URL`, `NATS_NKEY_SEED_FILE`, `NATS_CA_FILE` (the
   * gateway's own credentials on a secured bus) or `AMQP_URL`: see `brokerSettings`.
   */
  broker: BrokerConfig;
  /** `BLOB_DIR`: the directory create-invoice writes the invoice PDFs to on RabbitMQ (required there; unused on NATS). */
  blobDir: string | undefined;
  /** Public HTTP port of the API (default 3000). */
  port: number;
  /** `HOST`: bind address (default 127.0.0.1, this machine only; `0.0.0.0` in a container). */
  host: string;
  /** Largest accepted request body in bytes (default 65 536). */
  bodyLimitBytes: number;
  /** Time a service gets to answer a request (default 5000 ms). */
  requestTimeoutMs: number;
  namespace: string | undefined;
  /** `STREAM_REPLICAS`: replicas of the ORDERING stream if the gateway creates it (default 1; 3 in a cluster). */
  streamReplicas: number;
  auth: AuthConfig;
  /** `RATE_LIMIT_*`, `MAX_EVENT_STREAMS*`. */
  limits: GatewayLimits;
  /** `HTTP_HEADERS_TIMEOUT_MS`, `HTTP_REQUEST_TIMEOUT_MS`, `HTTP_KEEP_ALIVE_TIMEOUT_MS`, `HTTP_IDLE_TIMEOUT_MS`. */
  timeouts: ServerTimeouts;
  /** `HSTS_MAX_AGE_S`: send Strict-Transport-Security (only behind TLS; default: not sent). */
  hstsMaxAgeS: number | undefined;
  /** The operations console's links: `ORDERFLOW_TRACE_URL` (with `{traceId}`), `MAILBOX_URL`, `PSP_URL`. */
  console: { traceUrl?: string; mailboxUrl?: string; pspUrl?: string };
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
  const text = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);
  const clockToleranceS = int('AUTH_CLOCK_TOLERANCE_S', 30, 0, 600);

  let auth: AuthConfig;
  const keyFile = text('AUTH_DEV_KEY_FILE');
  const jwksUrl = text('AUTH_JWKS_URL');
  if (keyFile !== undefined && jwksUrl !== undefined)
    issues.push('set AUTH_DEV_KEY_FILE (development) or AUTH_JWKS_URL (an identity provider), not both');
  if (keyFile !== undefined) {
    auth = {
      kind: 'development',
      keyFile,
      issuer: text('AUTH_ISSUER') ?? DEV_ISSUER,
      audience: text('AUTH_AUDIENCE') ?? DEFAULT_AUDIENCE,
      customerTokenTtlS: int('DEV_TOKEN_TTL_S', 86_400, 60, 30 * 86_400),
      clockToleranceS,
    };
  } else {
    let url: URL | undefined;
    try {
      url = jwksUrl === undefined ? undefined : new URL(jwksUrl);
    } catch {
      issues.push(`AUTH_JWKS_URL is not a URL: "${jwksUrl}"`);
    }
    if (jwksUrl === undefined)
      issues.push(
        'no authentication configured: set AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE (your identity provider) ' +
          'or AUTH_DEV_KEY_FILE (development; `orderflow up` does)',
      );
    else if (url && url.protocol !== 'https:' && !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname))
      issues.push('AUTH_JWKS_URL must be https (plain http only on this machine)');
    const issuer = text('AUTH_ISSUER');
    if (jwksUrl !== undefined && issuer === undefined)
      issues.push('AUTH_ISSUER is required with AUTH_JWKS_URL');
    const audience = text('AUTH_AUDIENCE');
    if (jwksUrl !== undefined && audience === undefined)
      issues.push('AUTH_AUDIENCE is required with AUTH_JWKS_URL');
    const algorithms = (text('AUTH_ALGORITHMS') ?? 'ES256').split(',').map((a) => a.trim());
    const unknown = algorithms.filter((a) => !(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(a));
    if (unknown.length > 0)
      issues.push(
        `AUTH_ALGORITHMS: ${unknown.join(', ')} not accepted (one of ${ASYMMETRIC_ALGORITHMS.join(', ')})`,
      );
    auth = {
      kind: 'issuer',
      jwksUrl: url ?? new URL('https://invalid.example/'),
      issuer: issuer ?? '',
      audience: audience ?? '',
      algorithms: algorithms as AsymmetricAlgorithm[],
      customerClaim: text('AUTH_CUSTOMER_CLAIM') ?? 'sub',
      operatorScope: text('AUTH_OPERATOR_SCOPE') ?? OPERATOR_SCOPE,
      clockToleranceS,
    };
  }

  const hsts = text('HSTS_MAX_AGE_S');
  const url = (name: string, template = false): string | undefined => {
    const raw = text(name);
    if (raw === undefined) return undefined;
    try {
      const parsed = new URL(raw.replaceAll('{traceId}', 'x'));
      if (!['http:', 'https:'].includes(parsed.protocol)) issues.push(`${name} must be an http(s) URL`);
    } catch {
      issues.push(`${name} is not a URL: "${raw}"`);
    }
    if (template && !raw.includes('{traceId}')) issues.push(`${name} must contain {traceId}`);
    return raw;
  };
  const traceUrl = url('ORDERFLOW_TRACE_URL', true);
  const mailboxUrl = url('MAILBOX_URL');
  const pspUrl = url('PSP_URL');
  const brokerEnv = new EnvSettings(env);
  const broker = brokerSettings(brokerEnv);
  const blobDir = text('BLOB_DIR');
  issues.push(...brokerEnv.problems, ...blobDirProblems(broker, blobDir));
  const config: GatewayConfig = {
    broker,
    blobDir,
    port: int('PORT', 3000, 0, 65_535),
    host: text('HOST') ?? '127.0.0.1',
    bodyLimitBytes: int('BODY_LIMIT_BYTES', 64 * 1024, 1, 10 * 1024 * 1024),
    requestTimeoutMs: int('REQUEST_TIMEOUT_MS', 5_000, 1, 120_000),
    namespace: env.ORDERFLOW_NAMESPACE || undefined,
    streamReplicas: int('STREAM_REPLICAS', 1, 1, 5),
    auth,
    limits: {
      writes: {
        ratePerS: int('RATE_LIMIT_WRITES_PER_S', 20, 1, 1_000_000),
        burst: int('RATE_LIMIT_WRITES_BURST', 40, 1, 1_000_000),
      },
      signUps: {
        ratePerS: int('RATE_LIMIT_SIGNUPS_PER_S', 5, 1, 1_000_000),
        burst: int('RATE_LIMIT_SIGNUPS_BURST', 20, 1, 1_000_000),
      },
      maxStreams: int('MAX_EVENT_STREAMS', 1_000, 1, 100_000),
      maxStreamsPerClient: int('MAX_EVENT_STREAMS_PER_CLIENT', 5, 1, 1_000),
    },
    timeouts: {
      headersTimeoutMs: int('HTTP_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000),
      requestTimeoutMs: int('HTTP_REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000),
      keepAliveTimeoutMs: int('HTTP_KEEP_ALIVE_TIMEOUT_MS', 5_000, 100, 600_000),
      idleTimeoutMs: int('HTTP_IDLE_TIMEOUT_MS', 120_000, 1_000, 3_600_000),
    },
    hstsMaxAgeS: hsts === undefined ? undefined : int('HSTS_MAX_AGE_S', 0, 0, 2 * 365 * 86_400),
    console: {
      ...(traceUrl !== undefined && { traceUrl }),
      ...(mailboxUrl !== undefined && { mailboxUrl }),
      ...(pspUrl !== undefined && { pspUrl }),
    },
  };
  if (config.timeouts.headersTimeoutMs > config.timeouts.requestTimeoutMs)
    issues.push('HTTP_HEADERS_TIMEOUT_MS must not exceed HTTP_REQUEST_TIMEOUT_MS');
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}
