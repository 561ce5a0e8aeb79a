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
  DeadLetterTopology,
  deadLetterKey,
  type DeadLetter,
  type DeadLetterSource,
  type DeadLetterStore,
} from '../dead-letters.ts';
import {
  createEnvelope,
  encodeData,
  envelopeHeaders,
  Header,
  publishedEnvelope,
  readEnvelope,
  type Envelope,
} from '../envelope.ts';
import {
  AccessRefusedError,
  EndpointError,
  isTransient,
  MessagingError,
  NoRespondersError,
  ProvisioningError,
  RemoteError,
  TimeoutError,
  ValidationError,
} from '../errors.ts';
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

import { ChannelSlot, publishConfirmed, watchChannel } from './channels.ts';
import {
  bindingKey,
  declareRabbitBase,
  declareRabbitConsumer,
  declareRabbitStream,
  RABBIT_EXCHANGES,
  RabbitTopology,
} from './topology.ts';

export { bindingKey, RabbitTopology } from './topology.ts';

/**
 * Runs passive checks on a channel of their own (a failed check closes its channel); a missing
 * exchange or queue is a {@link ProvisioningError}: the provisioner has not declared it.
 */
async function checkProvisioned(
  connection: ChannelModel,
  stream: string,
  checks: (ch: Channel) => Promise<void>,
  consumer?: string,
): Promise<void> {
  const ch = await connection.createChannel();
  ch.on('error', () => undefined); // the failed check below carries the same error
  try {
    await checks(ch);
  } catch (cause) {
    throw new ProvisioningError(
      stream,
      `not provisioned on RabbitMQ (run provisionRabbit / \`orderflow rabbit provision\` first): ${(cause as Error).message}`,
      { cause, ...(consumer !== undefined && { consumer }) },
    );
  }
  await ch.close().catch(() => undefined);
}

const ATTEMPTS_HEADER = 'Orderflow-Attempts';
const REDRIVEN_HEADER = 'Orderflow-Redriven';
const DL_SEQ_HEADER = 'Orderflow-DL-Seq';

export interface RabbitTransportOptions {
  /** `ce-source` of what this process publishes. */
  source: string;
  /**
   * The identity this process connects as (its RabbitMQ user without the provisioner's prefix): names
   * its private queues `orderflow.tmp.<identity>.*` (reply queue, broadcast listeners), the only
   * queues it may declare besides the endpoints it serves. Default: the last segment of `source`.
   */
  identity?: string;
  /**
   * The topology was declared by the provisioner (`provisionRabbit`): exchanges, stream and consumer
   * queues are only checked (passive declares, which need no permission), never declared or bound, so
   * the user needs no configure rights on them. A missing one is a `ProvisioningError`. Default false:
   * the transport declares everything itself (a user with full rights on the vhost).
   */
  provisioned?: boolean;
  logger?: Logger;
  metrics?: Registry;
  tracer?: Tracer;
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
  /** Names this process's private queues (see {@link RabbitTransportOptions.identity}). */
  readonly identity: string;
  readonly #consumers = new Set<RabbitConsumer>();
  readonly #endpoints: { channel: Channel; tag: string }[] = [];
  readonly #listeners = new Set<{ unsubscribe(): void }>();
  #running = 0;
  readonly #idle: (() => void)[] = [];
  readonly #rpc: RpcChannel;
  readonly #publisher: ChannelSlot<ConfirmChannel>;
  readonly #broadcaster: ChannelSlot<Channel>;
  #serverChannel: Promise<Channel> | undefined;

  private constructor(
    readonly connection: ChannelModel,
    private readonly plain: Channel,
    rpc: Channel,
    private readonly options: RabbitTransportOptions,
  ) {
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.registry = options.metrics ?? new Registry();
    this.identity = options.identity ?? options.source.split('/').pop() ?? options.source;
    const onError = (what: string) => (error: Error) =>
      this.logger.warn({ err: error }, `the broker closed the ${what} channel`);
    this.#publisher = ChannelSlot.confirm(connection, onError('publish'));
    this.#broadcaster = new ChannelSlot(() => connection.createChannel(), onError('broadcast'));
    watchChannel(plain, onError('listener'));
    this.deadLetters = new RabbitDeadLetters(connection, this.#publisher);
    this.#rpc = new RpcChannel(connection, rpc, this.identity, this.logger);
  }

  get consumers(): readonly RunningConsumer[] {
    return [...this.#consumers];
  }

  static async create(connection: ChannelModel, options: RabbitTransportOptions): Promise<RabbitTransport> {
    const identity = options.identity ?? options.source.split('/').pop() ?? '';
    if (!/^[A-Za-z0-9_-]+$/.test(identity))
      throw new MessagingError('INVALID_CONFIG', `identity "${identity}" must match [A-Za-z0-9_-]+`);
    if (options.provisioned) {
      await checkProvisioned(connection, RabbitTopology.deadLetterQueue, async (ch) => {
        for (const exchange of RABBIT_EXCHANGES) await ch.checkExchange(exchange.name);
        await ch.checkQueue(RabbitTopology.deadLetterQueue);
      });
    } else {
      const ch = await connection.createChannel();
      await declareRabbitBase(ch);
      await ch.close();
    }
    const plain = await connection.createChannel();
    const rpc = await connection.createChannel();
    const transport = new RabbitTransport(connection, plain, rpc, { ...options, identity });
    await transport.#rpc.start();
    return transport;
  }

  /**
   * Declares the streams (exchange and log queue); with `provisioned`, checks that the provisioner
   * declared them.
   */
  async provision(streams: readonly StreamDeclaration[]): Promise<void> {
    if (this.options.provisioned) {
      for (const stream of streams)
        await checkProvisioned(this.connection, stream.name, async (ch) => {
          await ch.checkExchange(RabbitTopology.streamExchange(stream.name));
          await ch.checkQueue(RabbitTopology.logQueue(stream.name));
        });
      return;
    }
    const ch = await this.connection.createChannel();
    for (const stream of streams) await declareRabbitStream(ch, stream);
    await ch.close();
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
      envelope = publishedEnvelope(contract.type, this.options.source, data, options);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return this.#send(RabbitTopology.events, options.subject, envelope, options.timeoutMs ?? 5_000);
  }

  async #send(
    exchange: string,
    subject: string,
    envelope: Envelope,
    timeoutMs: number,
  ): Promise<PublishReceipt> {
    const headers: Table = {};
    const h = envelopeHeaders(envelope);
    for (const name of h.keys()) if (name !== Header.MsgId) headers[name] = h.get(name);
    const body = Buffer.from(encodeData(envelope.data), 'utf8');
    await publishConfirmed(
      this.#publisher,
      exchange,
      subject,
      body,
      { persistent: true, messageId: envelope.id, contentType: 'application/json', headers },
      timeoutMs,
    );
    return { stream: exchange, seq: 0, duplicate: false, id: envelope.id };
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
    const decl = {
      stream: spec.stream,
      name: spec.name,
      filterSubject: spec.filterSubject,
      ordered: spec.orderingKey !== undefined,
      maxDeliver,
    };
    if (this.options.provisioned) {
      await checkProvisioned(
        this.connection,
        spec.stream,
        async (c) => {
          await c.checkQueue(queue);
          await c.checkQueue(retryQueue);
        },
        spec.name,
      );
    } else {
      const c = await this.connection.createChannel();
      await declareRabbitConsumer(c, decl);
      await c.close();
    }
    const ch = await this.connection.createChannel();
    watchChannel(ch, (error) =>
      this.logger.warn({ err: error, consumer: spec.name }, 'the broker closed the consumer channel'),
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
    });
    const consumer = new RabbitConsumer({
      channel: ch,
      publisher: this.#publisher,
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
      watchChannel(ch, (error) =>
        this.logger.error({ err: error }, 'the broker closed the endpoint channel'),
      );
      await ch.prefetch(64);
      return ch;
    });
    void this.#serverChannel
      .then(async (ch) => {
        const queue = RabbitTopology.endpointQueue(endpoint.subject);
        // Auto-delete: the queue goes with its last server, so a request to nobody is returned (no responders).
        await ch.assertQueue(queue, { durable: false, autoDelete: true });
        await ch.bindQueue(queue, RabbitTopology.rpc, endpoint.subject);
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
      ch.publish(
        RabbitTopology.replies,
        msg.properties.replyTo as string,
        Buffer.from(JSON.stringify(body)),
        {
          correlationId: msg.properties.correlationId as string,
          ...(error && {
            headers: {
              [SERVICE_ERROR_HEADER]: error.message.replace(/[\r\n]+/g, ' '),
              [SERVICE_ERROR_CODE_HEADER]: String(error.status),
            },
          }),
        },
      );
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
    // Fire and forget, like core NATS: a refused subject closes the broadcast channel, and is logged.
    void this.#broadcaster
      .get()
      .then((ch) =>
        ch.publish(RabbitTopology.broadcast, options.subject, Buffer.from(encodeData(data)), { headers }),
      )
      .catch((error: unknown) =>
        this.logger.warn({ err: error, subject: options.subject }, 'broadcast failed'),
      );
  }

  listen<C extends MessageContract>(
    contract: C,
    subject: string,
    handler: (event: Envelope<PayloadOf<C>>) => void,
  ): { unsubscribe(): void } {
    let tag: string | undefined;
    let stopped = false;
    const ready = (async () => {
      const { queue } = await this.plain.assertQueue(RabbitTopology.privateQueue(this.identity), {
        exclusive: true,
        autoDelete: true,
      });
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

/**
 * Request-reply: requests go to the `orderflow.rpc` exchange (routing key = the endpoint's subject,
 * `mandatory`, so a request no endpoint queue takes comes back: no responders); replies come back
 * through `orderflow.replies` to this process's exclusive reply queue, one of its private queues.
 * Direct reply-to (`amq.rabbitmq.reply-to`) is not used: the server would publish its reply to the
 * default exchange, and write access to that is write access to every queue.
 */
class RpcChannel {
  readonly #pending = new Map<string, PendingCall>();
  readonly #requests: ChannelSlot<Channel>;
  #replyQueue = '';

  constructor(
    connection: ChannelModel,
    private readonly channel: Channel,
    private readonly identity: string,
    logger: Logger,
  ) {
    watchChannel(channel, (error) => logger.error({ err: error }, 'the broker closed the reply channel'));
    this.#requests = new ChannelSlot(
      () => connection.createChannel(),
      (error) => {
        logger.warn({ err: error }, 'the broker closed the request channel');
        this.#refuse(error);
      },
      (ch) =>
        // A request with `mandatory` that no queue takes (no endpoint serving) comes back: no responders.
        ch.on('return', (msg: ConsumeMessage) => {
          const id = msg.properties.correlationId as string;
          const call = this.#pending.get(id);
          if (!call) return;
          this.#settle(id);
          call.reject(new NoRespondersError(call.subject));
        }),
    );
  }

  /** A 403 on the request channel names the refused subject: its calls fail at once, typed. */
  #refuse(error: Error): void {
    if ((error as { code?: unknown }).code !== 403) return;
    for (const [id, call] of this.#pending) {
      if (
        !error.message.includes(`access to topic '${call.subject}' in exchange '${RabbitTopology.rpc}'`) &&
        !error.message.includes(`access to exchange '${RabbitTopology.rpc}'`)
      )
        continue;
      this.#settle(id);
      call.reject(
        new AccessRefusedError(
          `${RabbitTopology.rpc}/${call.subject}`,
          error.message.replace(/^.*ACCESS_REFUSED - /, ''),
          { cause: error },
        ),
      );
    }
  }

  async start(): Promise<void> {
    const { queue } = await this.channel.assertQueue(RabbitTopology.privateQueue(this.identity), {
      exclusive: true,
      autoDelete: true,
    });
    await this.channel.bindQueue(queue, RabbitTopology.replies, queue);
    this.#replyQueue = queue;
    await this.channel.consume(
      queue,
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
      this.#requests
        .get()
        .then((ch) =>
          ch.publish(RabbitTopology.rpc, endpoint.subject, Buffer.from(JSON.stringify(data)), {
            replyTo: this.#replyQueue,
            correlationId: id,
            mandatory: true,
            headers,
            expiration: String(timeoutMs),
          }),
        )
        .catch((error: unknown) => {
          if (!this.#pending.has(id)) return;
          this.#settle(id);
          reject(error instanceof Error ? error : new Error(String(error)));
        });
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
  publisher: ChannelSlot<ConfirmChannel>;
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
      settleOnChannel(() => this.options.channel.nack(msg, false, true));
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
    settleOnChannel(() => this.options.channel.ack(this.msg));
  }
  requeue(): void {
    if (this.#acked) return;
    this.#acked = true;
    settleOnChannel(() => this.options.channel.nack(this.msg, false, true));
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
      await publishConfirmed(
        this.options.publisher,
        RabbitTopology.retry,
        this.options.retryQueue,
        this.msg.content,
        {
          ...(this.msg.properties as Options.Publish),
          headers,
          persistent: true,
          expiration: String(Math.max(1, Math.round(this.nakDelayMs))),
        },
        10_000,
        this.subject,
      );
      this.#ackOnce();
    } catch (error) {
      this.logger.warn({ err: error }, 'retry could not be scheduled; message returned to the queue');
      this.requeue();
    }
  }
}

/**
 * Acks or returns a message on its channel. On a channel that closed meanwhile (the connection or the
 * broker went away) there is nothing left to do: the broker took the message back when it closed, and
 * amqplib's `IllegalOperationError` would otherwise end the consumer's loop (and the process, as an
 * unhandled rejection) during a broker restart.
 */
function settleOnChannel(settle: () => void): void {
  try {
    settle();
  } catch (error) {
    if ((error as Error | undefined)?.name !== 'IllegalOperationError') throw error;
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

/** How many dead letters' keys a RabbitMQ transport remembers to keep a repeated write to one letter. */
const WRITTEN_KEYS_KEPT = 10_000;

/**
 * {@link DeadLetterStore} on one quorum queue. Listing reads every letter on a channel of its own and
 * closes it, which returns them all to the queue; a redrive takes its letter out the same way and
 * acknowledges it once the message is back in its consumer's queue. Letters held by a concurrent
 * `list` of another process are briefly invisible to this one.
 */
export class RabbitDeadLetters implements DeadLetterStore {
  /** Keys of the letters this process wrote, newest last: RabbitMQ itself de-duplicates nothing. */
  readonly #written = new Set<string>();

  constructor(
    private readonly connection: ChannelModel,
    private readonly publisher: ChannelSlot<ConfirmChannel>,
  ) {}

  async write(delivery: DeadLetterSource, error: unknown): Promise<void> {
    const key = deadLetterKey(delivery);
    if (this.#written.has(key)) return;
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
    const subject = DeadLetterTopology.deadLetterSubject(delivery.stream, delivery.consumer);
    try {
      await publishConfirmed(
        this.publisher,
        RabbitTopology.deadLetterExchange,
        subject,
        Buffer.from(delivery.body),
        { headers, persistent: true },
        10_000,
      );
    } catch (cause) {
      throw new DeadLetterError('DEAD_LETTER_WRITE_FAILED', 'the broker refused the dead letter', { cause });
    }
    this.#written.add(key);
    if (this.#written.size > WRITTEN_KEYS_KEPT) this.#written.delete(this.#written.values().next().value!);
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
      await publishConfirmed(
        this.publisher,
        RabbitTopology.redrive,
        DeadLetterTopology.redriveSubject(letter.stream, letter.consumer),
        msg.content,
        {
          persistent: true,
          headers: {
            ...letter.headers,
            [REDRIVEN_HEADER]: '1',
            [DeadLetterHeader.Subject]: letter.subject,
          },
        },
        10_000,
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
