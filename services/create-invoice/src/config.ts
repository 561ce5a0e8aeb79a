import {
  blobDirProblems,
  EnvSettings,
  serviceSettings,
  type ServiceSettings,
  ConfigError,
} from '@orderflow/messaging';
import { sqlStoreSettings, type SqlStoreSettings } from '@orderflow/sql';

/** Settings of a create-invoice replica. */
export interface CreateInvoiceConfig extends ServiceSettings, SqlStoreSettings {
  /** `BLOB_DIR`: the directory the invoice PDFs are shared in on RabbitMQ (required there; unused on NATS). */
  blobDir: string | undefined;
  /** `INVOICE_SELLER`: seller printed on the invoices. */
  seller: string;
  /** `OBJECT_STORE_REPLICAS`: replicas of the object store bucket (default 1; 3 in a cluster). */
  objectStoreReplicas: number;
}

/** Builds the config from environment variables, reporting every problem at once. */
export function configFromEnv(vars: Record<string, string | undefined>): CreateInvoiceConfig {
  const env = new EnvSettings(vars);
  const config: CreateInvoiceConfig = {
    ...serviceSettings(env, { maxDeliver: 10 }),
    ...sqlStoreSettings(env, 'create-invoice'),
    blobDir: env.optionalText('BLOB_DIR'),
    seller: env.text('INVOICE_SELLER', 'Orderflow GmbH'),
    objectStoreReplicas: env.int('OBJECT_STORE_REPLICAS', 1, 1, 5),
  };
  const problems = [...env.problems, ...blobDirProblems(config.broker, config.blobDir)];
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
