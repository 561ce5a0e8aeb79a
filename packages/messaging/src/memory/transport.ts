import { randomUUID } from 'node:crypto';
import type { Tracer } from '@opentelemetry/api';
import { pino, type Level, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { defaultRetryPolicy, retryDelay } from '../backoff.ts';
import { orderingKeyOf } from '../consumer.ts';
import type { MessageContract, PayloadOf } from '../contract.ts';
import type { DeadLetterStore } from '../dead-letters.ts';
import {
  createEnvelope,
  encodeData,
  encodeHeaderValue,
  envelopeHeaders,
  Header,
  publishedEnvelope,
  readEnvelope,
  utf8Bytes,
  type Envelope,
} from '../envelope.ts';
import {
  ConcurrencyError,
  EndpointError,
  ErrorCode,
  isTransient,
  MessagingError,
  NoRespondersError,
  PublishError,
  RemoteError,
  TimeoutError,
  ValidationError,
} from '../errors.ts';
import { consumerPipeline } from '../pipeline.ts';
import { fallbackMsgId } from '../publisher.ts';
import type { StreamDeclaration } from '../topology.ts';
import type { Transport } from '../transport.ts';
import type {
  BatchItem,
  ConsumerSpec,
  Delivery,
  DeliveryHandler,
  EndpointContract,
  EndpointHandler,
  PublishOptions,
  PublishReceipt,
  RequestOptions,
  RetryPolicy,
  RunningConsumer,
} from '../types.ts';
import {
  headerValue,
  type BrokerDelivery,
  type BusReply,
  type BusRequest,
  type Durable,
  type DurableSubscriber,
  type HeaderEntries,
  type MemoryBroker,
  type StoredMessage,
} from './broker.ts';

export interface MemoryTransportOptions {
  /** `ce-source` of what this "process" publishes. */
  source: string;
  logger?: Logger;
  /** Prometheus registry for consumer metrics (default: a private one). */
  metrics?: Registry;
  tracer?: Tracer;
}

const STOP_NAK_DELAY_MS = 50;

/** The headers of an envelope as stored, without the de-duplication id (kept beside the message). */
function headersOf(envelope: Envelope): HeaderEntries {
  const h = envelopeHeaders(envelope);
  const entries: [string, string][] = [];
  for (const name of h.keys()) if (name !== Header.MsgId) entries.push([name, h.get(name)]);
  return entries;
}

/** Whether the message a duplicate points at is this event's own earlier copy (see `isOwnCopy`). */
function isOwnCopy(message: StoredMessage, subject: string, envelope: Envelope): boolean {
  return (
    message.subject === subject &&
    headerValue(message.headers, Header.Source) === encodeHeaderValue(envelope.source) &&
    headerValue(message.headers, Header.Id) === encodeHeaderValue(envelope.id)
  );
}

/**
 * {@link Transport} in this process, over a {@link MemoryBroker} that several transports (simulated
 * processes) share: for unit tests that need a broker's behaviour without one. It passes the transport
 * conformance suite and runs the same consumer pipeline as the other transports; nothing it stores
 * survives the broker object (see docs/delivery-semantics.md).
 */
export class MemoryTransport implements Transport {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly #consumers = new Set<MemoryConsumer>();
  readonly #endpoints: (() => void)[] = [];
  readonly #listeners = new Set<{ unsubscribe(): void }>();
  readonly #calls = new Set<(error: Error) => void>();
  #answering = 0;
  readonly #idle: (() => void)[] = [];
  #crashed = false;

  constructor(
    readonly broker: MemoryBroker,
    private readonly options: MemoryTransportOptions,
  ) {
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.registry = options.metrics ?? new Registry();
  }

  /** One dead-letter store per broker, as one dead-letter stream serves every process. */
  get deadLetters(): DeadLetterStore {
    return this.broker.deadLetters;
  }

  /** The consumers started by {@link consume} and not stopped yet. */
  get consumers(): readonly RunningConsumer[] {
    return [...this.#consumers];
  }

  #alive(what: string): void {
    if (this.#crashed) throw new MessagingError(ErrorCode.Closed, `${what}: the transport crashed`);
  }

  async provision(streams: readonly StreamDeclaration[]): Promise<void> {
    this.#alive('provision');
    for (const stream of streams) this.broker.provision(stream);
  }

  publish<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: PublishOptions,
  ): Promise<PublishReceipt> {
    try {
      contract.parse(data);
      const envelope = publishedEnvelope(contract.type, this.options.source, data, options);
      return Promise.resolve(this.#store(envelope, options));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #store(envelope: Envelope, options: PublishOptions): PublishReceipt {
    const subject = options.subject;
    if (this.#crashed)
      throw new PublishError(subject, 'the transport crashed', {
        cause: new MessagingError(ErrorCode.Closed, 'connection closed'),
      });
    const headers = headersOf(envelope);
    const body = utf8Bytes(encodeData(envelope.data));
    let msgId = envelope.id;
    let preempted = false;
    for (let fallbacks = 0; ;) {
      let stored;
      try {
        stored = this.broker.publish(subject, headers, body, msgId, options.expectedLastSubjectSequence);
      } catch (error) {
        if (error instanceof ConcurrencyError || error instanceof PublishError) throw error;
        throw new PublishError(subject, (error as Error).message, { cause: error });
      }
      const fallback = stored.duplicate ? fallbackMsgId(envelope, subject, fallbacks) : undefined;
      if (fallback !== undefined && !isOwnCopy(stored.message, subject, envelope)) {
        // Another message took the id first (the window is per stream): stored under the next id.
        preempted = true;
        fallbacks += 1;
        msgId = fallback;
        continue;
      }
      return {
        stream: stored.stream,
        seq: stored.message.seq,
        duplicate: stored.duplicate,
        id: envelope.id,
        ...(preempted && { preempted }),
      };
    }
  }

  async publishBatch(
    items: readonly BatchItem[],
    options: { maxInFlight?: number; timeoutMs?: number } = {},
  ): Promise<PublishReceipt[]> {
    // Validate everything first: a batch with one bad payload sends nothing.
    for (const item of items) item.contract.parse(item.data);
    const receipts: PublishReceipt[] = [];
    let failure: Error | undefined;
    for (const item of items) {
      try {
        receipts.push(
          await this.publish(item.contract, item.data, {
            ...item.options,
            ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
          }),
        );
      } catch (error) {
        failure ??= error instanceof Error ? error : new Error(String(error));
      }
    }
    if (failure !== undefined) throw failure;
    return receipts;
  }

  async consume(spec: ConsumerSpec): Promise<RunningConsumer> {
    if (!/^[A-Za-z0-9_-]+$/.test(spec.name)) {
      throw new MessagingError(ErrorCode.Config, `consumer name "${spec.name}" must match [A-Za-z0-9_-]+`);
    }
    this.#alive('consume');
    const maxDeliver = spec.maxDeliver ?? 5;
    // The broker's cap sits above ours, as on JetStream: a message whose handler crashed the process
    // on its last attempts is dead-lettered on the next delivery.
    const serverMaxDeliver = maxDeliver + 3;
    const ackWaitMs = spec.ackWaitMs ?? 30_000;
    const durable = this.broker.durable({
      stream: spec.stream,
      name: spec.name,
      ackWaitMs,
      maxDeliver: serverMaxDeliver,
      maxAckPending: spec.maxAckPending ?? 1_000,
      orderingKey: orderingKeyOf(spec.orderingKey),
      ...(spec.filterSubject !== undefined && { filterSubject: spec.filterSubject }),
      ...(spec.deliverPolicy !== undefined && { deliverPolicy: spec.deliverPolicy }),
    });
    const chain = consumerPipeline({
      spec,
      publisher: this,
      writeDeadLetter: (delivery, error) => this.broker.deadLetters.write(delivery, error),
      serverMaxDeliver,
      registry: this.registry,
      ...(this.options.tracer && { tracer: this.options.tracer }),
    });
    const consumer = new MemoryConsumer({
      broker: this.broker,
      durable,
      spec,
      chain,
      concurrency: spec.concurrency ?? 16,
      ackWaitMs,
      maxDeliver,
      retry: { ...defaultRetryPolicy, ...spec.retry },
      logger: this.logger.child({ consumer: spec.name }),
    });
    this.#consumers.add(consumer);
    void consumer.closed.then(() => this.#consumers.delete(consumer));
    consumer.start();
    return consumer;
  }

  request<E extends EndpointContract>(
    endpoint: E,
    data: PayloadOf<E['request']>,
    options: RequestOptions = {},
  ): Promise<PayloadOf<E['response']>> {
    try {
      this.#alive(`request to ${endpoint.subject}`);
      endpoint.request.parse(data);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const timeoutMs = options.timeoutMs ?? 5_000;
    const headers: Record<string, string> = {};
    if (options.causedBy) {
      headers[Header.CorrelationId] = options.causedBy.correlationId;
      if (options.causedBy.traceparent) headers[Header.TraceParent] = options.causedBy.traceparent;
    }
    const request: BusRequest = { body: JSON.stringify(data), headers };
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (settle: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#calls.delete(fail);
        settle();
      };
      const fail = (error: Error) => finish(() => reject(error));
      const timer = setTimeout(() => fail(new TimeoutError(endpoint.subject, timeoutMs)), timeoutMs);
      this.#calls.add(fail);
      // While the broker is down the request waits, as a reconnecting client buffers it.
      void this.broker.whenAvailable().then(async () => {
        if (done) return;
        const responder = this.broker.responder(endpoint.subject);
        if (!responder) return fail(new NoRespondersError(endpoint.subject));
        const reply = await responder.answer(request);
        if (reply === undefined) return; // the instance crashed: the caller times out
        try {
          const answer = this.#readReply(endpoint, reply);
          finish(() => resolve(answer));
        } catch (error) {
          fail(error as Error);
        }
      });
    });
  }

  #readReply<E extends EndpointContract>(endpoint: E, reply: BusReply): PayloadOf<E['response']> {
    const body: unknown = JSON.parse(reply.body);
    if (reply.status !== undefined) {
      const b = (body ?? {}) as { code?: string; message?: string; details?: unknown };
      throw new RemoteError(
        endpoint.subject,
        reply.status,
        b.code ?? `SERVICE_ERROR_${reply.status}`,
        b.message ?? '',
        b.details,
      );
    }
    return endpoint.response.parse(body) as PayloadOf<E['response']>;
  }

  /**
   * Answers requests on `endpoint.subject`, round robin across every transport of the broker serving
   * it. Errors answer as `RpcServer`'s do: 400 for validation, an {@link EndpointError}'s own status
   * and code, 503 `DEPENDENCY_UNAVAILABLE` for a transient failure, 500 `INTERNAL` otherwise.
   */
  serve<E extends EndpointContract>(endpoint: E, handler: EndpointHandler<E>): void {
    this.#alive(`serve ${endpoint.subject}`);
    this.#endpoints.push(
      this.broker.serve(endpoint.subject, {
        answer: async (request) => {
          this.#answering++;
          try {
            const reply = await this.#answer(endpoint, handler, request);
            return this.#crashed ? undefined : reply;
          } finally {
            if (--this.#answering === 0) for (const resolve of this.#idle.splice(0)) resolve();
          }
        },
      }),
    );
  }

  async #answer<E extends EndpointContract>(
    endpoint: E,
    handler: EndpointHandler<E>,
    request: BusRequest,
  ): Promise<BusReply> {
    const fail = (status: number, code: string, message: string, details?: unknown): BusReply => ({
      status,
      body: JSON.stringify({ code, message, details }),
    });
    let body: unknown;
    try {
      body = JSON.parse(request.body);
    } catch {
      return fail(400, 'DECODE_FAILED', 'request body is not valid JSON');
    }
    try {
      const parsed = endpoint.request.parse(body) as PayloadOf<E['request']>;
      const response = await handler(parsed, {
        correlationId: request.headers[Header.CorrelationId],
        traceparent: request.headers[Header.TraceParent],
      });
      return { body: JSON.stringify(endpoint.response.parse(response)) };
    } catch (error) {
      if (error instanceof ValidationError) return fail(400, error.code, error.message, error.issues);
      if (error instanceof EndpointError) return fail(error.status, error.code, error.message, error.details);
      this.logger.error({ err: error, endpoint: endpoint.name }, 'endpoint failed');
      if (isTransient(error))
        return fail(503, 'DEPENDENCY_UNAVAILABLE', 'a dependency of the service is unavailable; retry later');
      const ref = randomUUID();
      return fail(500, 'INTERNAL', `internal error (ref ${ref})`, { ref });
    }
  }

  broadcast<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: { subject: string; causedBy?: Envelope },
  ): void {
    contract.parse(data);
    if (this.#crashed) return;
    const envelope = createEnvelope({
      type: contract.type,
      source: this.options.source,
      data,
      ...(options.causedBy && { causedBy: options.causedBy }),
    });
    this.broker.broadcast(options.subject, headersOf(envelope), utf8Bytes(encodeData(data)));
  }

  listen<C extends MessageContract>(
    contract: C,
    subject: string,
    handler: (event: Envelope<PayloadOf<C>>) => void,
  ): { unsubscribe(): void } {
    this.#alive(`listen on ${subject}`);
    const receive = (received: string, headers: HeaderEntries, body: Uint8Array) => {
      try {
        const envelope = readEnvelope({ header: (name) => headerValue(headers, name) }, body);
        if (envelope.type !== contract.type) return;
        contract.parse(envelope.data);
        handler(envelope as Envelope<PayloadOf<C>>);
      } catch (error) {
        this.logger.warn({ err: error, subject: received }, 'invalid notification dropped');
      }
    };
    const stop = this.broker.listen({
      subject,
      // Handed over after the sender's turn, as a message arrives from the network.
      deliver: (received, headers, body) => queueMicrotask(() => receive(received, headers, body)),
    });
    const listener = {
      unsubscribe: () => {
        this.#listeners.delete(listener);
        stop();
      },
    };
    this.#listeners.add(listener);
    return listener;
  }

  /**
   * Drains consumers (up to `deadlineMs`), stops listeners and endpoints, and waits for the requests
   * an endpoint accepted. Publishing still works afterwards, as the NATS connection stays its owner's.
   */
  async close(options: { deadlineMs?: number } = {}): Promise<void> {
    if (this.#crashed) return; // nothing left to drain; its handlers may never end
    await Promise.all([...this.#consumers].map((c) => c.stop(options)));
    for (const listener of [...this.#listeners]) listener.unsubscribe();
    for (const stop of this.#endpoints.splice(0)) stop();
    if (this.#answering > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    for (const fail of [...this.#calls]) fail(new MessagingError(ErrorCode.Closed, 'transport closed'));
  }

  /**
   * Ends this transport as a process death would: nothing is settled or drained, what its consumers
   * held goes to another instance after its ack wait, requests it was answering get no reply, and it
   * can do nothing afterwards.
   */
  crash(): void {
    this.#crashed = true;
    for (const consumer of this.#consumers) consumer.crash();
    for (const listener of [...this.#listeners]) listener.unsubscribe();
    for (const stop of this.#endpoints.splice(0)) stop();
  }
}

interface MemoryConsumerOptions {
  broker: MemoryBroker;
  durable: Durable;
  spec: ConsumerSpec;
  chain: DeliveryHandler;
  concurrency: number;
  ackWaitMs: number;
  maxDeliver: number;
  retry: RetryPolicy;
  logger: Logger;
}

/**
 * One process's share of a durable: the broker hands it up to `concurrency` messages at once (there
 * is no network to prefetch across), each runs through the pipeline at once, and the runtime extends
 * the ack deadline of what it holds every `ackWaitMs / 3`. Settlement as on JetStream: a delivery the
 * chain left unsettled is acked when it resolved, nak'd with backoff when it threw.
 */
class MemoryConsumer implements RunningConsumer, DurableSubscriber {
  readonly name: string;
  readonly closed: Promise<void>;
  readonly capacity: number;
  #resolveClosed!: () => void;
  readonly #inFlight = new Set<MemoryDelivery>();
  #stopping = false;
  #crashed = false;
  #idle: (() => void) | undefined;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(private readonly options: MemoryConsumerOptions) {
    this.name = options.spec.name;
    this.capacity = options.concurrency;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    const beat = Math.max(250, Math.min(options.ackWaitMs / 3, 10_000));
    this.#heartbeat = setInterval(() => {
      for (const delivery of this.#inFlight) delivery.working();
    }, beat);
    this.#heartbeat.unref();
  }

  get connected(): boolean {
    return !this.#crashed;
  }

  /** True while the consumer is subscribed and the broker is up. */
  get consuming(): boolean {
    return !this.#stopping && this.options.broker.available;
  }

  start(): void {
    this.options.durable.subscribe(this);
  }

  deliver(message: BrokerDelivery): void {
    const delivery = new MemoryDelivery(message, this.options);
    this.#inFlight.add(delivery);
    // Run after the broker's turn, as a message pulled from the network would.
    queueMicrotask(() => void this.#run(delivery));
  }

  async #run(delivery: MemoryDelivery): Promise<void> {
    try {
      await this.options.chain(delivery);
      delivery.ack();
    } catch {
      delivery.nak(retryDelay(this.options.retry, delivery.deliveryCount));
    } finally {
      this.#inFlight.delete(delivery);
      if (this.#inFlight.size === 0) this.#idle?.();
    }
  }

  async stop(options: { deadlineMs?: number } = {}): Promise<void> {
    if (this.#stopping) return this.closed;
    this.#stopping = true;
    this.options.durable.unsubscribe(this);
    if (this.#inFlight.size > 0) {
      const idle = new Promise<void>((resolve) => (this.#idle = resolve));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        idle,
        new Promise((resolve) => (timer = setTimeout(resolve, options.deadlineMs ?? 10_000))),
      ]);
      clearTimeout(timer);
      for (const delivery of this.#inFlight) {
        this.options.logger.warn(
          { seq: delivery.streamSequence },
          'handler still running at drain deadline; nak',
        );
        delivery.nak(STOP_NAK_DELAY_MS);
      }
    }
    clearInterval(this.#heartbeat);
    this.#resolveClosed();
  }

  /** Gone without a word: nothing settled; the broker takes the messages back after their ack wait. */
  crash(): void {
    this.#crashed = true;
    this.#stopping = true;
    this.options.durable.unsubscribe(this);
    clearInterval(this.#heartbeat);
    this.#resolveClosed();
  }
}

/** A {@link Delivery} of a {@link MemoryBroker} message. */
class MemoryDelivery implements Delivery {
  envelope: Envelope | undefined;
  contract: MessageContract | undefined;
  settled: 'ack' | 'nak' | 'term' | undefined;
  #locals: Map<string, unknown> | undefined;
  #logger: Logger | undefined;

  constructor(
    private readonly message: BrokerDelivery,
    private readonly options: MemoryConsumerOptions,
  ) {}

  get locals(): Map<string, unknown> {
    return (this.#locals ??= new Map());
  }
  get stream(): string {
    return this.options.spec.stream;
  }
  get consumer(): string {
    return this.options.spec.name;
  }
  /** For a redriven message, the subject it was first published on. */
  get subject(): string {
    return this.message.message.subject;
  }
  /** For a redriven message, its sequence in the original stream. */
  get streamSequence(): number {
    return this.message.message.seq;
  }
  get deliveryCount(): number {
    return this.message.deliveryCount;
  }
  get redriven(): boolean {
    return this.message.redriven;
  }
  get body(): Uint8Array {
    return this.message.message.body;
  }
  get maxDeliver(): number {
    return this.options.maxDeliver;
  }
  get retry(): RetryPolicy {
    return this.options.retry;
  }
  get logger(): Logger {
    return (this.#logger ??= this.options.logger.child({
      subject: this.subject,
      seq: this.streamSequence,
      deliveryCount: this.deliveryCount,
      ...(this.envelope && {
        type: this.envelope.type,
        eventId: this.envelope.id,
        correlationId: this.envelope.correlationId,
      }),
    }));
  }
  isLevelEnabled(level: Level): boolean {
    return (this.#logger ?? this.options.logger).isLevelEnabled(level);
  }
  header(name: string): string | undefined {
    return headerValue(this.message.message.headers, name);
  }
  headerEntries(): [string, string][] {
    return this.message.message.headers.map(([name, value]) => [name, value]);
  }
  working(): void {
    if (!this.settled) this.message.working();
  }
  ack(): void {
    if (this.settled) return;
    this.settled = 'ack';
    this.message.ack();
  }
  nak(delayMs: number): void {
    if (this.settled) return;
    this.settled = 'nak';
    this.message.nak(Math.max(1, Math.round(delayMs)));
  }
  term(): void {
    if (this.settled) return;
    this.settled = 'term';
    this.message.term();
  }
}
