import { mkdir } from 'node:fs/promises';
import { parse, PGlite, protocol, type Results } from '@electric-sql/pglite';
import { abortedCommitError, isStalePlan, toSqlError } from './errors.ts';
import { StoreScope } from './scope.ts';
import type { SqlExecutor, SqlStore, SqlTransaction } from './types.ts';

const { serialize } = protocol;
const { parseResults } = parse;

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

/** What a store uses of a PGlite instance. */
export type PgliteSession = Pick<
  PGlite,
  'close' | 'execProtocolStream' | 'syncToFs' | 'parsers' | '_runExclusiveQuery' | '_runExclusiveTransaction'
>;

type BackendMessage = Awaited<ReturnType<PgliteSession['execProtocolStream']>>[number];

/** Prepared statements a store keeps per SQL text; the oldest is closed beyond this. */
const STATEMENTS_KEPT = 256;

/** Statement names are unique in the process: stores opened on one PGlite instance never collide. */
let lastStatement = 0;

const BEGIN = serialize.query('BEGIN');

/**
 * Where a statement runs: on its own (autocommitted), or in a transaction that sends its `BEGIN` with
 * its first statement (a transaction that runs none costs nothing).
 */
class Session {
  /** True once a call that carried `BEGIN` was made (whether or not its statement then failed). */
  begun = false;

  constructor(readonly inTransaction: boolean) {}

  /** The `BEGIN` the next call must carry first, if any; the caller is about to make that call. */
  takeBegin(): Uint8Array | undefined {
    if (!this.inTransaction || this.begun) return undefined;
    this.begun = true;
    return BEGIN;
  }
}

const AUTOCOMMIT = new Session(false);

/**
 * Statements in one call into PGlite each. A parameterised one sends Parse (the first time only: the
 * statement is kept under a name, so PostgreSQL parses and plans it once), Bind, Describe, Execute and
 * Sync in one protocol message, where PGlite's `query()` makes six calls, one of them only to look up
 * parameter types; one without parameters is a simple Query, as `pg` sends it (several statements
 * allowed, the last result kept), where PGlite's `exec()` makes two. Parameters are sent as `pg`
 * sends them, by their JavaScript type with the server inferring the column types: strings, numbers,
 * booleans and bigints as text, `Date` as ISO-8601, a `Uint8Array` as binary, an array as a
 * PostgreSQL array literal, any other object as JSON. Results are parsed by PGlite's own parser with
 * the instance's type parsers.
 */
class PreparedStatements {
  readonly #names = new Map<string, string>();
  /** Close messages of statements evicted from the cache, sent ahead of the next statement. */
  #pendingCloses: Uint8Array[] = [];

  constructor(private readonly db: PgliteSession) {}

  async run<R>(sql: string, params: readonly unknown[], session: Session): Promise<Results<R> | undefined> {
    try {
      return await this.#run<R>(sql, params, session);
    } catch (error) {
      // A kept statement whose result columns changed (a migration altered its table), or that is
      // gone, is refused once by PostgreSQL; outside a transaction it runs again, prepared anew.
      // Inside one, the transaction is aborted already: the error stands, and the next attempt
      // prepares it anew.
      if (session.inTransaction || !isStalePlan(error)) throw error;
      return this.#run<R>(sql, params, session);
    }
  }

  async #run<R>(sql: string, params: readonly unknown[], session: Session): Promise<Results<R> | undefined> {
    const values = params.map(toParameter);
    const known = this.#names.get(sql);
    const name = known ?? `orderflow_${++lastStatement}`;
    let messages;
    try {
      messages = await this.#exclusive(session, () => {
        const parts = this.#takeCloses();
        if (known === undefined) parts.push(serialize.parse({ name, text: sql }));
        parts.push(
          serialize.bind({ statement: name, values }),
          serialize.describe({ type: 'P' }),
          serialize.execute({}),
          serialize.sync(),
        );
        return parts;
      });
    } catch (error) {
      // A new statement may not exist (its parse may be what failed): closed, to be prepared again.
      // A kept one stays for ordinary failures (a constraint, say), not when its plan is what failed.
      if (known === undefined || isStalePlan(error)) this.#forget(sql, name);
      throw error;
    }
    if (known === undefined) this.#remember(sql, name);
    return this.#lastResult<R>(messages, session);
  }

  /** A simple Query: one or more statements without parameters. */
  async simple<R>(sql: string, session: Session): Promise<Results<R> | undefined> {
    const messages = await this.#exclusive(session, () => [...this.#takeCloses(), serialize.query(sql)]);
    return this.#lastResult<R>(messages, session);
  }

  /**
   * Ends the session's transaction with `COMMIT`; PostgreSQL answers the `COMMIT` of a transaction
   * aborted by a statement whose failure the work caught with the tag ROLLBACK, which is a failure.
   */
  async commit(session: Session): Promise<void> {
    const result = await this.simple('COMMIT', session);
    if (result?.command === 'ROLLBACK') throw abortedCommitError();
    await this.db.syncToFs();
  }

  /** Rolls the session's transaction back (a `ROLLBACK` with none open is only a warning). */
  async rollback(session: Session): Promise<void> {
    await this.simple('ROLLBACK', session);
  }

  /** Closes every statement of this store (the instance may outlive it, as in the tests' harness). */
  async closeAll(): Promise<void> {
    const parts = [...this.#takeCloses(), ...[...this.#names.values()].map(closeStatement)];
    this.#names.clear();
    if (parts.length === 0) return;
    await this.#exclusive(AUTOCOMMIT, () => [...parts, serialize.sync()]);
  }

  async #lastResult<R>(messages: BackendMessage[], session: Session): Promise<Results<R> | undefined> {
    if (!session.inTransaction) await this.db.syncToFs();
    return parseResults(messages, this.db.parsers).at(-1) as Results<R> | undefined;
  }

  #takeCloses(): Uint8Array[] {
    const parts = this.#pendingCloses;
    this.#pendingCloses = [];
    return parts;
  }

  /**
   * Makes one protocol call of the messages `build` returns, under the instance's locks as its
   * `query()` takes them: the query lock always (a call's results are collected on the instance, so
   * two calls must not overlap) and, outside a transaction, the transaction lock too, so that a
   * statement never runs inside another caller's open transaction (one backend, one session: it would
   * commit or roll back with it). The messages are built inside the lock, where the session knows
   * whether this is its first call and must carry `BEGIN`.
   */
  #exclusive(session: Session, build: () => Uint8Array[]): Promise<BackendMessage[]> {
    const call = () =>
      this.db._runExclusiveQuery(() => {
        const parts = build();
        const begin = session.takeBegin();
        if (begin) parts.unshift(begin);
        return this.db.execProtocolStream(concat(parts), { syncToFs: false });
      });
    return session.inTransaction ? call() : this.db._runExclusiveTransaction(call);
  }

  #remember(sql: string, name: string): void {
    if (this.#names.has(sql)) {
      // Another call prepared the same text meanwhile: keep one of the two.
      this.#pendingCloses.push(closeStatement(name));
      return;
    }
    this.#names.set(sql, name);
    if (this.#names.size <= STATEMENTS_KEPT) return;
    const [oldestSql, oldestName] = this.#names.entries().next().value!;
    this.#names.delete(oldestSql);
    this.#pendingCloses.push(closeStatement(oldestName));
  }

  #forget(sql: string, name: string): void {
    if (this.#names.get(sql) === name) this.#names.delete(sql);
    this.#pendingCloses.push(closeStatement(name));
  }
}

const closeStatement = (name: string) => serialize.close({ type: 'S', name });

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** One parameter as `pg` prepares it (see {@link PreparedStatements}). */
function toParameter(value: unknown): string | Uint8Array | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Uint8Array) return value;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return arrayLiteral(value);
  if (typeof value === 'object') return JSON.stringify(value);
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  throw new TypeError(`a SQL parameter cannot be a ${typeof value}`);
}

function arrayLiteral(values: readonly unknown[]): string {
  const items = values.map((value) => {
    if (Array.isArray(value)) return arrayLiteral(value);
    const item = toParameter(value);
    if (item === null) return 'NULL';
    const text = typeof item === 'string' ? item : `\\x${Buffer.from(item).toString('hex')}`;
    return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  });
  return `{${items.join(',')}}`;
}

async function execute<R>(
  statements: PreparedStatements,
  sql: string,
  params: readonly unknown[] | undefined,
  session: Session,
): Promise<{ rows: R[]; rowCount: number }> {
  let result: Results<R> | undefined;
  try {
    result =
      params && params.length > 0
        ? await statements.run<R>(sql, params, session)
        : await statements.simple<R>(sql, session);
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
  readonly #statements: PreparedStatements;

  constructor(private readonly db: PgliteSession) {
    this.#statements = new PreparedStatements(db);
  }

  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<{ rows: R[]; rowCount: number }> {
    return this.#scope.run(() => execute<R>(this.#statements, sql, params, AUTOCOMMIT));
  }

  /**
   * Holds the instance's transaction lock for the whole work, as PGlite's `transaction()` does, but
   * its `BEGIN` travels with the first statement and its `COMMIT` is one call: two calls into PGlite
   * per transaction instead of four, and none for a work that runs no statement.
   */
  transaction<T>(work: (tx: SqlTransaction) => Promise<T>): Promise<T> {
    return this.#scope.run(() =>
      this.db._runExclusiveTransaction(async () => {
        const session = new Session(true);
        const executor: SqlExecutor = {
          query: (sql, params) => execute(this.#statements, sql, params, session),
        };
        let outcome: { result: T; committed: () => void };
        try {
          outcome = await this.#scope.work(executor, work);
        } catch (error) {
          // The work's own error goes back untouched.
          if (session.begun) await this.#statements.rollback(session).catch(() => undefined);
          throw error;
        }
        if (session.begun) {
          try {
            await this.#statements.commit(session);
          } catch (error) {
            // A COMMIT that failed ended the transaction, unless the call never reached PostgreSQL.
            await this.#statements.rollback(session).catch(() => undefined);
            throw toSqlError(error);
          }
        }
        outcome.committed();
        return outcome.result;
      }),
    );
  }

  close(): Promise<void> {
    return this.#scope.close(async () => {
      // Best effort: the instance is closed next, which ends its statements anyway.
      await this.#statements.closeAll().catch(() => undefined);
      await this.db.close();
    });
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
