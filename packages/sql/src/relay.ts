import { Header, recordedContract, type EventPublisher, type PublishReceipt } from '@orderflow/messaging';
import { pino, type Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { OutboxRelayError } from './errors.ts';
import { SqlOutbox } from './outbox.ts';
import type { OutboxBacklog, PendingOutboxMessage, SqlExecutor, SqlStore } from './types.ts';

export interface OutboxRelayOptions {
  store: SqlStore;
  /**
   * Where rows go: the service's transport (or any {@link EventPublisher}). Each row is published with
   * its id as message id (the broker's de-duplication key) and the attributes it was written with; its
   * `ce-source` is the publisher's.
   */
  publisher: EventPublisher;
  /** The outbox written to (default: a plain `SqlOutbox`). */
  outbox?: SqlOutbox;
  /**
   * Registry for the relay's metrics: `orderflow_outbox_unpublished`,
   * `orderflow_outbox_oldest_unpublished_age_seconds` (read from the table at scrape time),
   * `orderflow_outbox_published_total{duplicate}`, `orderflow_outbox_publish_failures_total`.
   * One relay per registry. Default: no metrics.
   */
  registry?: Registry;
  logger?: Logger;
  /** Look for rows this often when nobody called `notify()` (default 1000 ms). */
  pollIntervalMs?: number;
  /** Rows read per pass (default 100). */
  batchSize?: number;
  /** Time to wait for the broker's ack of one row, per attempt (default 5000 ms). */
  publishTimeoutMs?: number;
  /** After a pass with failures, wait this long before the next, doubling up to `maxRetryDelayMs` (default 250 ms). */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
}

const defaults = {
  pollIntervalMs: 1_000,
  batchSize: 100,
  publishTimeoutMs: 5_000,
  retryDelayMs: 250,
  maxRetryDelayMs: 5_000,
} satisfies Partial<OutboxRelayOptions>;

/** What one pass did. */
export interface RelayPass {
  /** Rows the stream acknowledged (and that are now marked published). */
  published: number;
  /** Of those, rows the stream already held (de-duplicated by `Nats-Msg-Id`). */
  duplicates: number;
  /** Rows that failed; they and later rows of their key stay for the next pass. */
  failed: number;
  /** True when another replica held the relay lock (PostgreSQL), so this pass did nothing. */
  skipped: boolean;
}

/**
 * Publishes outbox rows through an {@link EventPublisher}. Delivery is at least once, made exactly-once
 * by the broker's de-duplication of the message id = row id (JetStream: `Nats-Msg-Id` within the
 * stream's duplicate window, default 2 minutes):
 * - rows are read in `seq` order; rows of one key are published one after another, each only after
 *   the previous one was acknowledged, so a key's order holds; when a row fails, later rows of its key
 *   wait for the next pass; other keys go on;
 * - a row is marked published after the stream acknowledged it; a crash in between republishes it,
 *   which the stream de-duplicates;
 * - a pass runs at start, after `notify()`, after each poll interval, and at once again when the
 *   previous pass filled a batch;
 * - on PostgreSQL, one relay at a time works on a schema (`pg_try_advisory_xact_lock`); the others skip.
 */
export class OutboxRelay {
  readonly #options: Required<Omit<OutboxRelayOptions, 'registry' | 'logger'>>;
  readonly #logger: Logger;
  readonly #published: Counter<'duplicate'> | undefined;
  readonly #failures: Counter | undefined;
  #running: Promise<void> | undefined;
  #stopping = false;
  #wanted = false;
  #wake: (() => void) | undefined;
  #pass: Promise<RelayPass> = Promise.resolve({ published: 0, duplicates: 0, failed: 0, skipped: false });

  constructor(options: OutboxRelayOptions) {
    this.#options = { ...defaults, outbox: new SqlOutbox(), ...options };
    this.#logger = options.logger ?? pino({ level: 'silent' });
    const registry = options.registry;
    if (registry) {
      const backlog = (): Promise<OutboxBacklog | undefined> =>
        this.backlog().catch((error: unknown) => {
          this.#logger.warn({ err: error }, 'outbox backlog could not be read');
          return undefined;
        });
      new Gauge({
        name: 'orderflow_outbox_unpublished',
        help: 'Outbox rows written but not yet published',
        registers: [registry],
        async collect() {
          const value = await backlog();
          if (value) this.set(value.unpublished);
        },
      });
      new Gauge({
        name: 'orderflow_outbox_oldest_unpublished_age_seconds',
        help: 'Age of the oldest unpublished outbox row (0 when none)',
        registers: [registry],
        async collect() {
          const value = await backlog();
          if (value) this.set(value.oldestAgeSeconds);
        },
      });
      this.#published = new Counter({
        name: 'orderflow_outbox_published_total',
        help: 'Outbox rows acknowledged by the stream',
        labelNames: ['duplicate'],
        registers: [registry],
      });
      this.#failures = new Counter({
        name: 'orderflow_outbox_publish_failures_total',
        help: 'Failed publish attempts of outbox rows',
        registers: [registry],
      });
    }
  }

  /** Starts relaying in the background; a pass runs at once (rows left by a crash go first). */
  start(): void {
    if (this.#stopping) throw new OutboxRelayError('the relay was stopped; create a new one');
    this.#running ??= this.#loop();
  }

  /** Asks for a pass now (or right after the running one). Cheap; call it after each commit. */
  notify(): void {
    this.#wanted = true;
    this.#wake?.();
  }

  /** Stops after the running pass (its publishes settle, its rows are marked); resolves when done. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#running;
    await this.#pass.catch(() => undefined);
  }

  backlog(): Promise<OutboxBacklog> {
    return this.#options.outbox.backlog(this.#options.store);
  }

  /** Runs one pass now (after the running one, if any); for tests, tools and benchmarks. */
  relayOnce(): Promise<RelayPass> {
    const next = this.#pass.catch(() => undefined).then(() => this.#passNow());
    this.#pass = next;
    return next;
  }

  async #loop(): Promise<void> {
    let failedPasses = 0;
    while (!this.#stopping) {
      let pass: RelayPass | undefined;
      try {
        pass = await this.relayOnce();
      } catch (error) {
        this.#logger.error({ err: error }, 'outbox relay pass failed');
      }
      if (this.#stopping) break;
      if (!pass || pass.failed > 0) {
        failedPasses += 1;
        const delay = Math.min(
          this.#options.retryDelayMs * 2 ** (failedPasses - 1),
          this.#options.maxRetryDelayMs,
        );
        await this.#sleep(delay, false);
      } else {
        failedPasses = 0;
        if (pass.published + pass.failed >= this.#options.batchSize) continue;
        await this.#sleep(this.#options.pollIntervalMs, true);
      }
    }
  }

  #sleep(ms: number, wakeOnNotify: boolean): Promise<void> {
    if (wakeOnNotify && this.#wanted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = () => {
        if (wakeOnNotify || this.#stopping) done();
      };
    });
  }

  async #passNow(): Promise<RelayPass> {
    this.#wanted = false;
    const { store } = this.#options;
    if (store.dialect === 'pglite') {
      // One process owns a PGlite database, and holding its only connection while publishing
      // would stall every writer: no transaction here.
      return this.#relay(store);
    }
    return store.transaction(async (tx) => {
      const { rows } = await tx.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || $1)) AS locked',
        [':orderflow_outbox_relay'],
      );
      if (!rows[0]?.locked) return { published: 0, duplicates: 0, failed: 0, skipped: true };
      return this.#relay(tx);
    });
  }

  async #relay(db: SqlExecutor): Promise<RelayPass> {
    const { outbox, batchSize } = this.#options;
    const rows = await outbox.pending(db, batchSize);
    const byKey = new Map<string, PendingOutboxMessage[]>();
    for (const row of rows) {
      const list = byKey.get(row.key);
      if (list) list.push(row);
      else byKey.set(row.key, [row]);
    }
    const published: number[] = [];
    const failures: { seq: number; reason: string }[] = [];
    let duplicates = 0;
    await Promise.all(
      [...byKey.values()].map(async (keyRows) => {
        for (const row of keyRows) {
          try {
            const ack = await this.#publish(row);
            published.push(row.seq);
            if (ack.duplicate) duplicates += 1;
            this.#published?.inc({ duplicate: String(ack.duplicate) });
          } catch (error) {
            failures.push({ seq: row.seq, reason: error instanceof Error ? error.message : String(error) });
            this.#failures?.inc();
            this.#logger.warn(
              { err: error, id: row.id, subject: row.subject, key: row.key, attempts: row.attempts + 1 },
              'outbox row not published; later rows of its key wait',
            );
            return;
          }
        }
      }),
    );
    await outbox.markPublished(db, published);
    for (const failure of failures) await outbox.recordFailure(db, failure.seq, failure.reason);
    return { published: published.length, duplicates, failed: failures.length, skipped: false };
  }

  /**
   * Publishes one row with the attributes it was written with. The publisher checks a duplicate ack
   * against the stored message, so a message id another publisher took first does not make the row
   * vanish (see `PublishReceipt.preempted`).
   */
  #publish(row: PendingOutboxMessage): Promise<PublishReceipt> {
    const header = (name: string): string | undefined => row.headers[name];
    return this.#options.publisher.publish(recordedContract(row.type), row.data, {
      subject: row.subject,
      id: row.id,
      about: header(Header.Subject) ?? row.key,
      timeoutMs: this.#options.publishTimeoutMs,
      recorded: {
        time: header(Header.Time) ?? row.createdAt.toISOString(),
        correlationId: header(Header.CorrelationId) ?? row.id,
        causationId: header(Header.CausationId),
        traceparent: header(Header.TraceParent),
      },
    });
  }
}
