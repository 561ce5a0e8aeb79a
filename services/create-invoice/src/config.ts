import { EnvSettings, serviceSettings, type ServiceSettings, ConfigError } from '@orderflow/messaging';
import { sqlStoreSettings, type SqlStoreSettings } from '@orderflow/sql';

/** Settings of a create-invoice replica. */
export interface CreateInvoiceConfig extends ServiceSettings, SqlStoreSettings {
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
    seller: env.text('INVOICE_SELLER', 'Orderflow GmbH'),
    objectStoreReplicas: env.int('OBJECT_STORE_REPLICAS', 1, 1, 5),
  };
  if (env.problems.length > 0) throw new ConfigError(env.problems);
  return config;
}
