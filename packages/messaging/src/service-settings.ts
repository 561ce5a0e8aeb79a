import { BrokerKind, type BrokerConfig } from './broker.ts';

/**
 * Reads a service's settings from environment variables in its composition root (`main.ts`), the only
 * place allowed to look at the environment. Every problem is collected, so a misconfigured service
 * reports them all at once.
 */
export class EnvSettings {
  /** What is wrong, one line per variable; empty when everything parsed. */
  readonly problems: string[] = [];

  constructor(private readonly env: Readonly<Record<string, string | undefined>>) {}

  /** The variable, or `fallback` when it is unset or empty. */
  text(name: string, fallback: string): string {
    return this.optionalText(name) ?? fallback;
  }

  /** The variable, or `undefined` when it is unset or empty. */
  optionalText(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value === '' ? undefined : value;
  }

  /** An integer in `min..max`, or `fallback` when unset or empty. */
  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.optionalText(name);
    const value = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.problems.push(`${name} must be an integer in ${min}..${max}`);
    }
    return value;
  }

  /** `true` only for the text `true`. */
  flag(name: string): boolean {
    return this.optionalText(name) === 'true';
  }

  /** One of `values`, or `fallback` when unset or empty. */
  oneOf<const T extends string>(name: string, values: readonly T[], fallback: T): T {
    const value = this.text(name, fallback);
    if (!(values as readonly string[]).includes(value)) {
      this.problems.push(`${name} must be one of ${values.join(', ')} (got "${value}")`);
      return fallback;
    }
    return value as T;
  }

  /** A URL, or `fallback` when unset or empty. */
  url(name: string, fallback: string): string {
    const value = this.text(name, fallback);
    if (!URL.canParse(value)) this.problems.push(`${name} is not a URL: ${value}`);
    return value;
  }
}

/** How a process authenticates to a NATS server that has per-identity permissions (empty: an open server). */
export interface NatsAuth {
  /** `NATS_NKEY_SEED_FILE`: the identity's nkey seed (`SU…`, a file of mode 0600). */
  nkeySeedFile?: string;
  /** `NATS_CA_FILE`: CA certificate the server's TLS certificate is checked against (TLS on). */
  caFile?: string;
}

/** Reads {@link NatsAuth} (`NATS_NKEY_SEED_FILE`, `NATS_CA_FILE`). */
export function natsAuthSettings(env: EnvSettings): NatsAuth {
  const nkeySeedFile = env.optionalText('NATS_NKEY_SEED_FILE');
  const caFile = env.optionalText('NATS_CA_FILE');
  return { ...(nkeySeedFile !== undefined && { nkeySeedFile }), ...(caFile !== undefined && { caFile }) };
}

/**
 * Reads the broker a service runs on:
 * - `BROKER`: `nats` (default) or `rabbitmq`;
 * - on NATS: `NATS_URL` (default `nats://127.0.0.1:4222`; several nodes of a cluster comma-separated),
 *   `NATS_NKEY_SEED_FILE` and `NATS_CA_FILE` (the service's own credentials on a secured bus), and
 *   `deadLetterReplicas` from the caller (its `STREAM_REPLICAS`);
 * - on RabbitMQ: `AMQP_URL` (default `amqp://127.0.0.1:5672`; `amqp:` or `amqps:`, user, password and
 *   vhost in the URL) and `AMQP_PROVISIONED=true` when `provisionRabbit` declared the topology and the
 *   user is the service's own identity.
 * The other broker's variables are ignored.
 */
export function brokerSettings(
  env: EnvSettings,
  options: { deadLetterReplicas?: number } = {},
): BrokerConfig {
  const kind = env.oneOf('BROKER', [BrokerKind.Nats, BrokerKind.RabbitMQ], BrokerKind.Nats);
  if (kind === BrokerKind.RabbitMQ) {
    // Not echoed in the problem: the URL may hold a password.
    const url = env.text('AMQP_URL', 'amqp://127.0.0.1:5672');
    if (!URL.canParse(url) || !['amqp:', 'amqps:'].includes(new URL(url).protocol))
      env.problems.push('AMQP_URL must be an amqp:// or amqps:// URL');
    return { kind, url, ...(env.flag('AMQP_PROVISIONED') && { provisioned: true }) };
  }
  return {
    kind,
    servers: env.text('NATS_URL', 'nats://127.0.0.1:4222'),
    auth: natsAuthSettings(env),
    ...(options.deadLetterReplicas !== undefined && { deadLetterReplicas: options.deadLetterReplicas }),
  };
}

/** Settings every Orderflow service reads under the same names, with the same defaults. */
export interface ServiceSettings {
  /** `BROKER` and its connection settings (see {@link brokerSettings}); dead letters get `STREAM_REPLICAS`. */
  broker: BrokerConfig;
  /** `STREAM_REPLICAS`: replicas of the streams the service provisions and of its dead letters (default 1; 3 in a cluster). */
  streamReplicas: number;
  /** `HTTP_PORT` of the health and metrics server (default 0: a free port). */
  httpPort: number;
  /** `ORDERFLOW_NAMESPACE`: prefixes every subject, stream and durable (tests share one server that way). */
  namespace: string | undefined;
  /** `CONCURRENCY`: handlers at once per consumer (default 16). */
  concurrency: number;
  /** `MAX_DELIVER`: attempts before a message is dead-lettered. */
  maxDeliver: number;
  /** `RETRY_INITIAL_DELAY_MS` (default 250). */
  retryInitialDelayMs: number;
  /** `RETRY_MAX_DELAY_MS` (default 30 000). */
  retryMaxDelayMs: number;
  /** `DRAIN_DEADLINE_MS`: time in-flight handlers get on SIGTERM (default 10 000). */
  drainDeadlineMs: number;
}

export function serviceSettings(env: EnvSettings, defaults: { maxDeliver: number }): ServiceSettings {
  const streamReplicas = env.int('STREAM_REPLICAS', 1, 1, 5);
  return {
    broker: brokerSettings(env, { deadLetterReplicas: streamReplicas }),
    streamReplicas,
    httpPort: env.int('HTTP_PORT', 0, 0, 65_535),
    namespace: env.optionalText('ORDERFLOW_NAMESPACE'),
    concurrency: env.int('CONCURRENCY', 16, 1, 1_000),
    maxDeliver: env.int('MAX_DELIVER', defaults.maxDeliver, 1, 100),
    retryInitialDelayMs: env.int('RETRY_INITIAL_DELAY_MS', 250, 1, 600_000),
    retryMaxDelayMs: env.int('RETRY_MAX_DELAY_MS', 30_000, 1, 3_600_000),
    drainDeadlineMs: env.int('DRAIN_DEADLINE_MS', 10_000, 0, 600_000),
  };
}
