import {
  EVENT_PRODUCERS,
  EventCatalog,
  ORDER_STATUSES,
  ORDERING_SERVICES,
  serviceConsumers,
  type OrderingTopology,
} from '@orderflow/contracts';
import type {
  ConsumerPosition,
  DeadLetter,
  Requester,
  ServiceInstance,
  StreamSummary,
} from '@orderflow/messaging';
import { Hono, type Context } from 'hono';
import { toCloudEvents } from './domain/cloudevents.ts';
import { problem, PROBLEM_CONTENT_TYPE, type InvalidField } from './domain/problem.ts';

/**
 * The operations console's API, mounted under `/console` behind the operator guard (see `app.ts`):
 *
 * - `GET /console/topology` → the declarations (services, who publishes what, who consumes what,
 *   who serves which endpoint) joined with what runs: `$SRV` instances per service (replicas, health),
 *   the streams, and every consumer's pending / ack-pending / lag
 * - `GET /console/consumers/live` → server-sent events: `event: consumers` with every consumer's
 *   position, every `livePeriodMs` (a snapshot, not a diff)
 * - `GET /console/orders[?status=&offset=&limit=]` → `order.list` (order-status): a page of every order
 * - `GET /console/orders/:id/timeline` → the order's history (order-storage) with each step's trace id,
 *   the trace UI link when one is configured, and the order's dead letters
 * - `GET /console/dead-letters[?limit=]`, `POST /console/dead-letters/:seq/redrive|discard`
 * - `POST /console/dead-letters/redrive` → server-sent events `progress` {done,total} then `done`
 * - `GET /console/mailbox`, `GET /console/ledger` → the development SMTP sink's mails and the fake
 *   PSP's ledger, as those answer them (503 when the gateway has not been given their URLs)
 */
export interface Operations {
  services(): Promise<ServiceInstance[]>;
  streams(): Promise<StreamSummary[]>;
  consumers(): Promise<ConsumerPosition[]>;
  deadLetters: {
    list(filter?: { limit?: number }): Promise<DeadLetter[]>;
    get(seq: number): Promise<DeadLetter | undefined>;
    redrive(seq: number): Promise<void>;
    discard(seq: number): Promise<void>;
  };
}

export interface ConsoleOptions {
  operations: Operations;
  /** `ORDERFLOW_TRACE_URL`: a trace UI link with `{traceId}` in it (none: trace ids are shown as text). */
  traceUrl?: string;
  /** The development SMTP sink's HTTP API (`MAILBOX_URL`), e.g. `http://127.0.0.1:8025`. */
  mailboxUrl?: string;
  /** The fake PSP (`PSP_URL`), e.g. `http://127.0.0.1:4010`. */
  pspUrl?: string;
  /** Period of the live consumer positions (default 2000 ms). */
  livePeriodMs?: number;
}

const send = (c: Context, status: number, code: string, detail: string, errors?: InvalidField[]) =>
  c.body(JSON.stringify(problem(status, code, detail, errors)), status as 400, {
    'content-type': PROBLEM_CONTENT_TYPE,
  });

const encoder = new TextEncoder();

/** A stream of server-sent events written by `run`; it ends when `run` returns or the client leaves. */
function eventStream(
  run: (emit: (event: string, data: unknown) => boolean, signal: AbortSignal) => Promise<void>,
): Response {
  const abort = new AbortController();
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      const emit = (event: string, data: unknown): boolean => {
        if (abort.signal.aborted) return false;
        controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
        return true;
      };
      controller.enqueue(encoder.encode('retry: 3000\n: connected\n\n'));
      try {
        await run(emit, abort.signal);
      } catch (error) {
        emit('failed', { message: error instanceof Error ? error.message : String(error) });
      }
      if (!abort.signal.aborted) controller.close();
    },
    cancel() {
      abort.abort();
    },
  });
  return new Response(body, {
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    },
  });
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

/** A dead letter as JSON: the payload as text (UTF-8, as the services publish JSON). */
function letterJson(letter: DeadLetter) {
  return {
    seq: letter.seq,
    stream: letter.stream,
    consumer: letter.consumer,
    subject: letter.subject,
    streamSequence: letter.streamSequence,
    deliveries: letter.deliveries,
    code: letter.code,
    reason: letter.reason,
    deadLetteredAt: letter.deadLetteredAt,
    type: letter.headers['ce-type'] ?? null,
    about: letter.headers['ce-subject'] ?? null,
    headers: letter.headers,
    payload: new TextDecoder().decode(letter.body),
  };
}

/** An absent DEADLETTER stream (nothing was ever dead-lettered) means none. */
async function lettersOrNone(operations: Operations, limit: number): Promise<DeadLetter[]> {
  try {
    return await operations.deadLetters.list({ limit });
  } catch (error) {
    if (/stream not found/i.test(error instanceof Error ? error.message : String(error))) return [];
    throw error;
  }
}

const traceIdOf = (traceparent: string | undefined) => traceparent?.split('-')[1];

/** The console's routes (to mount under `/console`, behind the operator guard). */
export function consoleApi(
  topology: OrderingTopology,
  requester: Requester,
  call: { timeoutMs: number },
  options: ConsoleOptions,
): Hono {
  const { operations } = options;
  const livePeriodMs = options.livePeriodMs ?? 2_000;
  const api = new Hono();
  const traceLink = (traceId: string | undefined) =>
    traceId && options.traceUrl ? options.traceUrl.replaceAll('{traceId}', traceId) : null;

  // The declarations do not change while the gateway runs: computed once.
  const consumersOf = serviceConsumers(topology);
  const declared = ORDERING_SERVICES.map((name) => ({
    name,
    publishes: Object.entries(EVENT_PRODUCERS)
      .filter(([, source]) => source.service === name)
      .map(([source, entry]) => ({
        subject: topology.filters[source as keyof typeof topology.filters],
        events: entry.events.map((e) => e.type),
      })),
    consumes: consumersOf[name].map((b) => ({
      stream: b.stream,
      consumer: b.name,
      filterSubject: b.filterSubject ?? null,
    })),
    serves: Object.entries(EventCatalog.endpointServers)
      .filter(([, server]) => server === name)
      .map(([endpoint]) => topology.endpoints[endpoint as keyof typeof topology.endpoints].subject),
  }));

  api.get('/topology', async (c) => {
    const [instances, streams, consumers] = await Promise.all([
      operations.services(),
      operations.streams(),
      operations.consumers(),
    ]);
    const services = declared.map((service) => {
      const running = instances.filter((i) => i.name === service.name);
      return {
        ...service,
        replicas: running.length,
        health: running.length > 0 ? 'up' : 'down',
        instances: running.map((i) => ({
          id: i.id,
          version: i.version,
          started: i.started ?? null,
          requests: (i.endpoints ?? []).reduce((n, e) => n + e.num_requests, 0),
          errors: (i.endpoints ?? []).reduce((n, e) => n + e.num_errors, 0),
        })),
      };
    });
    return c.json({ stream: topology.stream, services, streams, consumers });
  });

  api.get('/consumers/live', (c) => {
    if (c.req.method === 'HEAD')
      return c.body(null, 200, { 'content-type': 'text/event-stream; charset=utf-8' });
    return eventStream(async (emit, signal) => {
      while (!signal.aborted) {
        if (!emit('consumers', await operations.consumers())) return;
        await sleep(livePeriodMs, signal);
      }
    });
  });

  api.get('/orders', async (c) => {
    const status = c.req.query('status') || undefined;
    const offset = Number(c.req.query('offset') ?? 0);
    const limit = Number(c.req.query('limit') ?? 20);
    const errors: InvalidField[] = [];
    if (status !== undefined && !(ORDER_STATUSES as readonly string[]).includes(status))
      errors.push({ field: 'query:status', message: `one of ${ORDER_STATUSES.join(', ')}` });
    if (!Number.isInteger(offset) || offset < 0 || offset > 1_000_000)
      errors.push({ field: 'query:offset', message: 'an integer in 0..1000000' });
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      errors.push({ field: 'query:limit', message: 'an integer in 1..100' });
    if (errors.length > 0) return send(c, 400, 'INVALID_QUERY', 'the query is not valid', errors);
    const request = {
      ...(status !== undefined && { status: status as (typeof ORDER_STATUSES)[number] }),
      offset,
      limit,
    };
    return c.json(await requester.request(topology.endpoints.listOrders, request, call));
  });

  api.get('/orders/:id/timeline', async (c) => {
    const orderId = c.req.param('id');
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(orderId))
      return send(c, 400, 'INVALID_ID', 'not an order id', [{ field: 'path:id', message: 'not an id' }]);
    const [history, letters] = await Promise.all([
      requester.request(topology.endpoints.getOrderHistory, { orderId }, call),
      lettersOrNone(operations, 10_000),
    ]);
    const events = toCloudEvents(orderId, history.events).map((event) => {
      const traceId = traceIdOf(event.traceparent) ?? null;
      return {
        sequence: event.sequence,
        time: event.time,
        type: event.type,
        source: event.source.replace(/^orderflow\//, ''),
        traceId,
        traceUrl: traceLink(traceId ?? undefined),
        data: event.data,
      };
    });
    const traceIds = [...new Set(events.map((e) => e.traceId).filter((t): t is string => t !== null))];
    return c.json({
      orderId,
      events,
      traces: traceIds.map((traceId) => ({ traceId, url: traceLink(traceId) })),
      deadLetters: letters.filter((l) => l.headers['ce-subject'] === orderId).map(letterJson),
    });
  });

  api.get('/dead-letters', async (c) => {
    const limit = Number(c.req.query('limit') ?? 200);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
      return send(c, 400, 'INVALID_QUERY', 'the query is not valid', [
        { field: 'query:limit', message: 'an integer in 1..10000' },
      ]);
    return c.json({ deadLetters: (await lettersOrNone(operations, limit)).map(letterJson) });
  });

  api.post('/dead-letters/redrive', () =>
    eventStream(async (emit, signal) => {
      const letters = await lettersOrNone(operations, 100_000);
      let done = 0;
      emit('progress', { done, total: letters.length });
      for (const letter of letters) {
        if (signal.aborted) return;
        await operations.deadLetters.redrive(letter.seq);
        done += 1;
        emit('progress', { done, total: letters.length });
      }
      emit('done', { done, total: letters.length });
    }),
  );

  for (const action of ['redrive', 'discard'] as const) {
    api.post(`/dead-letters/:seq/${action}`, async (c) => {
      const seq = Number(c.req.param('seq'));
      if (!Number.isSafeInteger(seq) || seq < 1)
        return send(c, 400, 'INVALID_SEQUENCE', 'not a dead-letter sequence', [
          { field: 'path:seq', message: 'a positive integer' },
        ]);
      const letter = await operations.deadLetters.get(seq).catch(() => undefined);
      if (!letter) return send(c, 404, 'DEAD_LETTER_NOT_FOUND', `no dead letter with sequence ${seq}`);
      await operations.deadLetters[action](seq);
      return c.json({ seq, action, consumer: letter.consumer });
    });
  }

  const proxy = (name: string, base: string | undefined, path: string) =>
    api.get(`/${name}`, async (c) => {
      if (!base) return send(c, 503, 'DEV_TOOL_UNAVAILABLE', `the gateway was not told where the ${name} is`);
      let response: globalThis.Response;
      try {
        response = await fetch(new URL(path, base), { signal: AbortSignal.timeout(call.timeoutMs) });
      } catch (error) {
        return send(c, 503, 'DEV_TOOL_UNAVAILABLE', `the ${name} does not answer: ${String(error)}`);
      }
      if (!response.ok) return send(c, 502, 'DEV_TOOL_FAILED', `the ${name} answered ${response.status}`);
      return c.json((await response.json()) as object);
    });
  proxy('mailbox', options.mailboxUrl, '/messages');
  proxy('ledger', options.pspUrl, '/ledger');

  return api;
}
