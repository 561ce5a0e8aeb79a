import { randomUUID } from 'node:crypto';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Message, Options } from 'amqplib';
import type { Tracer } from '@opentelemetry/api';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { defaultRetryPolicy } from '../backoff.ts';
import type { MessageContract, PayloadOf } from '../contract.ts';
import {
  DeadLetterError,
  DeadLetterHeader,
  type DeadLetter,
  type DeadLetterSource,
  type DeadLetterStore,
} from '../dead-letters.ts';
import {
  createEnvelope,
  encodeData,
  envelopeHeaders,
  Header,
  readEnvelope,
  type Envelope,
} from '../envelope.ts';
import {
  EndpointError,
  isTransient,
  MessagingError,
  NoRespondersError,
  PublishError,
  RemoteError,
  TimeoutError,
  ValidationError,
} from '../errors.ts';
import type { IdempotencyStore } from '../middleware/idempotency.ts';
import { consumerPipeline } from '../pipeline.ts';
import { SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER } from '../rpc.ts';
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
import { orderingKeyOf } from '../consumer.ts';

/**
 * Names of the RabbitMQ topology, from one builder. Events go to one durable topic exchange
 * (`orderflow.events`, routing key = the subject); each declared stream is a topic exchange bound to
 * it for its subjects and a RabbitMQ stream queue that retains the log; each consumer is a quorum
 * queue bound to its stream's exchange, with a retry queue (paced retries by per-message TTL, dead-
 * lettered back to the consumer's queue) and one shared dead-letter queue.
 */
export const RabbitTopology = {
  events: 'orderflow.events',
  broadcast: 'orderflow.broadcast',
  streamExchange: (stream: string) => `stream.${stream}`,
  logQueue: (stream: string) => `log.${stream}`,
  consumerQueue: (stream: string, consumer: string) => `${stream}.${consumer}`,
  retryQueue: (stream: string, consumer: string) => `${stream}.${consumer}.retry`,
  deadLetterQueue: 'orderflow.deadletters',
  endpointQueue: (subject: string) => `rpc.${subject}`,
} as const;

/** A NATS subject pattern as an AMQP topic binding key (`*` stays, `>` becomes `#`). */
export function bindingKey(subject: string): string {
  return subject.replace(/(^|\.)>$/, '$1#');
}

const ATTEMPTS_HEADER = 'Orderflow-Attempts';
const REDRIVEN_HEADER = 'Orderflow-Redriven';
const DL_SEQ_HEADER = 'Orderflow-DL-Seq';

export interface RabbitTransportOptions {
  /** `ce-source` of what this process publishes. */
  source: string;
  logger?: Logger;
  metrics?: Registry;
  tracer?: Tracer;
  idempotency?: IdempotencyStore;
}

type Table = Record<string, unknown>;

function headerOf(table: Table | undefined, name: string): string | undefined {
  const value = table?.[name] ?? table?.[name.toLowerCase()];
  if (value === undefined || value === null || value === '') return undefined;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return typeof value === 'object' ? JSON.stringify(value) : (value as number).toString();
}

/** {@link Transport} on RabbitMQ (AMQP 0-9-1, amqplib): see docs/delivery-semantics.md. */
export class RabbitTransport implements Transport {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly deadLetters: RabbitDeadLetters;
  readonly #consumers = new Set<RabbitConsumer>();
  readonly #endpoints: { channel: Channel; tag: string }[] = [];
  readonly #listeners = new Set<{ unsubscribe(): void }>();
  #running = 0;
  readonly #idle: (() => void)[] = [];
  readonly #rpc: RpcChannel;
  #serverChannel: Promise<Channel> | undefined;

  private constructor(
    readonly connection: ChannelModel,
    private readonly publisher: ConfirmChannel,
    private readonly plain: Channel,
    rpc: Channel,
    private readonly options: RabbitTransportOptions,
  ) {
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.registry = options.metrics ?? new Registry();
    this.deadLetters = new RabbitDeadLetters(connection, publisher);
    this.#rpc = new RpcChannel(rpc);
  }

  static async create(connection: ChannelModel, options: RabbitTransportOptions): Promise<RabbitTransport> {
    const publisher = await connection.createConfirmChannel();
    const plain = await connection.createChannel();
    const rpc = await connection.createChannel();
    await publisher.assertExchange(RabbitTopology.events, 'topic', { durable: true });
    await publisher.assertExchange(RabbitTopology.broadcast, 'topic', { durable: false });
    await publisher.assertQueue(RabbitTopology.deadLetterQueue, {
      durable: true,
      arguments: { 'x-queue-type': 'quorum' },
    });
    const transport = new RabbitTransport(connection, publisher, plain, rpc, options);
    await transport.#rpc.start();
    return transport;
  }

  async provision(streams: readonly StreamDeclaration[]): Promise<void> {
    const ch = this.publisher;
    for (const stream of streams) {
      const exchange = RabbitTopology.streamExchange(stream.name);
      await ch.assertExchange(exchange, 'topic', { durable: true });
      const log = RabbitTopology.logQueue(stream.name);
      await ch.assertQueue(log, {
        durable: true,
        arguments: {
          'x-queue-type': 'stream',
          ...(stream.maxAgeMs !== undefined && { 'x-max-age': `${Math.ceil(stream.maxAgeMs / 1000)}s` }),
        },
      });
      await ch.bindQueue(log, exchange, '#');
      for (const subject of stream.subjects)
        await ch.bindExchange(exchange, RabbitTopology.events, bindingKey(subject));
    }
  }

  publish<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: PublishOptions,
  ): Promise<PublishReceipt> {
    if (options.expectedLastSubjectSequence !== undefined) {
      return Promise.reject(
        new MessagingError(
          'UNSUPPORTED',
          'RabbitMQ has no optimistic concurrency on publish (expectedLastSubjectSequence)',
        ),
      );
    }
    let envelope: Envelope;
    try {
      contract.parse(data);
      envelope = createEnvelope({
        type: contract.type,
        source: this.options.source,
        data,
        ...(options.id !== undefined && { id: options.id }),
        ...(options.about !== undefined && { subject: options.about }),
        ...(options.causedBy && { causedBy: options.causedBy }),
      });
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return this.#send(RabbitTopology.events, options.subject, envelope, options.timeoutMs ?? 5_000);
  }

  #send(exchange: string, subject: string, envelope: Envelope, timeoutMs: number): Promise<PublishReceipt> {
    const headers: Table = {};
    const h = envelopeHeaders(envelope);
    for (const name of h.keys()) if (name !== Header.MsgId) headers[name] = h.get(name);
    const body = Buffer.from(encodeData(envelope.data), 'utf8');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new PublishError(subject, `no confirm within ${timeoutMs} ms`, {
              cause: new TimeoutError(subject, timeoutMs),
            }),
          ),
        timeoutMs,
      );
      const sent = this.publisher.publish(
        exchange,
        subject,
        body,
        { persistent: true, messageId: envelope.id, contentType: 'application/json', headers },
        (error) => {
          clearTimeout(timer);
          if (error)
            reject(new PublishError(subject, 'the broker refused the message (nack)', { cause: error }));
          else resolve({ stream: exchange, seq: 0, duplicate: false, id: envelope.id });
        },
      );
      void sent; // amqplib buffers when the socket is busy; the confirm callback settles the promise
    });
  }

  async publishBatch(
    items: readonly BatchItem[],
    options: { maxInFlight?: number; timeoutMs?: number } = {},
  ): Promise<PublishReceipt[]> {
    // Validate everything first: a batch with one bad payload sends nothing.
    for (const item of items) item.contract.parse(item.data);
    const receipts: PublishReceipt[] = [];
    const window = options.maxInFlight ?? 256;
    for (let i = 0; i < items.length; i += window) {
      const slice = items.slice(i, i + window);
      const settled = await Promise.allSettled(
        slice.map((item) =>
          this.publish(item.contract, item.data, {
            ...item.options,
            ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
          }),
        ),
      );
      for (const result of settled) {
        if (result.status === 'rejected') throw result.reason;
        receipts.push(result.value);
      }
    }
    return receipts;
  }

  async consume(spec: ConsumerSpec): Promise<RunningConsumer> {
    if (!/^[A-Za-z0-9_-]+$/.test(spec.name)) {
      throw new MessagingError('INVALID_CONFIG', `consumer name "${spec.name}" must match [A-Za-z0-9_-]+`);
    }
    const maxDeliver = spec.maxDeliver ?? 5;
    const serverMaxDeliver = maxDeliver + 3;
    const queue = RabbitTopology.consumerQueue(spec.stream, spec.name);
    const retryQueue = RabbitTopology.retryQueue(spec.stream, spec.name);
    const ch = await this.connection.createChannel();
    await ch.assertQueue(queue, {
      durable: true,
      arguments: {
        'x-queue-type': 'quorum',
        // The broker's own cap, above the runtime's: a message that crashed its consumers that often
        // is dead-lettered by the broker (reason `delivery_limit`).
        'x-delivery-limit': serverMaxDeliver,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': RabbitTopology.deadLetterQueue,
        ...(spec.orderingKey !== undefined && { 'x-single-active-consumer': true }),
      },
    });
    await ch.assertQueue(retryQueue, {
      durable: true,
      arguments: {
        'x-queue-type': 'quorum',
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': queue,
      },
    });
    await ch.bindQueue(
      queue,
      RabbitTopology.streamExchange(spec.stream),
      bindingKey(spec.filterSubject ?? '>'),
    );
    const concurrency = spec.concurrency ?? 16;
    await ch.prefetch(spec.prefetch ?? Math.max(64, concurrency * 4));
    const chain = consumerPipeline({
      spec,
      publisher: this,
      writeDeadLetter: (delivery, error) => this.deadLetters.write(delivery, error),
      serverMaxDeliver,
      registry: this.registry,
      ...(this.options.tracer && { tracer: this.options.tracer }),
      ...(this.options.idempotency && { idempotency: this.options.idempotency }),
    });
    const consumer = new RabbitConsumer({
      channel: ch,
      publisher: this.publisher,
      queue,
      retryQueue,
      spec,
      chain,
      concurrency,
      maxDeliver,
      retry: { ...defaultRetryPolicy, ...spec.retry },
      logger: this.logger.child({ consumer: spec.name }),
    });
    await consumer.start();
    this.#consumers.add(consumer);
    void consumer.closed.then(() => this.#consumers.delete(consumer));
    return consumer;
  }

  request<E extends EndpointContract>(
    endpoint: E,
    data: PayloadOf<E['request']>,
    options: RequestOptions = {},
  ): Promise<PayloadOf<E['response']>> {
    return this.#rpc.request(endpoint, data, options);
  }

  serve<E extends EndpointContract>(endpoint: E, handler: EndpointHandler<E>): void {
    this.#serverChannel ??= this.connection.createChannel().then(async (ch) => {
      await ch.prefetch(64);
      return ch;
    });
    void this.#serverChannel
      .then(async (ch) => {
        const queue = RabbitTopology.endpointQueue(endpoint.subject);
        // Auto-delete: the queue goes with its last server, so a request to nobody is returned (no responders).
        await ch.assertQueue(queue, { durable: false, autoDelete: true });
        const { consumerTag } = await ch.consume(queue, (msg) => {
          if (!msg) return;
          this.#running++;
          void this.#answer(ch, endpoint, handler, msg).finally(() => {
            ch.ack(msg);
            if (--this.#running === 0) for (const resolve of this.#idle.splice(0)) resolve();
          });
        });
        this.#endpoints.push({ channel: ch, tag: consumerTag });
      })
      .catch((error: unknown) =>
        this.logger.error({ err: error, endpoint: endpoint.name }, 'endpoint failed to start'),
      );
  }

  async #answer<E extends EndpointContract>(
    ch: Channel,
    endpoint: E,
    handler: EndpointHandler<E>,
    msg: ConsumeMessage,
  ): Promise<void> {
    const reply = (body: unknown, error?: { status: number; message: string }) => {
      if (!msg.properties.replyTo) return;
      ch.sendToQueue(msg.properties.replyTo as string, Buffer.from(JSON.stringify(body)), {
        correlationId: msg.properties.correlationId as string,
        ...(error && {
          headers: {
            [SERVICE_ERROR_HEADER]: error.message.replace(/[\r\n]+/g, ' '),
            [SERVICE_ERROR_CODE_HEADER]: String(error.status),
          },
        }),
      });
    };
    const fail = (status: number, code: string, message: string, details?: unknown) =>
      reply({ code, message, details }, { status, message });
    let request: unknown;
    try {
      request = JSON.parse(msg.content.toString('utf8'));
    } catch {
      return fail(400, 'DECODE_FAILED', 'request body is not valid JSON');
    }
    const headers = msg.properties.headers;
    try {
      const parsed = endpoint.request.parse(request) as PayloadOf<E['request']>;
      const response = await handler(parsed, {
        correlationId: headerOf(headers, Header.CorrelationId),
        traceparent: headerOf(headers, Header.TraceParent),
      });
      reply(endpoint.response.parse(response));
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
    const envelope = createEnvelope({
      type: contract.type,
      source: this.options.source,
      data,
      ...(options.causedBy && { causedBy: options.causedBy }),
    });
    const headers: Table = {};
    const h = envelopeHeaders(envelope);
    for (const name of h.keys()) headers[name] = h.get(name);
    this.plain.publish(RabbitTopology.broadcast, options.subject, Buffer.from(encodeData(data)), { headers });
  }

  listen<C extends MessageContract>(
    contract: C,
    subject: string,
    handler: (event: Envelope<PayloadOf<C>>) => void,
  ): { unsubscribe(): void } {
    let tag: string | undefined;
    let stopped = false;
    const ready = (async () => {
      const { queue } = await this.plain.assertQueue('', { exclusive: true, autoDelete: true });
      await this.plain.bindQueue(queue, RabbitTopology.broadcast, bindingKey(subject));
      const consumed = await this.plain.consume(
        queue,
        (msg) => {
          if (!msg) return;
          try {
            const table = msg.properties.headers;
            const envelope = readEnvelope({ header: (name) => headerOf(table, name) }, msg.content);
            if (envelope.type !== contract.type) return;
            contract.parse(envelope.data);
            handler(envelope as Envelope<PayloadOf<C>>);
          } catch (error) {
            this.logger.warn({ err: error, subject }, 'invalid notification dropped');
          }
        },
        { noAck: true },
      );
      tag = consumed.consumerTag;
      if (stopped) await this.plain.cancel(tag);
    })().catch((error: unknown) => this.logger.warn({ err: error, subject }, 'listener failed'));
    const listener = {
      unsubscribe: () => {
        stopped = true;
        this.#listeners.delete(listener);
        if (tag) void this.plain.cancel(tag).catch(() => undefined);
        void ready;
      },
    };
    this.#listeners.add(listener);
    return listener;
  }

  async close(options: { deadlineMs?: number } = {}): Promise<void> {
    await Promise.all([...this.#consumers].map((c) => c.stop(options)));
    for (const listener of [...this.#listeners]) listener.unsubscribe();
    for (const { channel, tag } of this.#endpoints.splice(0))
      await channel.cancel(tag).catch(() => undefined);
    if (this.#running > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    this.#rpc.close();
  }
}

interface PendingCall {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
  subject: string;
  response: MessageContract;
}

/** Request-reply over direct reply-to (`amq.rabbitmq.reply-to`): no reply queue to declare. */
class RpcChannel {
  readonly #pending = new Map<string, PendingCall>();

  constructor(private readonly channel: Channel) {}

  async start(): Promise<void> {
    // A request with `mandatory` that no queue takes (no endpoint serving) comes back: no responders.
    this.channel.on('return', (msg: ConsumeMessage) => {
      const id = msg.properties.correlationId as string;
      const call = this.#pending.get(id);
      if (!call) return;
      this.#settle(id);
      call.reject(new NoRespondersError(call.subject));
    });
    await this.channel.consume(
      'amq.rabbitmq.reply-to',
      (msg) => {
        if (!msg) return;
        const id = msg.properties.correlationId as string;
        const call = this.#pending.get(id);
        if (!call) return;
        this.#settle(id);
        const headers = msg.properties.headers;
        const status = headerOf(headers, SERVICE_ERROR_CODE_HEADER);
        let body: unknown;
        try {
          body = JSON.parse(msg.content.toString('utf8'));
        } catch (error) {
          return call.reject(error as Error);
        }
        if (status) {
          const b = (body ?? {}) as { code?: string; message?: string; details?: unknown };
          return call.reject(
            new RemoteError(
              call.subject,
              Number(status),
              b.code ?? `SERVICE_ERROR_${status}`,
              b.message ?? '',
              b.details,
            ),
          );
        }
        try {
          call.resolve(call.response.parse(body));
        } catch (error) {
          call.reject(error as Error);
        }
      },
      { noAck: true },
    );
  }

  #settle(id: string): void {
    const call = this.#pending.get(id);
    if (call) clearTimeout(call.timer);
    this.#pending.delete(id);
  }

  request<E extends EndpointContract>(
    endpoint: E,
    data: PayloadOf<E['request']>,
    options: RequestOptions,
  ): Promise<PayloadOf<E['response']>> {
    try {
      endpoint.request.parse(data);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const timeoutMs = options.timeoutMs ?? 5_000;
    const id = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new TimeoutError(endpoint.subject, timeoutMs));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: resolve,
        reject,
        timer,
        subject: endpoint.subject,
        response: endpoint.response,
      });
      const headers: Table = {};
      if (options.causedBy) {
        headers[Header.CorrelationId] = options.causedBy.correlationId;
        if (options.causedBy.traceparent) headers[Header.TraceParent] = options.causedBy.traceparent;
      }
      this.channel.publish(
        '',
        RabbitTopology.endpointQueue(endpoint.subject),
        Buffer.from(JSON.stringify(data)),
        {
          replyTo: 'amq.rabbitmq.reply-to',
          correlationId: id,
          mandatory: true,
          headers,
          expiration: String(timeoutMs),
        },
      );
    });
  }

  close(): void {
    for (const [id, call] of this.#pending) {
      this.#settle(id);
      call.reject(new TimeoutError(call.subject, 0));
    }
  }
}

interface RabbitConsumerOptions {
  channel: Channel;
  publisher: ConfirmChannel;
  queue: string;
  retryQueue: string;
  spec: ConsumerSpec;
  chain: DeliveryHandler;
  concurrency: number;
  maxDeliver: number;
  retry: RetryPolicy;
  logger: Logger;
}

/**
 * One consumer on its quorum queue. Without an ordering key, instances compete for messages (load
 * balancing) and a failed attempt is republished to the retry queue with the backoff as its TTL. With
 * an ordering key, the queue has a single active consumer (the others stand by), messages of one key
 * run one at a time in queue order in this process, and a failed attempt is retried in place after
 * its backoff, so later messages of the key wait for it.
 */
class RabbitConsumer implements RunningConsumer {
  readonly name: string;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;
  #tag: string | undefined;
  #stopping = false;
  #running = 0;
  readonly #waiters: (() => void)[] = [];
  readonly #inFlight = new Set<AmqpDelivery>();
  readonly #lanes = new Map<string, Promise<void>>();
  readonly #keyOf;
  #idle: (() => void) | undefined;

  constructor(private readonly options: RabbitConsumerOptions) {
    this.name = options.spec.name;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#keyOf = orderingKeyOf(options.spec.orderingKey);
    options.channel.on('close', () => {
      this.#stopping = true;
      this.#resolveClosed();
    });
  }

  get consuming(): boolean {
    return !this.#stopping && this.#tag !== undefined;
  }

  async start(): Promise<void> {
    const { consumerTag } = await this.options.channel.consume(this.options.queue, (msg) => {
      if (msg) this.#admit(msg);
    });
    this.#tag = consumerTag;
  }

  #admit(msg: ConsumeMessage): void {
    if (this.#stopping) {
      this.options.channel.nack(msg, false, true);
      return;
    }
    const delivery = new AmqpDelivery(msg, this.options);
    const key = this.#keyOf?.(delivery);
    if (key === undefined) {
      void this.#slot().then(() => this.#run(delivery, false));
      return;
    }
    const previous = this.#lanes.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      await this.#slot();
      await this.#run(delivery, true);
    });
    this.#lanes.set(key, next);
    void next.then(() => {
      if (this.#lanes.get(key) === next) this.#lanes.delete(key);
    });
  }

  #slot(): Promise<void> {
    if (this.#running < this.options.concurrency) {
      this.#running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async #run(first: AmqpDelivery, inPlace: boolean): Promise<void> {
    let delivery = first;
    this.#inFlight.add(first);
    try {
      for (;;) {
        if (this.#stopping) return delivery.requeue();
        try {
          await this.options.chain(delivery);
          delivery.ack();
        } catch {
          if (!delivery.settled) delivery.nak(0);
        }
        if (delivery.settled !== 'nak' || !inPlace) {
          if (delivery.settled === 'nak') await delivery.republishForRetry();
          return;
        }
        // In order: hold the message and run it again after its backoff (later ones of the key wait).
        await new Promise((resolve) => setTimeout(resolve, delivery.nakDelayMs));
        delivery = delivery.again();
      }
    } finally {
      this.#inFlight.delete(first);
      const waiter = this.#waiters.shift();
      if (waiter) waiter();
      else this.#running--;
      if (this.#inFlight.size === 0) this.#idle?.();
    }
  }

  async stop(options: { deadlineMs?: number } = {}): Promise<void> {
    if (this.#stopping) return this.closed;
    this.#stopping = true;
    if (this.#tag) await this.options.channel.cancel(this.#tag).catch(() => undefined);
    if (this.#inFlight.size > 0) {
      const idle = new Promise<void>((resolve) => (this.#idle = resolve));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        idle,
        new Promise((resolve) => (timer = setTimeout(resolve, options.deadlineMs ?? 10_000))),
      ]);
      clearTimeout(timer);
    }
    // Closing the channel returns every message still held (waiting or past the deadline) to the queue.
    await this.options.channel.close().catch(() => undefined);
    this.#resolveClosed();
  }
}

/** A {@link Delivery} of an AMQP message; the pipeline decodes and settles it like a JetStream one. */
class AmqpDelivery implements Delivery {
  settled: 'ack' | 'nak' | 'term' | undefined;
  envelope: Envelope | undefined;
  contract: MessageContract | undefined;
  readonly locals = new Map<string, unknown>();
  readonly logger: Logger;
  nakDelayMs = 0;
  readonly #headers: Table;
  #acked = false;

  constructor(
    private readonly msg: ConsumeMessage,
    private readonly options: RabbitConsumerOptions,
    readonly deliveryCount = RabbitDeliveryCount(msg),
  ) {
    this.#headers = msg.properties.headers ?? {};
    this.logger = options.logger.child({ subject: this.subject, deliveries: deliveryCount });
  }

  get stream(): string {
    return this.options.spec.stream;
  }
  get consumer(): string {
    return this.options.spec.name;
  }
  get subject(): string {
    return this.msg.fields.routingKey === this.options.queue
      ? (headerOf(this.#headers, DeadLetterHeader.Subject) ?? this.msg.fields.routingKey)
      : this.msg.fields.routingKey;
  }
  /** RabbitMQ queues have no sequence numbers: always 0 (see docs/delivery-semantics.md). */
  readonly streamSequence = 0;
  get redriven(): boolean {
    return headerOf(this.#headers, REDRIVEN_HEADER) === '1';
  }
  get body(): Uint8Array {
    return this.msg.content;
  }
  get maxDeliver(): number {
    return this.options.maxDeliver;
  }
  get retry(): RetryPolicy {
    return this.options.retry;
  }
  header(name: string): string | undefined {
    return headerOf(this.#headers, name);
  }
  headerEntries(): [string, string][] {
    const entries: [string, string][] = [];
    for (const name of Object.keys(this.#headers)) {
      if (name.startsWith('x-')) continue;
      const value = headerOf(this.#headers, name);
      if (value !== undefined) entries.push([name, value]);
    }
    return entries;
  }
  /** No ack deadline to extend: RabbitMQ holds an unacked message until the channel closes. */
  working(): void {}
  ack(): void {
    if (this.settled) return;
    this.settled = 'ack';
    this.#ackOnce();
  }
  nak(delayMs: number): void {
    if (this.settled) return;
    this.settled = 'nak';
    this.nakDelayMs = delayMs;
  }
  term(): void {
    if (this.settled) return;
    this.settled = 'term';
    this.#ackOnce();
  }
  #ackOnce(): void {
    if (this.#acked) return;
    this.#acked = true;
    this.options.channel.ack(this.msg);
  }
  requeue(): void {
    if (this.#acked) return;
    this.#acked = true;
    this.options.channel.nack(this.msg, false, true);
  }
  /** The next in-place attempt of the same message (one more delivery). */
  again(): AmqpDelivery {
    return new AmqpDelivery(this.msg, this.options, this.deliveryCount + 1);
  }
  /** A nak: a copy goes to the retry queue with the backoff as TTL; then the original is acked. */
  async republishForRetry(): Promise<void> {
    const headers: Table = { ...this.#headers, [ATTEMPTS_HEADER]: this.deliveryCount };
    if (this.msg.fields.routingKey !== this.options.queue)
      headers[DeadLetterHeader.Subject] = this.msg.fields.routingKey;
    delete headers['x-death'];
    delete headers['x-delivery-count'];
    try {
      await new Promise<void>((resolve, reject) =>
        this.options.publisher.sendToQueue(
          this.options.retryQueue,
          this.msg.content,
          {
            ...(this.msg.properties as Options.Publish),
            headers,
            persistent: true,
            expiration: String(Math.max(1, Math.round(this.nakDelayMs))),
          },
          (error) => (error ? reject(error as Error) : resolve()),
        ),
      );
      this.#ackOnce();
    } catch (error) {
      this.logger.warn({ err: error }, 'retry could not be scheduled; message returned to the queue');
      this.requeue();
    }
  }
}

/** Attempts so far: failed attempts carried in a header, plus the broker's count of returns (crashes). */
function RabbitDeliveryCount(msg: ConsumeMessage): number {
  const headers = (msg.properties.headers ?? {}) as Table;
  const attempts = Number(headerOf(headers, ATTEMPTS_HEADER) ?? 0);
  const returned = Number(headers['x-delivery-count'] ?? 0);
  return attempts + returned + 1;
}

let lastSeq = 0;
/** A unique, increasing dead-letter id (a queue has no sequence numbers). */
function nextSeq(): number {
  lastSeq = Math.max(lastSeq + 1, Date.now() * 1_000 + Math.floor(Math.random() * 1_000));
  return lastSeq;
}

/**
 * {@link DeadLetterStore} on one quorum queue. Listing reads every letter on a channel of its own and
 * closes it, which returns them all to the queue; a redrive takes its letter out the same way and
 * acknowledges it once the message is back in its consumer's queue. Letters held by a concurrent
 * `list` of another process are briefly invisible to this one.
 */
export class RabbitDeadLetters implements DeadLetterStore {
  constructor(
    private readonly connection: ChannelModel,
    private readonly publisher: ConfirmChannel,
  ) {}

  async write(delivery: DeadLetterSource, error: unknown): Promise<void> {
    const headers: Table = {};
    for (const [name, value] of delivery.headerEntries()) {
      if (!name.startsWith('Orderflow-')) headers[name] = value;
    }
    const reason = error instanceof Error ? error.message : String(error);
    const code = (error as { code?: unknown })?.code;
    Object.assign(headers, {
      [DL_SEQ_HEADER]: String(nextSeq()),
      [DeadLetterHeader.Reason]: reason.replace(/[\r\n]+/g, ' ').slice(0, 2_000),
      [DeadLetterHeader.Code]: typeof code === 'string' ? code : 'HANDLER_FAILED',
      [DeadLetterHeader.Stream]: delivery.stream,
      [DeadLetterHeader.Consumer]: delivery.consumer,
      [DeadLetterHeader.Subject]: delivery.subject,
      [DeadLetterHeader.Sequence]: String(delivery.streamSequence),
      [DeadLetterHeader.Deliveries]: String(delivery.deliveryCount),
      [DeadLetterHeader.Time]: new Date().toISOString(),
    });
    await new Promise<void>((resolve, reject) =>
      this.publisher.sendToQueue(
        RabbitTopology.deadLetterQueue,
        Buffer.from(delivery.body),
        { headers, persistent: true },
        (e) =>
          e
            ? reject(
                new DeadLetterError('DEAD_LETTER_WRITE_FAILED', 'the broker refused the dead letter', {
                  cause: e,
                }),
              )
            : resolve(),
      ),
    );
  }

  /** Reads every letter on a fresh channel; `keep` may ack some of them before the channel closes. */
  async #scan<T>(
    use: (letters: { letter: DeadLetter; msg: Message }[], ch: Channel) => Promise<T>,
  ): Promise<T> {
    const ch = await this.connection.createChannel();
    try {
      const letters: { letter: DeadLetter; msg: Message }[] = [];
      for (;;) {
        const msg = await ch.get(RabbitTopology.deadLetterQueue, { noAck: false });
        if (!msg) break;
        letters.push({ letter: toDeadLetter(msg), msg });
      }
      letters.sort((a, b) => a.letter.seq - b.letter.seq);
      return await use(letters, ch);
    } finally {
      await ch.close().catch(() => undefined); // returns what was not acked
    }
  }

  list(filter: { stream?: string; consumer?: string; limit?: number } = {}): Promise<DeadLetter[]> {
    return this.#scan(async (letters) =>
      letters
        .map((l) => l.letter)
        .filter(
          (l) =>
            (filter.stream === undefined || l.stream === filter.stream) &&
            (filter.consumer === undefined || l.consumer === filter.consumer),
        )
        .slice(0, filter.limit ?? 1_000),
    );
  }

  async get(seq: number): Promise<DeadLetter | undefined> {
    return (await this.list()).find((l) => l.seq === seq);
  }

  redrive(seq: number): Promise<void> {
    return this.#scan(async (letters, ch) => {
      const found = letters.find((l) => l.letter.seq === seq);
      if (!found) throw new DeadLetterError('DEAD_LETTER_NOT_FOUND', `no dead letter with sequence ${seq}`);
      const { letter, msg } = found;
      await new Promise<void>((resolve, reject) =>
        this.publisher.sendToQueue(
          RabbitTopology.consumerQueue(letter.stream, letter.consumer),
          msg.content,
          {
            persistent: true,
            headers: {
              ...letter.headers,
              [REDRIVEN_HEADER]: '1',
              [DeadLetterHeader.Subject]: letter.subject,
            },
          },
          (e) => (e ? reject(e as Error) : resolve()),
        ),
      );
      ch.ack(msg);
    });
  }

  async redriveAll(filter: { stream?: string; consumer?: string } = {}): Promise<number> {
    const letters = await this.list(filter);
    for (const letter of letters) await this.redrive(letter.seq);
    return letters.length;
  }

  discard(seq: number): Promise<void> {
    return this.#scan(async (letters, ch) => {
      const found = letters.find((l) => l.letter.seq === seq);
      if (!found) throw new DeadLetterError('DEAD_LETTER_NOT_FOUND', `no dead letter with sequence ${seq}`);
      ch.ack(found.msg);
    });
  }
}

function toDeadLetter(msg: { content: Buffer; properties: { headers?: Table } }): DeadLetter {
  const table = msg.properties.headers ?? {};
  const get = (name: string) => headerOf(table, name) ?? '';
  const headers: Record<string, string> = {};
  for (const name of Object.keys(table)) {
    if (name.startsWith('Orderflow-') || name.startsWith('x-')) continue;
    const value = headerOf(table, name);
    if (value !== undefined) headers[name] = value;
  }
  // A letter the broker dead-lettered itself (delivery limit): no reason headers, only x-death.
  const death = (table['x-death'] as { queue?: string; reason?: string }[] | undefined)?.[0];
  const [stream = '', consumer = ''] = (death?.queue ?? '').split('.');
  return {
    seq: Number(get(DL_SEQ_HEADER) || 0),
    stream: get(DeadLetterHeader.Stream) || stream,
    consumer: get(DeadLetterHeader.Consumer) || consumer,
    subject: get(DeadLetterHeader.Subject),
    streamSequence: Number(get(DeadLetterHeader.Sequence) || 0),
    deliveries: Number(get(DeadLetterHeader.Deliveries) || 0),
    reason: get(DeadLetterHeader.Reason) || (death ? `dead-lettered by the broker: ${death.reason}` : ''),
    code: get(DeadLetterHeader.Code) || 'DELIVERY_LIMIT',
    deadLetteredAt: get(DeadLetterHeader.Time),
    headers,
    body: msg.content,
  };
}
