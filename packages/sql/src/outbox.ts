import {
  createEnvelope,
  Header,
  type Envelope,
  type MessageContract,
  type PayloadOf,
} from '@orderflow/messaging';
import type {
  OutboxBacklog,
  OutboxMessage,
  PendingOutboxMessage,
  SqlExecutor,
  SqlTransaction,
} from './types.ts';

export interface SqlOutboxOptions {
  /** Called once per transaction that enqueued, after it committed: pass the relay's `notify`. */
  onCommitted?: () => void;
}

interface OutboxRow extends Record<string, unknown> {
  seq: number;
  id: string;
  subject: string;
  type: string;
  key: string;
  payload: string;
  headers: Record<string, string>;
  created_at: Date;
  attempts: number;
}

/**
 * The transactional outbox on the `orderflow_outbox` table (see `migrateInboxOutbox`): events are
 * written in the caller's transaction, so they exist if and only if the state change committed, and
 * an {@link OutboxRelay} publishes them afterwards.
 *
 * Ordering: rows get their `seq` when inserted. Enqueue after the state change in a transaction, so
 * that two transactions on one aggregate (which conflict on its row) get their `seq` in commit order.
 */
export class SqlOutbox {
  readonly #registered = new WeakSet<SqlTransaction>();

  constructor(private readonly options: SqlOutboxOptions = {}) {}

  /**
   * Writes `message` in `tx`. A second message with the same `id` fails with `SqlConstraintError`
   * (23505). `data` must be JSON-serialisable; it is published exactly as `JSON.stringify` wrote it.
   */
  async enqueue(tx: SqlTransaction, message: OutboxMessage): Promise<void> {
    await tx.query(
      `INSERT INTO orderflow_outbox (id, subject, type, key, payload, headers)
       VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)`,
      [
        message.id,
        message.subject,
        message.type,
        message.key,
        JSON.stringify(message.data ?? null),
        JSON.stringify(message.headers ?? {}),
      ],
    );
    const onCommitted = this.options.onCommitted;
    if (onCommitted && !this.#registered.has(tx)) {
      this.#registered.add(tx);
      tx.onCommit(onCommitted);
    }
  }

  /** Unpublished rows, oldest first (ascending `seq`), at most `limit`. */
  async pending(db: SqlExecutor, limit: number): Promise<PendingOutboxMessage[]> {
    const { rows } = await db.query<OutboxRow>(
      `SELECT seq, id, subject, type, key, payload, headers, created_at, attempts
       FROM orderflow_outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1`,
      [limit],
    );
    return rows.map((row) => ({
      seq: Number(row.seq),
      id: row.id,
      subject: row.subject,
      type: row.type,
      key: row.key,
      data: JSON.parse(row.payload) as unknown,
      headers: row.headers,
      createdAt: row.created_at,
      attempts: row.attempts,
    }));
  }

  async markPublished(db: SqlExecutor, seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return;
    await db.query('UPDATE orderflow_outbox SET published_at = now() WHERE seq = ANY($1::bigint[])', [
      [...seqs],
    ]);
  }

  async recordFailure(db: SqlExecutor, seq: number, reason: string): Promise<void> {
    await db.query('UPDATE orderflow_outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = $1', [
      seq,
      reason.slice(0, 1000),
    ]);
  }

  async backlog(db: SqlExecutor): Promise<OutboxBacklog> {
    const { rows } = await db.query<{ unpublished: number; oldest: number | null }>(
      `SELECT count(*)::int8 AS unpublished,
              EXTRACT(EPOCH FROM (now() - min(created_at)))::float8 AS oldest
       FROM orderflow_outbox WHERE published_at IS NULL`,
    );
    const row = rows[0];
    return { unpublished: row?.unpublished ?? 0, oldestAgeSeconds: Math.max(0, row?.oldest ?? 0) };
  }
}

export interface OutboxMessageOptions {
  subject: string;
  /** Ordering key and `ce-subject`: the aggregate id. */
  key: string;
  /** `ce-id` / `Nats-Msg-Id`; pass a deterministic id when the same write may be attempted twice. */
  id?: string;
  /** The event being handled: its correlation id, id (as causation) and trace are carried over. */
  causedBy?: Envelope;
}

/**
 * Builds an {@link OutboxMessage} for a contract: validates `data` against the contract's schema
 * (throws `ValidationError`, nothing is written) and fixes now the attributes the relay would
 * otherwise fill in later: time, correlation and causation ids, trace context. Its `ce-source` is
 * the relay's publisher's (the service's identity on the bus).
 */
export function outboxMessage<C extends MessageContract>(
  contract: C,
  data: PayloadOf<C>,
  options: OutboxMessageOptions,
): OutboxMessage {
  const parsed = contract.parse(data);
  const envelope = createEnvelope({
    type: contract.type,
    source: '',
    data: parsed,
    subject: options.key,
    ...(options.id !== undefined && { id: options.id }),
    ...(options.causedBy !== undefined && { causedBy: options.causedBy }),
  });
  const headers: Record<string, string> = {
    [Header.Time]: envelope.time,
    [Header.CorrelationId]: envelope.correlationId,
  };
  if (envelope.causationId !== undefined) headers[Header.CausationId] = envelope.causationId;
  if (envelope.traceparent !== undefined) headers[Header.TraceParent] = envelope.traceparent;
  return {
    id: envelope.id,
    subject: options.subject,
    type: contract.type,
    key: options.key,
    data: parsed,
    headers,
  };
}
