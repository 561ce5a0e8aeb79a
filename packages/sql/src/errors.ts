/**
 * Errors of the SQL data store. Every error has a stable `code`, sets `name`, chains its `cause`
 * and says whether retrying the same work later can succeed (`retryable`). The consumer runtime
 * treats any error that is not permanent as a reason to redeliver with backoff.
 */
export const SqlErrorCode = {
  /** The database cannot be reached or dropped the connection (down, restarting, refusing). */
  Unavailable: 'SQL_UNAVAILABLE',
  /** Serialization failure or deadlock: the transaction lost a race; run it again. */
  Conflict: 'SQL_CONFLICT',
  /** A unique, foreign-key, not-null or check constraint rejected the write. */
  Constraint: 'SQL_CONSTRAINT',
  /** Any other error reported by the database (syntax, missing table…). */
  Query: 'SQL_QUERY_FAILED',
  /** The store was closed. */
  Closed: 'SQL_CLOSED',
  /** The store itself was used inside one of its transactions instead of `tx`. */
  NestedUse: 'SQL_NESTED_USE',
  /** Invalid options (schema name, pool size…). */
  Config: 'SQL_INVALID_CONFIG',
  /** A migration list contradicts what the database recorded, or a migration failed. */
  Migration: 'SQL_MIGRATION_FAILED',
  /** A relay is already running on this outbox table in this process, or it was stopped. */
  Relay: 'SQL_RELAY_FAILED',
} as const;
export type SqlErrorCode = (typeof SqlErrorCode)[keyof typeof SqlErrorCode];

export class SqlError extends Error {
  override name = 'SqlError';
  /** True when running the same work again later may succeed. */
  readonly retryable: boolean;
  constructor(
    readonly code: SqlErrorCode,
    message: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(message, options);
    this.retryable = options?.retryable ?? false;
  }
}

/**
 * The database is unreachable or dropped the connection (ECONNREFUSED, admin shutdown 57P01,
 * SQLSTATE class 08, too many connections…). Always retryable: a handler failing with it must be
 * redelivered later, never dead-lettered for it.
 */
export class SqlUnavailableError extends SqlError {
  override name = 'SqlUnavailableError';
  constructor(
    message: string,
    /** SQLSTATE or Node error code (`ECONNREFUSED`), when known. */
    readonly reason: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(SqlErrorCode.Unavailable, message, { ...options, retryable: true });
  }
}

/** Serialization failure (40001) or deadlock (40P01). Retryable. */
export class SqlConflictError extends SqlError {
  override name = 'SqlConflictError';
  constructor(
    message: string,
    readonly sqlState: string,
    options?: { cause?: unknown },
  ) {
    super(SqlErrorCode.Conflict, message, { ...options, retryable: true });
  }
}

/** A constraint (SQLSTATE class 23) rejected the write; `sqlState` is e.g. `23505` (unique violation). */
export class SqlConstraintError extends SqlError {
  override name = 'SqlConstraintError';
  constructor(
    message: string,
    readonly sqlState: string,
    readonly constraint: string | undefined,
    readonly table: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(SqlErrorCode.Constraint, message, options);
  }
}

/** Any other error reported by the database, with its SQLSTATE. Not retryable. */
export class SqlQueryError extends SqlError {
  override name = 'SqlQueryError';
  constructor(
    message: string,
    readonly sqlState: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(SqlErrorCode.Query, message, options);
  }
}

export class SqlClosedError extends SqlError {
  override name = 'SqlClosedError';
  constructor(options?: { cause?: unknown }) {
    super(SqlErrorCode.Closed, 'the SQL store is closed', options);
  }
}

export class SqlNestedUseError extends SqlError {
  override name = 'SqlNestedUseError';
  constructor() {
    super(
      SqlErrorCode.NestedUse,
      'the store was used inside one of its own transactions: use the `tx` given to the work instead',
    );
  }
}

export class SqlConfigError extends SqlError {
  override name = 'SqlConfigError';
  constructor(message: string) {
    super(SqlErrorCode.Config, message);
  }
}

export class MigrationError extends SqlError {
  override name = 'MigrationError';
  constructor(
    message: string,
    /** The migration at fault, when one is. */
    readonly version: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(SqlErrorCode.Migration, message, options);
  }
}

export class OutboxRelayError extends SqlError {
  override name = 'OutboxRelayError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(SqlErrorCode.Relay, message, options);
  }
}

/** True when `error` is a {@link SqlError} that may succeed if the work is run again later. */
export function isRetryableSqlError(error: unknown): boolean {
  return error instanceof SqlError && error.retryable;
}

const NODE_CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
]);

/** SQLSTATEs meaning "the server is not there for you right now", besides class 08. */
const UNAVAILABLE_STATES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovering)
  '57P05', // idle_session_timeout
  '53300', // too_many_connections
  '53400', // configuration_limit_exceeded
]);

/** `pg` reports a dropped socket or pool timeout with these messages and no code. */
const CONNECTION_MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /not queryable/i,
  /connection (?:is )?closed/i,
];

/**
 * The `COMMIT` of a transaction that an earlier failed statement (one the work caught) aborted:
 * PostgreSQL answers it with the tag ROLLBACK instead of an error; both adapters make it this failure,
 * never a silent loss of the work's writes.
 */
export function abortedCommitError(): SqlQueryError {
  return new SqlQueryError(
    'current transaction is aborted (a statement in it failed): rolled back, nothing committed',
    '25P02',
  );
}

/**
 * PostgreSQL's refusal of a kept statement: its result type changed since it was prepared (0A000,
 * a migration altered its table), or it is gone (26000, e.g. after `DEALLOCATE ALL`).
 */
export function isStalePlan(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (code === '26000') return true;
  return (
    code === '0A000' &&
    typeof message === 'string' &&
    message.includes('cached plan must not change result type')
  );
}

/**
 * Classifies an error thrown by `pg` or PGlite into a {@link SqlError}. `SqlError`s pass through.
 * Adapters call this on every failure, so callers only ever see the typed errors above.
 */
export function toSqlError(error: unknown): SqlError {
  if (error instanceof SqlError) return error;
  const record = (typeof error === 'object' && error !== null ? error : {}) as Record<string, unknown>;
  const code = typeof record.code === 'string' ? record.code : undefined;
  const message = error instanceof Error ? error.message : String(error);
  if (code !== undefined && NODE_CONNECTION_CODES.has(code)) {
    return new SqlUnavailableError(`database unreachable: ${message}`, code, { cause: error });
  }
  if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) {
    if (code.startsWith('08') || UNAVAILABLE_STATES.has(code)) {
      return new SqlUnavailableError(`database unavailable: ${message}`, code, { cause: error });
    }
    if (code === '40001' || code === '40P01') return new SqlConflictError(message, code, { cause: error });
    if (code.startsWith('23')) {
      const text = (key: string): string | undefined =>
        typeof record[key] === 'string' ? record[key] : undefined;
      return new SqlConstraintError(message, code, text('constraint'), text('table'), { cause: error });
    }
    return new SqlQueryError(message, code, { cause: error });
  }
  if (/pool after calling end|PGlite is closed|is closed/i.test(message)) {
    return new SqlClosedError({ cause: error });
  }
  if (CONNECTION_MESSAGES.some((pattern) => pattern.test(message))) {
    return new SqlUnavailableError(`database connection lost: ${message}`, undefined, { cause: error });
  }
  return new SqlQueryError(message, undefined, { cause: error });
}
