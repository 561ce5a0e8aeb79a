/**
 * The SQL data store port. Two adapters implement it with the same SQL (PostgreSQL dialect):
 * embedded PGlite (default; one data directory per service) and PostgreSQL via `pg` when
 * `DATABASE_URL` is set (one schema per service). Parameters are `$1, $2…`.
 */
export interface SqlExecutor {
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<{ rows: R[]; rowCount: number }>;
}

export interface SqlStore extends SqlExecutor {
  readonly dialect: 'pglite' | 'postgres';
  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws (the
   * error is rethrown). Transactions on one store are serialised per connection; `pg` uses a pool.
   */
  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
