import type { Logger } from 'pino';
import type { MessageContract, PayloadOf } from './contract.ts';
import type { Envelope } from './envelope.ts';

// ───────────────────────────── Publishing ─────────────────────────────

export interface PublishOptions {
  /** NATS subject; required unless the transport's subject resolver knows the contract. */
  subject: string;
  /** `ce-id`; also the `Nats-Msg-Id`. Pass a deterministic id to make a re-publish idempotent. Default: UUID. */
  id?: string;
  /** `ce-subject`: what the event is about (an aggregate id). Default ordering key for consumers. */
  about?: string;
  /** The message being handled: its correlation id, id (as causation) and trace are carried over. */
  causedBy?: Envelope;
  /** `Nats-Expected-Last-Subject-Sequence`: optimistic concurrency on the subject (0 = must be empty). */
  expectedLastSubjectSequence?: number;
  /** Time to wait for the stream's ack per attempt (default 5000 ms). */
  timeoutMs?: number;
  /**
   * CloudEvent attributes decided when the event was written, for an event published later from where
   * it was recorded in the transaction of its state change (an outbox row, a commit of a SQL event
   * log): published with this `ce-time`, correlation and causation instead of ones decided now, and
   * the publish span is a child of `traceparent`. Overrides `causedBy`. Default: decided at publish.
   */
  recorded?: RecordedAttributes;
}

/** See {@link PublishOptions.recorded}. */
export interface RecordedAttributes {
  readonly time: string;
  readonly correlationId: string;
  readonly causationId?: string | undefined;
  readonly traceparent?: string | undefined;
}

/** The stream's acknowledgement: the message is persisted (or was already, `duplicate`). */
export interface PublishReceipt {
  readonly stream: string;
  readonly seq: number;
  /** The stream held this event already (a retried publish): nothing new was stored. */
  readonly duplicate: boolean;
  readonly id: string;
  /**
   * Set when the event's message id had been taken by a message that is not this event (another
   * producer's, on another subject or from another `ce-source`): the event was stored under a fresh
   * `Nats-Msg-Id` with its `ce-id` unchanged, instead of being dropped as a duplicate.
   */
  readonly preempted?: boolean;
}

/**
 * Publishes events to a durable log. A resolved promise means the stream stored the message.
 * Payloads are validated against the contract before anything leaves the process
 * (a {@link ValidationError} is thrown and nothing is sent). Retries after a lost ack reuse
 * the same `Nats-Msg-Id`, so they cannot store a message twice within the duplicate window.
 */
export interface EventPublisher {
  publish<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: PublishOptions,
  ): Promise<PublishReceipt>;
  /**
   * Publishes many events with at most `maxInFlight` (default 256) unacknowledged at once; resolves
   * with the receipts in input order, or rejects with the first failure after the rest settled.
   */
  publishBatch(
    items: readonly BatchItem[],
    options?: { maxInFlight?: number; timeoutMs?: number },
  ): Promise<PublishReceipt[]>;
}

export interface BatchItem<C extends MessageContract = MessageContract> {
  contract: C;
  data: PayloadOf<C>;
  options: PublishOptions;
}

// ───────────────────────────── Consuming ─────────────────────────────

/** What a handler may do while it handles one message. */
export interface HandlerContext {
  /** 1 on first delivery; counts redeliveries by the server. */
  readonly deliveryCount: number;
  /** Sequence of the message in its stream (for a redriven message: in the original stream). */
  readonly streamSequence: number;
  readonly consumer: string;
  readonly logger: Logger;
  /** Extends the ack deadline; the runtime also does this on its own while the handler runs. */
  working(): void;
  /** Publishes an event caused by the message being handled (correlation, causation and trace carried). */
  publish<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: Omit<PublishOptions, 'causedBy'>,
  ): Promise<PublishReceipt>;
}

/** A typed event handler. Throw {@link PermanentError} for failures a retry cannot fix. */
export type EventHandler<C extends MessageContract = MessageContract> = (
  event: Envelope<PayloadOf<C>>,
  context: HandlerContext,
) => Promise<void>;

/** One handler per contract the consumer understands. Messages of other types are dead-lettered. */
export interface HandlerRegistration<C extends MessageContract = MessageContract> {
  contract: C;
  handle: EventHandler<C>;
}

/** Pairs a contract with its handler, keeping the payload typed. */
export function on<C extends MessageContract>(contract: C, handle: EventHandler<C>): HandlerRegistration {
  return { contract, handle: handle };
}

export interface RetryPolicy {
  /** First redelivery delay (default 250 ms). */
  initialDelayMs: number;
  /** Upper bound of the delay (default 30 000 ms). */
  maxDelayMs: number;
  /** Growth per attempt (default 2). */
  multiplier: number;
  /** Fraction of the delay randomised, 0..1 (default 0.2). */
  jitter: number;
  /**
   * How long a transient failure (a dependency outage, see `TransientError`) is retried in place,
   * holding the message and extending its ack deadline, before it counts as a failed attempt
   * (default 300 000 ms).
   */
  transientRetryMs: number;
}

/**
 * Who publishes on a set of subjects: the `ce-source` every event there must carry and, optionally,
 * the only `ce-type`s it publishes there. Declared once per subject namespace (e.g. by a topology)
 * and checked by the consumer runtime on every decoded event (see {@link ConsumerSpec.producers}).
 */
export interface ProducerDeclaration {
  /** NATS subject pattern (`payments.*`, `orders.>`). */
  readonly subjects: string;
  /** The owner's `ce-source`, e.g. `orderflow/payment-processor`. */
  readonly source: string;
  /** `ce-type`s the owner publishes on these subjects; absent = any. */
  readonly types?: readonly string[];
}

/**
 * A durable pull consumer and its handlers. Delivery is at least once: a message is acked only after
 * its handler resolved (or after it was dead-lettered), so a crash means redelivery, never loss.
 */
export interface ConsumerSpec {
  /** Durable name; mandatory because it is the server-side identity of the consumer. */
  name: string;
  stream: string;
  /** Subject filter within the stream (default: the whole stream). */
  filterSubject?: string;
  handlers: readonly HandlerRegistration[];
  /**
   * The producers this consumer accepts events from, a second line behind the broker's permissions.
   * When given, an event on a subject no declaration covers, from another `ce-source` than the
   * subject's owner, or of a type the owner does not publish there is dead-lettered with code
   * `UNEXPECTED_PRODUCER` before any handler or idempotency record sees it. Default: no check.
   */
  producers?: readonly ProducerDeclaration[];
  /** Handlers running at once in this process (default 16). */
  concurrency?: number;
  /**
   * Per-key ordering: messages with the same key are handled one at a time in stream order, also
   * across retries (later messages of a key wait while an earlier one is being retried). An earlier
   * message of a key that comes back late (its holder crashed) runs before the later ones, even one
   * being retried.
   * `'subject'` uses the CloudEvent's `subject` (the aggregate id: `ce-subject`, or the attribute of a
   * structured-mode event); a function may compute any key. Default: none.
   */
  orderingKey?:
    | 'subject'
    | ((message: {
        subject: string;
        header(name: string): string | undefined;
        readonly body: Uint8Array;
      }) => string | undefined);
  /** Server redelivers a message not acked within this (default 30 000 ms); heartbeats extend it. */
  ackWaitMs?: number;
  /** Attempts before dead-lettering (default 5). */
  maxDeliver?: number;
  /** Unacked messages outstanding for the consumer across replicas (default 1000). */
  maxAckPending?: number;
  retry?: Partial<RetryPolicy>;
  /** Middleware applied inside the transport's defaults, outermost first. */
  middleware?: readonly Middleware[];
  /** Messages buffered from the server ahead of the handlers (default 256). */
  prefetch?: number;
  /** Where a new consumer starts (default `all`). */
  deliverPolicy?: 'all' | 'new';
  /**
   * Called when a decoded message is about to be dead-lettered (a permanent failure, or the last
   * attempt), with the failure: the place to publish the typed outcome of a step that cannot complete
   * (e.g. `payment.failed`), so that the rest of the system can react instead of waiting forever.
   * Runs once the dead letter is written, before the message is acked; if it throws, the message is
   * redelivered later (paced), its letter written again (one is kept, see `DeadLetterStore.write`) and
   * the hook run again, so it must be idempotent (publish with a deterministic id). On the server's
   * last delivery the message is acked even if it throws, so nothing stays unsettled. Written first,
   * the letter cannot be lost to a redelivery that finds the step already ended by the hook's outcome.
   * Not called for messages that could not be decoded (no envelope: nothing typed to report).
   */
  onDeadLetter?: (event: Envelope, error: unknown, context: HandlerContext) => Promise<void>;
}

/** A consumer that is running. */
export interface RunningConsumer {
  readonly name: string;
  /**
   * Stops pulling, waits up to `deadlineMs` (default 10 000) for in-flight handlers, naks (with a short
   * delay) what is still held so another instance takes it at once, and resolves when done.
   */
  stop(options?: { deadlineMs?: number }): Promise<void>;
  /** Resolves when the consumer stopped (by `stop()` or a fatal error). */
  readonly closed: Promise<void>;
  /**
   * True while messages are being pulled from every durable of the consumer (its own and its redrive
   * durable); false before the first pull, while a pull is interrupted and being resumed, and after
   * stop. A service is not ready while one of its consumers is not consuming.
   */
  readonly consuming: boolean;
}

// ───────────────────────────── Middleware ─────────────────────────────

/** The server-side facts of one delivery, independent of how it is decoded. */
export interface Delivery {
  readonly stream: string;
  readonly consumer: string;
  readonly subject: string;
  readonly streamSequence: number;
  readonly deliveryCount: number;
  /** A header's value (first one), or `undefined`. */
  header(name: string): string | undefined;
  /** Every header as `[name, value]` pairs, as received. */
  headerEntries(): [string, string][];
  readonly body: Uint8Array;
  /** True when the message came back through a dead-letter redrive. */
  readonly redriven: boolean;
  /** Filled in by the decoding step; `undefined` before it ran or when it failed. */
  envelope: Envelope | undefined;
  /** The contract the envelope matched. */
  contract: MessageContract | undefined;
  /** Logger bound to this delivery (consumer, subject, sequence and, once decoded, type, id, correlation id). */
  readonly logger: Logger;
  readonly maxDeliver: number;
  readonly retry: RetryPolicy;
  /** Extends the ack deadline. */
  working(): void;
  /** Settles the delivery; only the first settlement counts. */
  ack(): void;
  nak(delayMs: number): void;
  term(): void;
  readonly settled: 'ack' | 'nak' | 'term' | undefined;
  /** Values middleware share with inner middleware (e.g. the tracing span). */
  readonly locals: Map<string, unknown>;
}

/** Processes one delivery; resolves when done, throws to signal failure to outer middleware. */
export type DeliveryHandler = (delivery: Delivery) => Promise<void>;

/** Wraps a handler with cross-cutting behaviour. Applied in list order: the first is outermost. */
export type Middleware = (next: DeliveryHandler) => DeliveryHandler;

// ───────────────────────────── Request-reply ─────────────────────────────

/** A typed request-reply endpoint: its subject and the request and response contracts. */
export interface EndpointContract<
  Req extends MessageContract = MessageContract,
  Res extends MessageContract = MessageContract,
> {
  /** Stable name used in `$SRV` discovery. */
  readonly name: string;
  /** Subject the endpoint listens on (outside every stream's subjects). */
  readonly subject: string;
  readonly request: Req;
  readonly response: Res;
}

export interface RequestOptions {
  /** Default 5000 ms. */
  timeoutMs?: number;
  /** Carries correlation and trace from a message being handled. */
  causedBy?: Envelope;
}

/** Calls endpoints. Rejects with TimeoutError, NoRespondersError, RemoteError or ValidationError. */
export interface Requester {
  request<E extends EndpointContract>(
    endpoint: E,
    data: PayloadOf<E['request']>,
    options?: RequestOptions,
  ): Promise<PayloadOf<E['response']>>;
}

/** What an endpoint handler may use. */
export interface RequestContext {
  readonly correlationId: string | undefined;
  readonly traceparent: string | undefined;
}

export type EndpointHandler<E extends EndpointContract> = (
  request: PayloadOf<E['request']>,
  context: RequestContext,
) => Promise<PayloadOf<E['response']>>;

// ───────────────────────────── Fan-out ─────────────────────────────

/**
 * Best-effort, not persisted notifications (core NATS): every listener connected at the time gets
 * a copy; nobody gets what was sent while disconnected.
 */
export interface Broadcaster {
  broadcast<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: { subject: string; causedBy?: Envelope },
  ): void;
  listen<C extends MessageContract>(
    contract: C,
    subject: string,
    handler: (event: Envelope<PayloadOf<C>>) => void,
  ): { unsubscribe(): void };
}
