import type { Envelope, HandlerContext, MessageContract, PayloadOf } from '@orderflow/messaging';

/**
 * The SQL data store port. Two adapters implement it with the same SQL (PostgreSQL dialect):
 * embedded PGlite (default; one data directory per service) and PostgreSQL via `pg` when
 * `DATABASE_URL` is set (one schema per service). Parameters are `$1, $2…`.
 *
 * Failures are typed (see `errors.ts`): a lost or refused connection is a retryable
 * `SqlUnavailableError`, a constraint violation a `SqlConstraintError` carrying its SQLSTATE.
 * Both adapters return the same JavaScript types: `int8` and `int4` as `number`, `numeric` as
 * `string`, `timestamptz` as `Date`, `json`/`jsonb` parsed.
 */
export interface SqlExecutor {
  /**
   * Runs one statement. With parameters it is a prepared statement (one statement only); without,
   * the text may hold several statements separated by `;` and the last one's result is returned.
   */
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<{ rows: R[]; rowCount: number }>;
}

/** The executor a transaction's work receives. Valid only until the work settles. */
export interface SqlTransaction extends SqlExecutor {
  /**
   * Runs `callback` after this transaction committed (never when it rolled back), once per call.
   * Used to wake the outbox relay. A callback must not throw: an exception there surfaces as an
   * uncaught exception, since the commit already happened.
   */
  onCommit(callback: () => void): void;
}

export interface SqlStore extends SqlExecutor {
  readonly dialect: 'pglite' | 'postgres';
  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws (the
   * error is rethrown). Transactions never interleave on PGlite (one at a time, in call order);
   * on PostgreSQL each runs on its own pooled connection at READ COMMITTED.
   * Inside `work`, use `tx` only: calling the store itself there throws `SqlNestedUseError`
   * (on PGlite it would wait for the very transaction that waits on it).
   */
  transaction<T>(work: (tx: SqlTransaction) => Promise<T>): Promise<T>;
  /** Waits for running work, then closes connections. Later calls reject with `SqlClosedError`. */
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
  handleOnce(
    consumer: string,
    eventId: string,
    work: (tx: SqlTransaction) => Promise<void>,
  ): Promise<boolean>;
}

/** A handler whose effects on the store happen in the inbox transaction `tx`. */
export type TransactionalHandler<C extends MessageContract = MessageContract> = (
  event: Envelope<PayloadOf<C>>,
  context: HandlerContext,
  tx: SqlTransaction,
) => Promise<void>;

/** A message written to the outbox in a handler's transaction, relayed to the broker afterwards. */
export interface OutboxMessage {
  /** `ce-id` and `Nats-Msg-Id`: relaying twice stores it once. */
  id: string;
  subject: string;
  /** `ce-type` (`<name>.v<version>`). */
  type: string;
  /** Ordering key (aggregate id): messages of one key are relayed in the order they were written. */
  key: string;
  data: unknown;
  /**
   * CloudEvents attributes fixed at the write (`ce-subject`, `ce-time`, `ce-correlationid`,
   * `ce-causationid`, `traceparent`); the relay's defaults otherwise (`key`, time of the write, `id`,
   * none, a new trace). Other headers are not published; `ce-source` is the relay publisher's.
   */
  headers?: Record<string, string>;
}

/** One unpublished outbox row, as the relay reads it. */
export interface PendingOutboxMessage extends Required<OutboxMessage> {
  /** Insertion order: the relay publishes rows of one key in ascending `seq`. */
  readonly seq: number;
  readonly createdAt: Date;
  /** Failed publish attempts so far. */
  readonly attempts: number;
}

/** Relay progress, as exported by its gauges. */
export interface OutboxBacklog {
  /** Rows written but not yet published. */
  unpublished: number;
  /** Age of the oldest unpublished row in seconds (0 when none). */
  oldestAgeSeconds: number;
}
