import {
  blobDirProblems,
  EnvSettings,
  serviceSettings,
  type ServiceSettings,
  ConfigError,
} from '@orderflow/messaging';
import { sqlStoreSettings, type SqlStoreSettings } from '@orderflow/sql';

/** Settings of an email-notify replica. */
export interface EmailNotifyConfig extends ServiceSettings, SqlStoreSettings {
  /** `BLOB_DIR`: the directory the invoice PDFs are shared in on RabbitMQ (required there; unused on NATS). */
  blobDir: string | undefined;
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
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(vars: Record<string, string | undefined>): EmailNotifyConfig {
  const env = new EnvSettings(vars);
  const config: EmailNotifyConfig = {
    ...serviceSettings(env, { maxDeliver: 10 }),
    ...sqlStoreSettings(env, 'email-notify'),
    blobDir: env.optionalText('BLOB_DIR'),
    smtp: {
      host: env.text('SMTP_HOST', '127.0.0.1'),
      port: env.int('SMTP_PORT', 2525, 1, 65_535),
      secure: env.flag('SMTP_SECURE'),
      user: env.optionalText('SMTP_USER'),
      password: env.optionalText('SMTP_PASSWORD'),
      timeoutMs: env.int('SMTP_TIMEOUT_MS', 10_000, 1, 600_000),
    },
    mailFrom: env.text('MAIL_FROM', 'Orderflow <orders@orderflow.local>'),
    claimLeaseMs: env.int('CLAIM_LEASE_MS', 60_000, 1, 3_600_000),
  };
  const problems = [...env.problems, ...blobDirProblems(config.broker, config.blobDir)];
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
