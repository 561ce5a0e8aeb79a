import { randomUUID } from 'node:crypto';
import {
  headers as natsHeaders,
  nuid,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/nats-core';
import { context as otelContext, SpanKind, trace, type Tracer } from '@opentelemetry/api';
import { connectionInboxPrefix } from './connection.ts';
import type { MessageContract, PayloadOf } from './contract.ts';
import { currentTraceparent, Header, utf8Bytes } from './envelope.ts';
import {
  EndpointError,
  isTransient,
  NoRespondersError,
  RemoteError,
  TimeoutError,
  ValidationError,
} from './errors.ts';
import {
  endSpanWhen,
  formatTraceparent,
  MessagingAttribute as A,
  messagingTracer,
  parentContext,
  parseTraceparent,
  tracingOff,
} from './trace-context.ts';
import type {
  EndpointContract,
  EndpointHandler,
  Requester,
  RequestContext,
  RequestOptions,
} from './types.ts';

export const SERVICE_ERROR_HEADER = 'Nats-Service-Error';
export const SERVICE_ERROR_CODE_HEADER = 'Nats-Service-Error-Code';

/** Declares a request-reply endpoint. Its subject must lie outside every stream's subjects. */
export function defineEndpoint<Req extends MessageContract, Res extends MessageContract>(endpoint: {
  name: string;
  subject: string;
  request: Req;
  response: Res;
}): EndpointContract<Req, Res> {
  return endpoint;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A call waiting for its reply; `deadline` is a `Date.now()` time. */
export interface PendingReply {
  deadline: number;
}

/** What a {@link ReplyInbox} does with a pending call when its reply, its deadline or the end comes. */
export interface ReplyHandlers<P extends PendingReply> {
  reply(pending: P, msg: Msg): void;
  timeout(pending: P): void;
  /** The inbox was closed (or the connection) before the reply came. */
  closed(pending: P): void;
  /** The request could not be published: what `NatsConnection.publish` threw. */
  failed(pending: P, error: Error): void;
}

type ReplyOptions = { reply: string; headers?: MsgHdrs };

/**
 * One wildcard inbox subscription for many calls: each call publishes with a reply subject
 * `<inbox>.<token>` and is found again in a map by that token; one sweep timer, running only while
 * calls are pending, finds the ones past their deadline. So a call costs a map entry, not a
 * subscription, a timer or an Error (nats.js `request()` creates all three).
 *
 * Requests are handed to nats.js once the microtasks running now have settled (`process.nextTick`),
 * all together and in the order they were sent. nats.js writes its buffer to the socket at the
 * microtask checkpoint after a publish, so requests made along promise chains (a window of
 * publishes, handlers that publish while their acks go out) otherwise cost a `write(2)` each, or
 * a few; this way a burst leaves in one write, together with the consumers' acks ({@link AckBatch}
 * in `delivery.ts` uses the same point), still within the same event-loop turn.
 */
export class ReplyInbox<P extends PendingReply> {
  readonly #prefix: string;
  readonly #pending = new Map<string, P>();
  readonly #subscription: Subscription;
  readonly #sweep = (): void => this.#expire();
  readonly #publishQueued = (): void => this.#sendQueued();
  /** Requests not yet handed to nats.js, five slots each: token, subject, payload, options, pending. */
  #queued: unknown[] = [];
  #next = 0;
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly handlers: ReplyHandlers<P>,
    private readonly sweepIntervalMs = 50,
  ) {
    this.#prefix = `${connectionInboxPrefix(nc)}.${nuid.next()}.`;
    this.#subscription = nc.subscribe(`${this.#prefix}*`, {
      callback: (_error, msg) => {
        if (msg) this.#onReply(msg);
      },
    });
    void nc.closed().then(() => this.close());
  }

  /** Calls waiting for a reply. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Publishes `payload` to `subject` with a reply subject on this inbox (within this event-loop
   * turn) and registers `pending` for the answer. On a closed connection it throws what `publish`
   * throws and registers nothing; a publish refused later (connection draining or closed meanwhile,
   * payload too large) settles `pending` with `failed`.
   */
  send(subject: string, payload: Uint8Array | string, headers: MsgHdrs | undefined, pending: P): void {
    const token = (this.#next++).toString(36);
    const options: ReplyOptions = headers
      ? { reply: this.#prefix + token, headers }
      : { reply: this.#prefix + token };
    if (this.#closed || this.nc.isClosed()) {
      this.nc.publish(subject, payload, options); // throws the connection's error
      return;
    }
    this.#pending.set(token, pending);
    if (this.#queued.length === 0) process.nextTick(this.#publishQueued);
    this.#queued.push(token, subject, payload, options, pending);
    this.#sweeper ??= setInterval(this.#sweep, this.sweepIntervalMs);
  }

  #sendQueued(): void {
    const queued = this.#queued;
    this.#queued = [];
    for (let i = 0; i < queued.length; i += 5) {
      const token = queued[i] as string;
      const pending = queued[i + 4] as P;
      if (this.#pending.get(token) !== pending) continue; // settled meanwhile: the inbox was closed
      try {
        this.nc.publish(
          queued[i + 1] as string,
          queued[i + 2] as Uint8Array | string,
          queued[i + 3] as ReplyOptions,
        );
      } catch (error) {
        this.#pending.delete(token);
        this.handlers.failed(pending, error instanceof Error ? error : new Error(String(error)));
      }
    }
  }

  #onReply(msg: Msg): void {
    const token = msg.subject.slice(this.#prefix.length);
    const pending = this.#pending.get(token);
    if (!pending) return; // late reply after a timeout
    this.#pending.delete(token);
    this.handlers.reply(pending, msg);
  }

  #expire(): void {
    const now = Date.now();
    for (const [token, pending] of this.#pending) {
      if (pending.deadline <= now) {
        this.#pending.delete(token);
        this.handlers.timeout(pending);
      }
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** Settles every pending call with `closed` and unsubscribes. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) this.handlers.closed(p);
    if (!this.nc.isClosed()) this.#subscription.unsubscribe();
  }
}

interface PendingCall extends PendingReply {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  subject: string;
  timeoutMs: number;
  response: MessageContract;
}

const callHandlers: ReplyHandlers<PendingCall> = {
  reply(pending, msg) {
    const headers = msg.headers;
    if (headers) {
      if (headers.code === 503) return pending.reject(new NoRespondersError(pending.subject));
      const status = headers.get(SERVICE_ERROR_CODE_HEADER);
      if (status) {
        let body: { code?: string; message?: string; details?: unknown } = {};
        try {
          body = JSON.parse(decoder.decode(msg.data)) as typeof body;
        } catch {
          // a foreign service may send a plain-text body
        }
        return pending.reject(
          new RemoteError(
            pending.subject,
            Number(status),
            body.code ?? `SERVICE_ERROR_${status}`,
            body.message ?? headers.get(SERVICE_ERROR_HEADER),
            body.details,
          ),
        );
      }
    }
    try {
      pending.resolve(pending.response.parse(JSON.parse(decoder.decode(msg.data))));
    } catch (error) {
      pending.reject(error as Error);
    }
  },
  timeout(pending) {
    pending.reject(new TimeoutError(pending.subject, pending.timeoutMs));
  },
  closed(pending) {
    pending.reject(new TimeoutError(pending.subject, 0));
  },
  failed(pending, error) {
    pending.reject(error);
  },
};

/**
 * Request-reply client. Every reply comes back on one wildcard inbox subscription and is matched by a
 * token in the reply subject; timeouts are found by one sweep timer. No subscription, timer or Error
 * is created per request (only when a request fails).
 */
export class RpcClient implements Requester {
  readonly #inbox: ReplyInbox<PendingCall>;
  readonly #defaultTimeoutMs: number;
  readonly #tracer: Tracer;

  constructor(
    nc: NatsConnection,
    options: { defaultTimeoutMs?: number; sweepIntervalMs?: number; tracer?: Tracer } = {},
  ) {
    this.#inbox = new ReplyInbox(nc, callHandlers, options.sweepIntervalMs ?? 50);
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? 5_000;
    this.#tracer = options.tracer ?? messagingTracer();
  }

  /** With tracing on, each call runs in a CLIENT span (`<endpoint>`) whose context travels in `traceparent`. */
  request<E extends EndpointContract>(
    endpoint: E,
    data: PayloadOf<E['request']>,
    options: RequestOptions = {},
  ): Promise<PayloadOf<E['response']>> {
    if (tracingOff(this.#tracer)) return this.#call(endpoint, data, options, undefined);
    const span = this.#tracer.startSpan(
      endpoint.name,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [A.System]: 'nats',
          [A.OperationType]: 'send',
          [A.OperationName]: 'request',
          [A.DestinationName]: endpoint.subject,
          [A.RpcSystem]: 'nats',
          [A.RpcMethod]: endpoint.name,
        },
      },
      parentContext(options.causedBy?.traceparent),
    );
    return endSpanWhen(span, this.#call(endpoint, data, options, formatTraceparent(span.spanContext())));
  }

  #call<E extends EndpointContract>(
    endpoint: E,
    data: PayloadOf<E['request']>,
    options: RequestOptions,
    traceparent: string | undefined,
  ): Promise<PayloadOf<E['response']>> {
    let headers: MsgHdrs | undefined;
    let payload: Uint8Array;
    try {
      endpoint.request.parse(data);
      payload = utf8Bytes(JSON.stringify(data));
      if (options.causedBy || traceparent) {
        headers = natsHeaders();
        if (options.causedBy) headers.set(Header.CorrelationId, options.causedBy.correlationId);
        headers.set(Header.TraceParent, traceparent ?? currentTraceparent(options.causedBy?.traceparent));
      }
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const timeoutMs = options.timeoutMs ?? this.#defaultTimeoutMs;
    return new Promise<PayloadOf<E['response']>>((resolve, reject) => {
      this.#inbox.send(endpoint.subject, payload, headers, {
        resolve: resolve as (value: unknown) => void,
        reject,
        deadline: Date.now() + timeoutMs,
        subject: endpoint.subject,
        timeoutMs,
        response: endpoint.response,
      });
    });
  }

  /** Rejects pending requests and unsubscribes. */
  close(): void {
    this.#inbox.close();
  }
}

interface EndpointStats {
  name: string;
  subject: string;
  queue_group: string;
  num_requests: number;
  num_errors: number;
  last_error: string;
  processing_time: number;
  average_processing_time: number;
}

export interface ServiceIdentity {
  name: string;
  version: string;
  description?: string;
  metadata?: Record<string, string>;
}

/**
 * A NATS micro service: typed endpoints in a queue group (load-balanced across replicas), discoverable
 * through `$SRV.PING|INFO|STATS` like any service built with the official `services` library.
 * Validation failures answer 400; an {@link EndpointError} answers with its own status and code; a
 * dependency outage ({@link isTransient}: the database is down…) answers 503 `DEPENDENCY_UNAVAILABLE`,
 * so the caller may retry; any other failure answers 500 without details. Both are reported to `onError`.
 */
export class RpcServer {
  readonly id = nuid.next();
  readonly started = new Date().toISOString();
  readonly #subscriptions: Subscription[] = [];
  readonly #stats: EndpointStats[] = [];

  constructor(
    private readonly nc: NatsConnection,
    private readonly identity: ServiceIdentity,
    private readonly options: {
      queue?: string;
      onError?: (error: unknown, endpoint: string) => void;
      /** Tracer of the SERVER spans, one per request (default: the toolkit's). */
      tracer?: Tracer;
    } = {},
  ) {
    for (const verb of ['PING', 'INFO', 'STATS'] as const) {
      for (const subject of [
        `$SRV.${verb}`,
        `$SRV.${verb}.${identity.name}`,
        `$SRV.${verb}.${identity.name}.${this.id}`,
      ]) {
        this.#subscriptions.push(
          nc.subscribe(subject, {
            callback: (_error, msg) => {
              msg.respond(JSON.stringify(this.#discovery(verb)));
            },
          }),
        );
      }
    }
  }

  #discovery(verb: 'PING' | 'INFO' | 'STATS'): Record<string, unknown> {
    const base = {
      name: this.identity.name,
      id: this.id,
      version: this.identity.version,
      metadata: this.identity.metadata ?? {},
    };
    switch (verb) {
      case 'PING':
        return { type: 'io.nats.micro.v1.ping_response', ...base };
      case 'INFO':
        return {
          type: 'io.nats.micro.v1.info_response',
          ...base,
          description: this.identity.description ?? '',
          endpoints: this.#stats.map((s) => ({
            name: s.name,
            subject: s.subject,
            queue_group: s.queue_group,
            metadata: {},
          })),
        };
      case 'STATS':
        return {
          type: 'io.nats.micro.v1.stats_response',
          ...base,
          started: this.started,
          endpoints: this.#stats,
        };
      default:
        return verb satisfies never;
    }
  }

  /** Serves `endpoint` with `handler` until {@link stop}. */
  serve<E extends EndpointContract>(endpoint: E, handler: EndpointHandler<E>): void {
    const queue = this.options.queue ?? 'q';
    const stats: EndpointStats = {
      name: endpoint.name,
      subject: endpoint.subject,
      queue_group: queue,
      num_requests: 0,
      num_errors: 0,
      last_error: '',
      processing_time: 0,
      average_processing_time: 0,
    };
    this.#stats.push(stats);
    const tracer = this.options.tracer ?? messagingTracer();
    const fail = (msg: Msg, status: number, code: string, message: string, details?: unknown) => {
      stats.num_errors++;
      stats.last_error = `${status}:${message}`;
      const h = natsHeaders();
      h.set(SERVICE_ERROR_HEADER, message.replace(/[\r\n]+/g, ' '));
      h.set(SERVICE_ERROR_CODE_HEADER, String(status));
      msg.respond(encoder.encode(JSON.stringify({ code, message, details })), { headers: h });
    };
    const handle = async (msg: Msg): Promise<void> => {
      const started = performance.now();
      stats.num_requests++;
      try {
        let request: unknown;
        try {
          request = JSON.parse(decoder.decode(msg.data));
        } catch {
          return fail(msg, 400, 'DECODE_FAILED', 'request body is not valid JSON');
        }
        const headers = msg.headers;
        const context: RequestContext = {
          correlationId: headers?.get(Header.CorrelationId) || undefined,
          traceparent: headers?.get(Header.TraceParent) || undefined,
        };
        const parsed = endpoint.request.parse(request) as PayloadOf<E['request']>;
        const response = await (tracingOff(tracer)
          ? handler(parsed, context)
          : traced(endpoint, tracer, context.traceparent, () => handler(parsed, context)));
        msg.respond(utf8Bytes(JSON.stringify(endpoint.response.parse(response))));
      } catch (error) {
        if (error instanceof ValidationError) return fail(msg, 400, error.code, error.message, error.issues);
        if (error instanceof EndpointError)
          return fail(msg, error.status, error.code, error.message, error.details);
        this.options.onError?.(error, endpoint.name);
        if (isTransient(error))
          return fail(
            msg,
            503,
            'DEPENDENCY_UNAVAILABLE',
            'a dependency of the service is unavailable; retry later',
          );
        const ref = randomUUID();
        return fail(msg, 500, 'INTERNAL', `internal error (ref ${ref})`, { ref });
      } finally {
        stats.processing_time += Math.round((performance.now() - started) * 1e6);
        stats.average_processing_time = Math.round(stats.processing_time / stats.num_requests);
      }
    };
    this.#subscriptions.push(
      this.nc.subscribe(endpoint.subject, {
        queue,
        callback: (_error, msg) => {
          this.#running++;
          void handle(msg).then(this.#handled, this.#handlerFailed);
        },
      }),
    );
  }

  /**
   * Handlers still running: `stop()` waits for them, so what they use is not closed under them.
   * A count and shared callbacks, not a set of promises and a `finally` closure per request.
   */
  #running = 0;
  readonly #idleWaiters: (() => void)[] = [];
  readonly #handled = (): void => {
    if (--this.#running === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  };
  /** Counts the handler out and lets its rejection surface, as the `finally` it replaces did. */
  readonly #handlerFailed = (error: unknown): never => {
    this.#handled();
    throw error;
  };

  /** Stops answering (drains the subscriptions so accepted requests still get their reply). */
  async stop(): Promise<void> {
    await Promise.all(this.#subscriptions.map((s) => s.drain().catch(() => undefined)));
    // drain() resolves once the last request reached its callback; the async handlers may still run.
    if (this.#running > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }
}

/** Runs an endpoint's handler in a SERVER span, child of the caller's `traceparent`. */
function traced<T>(
  endpoint: EndpointContract,
  tracer: Tracer,
  traceparent: string | undefined,
  run: () => Promise<T>,
): Promise<T> {
  const remote = parseTraceparent(traceparent);
  const parent = remote ? trace.setSpanContext(otelContext.active(), remote) : otelContext.active();
  const span = tracer.startSpan(
    endpoint.name,
    {
      kind: SpanKind.SERVER,
      attributes: {
        [A.System]: 'nats',
        [A.OperationType]: 'process',
        [A.OperationName]: 'reply',
        [A.DestinationName]: endpoint.subject,
        [A.RpcSystem]: 'nats',
        [A.RpcMethod]: endpoint.name,
      },
    },
    parent,
  );
  return endSpanWhen(
    span,
    otelContext.with(trace.setSpan(parent, span), () => run()),
  );
}
