import {
  decodeEnvelope,
  recordedContract,
  type EventPublisher,
  type PublishReceipt,
} from '@orderflow/messaging';
import { migrate, type Migration, type SqlStore } from '@orderflow/sql';
import { pino, type Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { EventStoreError, EventStoreErrorCode } from './errors.ts';
import type { EventLog, LogSubscription, StoredCommit } from './types.ts';

/** Component under which the forwarders' checkpoint table is migrated. */
export const FORWARDER_COMPONENT = 'eventstore-forwarder';

export const forwarderMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'forwarder checkpoints',
    sql: `
      CREATE TABLE eventstore_forwarders (
        name text PRIMARY KEY,
        stream text NOT NULL,
        position bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );`,
  },
];

export interface EventForwarderOptions {
  /** Identity of the forwarder: names its checkpoint (`[a-z][a-z0-9_-]*`). */
  name: string;
  /** The log followed (a `SqlEventLog`; any {@link EventLog}). */
  log: EventLog;
  stream: string;
  /** Subject filter within the stream (may be a wildcard, e.g. `orders.*`). */
  subjects: string;
  /** Where commits go: the service's transport. Its `ce-source` must be the log's. */
  publisher: EventPublisher;
  /** Store of the checkpoint (the log's own, so that one database holds both). */
  checkpoints: SqlStore;
  /**
   * Registry for `orderflow_event_forwarder_lag_commits{forwarder}` (commits of the stream after the
   * checkpoint, read at scrape time), `orderflow_event_forwarder_forwarded_total{forwarder,duplicate}`
   * and `orderflow_event_forwarder_failures_total{forwarder}`. Default: no metrics.
   */
  registry?: Registry;
  logger?: Logger;
  /** Delay before retrying a commit whose publish failed, doubled up to `maxRetryDelayMs` (default 250). */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** Time to wait for the broker's ack per attempt (default 5000 ms). */
  publishTimeoutMs?: number;
}

const defaults = { retryDelayMs: 250, maxRetryDelayMs: 5_000, publishTimeoutMs: 5_000 };
const NAME = /^[a-z][a-z0-9_-]*$/;

/**
 * Brings the commits of an event log that is not the bus (SQL) to the bus, so other services see the
 * aggregate's events as if it appended to JetStream. Contract:
 * - every commit after the checkpoint is published, in log order, one at a time, with its `ce-id`
 *   (the commit id) as message id and the attributes it was stored with (`PublishOptions.recorded`):
 *   the same message a JetStream log would hold;
 * - the checkpoint (in SQL) moves after the broker acknowledged; a crash in between publishes the
 *   commit again, which the broker de-duplicates (JetStream: within the stream's duplicate window,
 *   default 2 minutes; a forwarder down longer than that can publish a commit twice, and consumers'
 *   inboxes absorb it): at least once, never lost;
 * - a failed publish is retried with backoff until it succeeds; later commits wait (order holds);
 * - a commit that is not a readable CloudEvent (it cannot be published) is logged and passed over.
 * Run one per log; a second one only publishes duplicates.
 */
export class EventForwarder {
  readonly #options: EventForwarderOptions & typeof defaults;
  readonly #logger: Logger;
  readonly #forwarded: Counter<'forwarder' | 'duplicate'> | undefined;
  readonly #failures: Counter<'forwarder'> | undefined;
  #position = 0;
  #subscription: LogSubscription | undefined;
  #running: Promise<void> | undefined;
  #stopping = false;
  #wake: (() => void) | undefined;
  readonly #waiters = new Set<{ sequence: number; resolve: () => void }>();

  constructor(options: EventForwarderOptions) {
    if (!NAME.test(options.name)) {
      throw new EventStoreError(
        EventStoreErrorCode.Config,
        `forwarder name "${options.name}" is not ${NAME}`,
      );
    }
    this.#options = { ...defaults, ...options };
    this.#logger = options.logger ?? pino({ level: 'silent' });
    const { registry, name } = options;
    if (registry) {
      const lag = () => this.lag();
      const logger = this.#logger;
      new Gauge({
        name: 'orderflow_event_forwarder_lag_commits',
        help: 'Commits of the log not yet forwarded to the bus',
        labelNames: ['forwarder'],
        registers: [registry],
        async collect() {
          try {
            this.set({ forwarder: name }, await lag());
          } catch (error) {
            logger.warn({ err: error }, 'forwarder lag could not be read');
          }
        },
      });
      this.#forwarded = new Counter({
        name: 'orderflow_event_forwarder_forwarded_total',
        help: 'Commits the bus acknowledged',
        labelNames: ['forwarder', 'duplicate'],
        registers: [registry],
      });
      this.#failures = new Counter({
        name: 'orderflow_event_forwarder_failures_total',
        help: 'Failed publish attempts of commits',
        labelNames: ['forwarder'],
        registers: [registry],
      });
    }
  }

  /** Sequence of the last commit forwarded (the checkpoint as this instance knows it). */
  get position(): number {
    return this.#position;
  }

  /** Commits of the stream after the checkpoint. */
  async lag(): Promise<number> {
    const last = await this.#options.log.lastSequence(this.#options.stream);
    return Math.max(0, last - (await this.#checkpoint()));
  }

  /** Migrates the checkpoint table, reads the checkpoint and starts following the log. */
  async start(): Promise<void> {
    if (this.#running) return;
    if (this.#stopping) throw new EventStoreError(EventStoreErrorCode.Config, 'the forwarder was stopped');
    await migrate(this.#options.checkpoints, forwarderMigrations, { component: FORWARDER_COMPONENT });
    this.#position = await this.#checkpoint();
    this.#running = this.#loop();
  }

  /** Resolves once every commit up to `sequence` was forwarded (e.g. an append's `version`). */
  async waitFor(sequence: number, options: { timeoutMs?: number } = {}): Promise<void> {
    if (sequence <= this.#position) return;
    const timeoutMs = options.timeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.#waiters.add({ sequence, resolve })),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new EventStoreError(
                'TIMEOUT',
                `forwarder ${this.#options.name} did not reach #${sequence} within ${timeoutMs} ms (at #${this.#position})`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Stops after the commit in hand (its publish settles, its checkpoint is written). */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#subscription?.stop();
    this.#wake?.();
    await this.#running;
  }

  /** Follows the log; a failure of the log or of the checkpoint store resubscribes after a pause. */
  async #loop(): Promise<void> {
    const { log, stream, subjects, name } = this.#options;
    let delay = this.#options.retryDelayMs;
    while (!this.#stopping) {
      const subscription = log.subscribe(stream, subjects, { fromSequence: this.#position + 1 });
      this.#subscription = subscription;
      try {
        for await (const commit of subscription) {
          if (!(await this.#forward(commit))) return; // stopping before it was published
          await this.#save(commit.sequence);
          this.#position = commit.sequence;
          delay = this.#options.retryDelayMs;
          for (const waiter of this.#waiters) {
            if (waiter.sequence <= this.#position) {
              this.#waiters.delete(waiter);
              waiter.resolve();
            }
          }
          if (this.#stopping) return;
        }
      } catch (error) {
        subscription.stop();
        this.#logger.warn({ err: error, forwarder: name, retryInMs: delay }, 'event forwarder interrupted');
        await this.#pause(delay);
        delay = Math.min(delay * 2, this.#options.maxRetryDelayMs);
      }
    }
  }

  #pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  /** Publishes one commit, retrying until it is acknowledged; false when stopped first. */
  async #forward(commit: StoredCommit): Promise<boolean> {
    let envelope;
    try {
      envelope = decodeEnvelope(commit.headers, commit.body);
    } catch (error) {
      this.#logger.error(
        { err: error, subject: commit.subject, sequence: commit.sequence },
        'unreadable commit not forwarded',
      );
      return true;
    }
    const { publisher, name } = this.#options;
    for (
      let delay = this.#options.retryDelayMs;
      ;
      delay = Math.min(delay * 2, this.#options.maxRetryDelayMs)
    ) {
      let receipt: PublishReceipt;
      try {
        receipt = await publisher.publish(recordedContract(envelope.type), envelope.data, {
          subject: commit.subject,
          id: envelope.id,
          ...(envelope.subject !== undefined && { about: envelope.subject }),
          timeoutMs: this.#options.publishTimeoutMs,
          recorded: {
            time: envelope.time,
            correlationId: envelope.correlationId,
            causationId: envelope.causationId,
            traceparent: envelope.traceparent,
          },
        });
      } catch (error) {
        this.#failures?.inc({ forwarder: name });
        this.#logger.warn(
          { err: error, subject: commit.subject, sequence: commit.sequence, retryInMs: delay },
          'commit not forwarded; retrying',
        );
        if (this.#stopping) return false;
        await this.#pause(delay);
        if (this.#stopping) return false;
        continue;
      }
      this.#forwarded?.inc({ forwarder: name, duplicate: String(receipt.duplicate) });
      return true;
    }
  }

  async #checkpoint(): Promise<number> {
    const { rows } = await this.#options.checkpoints.query<{ position: number }>(
      'SELECT position FROM eventstore_forwarders WHERE name = $1',
      [this.#options.name],
    );
    return Number(rows[0]?.position ?? 0);
  }

  async #save(position: number): Promise<void> {
    await this.#options.checkpoints.query(
      `INSERT INTO eventstore_forwarders (name, stream, position) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET position = GREATEST(eventstore_forwarders.position, EXCLUDED.position),
         updated_at = now()`,
      [this.#options.name, this.#options.stream, position],
    );
  }
}
