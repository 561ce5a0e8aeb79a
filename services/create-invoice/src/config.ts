import { ConfigError } from './errors.ts';

/** Settings of a create-invoice replica. */
export interface CreateInvoiceConfig {
  natsUrl: string;
  /** PostgreSQL URL; without it the embedded PGlite database in `dataDir` is used. */
  databaseUrl: string | undefined;
  dataDir: string;
  /** PostgreSQL schema (default `create_invoice`). */
  dbSchema: string;
  /** Seller printed on the invoices. */
  seller: string;
  /** Replicas of the object store bucket (default 1; 3 in a cluster). */
  objectStoreReplicas: number;
  httpPort: number;
  namespace: string | undefined;
  concurrency: number;
  maxDeliver: number;
  retryInitialDelayMs: number;
  retryMaxDelayMs: number;
  drainDeadlineMs: number;
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(env: Record<string, string | undefined>): CreateInvoiceConfig {
  const issues: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < min || value > max)
      issues.push(`${name} must be an integer in ${min}..${max}`);
    return value;
  };
  const config: CreateInvoiceConfig = {
    natsUrl: env.NATS_URL ?? 'nats://127.0.0.1:4222',
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: env.DATA_DIR ?? 'data/create-invoice',
    dbSchema: env.DB_SCHEMA ?? 'create_invoice',
    seller: env.INVOICE_SELLER ?? 'Orderflow GmbH',
    objectStoreReplicas: int('OBJECT_STORE_REPLICAS', 1, 1, 5),
    httpPort: int('HTTP_PORT', 0, 0, 65_535),
    namespace: env.ORDERFLOW_NAMESPACE || undefined,
    concurrency: int('CONCURRENCY', 16, 1, 1_000),
    maxDeliver: int('MAX_DELIVER', 10, 1, 100),
    retryInitialDelayMs: int('RETRY_INITIAL_DELAY_MS', 250, 1, 600_000),
    retryMaxDelayMs: int('RETRY_MAX_DELAY_MS', 30_000, 1, 3_600_000),
    drainDeadlineMs: int('DRAIN_DEADLINE_MS', 10_000, 0, 600_000),
  };
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}
