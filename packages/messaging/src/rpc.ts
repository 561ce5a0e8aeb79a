import { randomUUID } from 'node:crypto';
import {
  headers as natsHeaders,
  nuid,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/nats-core';
import type { MessageContract, PayloadOf } from './contract.ts';
import { currentTraceparent, Header } from './envelope.ts';
import { EndpointError, NoRespondersError, RemoteError, TimeoutError, ValidationError } from './errors.ts';
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

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  deadline: number;
  subject: string;
  timeoutMs: number;
  response: MessageContract;
}

/**
 * Request-reply client. Every reply comes back on one wildcard inbox subscription and is matched by a
 * token in the reply subject; timeouts are found by one sweep timer. No subscription, timer or Error
 * is created per request (only when a request fails).
 */
export class RpcClient implements Requester {
  readonly #prefix: string;
  readonly #pending = new Map<string, Pending>();
  readonly #subscription: Subscription;
  #next = 0;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly options: { defaultTimeoutMs?: number; sweepIntervalMs?: number } = {},
  ) {
    this.#prefix = `_INBOX.${nuid.next()}.`;
    this.#subscription = nc.subscribe(`${this.#prefix}*`, { callback: (_error, msg) => this.#onReply(msg) });
  }

  request<E extends EndpointContract>(
    endpoint: E,
    data: PayloadOf<E['request']>,
    options: RequestOptions = {},
  ): Promise<PayloadOf<E['response']>> {
    try {
      endpoint.request.parse(data);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const token = (this.#next++).toString(36);
    const timeoutMs = options.timeoutMs ?? this.options.defaultTimeoutMs ?? 5_000;
    const promise = new Promise<PayloadOf<E['response']>>((resolve, reject) => {
      this.#pending.set(token, {
        resolve: resolve as (value: unknown) => void,
        reject,
        deadline: Date.now() + timeoutMs,
        subject: endpoint.subject,
        timeoutMs,
        response: endpoint.response,
      });
    });
    let headers: MsgHdrs | undefined;
    if (options.causedBy) {
      headers = natsHeaders();
      headers.set(Header.CorrelationId, options.causedBy.correlationId);
      headers.set(Header.TraceParent, currentTraceparent(options.causedBy.traceparent));
    }
    this.nc.publish(endpoint.subject, JSON.stringify(data), {
      reply: this.#prefix + token,
      ...(headers && { headers }),
    });
    this.#sweeper ??= setInterval(() => this.#sweep(), this.options.sweepIntervalMs ?? 50);
    return promise;
  }

  #onReply(msg: Msg): void {
    const token = msg.subject.slice(this.#prefix.length);
    const pending = this.#pending.get(token);
    if (!pending) return; // late reply after a timeout
    this.#pending.delete(token);
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
  }

  #sweep(): void {
    const now = Date.now();
    for (const [token, pending] of this.#pending) {
      if (pending.deadline <= now) {
        this.#pending.delete(token);
        pending.reject(new TimeoutError(pending.subject, pending.timeoutMs));
      }
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** Rejects pending requests and unsubscribes. */
  close(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const pending of this.#pending.values()) pending.reject(new TimeoutError(pending.subject, 0));
    this.#pending.clear();
    this.#subscription.unsubscribe();
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
 * Validation failures answer 400; an {@link EndpointError} answers with its own status and code; any
 * other failure answers 500 without details, and is reported to `onError`.
 */
export class RpcServer {
  readonly id = nuid.next();
  readonly started = new Date().toISOString();
  readonly #subscriptions: Subscription[] = [];
  readonly #stats: EndpointStats[] = [];

  constructor(
    private readonly nc: NatsConnection,
    private readonly identity: ServiceIdentity,
    private readonly options: { queue?: string; onError?: (error: unknown, endpoint: string) => void } = {},
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
        const response = await handler(endpoint.request.parse(request) as PayloadOf<E['request']>, context);
        msg.respond(JSON.stringify(endpoint.response.parse(response)));
      } catch (error) {
        if (error instanceof ValidationError) return fail(msg, 400, error.code, error.message, error.issues);
        if (error instanceof EndpointError)
          return fail(msg, error.status, error.code, error.message, error.details);
        this.options.onError?.(error, endpoint.name);
        const ref = randomUUID();
        return fail(msg, 500, 'INTERNAL', `internal error (ref ${ref})`, { ref });
      } finally {
        stats.processing_time += Math.round((performance.now() - started) * 1e6);
        stats.average_processing_time = Math.round(stats.processing_time / stats.num_requests);
      }
    };
    this.#subscriptions.push(
      this.nc.subscribe(endpoint.subject, { queue, callback: (_error, msg) => void handle(msg) }),
    );
  }

  /** Stops answering (drains the subscriptions so accepted requests still get their reply). */
  async stop(): Promise<void> {
    await Promise.all(this.#subscriptions.map((s) => s.drain().catch(() => undefined)));
  }
}
