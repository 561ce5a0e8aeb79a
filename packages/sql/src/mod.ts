export {
  isRetryableSqlError,
  MigrationError,
  OutboxRelayError,
  SqlClosedError,
  SqlConfigError,
  SqlConflictError,
  SqlConstraintError,
  SqlError,
  SqlErrorCode,
  SqlNestedUseError,
  SqlQueryError,
  SqlUnavailableError,
  toSqlError,
} from './errors.ts';
export { exactlyOnce, SqlInbox } from './inbox.ts';
export { migrate } from './migrate.ts';
export type { MigrateOptions, MigrationReport } from './migrate.ts';
export { openServiceStore, openSqlStore, sqlStoreSettings } from './open.ts';
export type { SqlStoreConfig, SqlStoreSettings } from './open.ts';
export { outboxMessage, SqlOutbox } from './outbox.ts';
export type { OutboxMessageOptions, SqlOutboxOptions } from './outbox.ts';
export { openPglite, PGLITE_SETTINGS } from './pglite.ts';
export { SettledRows } from './settled-rows.ts';
export type { PgliteOptions } from './pglite.ts';
export { openPostgres } from './postgres.ts';
export type { PostgresOptions } from './postgres.ts';
export { OutboxRelay } from './relay.ts';
export type { OutboxRelayOptions, RelayPass } from './relay.ts';
export { INBOX_OUTBOX_COMPONENT, inboxOutboxMigrations, migrateInboxOutbox } from './tables.ts';
export {
  BLOB_COMPONENT,
  blobMigrations,
  KEY_VALUE_COMPONENT,
  keyValueMigrations,
  SqlBlobStores,
  SqlKeyValueStores,
} from './stores.ts';
export type {
  Inbox,
  Migration,
  OutboxBacklog,
  OutboxMessage,
  PendingOutboxMessage,
  SqlExecutor,
  SqlStore,
  SqlTransaction,
  TransactionalHandler,
} from './types.ts';
