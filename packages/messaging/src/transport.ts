import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Tracer } from '@opentelemetry/api';
import { pino, type Logger } from 'pino';
import { Gauge, Registry } from 'prom-client';
import { defaultRetryPolicy } from './backoff.ts';
import { CoreBroadcaster } from './broadcast.ts';
import { ConsumerRuntime, orderingKeyOf } from './consumer.ts';
import type { MessageContract, PayloadOf } from './contract.ts';
import { consumerPipeline } from './pipeline.ts';
import {
  DeadLetters,
  DeadLetterTopology,
  type DeadLetterStore,
  deadLetterStream,
  writeDeadLetter,
} from './dead-letters.ts';
import type { Envelope } from './envelope.ts';
import { MessagingError } from './errors.ts';
import { JetStreamPublisher } from './publisher.ts';
import { RpcClient, RpcServer, type ServiceIdentity } from './rpc.ts';
import {
  ensureConsumer,
  ensureStream,
  type ConsumerDeclaration,
  type EnsureConsumer,
  type StreamDeclaration,
} from './topology.ts';
import type {
  BatchItem,
  Broadcaster,
  ConsumerSpec,
  EndpointContract,
  EndpointHandler,
  EventPublisher,
  PublishOptions,
  PublishReceipt,
  Requester,
  RequestOptions,
  RunningConsumer,
} from './types.ts';

/**
 * The transport port: everything a service needs from a broker. Services depend on this interface,
 * not on NATS calls, and every implementation passes the transport conformance suite.
 */
export interface Transport extends EventPublisher, Requester, Broadcaster {
  /** Creates or updates streams (idempotent; safe when replicas start at once). */
  provision(streams: readonly StreamDeclaration[]): Promise<void>;
  /** Provisions the durable consumer and starts handling messages. */
  consume(spec: ConsumerSpec): Promise<RunningConsumer>;
  /** Answers requests on an endpoint, load-balanced across every instance serving it. */
  serve<E extends EndpointContract>(endpoint: E, handler: EndpointHandler<E>): void;
  readonly deadLetters: DeadLetterStore;
  /** The consumers started by {@link consume} and not stopped yet (readiness looks at `consuming`). */
  readonly consumers: readonly RunningConsumer[];
  /** Stops consumers (draining), endpoints and listeners; leaves the connection to its owner. */
  close(options?: { deadlineMs?: number }): Promise<void>;
}

export interface NatsTransportOptions {
  /** `ce-source` of what this process publishes, e.g. `orderflow/payment-processor`. */
  source: string;
  logger?: Logger;
  /** Prometheus registry for consumer metrics (default: a private one). */
  metrics?: Registry;
  tracer?: Tracer;
  /** Identity for `$SRV` discovery of this process's endpoints (default: named after `source`). */
  service?: ServiceIdentity;
  /** Replicas of the dead-letter stream (default 1; 3 in a cluster). */
  deadLetterReplicas?: number;
  /**
   * Creates and re-creates the durables of {@link NatsTransport.consume} (default: `ensureConsumer`
   * over this connection). Called before a consumer starts and whenever its durable goes missing. Under
   * per-identity permissions a `RemoteProvisioner`, which asks the provisioning identity.
   */
  ensureConsumer?: EnsureConsumer;
}

/** {@link Transport} on NATS JetStream (events), core NATS (request-reply, fan-out). */
export class NatsTransport implements Transport {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly deadLetters: DeadLetters;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly #publisher: JetStreamPublisher;
  readonly #requester: RpcClient;
  readonly #broadcaster: CoreBroadcaster;
  readonly #consumers = new Set<ConsumerRuntime>();
  readonly #consumerSpecs = new Map<ConsumerRuntime, { stream: string; name: string }>();
  readonly #listeners = new Set<{ unsubscribe(): void }>();
  readonly #ensureConsumer: EnsureConsumer;
  #server: RpcServer | undefined;
  #deadLetterStreamReady: Promise<void> | undefined;

  private constructor(
    readonly nc: NatsConnection,
    jsm: JetStreamManager,
    private readonly options: NatsTransportOptions,
  ) {
    this.jsm = jsm;
    this.js = jetstream(nc);
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.registry = options.metrics ?? new Registry();
    this.#publisher = new JetStreamPublisher(this.js, { source: options.source });
    this.#requester = new RpcClient(nc);
    this.#broadcaster = new CoreBroadcaster(nc, options.source, (error, subject) =>
      this.logger.warn({ err: error, subject }, 'invalid notification dropped'),
    );
    this.deadLetters = new DeadLetters(this.js, jsm);
    this.#ensureConsumer = options.ensureConsumer ?? ((declaration) => ensureConsumer(jsm, declaration));
    // A named service is discoverable ($SRV.PING|INFO|STATS) from the start, endpoints or not.
    if (options.service) this.#rpcServer();
    const consumers = this.#consumerSpecs;
    const jsmForLag = jsm;
    new Gauge({
      name: 'orderflow_consumer_lag',
      help: 'Messages in the stream not yet delivered to the consumer',
      labelNames: ['consumer'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const { stream, name } of consumers.values()) {
          try {
            const info = await jsmForLag.consumers.info(stream, name);
            this.set({ consumer: name }, info.num_pending);
          } catch {
            // lag is best effort while reconnecting
          }
        }
      },
    });
  }

  get consumers(): readonly RunningConsumer[] {
    return [...this.#consumers];
  }

  static async create(nc: NatsConnection, options: NatsTransportOptions): Promise<NatsTransport> {
    return new NatsTransport(nc, await jetstreamManager(nc), options);
  }

  async provision(streams: readonly StreamDeclaration[]): Promise<void> {
    for (const stream of streams) await ensureStream(this.jsm, stream);
  }

  publish<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: PublishOptions,
  ): Promise<PublishReceipt> {
    return this.#publisher.publish(contract, data, options);
  }

  publishBatch(
    items: readonly BatchItem[],
    options?: { maxInFlight?: number; timeoutMs?: number },
  ): Promise<PublishReceipt[]> {
    return this.#publisher.publishBatch(items, options);
  }

  request<E extends EndpointContract>(
    endpoint: E,
    data: PayloadOf<E['request']>,
    options?: RequestOptions,
  ): Promise<PayloadOf<E['response']>> {
    return this.#requester.request(endpoint, data, options);
  }

  serve<E extends EndpointContract>(endpoint: E, handler: EndpointHandler<E>): void {
    this.#rpcServer().serve(endpoint, handler);
  }

  #rpcServer(): RpcServer {
    return (this.#server ??= new RpcServer(
      this.nc,
      this.options.service ?? { name: this.options.source.replace(/[^A-Za-z0-9_-]/g, '-'), version: '0.1.0' },
      { onError: (error, name) => this.logger.error({ err: error, endpoint: name }, 'endpoint failed') },
    ));
  }

  broadcast<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: { subject: string; causedBy?: Envelope },
  ): void {
    this.#broadcaster.broadcast(contract, data, options);
  }

  listen<C extends MessageContract>(
    contract: C,
    subject: string,
    handler: (event: Envelope<PayloadOf<C>>) => void,
  ): { unsubscribe(): void } {
    const subscription = this.#broadcaster.listen(contract, subject, handler);
    const listener = {
      unsubscribe: () => {
        this.#listeners.delete(listener);
        subscription.unsubscribe();
      },
    };
    this.#listeners.add(listener);
    return listener;
  }

  async consume(spec: ConsumerSpec): Promise<RunningConsumer> {
    if (!/^[A-Za-z0-9_-]+$/.test(spec.name)) {
      throw new MessagingError('INVALID_CONFIG', `consumer name "${spec.name}" must match [A-Za-z0-9_-]+`);
    }
    const maxDeliver = spec.maxDeliver ?? 5;
    const ackWaitMs = spec.ackWaitMs ?? 30_000;
    const concurrency = spec.concurrency ?? 16;
    this.#deadLetterStreamReady ??= ensureStream(
      this.jsm,
      deadLetterStream({ replicas: this.options.deadLetterReplicas ?? 1 }),
    );
    await this.#deadLetterStreamReady;
    // The server's cap sits above ours: the runtime dead-letters at maxDeliver, and a message whose
    // handler crashed the process on its last attempts is dead-lettered on the next delivery.
    const common = { ackWaitMs, maxDeliver: maxDeliver + 3, maxAckPending: spec.maxAckPending ?? 1_000 };
    const durable: ConsumerDeclaration = {
      stream: spec.stream,
      name: spec.name,
      ...common,
      ...(spec.filterSubject !== undefined && { filterSubject: spec.filterSubject }),
      ...(spec.deliverPolicy !== undefined && { deliverPolicy: spec.deliverPolicy }),
    };
    const redrive: ConsumerDeclaration = {
      stream: DeadLetterTopology.stream,
      name: DeadLetterTopology.redriveDurable(spec.stream, spec.name),
      filterSubject: DeadLetterTopology.redriveSubject(spec.stream, spec.name),
      ...common,
    };
    await this.#ensureConsumer(durable);
    await this.#ensureConsumer(redrive);

    const chain = consumerPipeline({
      spec,
      publisher: this.#publisher,
      writeDeadLetter: (delivery, error) => writeDeadLetter(this.js, delivery, error),
      serverMaxDeliver: common.maxDeliver,
      registry: this.registry,
      ...(this.options.tracer && { tracer: this.options.tracer }),
    });
    const runtime = new ConsumerRuntime({
      js: this.js,
      stream: spec.stream,
      name: spec.name,
      durable,
      redrive,
      ensureConsumer: this.#ensureConsumer,
      chain,
      concurrency,
      prefetch: spec.prefetch ?? Math.max(256, concurrency * 4),
      ackWaitMs,
      maxDeliver,
      retry: { ...defaultRetryPolicy, ...spec.retry },
      orderingKey: orderingKeyOf(spec.orderingKey),
      logger: this.logger.child({ consumer: spec.name }),
      connectionClosed: () => this.nc.isClosed(),
    });
    this.#consumers.add(runtime);
    this.#consumerSpecs.set(runtime, { stream: spec.stream, name: spec.name });
    void runtime.closed.then(() => {
      this.#consumers.delete(runtime);
      this.#consumerSpecs.delete(runtime);
    });
    await runtime.started;
    return runtime;
  }

  async close(options: { deadlineMs?: number } = {}): Promise<void> {
    await Promise.all([...this.#consumers].map((c) => c.stop(options)));
    for (const listener of this.#listeners) listener.unsubscribe();
    this.#listeners.clear();
    await this.#server?.stop();
    this.#requester.close();
  }
}
