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

/** A versioned migration of one service's schema. Applied once, in `version` order, under a lock. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Transactional inbox: makes a handler's effect on the store exactly-once on top of at-least-once
 * delivery, by recording `(consumer, eventId)` in the same transaction as the state change.
 */
export interface Inbox {
  /**
   * Runs `work` in a transaction and records `(consumer, eventId)` in it, unless that pair was already
   * recorded: then nothing runs and it resolves `false`. Two concurrent calls for one pair cannot both
   * commit (the second sees the first's record, or fails on its key and is retried by the caller).
   */
  handleOnce(consumer: string, eventId: string, work: (tx: SqlExecutor) => Promise<void>): Promise<boolean>;
}

/** A message written to the outbox in a handler's transaction, relayed to JetStream afterwards. */
export interface OutboxMessage {
  /** `ce-id` and `Nats-Msg-Id`: relaying twice stores it once. */
  id: string;
  subject: string;
  /** `ce-type` (`<name>.v<version>`). */
  type: string;
  /** Ordering key (aggregate id): messages of one key are relayed in the order they were written. */
  key: string;
  data: unknown;
  /** Extra headers (correlation, causation, traceparent…). */
  headers?: Record<string, string>;
}
