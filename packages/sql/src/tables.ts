import { migrate, type MigrationReport } from './migrate.ts';
import type { Migration, SqlStore } from './types.ts';

/** The `component` under which the toolkit's own tables are versioned in `schema_migrations`. */
export const INBOX_OUTBOX_COMPONENT = 'orderflow/sql';

/** Tables of the transactional inbox and outbox. */
export const inboxOutboxMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'inbox and outbox',
    sql: `
CREATE TABLE orderflow_inbox (
  consumer text NOT NULL,
  event_id text NOT NULL,
  handled_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);
CREATE TABLE orderflow_outbox (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL UNIQUE,
  subject text NOT NULL,
  type text NOT NULL,
  key text NOT NULL,
  payload text NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  last_error text
);
CREATE INDEX orderflow_outbox_unpublished ON orderflow_outbox (seq) WHERE published_at IS NULL;
`,
  },
];

/** Creates or updates the inbox and outbox tables; call once at start-up, next to the service's own `migrate`. */
export function migrateInboxOutbox(store: SqlStore): Promise<MigrationReport> {
  return migrate(store, inboxOutboxMigrations, { component: INBOX_OUTBOX_COMPONENT });
}
