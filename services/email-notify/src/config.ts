import { ConfigError } from './errors.ts';

/** Settings of an email-notify replica. */
export interface EmailNotifyConfig {
  natsUrl: string;
  /** PostgreSQL URL; without it the embedded PGlite database in `dataDir` is used. */
  databaseUrl: string | undefined;
  dataDir: string;
  /** PostgreSQL schema (default `email_notify`). */
  dbSchema: string;
  smtp: {
    host: string;
    port: number;
    secure: boolean;
    user: string | undefined;
    password: string | undefined;
    timeoutMs: number;
  };
  mailFrom: string;
  /** How long a claim to send protects a mail from another sender (default 60 000 ms). */
  claimLeaseMs: number;
  httpPort: number;
  namespace: string | undefined;
  maxDeliver: number;
  drainDeadlineMs: number;
}

export function configFromEnv(env: Record<string, string | undefined>): EmailNotifyConfig {
  const issues: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < min || value > max)
      issues.push(`${name} must be an integer in ${min}..${max}`);
    return value;
  };
  const config: EmailNotifyConfig = {
    natsUrl: env.NATS_URL ?? 'nats://127.0.0.1:4222',
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: env.DATA_DIR ?? 'data/email-notify',
    dbSchema: env.DB_SCHEMA ?? 'email_notify',
    smtp: {
      host: env.SMTP_HOST ?? '127.0.0.1',
      port: int('SMTP_PORT', 2525, 1, 65_535),
      secure: env.SMTP_SECURE === 'true',
      user: env.SMTP_USER || undefined,
      password: env.SMTP_PASSWORD || undefined,
      timeoutMs: int('SMTP_TIMEOUT_MS', 10_000, 1, 600_000),
    },
    mailFrom: env.MAIL_FROM ?? 'Orderflow <orders@orderflow.local>',
    claimLeaseMs: int('CLAIM_LEASE_MS', 60_000, 1, 3_600_000),
    httpPort: int('HTTP_PORT', 0, 0, 65_535),
    namespace: env.ORDERFLOW_NAMESPACE || undefined,
    maxDeliver: int('MAX_DELIVER', 10, 1, 100),
    drainDeadlineMs: int('DRAIN_DEADLINE_MS', 10_000, 0, 600_000),
  };
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}
