import {
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerMessages,
  type JetStreamClient,
} from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { retryDelay } from './backoff.ts';
import { AckBatch, JetStreamDelivery } from './delivery.ts';
import { envelopeSubject } from './envelope.ts';
import type { ConsumerDeclaration, EnsureConsumer } from './topology.ts';
import type { DeliveryHandler, RetryPolicy, RunningConsumer } from './types.ts';

type KeyOf = (message: {
  subject: string;
  header(name: string): string | undefined;
  readonly body: Uint8Array;
}) => string | undefined;

export interface ConsumerRuntimeOptions {
  js: JetStreamClient;
  stream: string;
  name: string;
  /** The durable this consumer pulls from. */
  durable: ConsumerDeclaration;
  /** Durable on the dead-letter stream that carries this consumer's redriven messages. */
  redrive: ConsumerDeclaration | undefined;
  /** Creates a durable again when the server reports it missing (see {@link EnsureConsumer}). */
  ensureConsumer: EnsureConsumer;
  chain: DeliveryHandler;
  concurrency: number;
  prefetch: number;
  ackWaitMs: number;
  maxDeliver: number;
  retry: RetryPolicy;
  orderingKey: KeyOf | undefined;
  logger: Logger;
  /** True once the connection is closed for good (no reconnect will follow). */
  connectionClosed: () => boolean;
}

/**
 * The messages of one ordering key: at most one runs, in stream order; a nak'd one blocks the later
 * ones until it is redelivered. A message of the key from earlier in the stream (redelivered late,
 * after a crash of the process that held it) goes first, even past a blocked one: it may be what the
 * blocked one waits for.
 */
interface Lane {
  active: boolean;
  /** Waiting deliveries, by stream sequence. */
  queue: JetStreamDelivery[];
  blockedBy: number | undefined;
  blockedUntil: number;
}

const STOP_NAK_DELAY_MS = 50;
/** Pause before a missing durable is created again (and between failed attempts). */
const REPROVISION_DELAY_MS = 1_000;
const BLOCKED_KEY_GRACE_MS = 3_000;
/**
 * Life of one pull request. nats.js asks the server for idle heartbeats at half of it and re-pulls
 * after two missed ones, so this bounds how long a consumer stays silent when the server that held
 * its pull went away (a cluster node killed: its consumers' leaders move, their pulls are lost).
 * The default (30 s) left consumers idle for ~40 s after a node was killed, 10 s for ~16 s; 5 s means
 * one pull request per consumer every 5 s when idle.
 */
export const PULL_EXPIRES_MS = 5_000;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function isConsumerNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound;
}

/**
 * Runs a durable pull consumer: pulls with a bounded prefetch, runs up to `concurrency` handlers at
 * once, keeps per-key order when asked, heartbeats (`working()`) every message it holds, and drains
 * on stop. Settlement: the chain settles failures; a delivery the chain left unsettled is acked when
 * the chain resolved, or nak'd with backoff when it threw.
 */
export class ConsumerRuntime implements RunningConsumer {
  readonly name: string;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;
  readonly #inFlight = new Set<JetStreamDelivery>();
  readonly #lanes = new Map<string, Lane>();
  readonly #iterators = new Set<ConsumerMessages>();
  /** The pull loops; each ends once its iterator has handed back what it had buffered. */
  readonly #pulls: Promise<void>[] = [];
  readonly #slotWaiters: (() => void)[] = [];
  readonly #acks = new AckBatch();
  #running = 0;
  #stopping = false;
  /** Durables with a live pull right now. */
  readonly #pulling = new Set<string>();
  readonly #durables: number;
  /** Resolves once every pull made its first attempt (whatever came of it). */
  readonly started: Promise<void>;
  #idle: (() => void) | undefined;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(private readonly options: ConsumerRuntimeOptions) {
    this.name = options.name;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    const beat = Math.max(250, Math.min(options.ackWaitMs / 3, 10_000));
    this.#heartbeat = setInterval(() => this.#beat(), beat);
    this.#heartbeat.unref();
    const first: Promise<void>[] = [];
    const attempted = () => {
      let resolve!: () => void;
      first.push(new Promise<void>((r) => (resolve = r)));
      return resolve;
    };
    this.#pulls.push(this.#pull(options.durable, false, attempted()));
    if (options.redrive) this.#pulls.push(this.#pull(options.redrive, true, attempted()));
    this.#durables = first.length;
    this.started = Promise.all(first).then(() => undefined);
  }

  get consuming(): boolean {
    return !this.#stopping && this.#pulling.size === this.#durables;
  }

  /** Deliveries handled right now plus those waiting behind their key. */
  get pending(): number {
    let held = 0;
    for (const lane of this.#lanes.values()) held += lane.queue.length;
    return this.#inFlight.size + held;
  }

  async #pull(declaration: ConsumerDeclaration, redriven: boolean, attempted: () => void): Promise<void> {
    const { js, logger } = this.options;
    const { stream, name: durable } = declaration;
    const key = `${stream}/${durable}`;
    while (!this.#stopping) {
      let missing = false;
      try {
        const consumer = await js.consumers.get(stream, durable);
        // A durable deleted under a running pull: the server answers the pull with 409 "Consumer
        // Deleted" (or, failing that, the client finds it gone after two missed heartbeats and, with
        // abort_on_missing_resource, ends the pull with ConsumerNotFoundError instead of polling forever).
        const messages = await consumer.consume({
          max_messages: this.options.prefetch,
          expires: PULL_EXPIRES_MS,
          abort_on_missing_resource: true,
        });
        void (async () => {
          for await (const status of messages.status()) {
            if (status.type === 'consumer_deleted' || status.type === 'consumer_not_found') {
              missing = true;
              messages.stop();
              break;
            }
          }
        })();
        this.#iterators.add(messages);
        this.#pulling.add(key);
        attempted();
        if (this.#stopping) messages.stop();
        try {
          for await (const msg of messages) {
            if (this.#stopping) {
              msg.nak(STOP_NAK_DELAY_MS);
              continue;
            }
            const delivery = new JetStreamDelivery(
              msg,
              this.options.stream,
              this.name,
              logger,
              this.options.maxDeliver,
              this.options.retry,
              redriven,
              this.#acks,
            );
            const admitted = this.#admit(delivery); // a promise only when it has to wait for a slot
            if (admitted) await admitted;
          }
        } finally {
          this.#iterators.delete(messages);
          this.#pulling.delete(key);
        }
        if (missing && !this.#stopping) await this.#reprovision(declaration);
      } catch (error) {
        this.#pulling.delete(key);
        attempted();
        if (this.#stopping) break;
        if (this.options.connectionClosed()) {
          // The connection is gone for good (closed by its owner or out of reconnects): nothing to resume.
          logger.warn({ err: error, durable }, 'connection closed; consumer stops');
          void this.stop({ deadlineMs: 0 });
          break;
        }
        if (missing || isConsumerNotFound(error)) {
          await this.#reprovision(declaration);
          continue;
        }
        logger.warn({ err: error, durable }, 'consumer interrupted; resuming');
        await pause(1_000);
      }
    }
  }

  /**
   * The durable is gone (deleted by an operator, lost with a server's store): after a pause (not
   * ready meanwhile), create it again from its declaration through the transport's
   * {@link EnsureConsumer}. It starts at its deliver policy, like a new durable: with `all`, the
   * stream's retained messages are delivered again and the handlers' idempotency absorbs them.
   */
  async #reprovision(declaration: ConsumerDeclaration): Promise<void> {
    const { logger } = this.options;
    logger.warn(
      { durable: declaration.name, stream: declaration.stream },
      'durable consumer is missing; re-provisioning',
    );
    await pause(REPROVISION_DELAY_MS);
    if (this.#stopping) return;
    try {
      await this.options.ensureConsumer(declaration);
      logger.info(
        { durable: declaration.name, stream: declaration.stream },
        'durable consumer re-provisioned',
      );
    } catch (error) {
      logger.error({ err: error, durable: declaration.name }, 're-provisioning failed; retrying');
    }
  }

  #admit(delivery: JetStreamDelivery): Promise<void> | void {
    const key = this.options.orderingKey?.(delivery);
    if (key === undefined) {
      const slot = this.#acquire();
      if (slot) return slot.then(() => void this.#runUnlessStopping(delivery, undefined));
      void this.#run(delivery, undefined);
      return;
    }
    return this.#admitKeyed(delivery, key);
  }

  async #admitKeyed(delivery: JetStreamDelivery, key: string): Promise<void> {
    let lane = this.#lanes.get(key);
    if (!lane) {
      lane = { active: false, queue: [], blockedBy: undefined, blockedUntil: 0 };
      this.#lanes.set(key, lane);
    }
    if (lane.blockedBy === delivery.streamSequence) lane.blockedBy = undefined;
    const queue = lane.queue;
    let at = queue.length;
    while (at > 0 && queue[at - 1]!.streamSequence > delivery.streamSequence) at--;
    queue.splice(at, 0, delivery);
    if (queue[0] !== delivery || !this.#runnable(lane)) return;
    queue.shift();
    lane.active = true;
    await this.#acquire();
    if (this.#stopping) lane.active = false;
    void this.#runUnlessStopping(delivery, key);
  }

  /** Runs a delivery that waited for a slot, or hands it back (and the slot) if stop() began meanwhile. */
  #runUnlessStopping(delivery: JetStreamDelivery, key: string | undefined): Promise<void> | void {
    if (!this.#stopping) return this.#run(delivery, key);
    delivery.nak(STOP_NAK_DELAY_MS);
    this.#release();
  }

  /** Whether the lane's first waiting delivery may run now. */
  #runnable(lane: Lane): boolean {
    const next = lane.queue[0];
    if (lane.active || next === undefined || this.#stopping) return false;
    return lane.blockedBy === undefined || next.streamSequence < lane.blockedBy;
  }

  #acquire(): Promise<void> | void {
    if (this.#running < this.options.concurrency) {
      this.#running++;
      return;
    }
    return new Promise((resolve) => this.#slotWaiters.push(resolve));
  }

  #release(): void {
    const waiter = this.#slotWaiters.shift();
    if (waiter) waiter();
    else this.#running--;
  }

  async #run(delivery: JetStreamDelivery, key: string | undefined): Promise<void> {
    this.#inFlight.add(delivery);
    try {
      await this.options.chain(delivery);
      delivery.ack();
    } catch {
      delivery.nak(retryDelay(this.options.retry, delivery.deliveryCount));
    } finally {
      this.#inFlight.delete(delivery);
      this.#release();
      if (key !== undefined) this.#settleLane(key, delivery);
      if (this.#inFlight.size === 0) this.#idle?.();
    }
  }

  #settleLane(key: string, delivery: JetStreamDelivery): void {
    const lane = this.#lanes.get(key);
    if (!lane) return;
    lane.active = false;
    if (delivery.settled === 'nak' && !this.#stopping) {
      lane.blockedBy = delivery.streamSequence;
      // The server redelivers after the nak delay; if it goes to another replica instead, give up
      // waiting after a short grace period rather than stalling the key for a whole ack wait.
      lane.blockedUntil =
        Date.now() + delivery.nakDelayMs + Math.min(this.options.ackWaitMs, BLOCKED_KEY_GRACE_MS);
    }
    this.#drainLane(key, lane);
  }

  #drainLane(key: string, lane: Lane): void {
    if (!lane.active && lane.blockedBy === undefined && lane.queue.length === 0) {
      this.#lanes.delete(key);
      return;
    }
    if (!this.#runnable(lane)) return;
    const next = lane.queue.shift()!;
    lane.active = true;
    void Promise.resolve(this.#acquire()).then(() => this.#run(next, key));
  }

  #beat(): void {
    for (const delivery of this.#inFlight) delivery.working();
    const now = Date.now();
    for (const [key, lane] of this.#lanes) {
      for (const delivery of lane.queue) delivery.working();
      if (lane.blockedBy !== undefined && now > lane.blockedUntil) {
        lane.blockedBy = undefined;
        this.#drainLane(key, lane);
      }
    }
  }

  async stop(options: { deadlineMs?: number } = {}): Promise<void> {
    if (this.#stopping) return this.closed;
    this.#stopping = true;
    for (const messages of this.#iterators) messages.stop();
    for (const lane of this.#lanes.values()) {
      for (const delivery of lane.queue) delivery.nak(STOP_NAK_DELAY_MS);
      lane.queue = [];
    }
    const deadline = options.deadlineMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise((resolve) => (timer = setTimeout(resolve, deadline)));
    if (this.#inFlight.size > 0) {
      const idle = new Promise<void>((resolve) => (this.#idle = resolve));
      await Promise.race([idle, expired]);
      for (const delivery of this.#inFlight) {
        this.options.logger.warn(
          { seq: delivery.streamSequence },
          'handler still running at drain deadline; nak',
        );
        delivery.nak(STOP_NAK_DELAY_MS);
      }
    }
    // What the iterators still buffered (pulled, never handed to a handler) is nak'd by the pull loops
    // as they run out: wait for them, or those messages would sit out the ack wait.
    await Promise.race([Promise.all(this.#pulls), expired]);
    clearTimeout(timer);
    this.#acks.flush(); // acks of handlers that finished are not left behind
    clearInterval(this.#heartbeat);
    this.#resolveClosed();
  }
}

/** Ordering key function for a {@link ConsumerSpec.orderingKey} option. */
export function orderingKeyOf(option: 'subject' | KeyOf | undefined): KeyOf | undefined {
  if (option === 'subject') return envelopeSubject;
  return option;
}
