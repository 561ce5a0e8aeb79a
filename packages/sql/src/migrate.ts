import { isRetryableSqlError, MigrationError } from './errors.ts';
import type { Migration, SqlStore } from './types.ts';

export interface MigrateOptions {
  /**
   * Whose migrations these are; versions are numbered per component, so a toolkit's tables and a
   * service's own do not collide (default `app`).
   */
  component?: string;
}

export interface MigrationReport {
  /** Versions applied by this call, in order (empty when the schema was up to date). */
  applied: number[];
  /** Highest version now recorded for the component. */
  current: number;
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  component text NOT NULL,
  version integer NOT NULL,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (component, version)
)`;

function validate(migrations: readonly Migration[]): Migration[] {
  const seen = new Set<number>();
  for (const migration of migrations) {
    if (!Number.isInteger(migration.version) || migration.version < 1) {
      throw new MigrationError(
        `migration version must be a positive integer, got ${migration.version}`,
        undefined,
      );
    }
    if (seen.has(migration.version)) {
      throw new MigrationError(`migration version ${migration.version} is listed twice`, migration.version);
    }
    seen.add(migration.version);
  }
  return [...migrations].sort((a, b) => a.version - b.version);
}

/**
 * Brings the schema up to date: in one transaction, under a lock that makes replicas starting at once
 * wait for each other (`pg_advisory_xact_lock`, the same SQL on PGlite), applies each migration not yet
 * recorded in `schema_migrations`, in `version` order, and records it. All or nothing: if one fails,
 * none of this call's migrations stays applied. Refuses (with {@link MigrationError}) when a recorded
 * version now has another name — the migration was edited or renumbered after it ran. Versions recorded
 * but absent from `migrations` (a newer release already ran) are left alone.
 */
export async function migrate(
  store: SqlStore,
  migrations: readonly Migration[],
  options: MigrateOptions = {},
): Promise<MigrationReport> {
  const component = options.component ?? 'app';
  const ordered = validate(migrations);
  return store.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtext(current_schema() || $1))', [':schema_migrations']);
    await tx.query(CREATE_TABLE);
    const { rows } = await tx.query<{ version: number; name: string }>(
      'SELECT version, name FROM schema_migrations WHERE component = $1',
      [component],
    );
    const recorded = new Map(rows.map((row) => [row.version, row.name]));
    for (const migration of ordered) {
      const name = recorded.get(migration.version);
      if (name !== undefined && name !== migration.name) {
        throw new MigrationError(
          `${component} migration ${migration.version} was applied as "${name}" but is now "${migration.name}"`,
          migration.version,
        );
      }
    }
    const applied: number[] = [];
    for (const migration of ordered) {
      if (recorded.has(migration.version)) continue;
      try {
        await tx.query(migration.sql);
      } catch (cause) {
        if (isRetryableSqlError(cause)) throw cause;
        throw new MigrationError(
          `${component} migration ${migration.version} "${migration.name}" failed: ${(cause as Error).message}`,
          migration.version,
          { cause },
        );
      }
      await tx.query('INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)', [
        component,
        migration.version,
        migration.name,
      ]);
      applied.push(migration.version);
    }
    const versions = [...recorded.keys(), ...applied];
    return { applied, current: versions.length > 0 ? Math.max(...versions) : 0 };
  });
}
