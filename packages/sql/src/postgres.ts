import pg from 'pg';
import {
  abortedCommitError,
  isStalePlan,
  SqlConfigError,
  SqlUnavailableError,
  toSqlError,
} from './errors.ts';
import { StoreScope } from './scope.ts';
import type { SqlExecutor, SqlStore, SqlTransaction } from './types.ts';

export interface PostgresOptions {
  /** `postgres://user@host:port/database` */
  url: string;
  /** Schema of this service: created if missing, and the `search_path` of every pooled connection. */
  schema: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** Give up connecting after this long, with `SqlUnavailableError` (default 5000 ms). */
  connectTimeoutMs?: number;
  /**
   * Prepare each parameterised statement once per connection (default true). Turn it off behind a
   * pooler that does not keep a client's prepared statements across transactions (PgBouncer in
   * transaction mode before 1.21, or without `max_prepared_statements`).
   */
  preparedStatements?: boolean;
}

const defaults = {
  poolSize: 10,
  connectTimeoutMs: 5_000,
  preparedStatements: true,
} satisfies Partial<PostgresOptions>;

/** Statement texts a store prepares under a name; texts beyond this many run unnamed. */
const STATEMENTS_NAMED = 256;

/** Statement names are unique in the process (as PGlite's adapter's are). */
let lastStatement = 0;

/**
 * Names of the parameterised statements of a store. `pg` sends a named statement's Parse only the
 * first time a connection runs it and Bind/Execute after that, so PostgreSQL parses it once per
 * connection (and may keep its plan) instead of on every call. A name PostgreSQL refuses as stale —
 * its table changed under it, or it is gone — is replaced, so that every connection prepares the text
 * anew; the old name stays on the connections that have it, unused.
 */
class StatementNames {
  readonly #names = new Map<string, string>();

  constructor(private readonly enabled: boolean) {}

  of(sql: string, params: readonly unknown[] | undefined): string | undefined {
    if (!this.enabled || !params || params.length === 0) return undefined;
    let name = this.#names.get(sql);
    if (name === undefined && this.#names.size < STATEMENTS_NAMED) {
      name = `orderflow_${++lastStatement}`;
      this.#names.set(sql, name);
    }
    return name;
  }

  renew(sql: string): void {
    if (this.#names.has(sql)) this.#names.set(sql, `orderflow_${++lastStatement}`);
  }
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Quotes a schema name after checking it is a plain identifier (no quoting games in `-c` options). */
export function schemaIdentifier(schema: string): string {
  if (!IDENTIFIER.test(schema)) {
    throw new SqlConfigError(`schema "${schema}" must match ${IDENTIFIER.source}`);
  }
  return `"${schema}"`;
}

const INT8_OID = 20;

/** Same JavaScript types as PGlite: `int8` as a number (exact up to 2^53), the rest as `pg` does. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : (pg.types.getTypeParser(oid, format ?? 'text') as (
          value: string,
        ) => unknown)) as typeof pg.types.getTypeParser,
};

type Queryable = Pick<pg.PoolClient, 'query'>;

/**
 * Runs one statement. A prepared one PostgreSQL refuses as stale runs again, once, under a new name
 * when autocommitted; inside a transaction, which that refusal aborted, the error stands and the next
 * attempt prepares it anew.
 */
async function execute<R>(
  driver: Queryable,
  names: StatementNames,
  sql: string,
  params: readonly unknown[] | undefined,
  inTransaction: boolean,
  renewed = false,
): Promise<{ rows: R[]; rowCount: number }> {
  let outcome: pg.QueryResult | pg.QueryResult[];
  const name = names.of(sql, params);
  try {
    outcome =
      name !== undefined
        ? await driver.query({ name, text: sql, values: [...(params ?? [])] })
        : params && params.length > 0
          ? await driver.query(sql, [...params])
          : await driver.query(sql);
  } catch (error) {
    if (name === undefined || !isStalePlan(error)) throw toSqlError(error);
    names.renew(sql);
    if (inTransaction || renewed) throw toSqlError(error);
    return execute<R>(driver, names, sql, params, inTransaction, true);
  }
  // Several statements without parameters yield one result each; keep the last, as PGlite does.
  const result: pg.QueryResult | undefined = Array.isArray(outcome)
    ? (outcome as pg.QueryResult[]).at(-1)
    : outcome;
  if (!result) return { rows: [], rowCount: 0 };
  return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
}

/** Commits the open transaction; the COMMIT of an aborted one is {@link abortedCommitError}. */
async function commit(client: Queryable): Promise<void> {
  let result: pg.QueryResult;
  try {
    result = await client.query('COMMIT');
  } catch (error) {
    throw toSqlError(error);
  }
  if (result.command === 'ROLLBACK') throw abortedCommitError();
}

/** The PostgreSQL adapter: a `pg` pool whose connections all use the service's schema. */
class PostgresStore implements SqlStore {
  readonly dialect = 'postgres' as const;
  readonly #scope = new StoreScope();
  readonly #names: StatementNames;

  constructor(
    private readonly pool: pg.Pool,
    preparedStatements: boolean,
  ) {
    this.#names = new StatementNames(preparedStatements);
  }

  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<{ rows: R[]; rowCount: number }> {
    return this.#scope.run(() => execute<R>(this.pool, this.#names, sql, params, false));
  }

  transaction<T>(work: (tx: SqlTransaction) => Promise<T>): Promise<T> {
    return this.#scope.run(async () => {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (error) {
        throw toSqlError(error);
      }
      // A checked-out client without a running query reports a dropped socket as an 'error' event;
      // without a listener that would crash the process.
      let broken: Error | undefined;
      const onError = (error: Error): void => void (broken ??= error);
      client.on('error', onError);
      const executor: SqlExecutor = {
        // After the connection reported why it broke (e.g. 57P01), later queries fail only with
        // "not queryable": report the reason instead.
        query: <R extends Record<string, unknown>>(sql: string, params?: readonly unknown[]) =>
          execute<R>(client, this.#names, sql, params, true).catch((error: unknown) => {
            throw broken ? toSqlError(broken) : error;
          }),
      };
      try {
        await execute(client, this.#names, 'BEGIN', undefined, false);
        let outcome: { result: T; committed: () => void };
        try {
          outcome = await this.#scope.work(executor, work);
        } catch (error) {
          await client.query('ROLLBACK').catch((rollbackError: Error) => void (broken ??= rollbackError));
          throw error;
        }
        await commit(client);
        outcome.committed();
        return outcome.result;
      } catch (error) {
        if (error instanceof SqlUnavailableError) broken ??= error;
        throw error;
      } finally {
        client.off('error', onError);
        // A client whose connection failed is destroyed instead of going back to the pool.
        client.release(broken);
      }
    });
  }

  close(): Promise<void> {
    return this.#scope.close(() => this.pool.end());
  }
}

/**
 * Connects to PostgreSQL, creates `schema` if missing (safe when replicas start at once) and returns a
 * store whose every pooled connection has `search_path` set to it.
 */
export async function openPostgres(options: PostgresOptions): Promise<SqlStore> {
  const config = { ...defaults, ...options } satisfies PostgresOptions;
  const quoted = schemaIdentifier(config.schema);
  if (!Number.isInteger(config.poolSize) || config.poolSize < 1) {
    throw new SqlConfigError(`poolSize must be a positive integer, got ${config.poolSize}`);
  }
  const pool = new pg.Pool({
    connectionString: config.url,
    max: config.poolSize,
    connectionTimeoutMillis: config.connectTimeoutMs,
    // Applied by the server at connection start-up, so no connection can run without it.
    options: `-c search_path=${quoted}`,
    types,
  });
  // Idle connections dropped by the server (restart, admin shutdown) are removed by the pool; the
  // next query opens a fresh one or fails with SqlUnavailableError, so nothing is lost here.
  pool.on('error', () => undefined);
  const store = new PostgresStore(pool, config.preparedStatements);
  try {
    await store.transaction(async (tx) => {
      // CREATE SCHEMA IF NOT EXISTS races with itself (unique violation in pg_namespace): serialise.
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`orderflow.schema:${config.schema}`]);
      await tx.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
    });
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}
