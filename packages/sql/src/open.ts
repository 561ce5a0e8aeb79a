import type { EnvSettings } from '@orderflow/messaging';
import { openPglite } from './pglite.ts';
import { openPostgres } from './postgres.ts';
import { migrate } from './migrate.ts';
import { migrateInboxOutbox } from './tables.ts';
import type { Migration, SqlStore } from './types.ts';

export interface SqlStoreConfig {
  /** PostgreSQL URL (`DATABASE_URL`); when absent, the embedded PGlite database in `dataDir` is used. */
  databaseUrl?: string;
  /** PGlite data directory of this service (ignored with `databaseUrl`). */
  dataDir: string;
  /** PostgreSQL schema of this service (ignored without `databaseUrl`). */
  schema: string;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
  /** See `PostgresOptions.preparedStatements` (default true). */
  preparedStatements?: boolean;
}

/** PostgreSQL when `databaseUrl` is given, else embedded PGlite. Called by a service's composition root. */
export function openSqlStore(config: SqlStoreConfig): Promise<SqlStore> {
  if (config.databaseUrl !== undefined && config.databaseUrl !== '') {
    return openPostgres({
      url: config.databaseUrl,
      schema: config.schema,
      ...(config.poolSize !== undefined && { poolSize: config.poolSize }),
      ...(config.preparedStatements !== undefined && { preparedStatements: config.preparedStatements }),
    });
  }
  return openPglite({ dataDir: config.dataDir });
}

/** Where a service keeps its SQL data, as read from the environment. */
export interface SqlStoreSettings {
  /** `DATABASE_URL`: PostgreSQL; unset = embedded PGlite. */
  databaseUrl: string | undefined;
  /** `DATA_DIR` (default `data/<service>`): the PGlite data directory. */
  dataDir: string;
  /** `DB_SCHEMA` (default the service name with `_` for `-`): the PostgreSQL schema. */
  dbSchema: string;
  /** `false` with `DB_PREPARED_STATEMENTS=false`: no PostgreSQL prepared statements (see `PostgresOptions`). */
  preparedStatements?: false;
}

/** Reads {@link SqlStoreSettings} for `service` under the names every service uses. */
export function sqlStoreSettings(env: EnvSettings, service: string): SqlStoreSettings {
  return {
    databaseUrl: env.optionalText('DATABASE_URL'),
    dataDir: env.text('DATA_DIR', `data/${service}`),
    dbSchema: env.text('DB_SCHEMA', service.replaceAll('-', '_')),
    ...(env.optionalText('DB_PREPARED_STATEMENTS') === 'false' && { preparedStatements: false as const }),
  };
}

/**
 * Opens a service's store from its settings and brings its schema up to date: the toolkit's inbox and
 * outbox tables, then the service's own `migrations` (recorded under the component `service`).
 */
export async function openServiceStore(
  settings: SqlStoreSettings,
  service: string,
  migrations: readonly Migration[],
): Promise<SqlStore> {
  const store = await openSqlStore({
    ...(settings.databaseUrl !== undefined && { databaseUrl: settings.databaseUrl }),
    dataDir: settings.dataDir,
    schema: settings.dbSchema,
    ...(settings.preparedStatements === false && { preparedStatements: false }),
  });
  try {
    await migrateInboxOutbox(store);
    await migrate(store, migrations, { component: service });
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}
