import { mkdir } from 'node:fs/promises';
import { PGlite, type PGliteInterface, type Results } from '@electric-sql/pglite';
import { toSqlError } from './errors.ts';
import { StoreScope } from './scope.ts';
import type { SqlExecutor, SqlStore, SqlTransaction } from './types.ts';

export interface PgliteOptions {
  /** Directory of the database files, one per service; created if missing. Default: in memory. */
  dataDir?: string;
}

type Driver = Pick<PGliteInterface, 'query' | 'exec'>;

async function execute<R>(
  driver: Driver,
  sql: string,
  params: readonly unknown[] | undefined,
): Promise<{ rows: R[]; rowCount: number }> {
  let result: Results<R> | undefined;
  try {
    if (params && params.length > 0) {
      result = await driver.query<R>(sql, [...params]);
    } else {
      // Simple protocol, like `pg` without parameters: several statements allowed, last result kept.
      result = (await driver.exec(sql)).at(-1) as Results<R> | undefined;
    }
  } catch (error) {
    throw toSqlError(error);
  }
  if (!result) return { rows: [], rowCount: 0 };
  return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
}

/**
 * The embedded adapter. PGlite is one PostgreSQL backend in this process: it runs one statement at a
 * time, and a transaction holds it until it ends, so transactions (and statements outside them)
 * run one after the other in call order and never interleave.
 */
class PgliteStore implements SqlStore {
  readonly dialect = 'pglite' as const;
  readonly #scope = new StoreScope();

  constructor(private readonly db: PGliteInterface) {}

  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<{ rows: R[]; rowCount: number }> {
    return this.#scope.run(() => execute<R>(this.db, sql, params));
  }

  transaction<T>(work: (tx: SqlTransaction) => Promise<T>): Promise<T> {
    return this.#scope.run(async () => {
      let workFailure: { error: unknown } | undefined;
      let outcome: { result: T; committed: () => void };
      try {
        outcome = await this.db.transaction(async (tx) => {
          const executor: SqlExecutor = { query: (sql, params) => execute(tx, sql, params) };
          try {
            return await this.#scope.work(executor, work);
          } catch (error) {
            workFailure = { error };
            throw error;
          }
        });
      } catch (error) {
        // The work's own error goes back untouched; BEGIN/COMMIT failures are classified.
        if (workFailure && workFailure.error === error) throw error;
        throw toSqlError(error);
      }
      outcome.committed();
      return outcome.result;
    });
  }

  close(): Promise<void> {
    return this.#scope.close(() => this.db.close());
  }
}

/** A store on an already open PGlite instance (e.g. a `clone()`); the store owns it and closes it. */
export function wrapPglite(db: PGliteInterface): SqlStore {
  return new PgliteStore(db);
}

/** Opens (creating if needed) an embedded PGlite database. */
export async function openPglite(options: PgliteOptions = {}): Promise<SqlStore> {
  try {
    if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true });
    const db = options.dataDir === undefined ? await PGlite.create() : await PGlite.create(options.dataDir);
    return new PgliteStore(db);
  } catch (error) {
    throw toSqlError(error);
  }
}
