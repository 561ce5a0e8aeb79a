import { mkdir } from 'node:fs/promises';
import { PGlite, type PGliteInterface, type Results } from '@electric-sql/pglite';
import { toSqlError } from './errors.ts';
import { StoreScope } from './scope.ts';
import type { SqlExecutor, SqlStore, SqlTransaction } from './types.ts';

export interface PgliteOptions {
  /** Directory of the database files, one per service; created if missing. Default: in memory. */
  dataDir?: string;
  /**
   * PostgreSQL settings of the embedded backend (`-c name=value` at its start), merged over
   * {@link PGLITE_SETTINGS}.
   */
  settings?: Readonly<Record<string, string>>;
}

/**
 * Memory settings of the embedded backend, sized for one service's working set. PGlite's WebAssembly
 * memory only grows, so PostgreSQL's defaults (128 MB shared buffers, 64 MB maintenance work memory)
 * become resident memory of every service once touched, and PostgreSQL touches its shared buffers at
 * start: with 8 MB of them ≈ 21 MB of the WebAssembly memory is resident after opening, with 16 MB
 * ≈ 29 MB (docs/performance.md). Pages beyond the buffers are read back through the file
 * system (and the OS page cache); durability does not depend on them.
 */
export const PGLITE_SETTINGS: Readonly<Record<string, string>> = {
  shared_buffers: '8MB',
  work_mem: '2MB',
  maintenance_work_mem: '16MB',
  temp_buffers: '1MB',
};

type Driver = Pick<PGliteInterface, 'query' | 'exec'>;

/** What a store uses of a PGlite instance. */
export type PgliteSession = Pick<PGliteInterface, 'query' | 'exec' | 'transaction' | 'close'>;

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

  constructor(private readonly db: PgliteSession) {}

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

/** PGlite's start parameters with {@link PGLITE_SETTINGS} and then `settings` applied. */
export function pgliteStartParams(settings: Readonly<Record<string, string>> = {}): string[] {
  return [
    ...PGlite.defaultStartParams,
    ...Object.entries({ ...PGLITE_SETTINGS, ...settings }).flatMap(([name, value]) => [
      '-c',
      `${name}=${value}`,
    ]),
  ];
}

/**
 * A store on an already open PGlite instance (e.g. a `clone()`); the store owns it: its `close()`
 * waits for running work, then calls `db.close()`.
 */
export function wrapPglite(db: PgliteSession): SqlStore {
  return new PgliteStore(db);
}

/** Opens (creating if needed) an embedded PGlite database. */
export async function openPglite(options: PgliteOptions = {}): Promise<SqlStore> {
  try {
    if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true });
    const db = await PGlite.create({
      ...(options.dataDir !== undefined && { dataDir: options.dataDir }),
      startParams: pgliteStartParams(options.settings),
    });
    return new PgliteStore(db);
  } catch (error) {
    throw toSqlError(error);
  }
}
