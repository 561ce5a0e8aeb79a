import {
  asyncApiDocument,
  ID_PATTERN,
  OrderingErrorCode,
  PlaceOrder,
  RegisterCustomer,
  type OrderingTopology,
  type OrderStatusChanged,
} from '@orderflow/contracts';
import {
  NoRespondersError,
  RemoteError,
  TimeoutError,
  ValidationError,
  type PayloadOf,
  type Requester,
  type ValidationIssue,
} from '@orderflow/messaging';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from 'pino';
import { pino } from 'pino';
import type { Registry } from 'prom-client';
import type { InvoicePdfs } from './adapters/object-store-invoices.ts';
import { DASHBOARD_ASSETS, DASHBOARD_PAGE, type StaticAsset } from './dashboard/assets.ts';
import { toCloudEvents } from './domain/cloudevents.ts';
import { openApiDocument } from './domain/openapi.ts';
import {
  invalidFields,
  invalidRequest,
  problem,
  PROBLEM_CONTENT_TYPE,
  type InvalidField,
  type Problem,
} from './domain/problem.ts';
import { observeHttp } from './observe.ts';
import { statusChangeStream } from './sse.ts';

/**
 * gateway — table of contents. The only public edge: HTTP in, NATS request-reply out.
 *
 * - `POST /customers` {name, email} → `customer.register` → 201 {customerId}, `Location: /customers/<id>`
 * - `GET /customers/:id` → `customer.get` (order-storage) → the customer (name, e-mail, registration time)
 * - `POST /orders` (header `Idempotency-Key`) → `order.place` → 201 {orderId, status}
 *   (same key + body → the same order; another body → 409; a total of 0 → 422 `ORDER_TOTAL_ZERO`)
 * - `GET /orders/:id` → `order.get-status` (order-status) → the order view
 * - `GET /orders/:id/events` → `order.get-history` → the order's log as CloudEvents (JSON array), in order
 * - `GET /orders/:id/invoice.pdf` → the PDF from the invoices object store (404 until it exists)
 * - `POST /orders/:id/cancel` → `order.cancel` → 202, or 409 with the reason
 * - `GET /status-changes[?orderId=…]` → server-sent events of `order.status-changed` (order-status's
 *   fan-out; best effort, live only), all orders or the ones named
 * - `GET /`, `/dashboard` → the dashboard (a page that places demo orders and follows them live);
 *   `GET /dashboard/<file>` its script and style sheet
 * - `GET /healthz` (JSON `{status}`), `/readyz` (JSON `{ready}`, 200 or 503), `/metrics` (Prometheus
 *   text format 0.0.4), `/openapi.json`, `/asyncapi.json` (the messaging API, AsyncAPI 3.0)
 *
 * A method a known route does not serve → 405 problem+json with `Allow`; an unknown path → 404.
 * Bad input (malformed JSON, schema violations, oversized body, bad ids) → 4xx
 * `application/problem+json` naming the invalid fields; a service that does not answer → 503.
 * Errors of services travel with their stable code and status.
 */
export interface GatewayOptions {
  topology: OrderingTopology;
  /** Request-reply to the services (the transport). */
  requester: Requester;
  invoices: InvoicePdfs;
  /** Live status changes for `GET /status-changes` (none: that route answers 503). */
  statusChanges?: StatusChangeFeed;
  /** Comment line on idle event streams, so that proxies keep them open (default 15 000 ms). */
  liveHeartbeatMs?: number;
  /** Prometheus registry served on `/metrics` (none: `/metrics` is empty). */
  metrics?: Registry;
  /** Readiness beyond "the process answers" (e.g. connected to NATS). Default: always ready. */
  ready?: () => boolean;
  /** Largest accepted request body (default 64 KiB). */
  bodyLimitBytes?: number;
  /** Time a service gets to answer (default 5000 ms). */
  requestTimeoutMs?: number;
  logger?: Logger;
}

/** A status change of an order, as order-status broadcasts it. */
export type StatusChange = PayloadOf<typeof OrderStatusChanged>;

/** Live status changes of every order (best effort: only what happens while subscribed). */
export interface StatusChangeFeed {
  /**
   * Calls `listener` with each change until the returned function is called; `onEnd` once if the
   * feed closes first (the gateway drains).
   */
  subscribe(listener: (change: StatusChange) => void, onEnd: () => void): () => void;
}

/** Prometheus text exposition format, as prom-client serves it. */
const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const defaults = { bodyLimitBytes: 64 * 1024, requestTimeoutMs: 5_000, liveHeartbeatMs: 15_000 };
/** Order ids one event stream may be narrowed to. */
const MAX_STREAM_ORDER_IDS = 100;

/** The body of `POST /orders`: the `order.place` request without its idempotency key (a header). */
export const PlaceOrderBody = Type.Omit(PlaceOrder.schema, ['idempotencyKey']);
export const RegisterCustomerBody = RegisterCustomer.schema;
const IdempotencyKey = Type.String({ minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7E]+$' });

const compiled = new Map<TSchema, ReturnType<typeof TypeCompiler.Compile>>();
/** The value typed, or the issues (JSON pointers) that make it invalid. */
function check<S extends TSchema>(
  schema: S,
  value: unknown,
): { ok: true; value: Static<S> } | { ok: false; issues: ValidationIssue[] } {
  let checker = compiled.get(schema);
  if (!checker) {
    checker = TypeCompiler.Compile(schema);
    compiled.set(schema, checker);
  }
  if (checker.Check(value)) return { ok: true, value: value as Static<S> };
  return {
    ok: false,
    issues: [...checker.Errors(value)].slice(0, 40).map((e) => ({ path: e.path, message: e.message })),
  };
}

const ID = new RegExp(ID_PATTERN);

/** An HTTP answer that is a problem; thrown by route code, rendered by `onError`. */
class ProblemResponse extends Error {
  override name = 'ProblemResponse';
  constructor(readonly problem: Problem) {
    super(problem.detail);
  }
}

const fail = (status: number, code: string, detail: string, errors?: readonly InvalidField[]): never => {
  throw new ProblemResponse(problem(status, code, detail, errors));
};

/** Maps a failure of a request to a service to a problem: never a 5xx for the caller's own mistakes. */
export function problemFor(error: unknown): Problem {
  if (error instanceof ProblemResponse) return error.problem;
  if (error instanceof RemoteError) {
    if (error.status >= 400 && error.status < 500) {
      const fields = Array.isArray(error.details)
        ? invalidFields(error.details as ValidationIssue[])
        : undefined;
      return problem(error.status, error.code, error.message, fields);
    }
    // The service is up but a dependency of it (its database) is not: the caller may retry.
    if (error.status === 503) return problem(503, error.code, `${error.message}`);
    return problem(502, error.code, `the service failed: ${error.message}`);
  }
  if (error instanceof NoRespondersError) {
    return problem(503, 'SERVICE_UNAVAILABLE', 'no service is answering this request; try again later');
  }
  if (error instanceof TimeoutError) {
    return problem(503, 'SERVICE_TIMEOUT', 'the service did not answer in time; try again later');
  }
  if (error instanceof ValidationError) {
    // A reply that breaks its contract: the service is at fault, not the caller.
    return problem(502, 'INVALID_REPLY', 'the service answered with an invalid reply');
  }
  return problem(500, 'INTERNAL', 'internal error');
}

function send(c: Context, p: Problem): Response {
  return c.body(JSON.stringify(p), p.status as 400, { 'content-type': PROBLEM_CONTENT_TYPE });
}

/** Reads the JSON body, or fails with 415 (not JSON) / 400 (malformed). */
async function jsonBody(c: Context): Promise<unknown> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type)) {
    fail(415, 'UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json', [
      { field: 'header:content-type', message: `expected application/json, got "${type}"` },
    ]);
  }
  const text = await c.req.text();
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    return fail(400, 'MALFORMED_JSON', `the body is not valid JSON: ${(error as Error).message}`, [
      { field: '/', message: 'not valid JSON' },
    ]);
  }
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The strings of a (schema-valid, so shallow) body that the services cannot store as they are: a NUL
 * (PostgreSQL text refuses it) or a lone surrogate (not Unicode; UTF-8 encoding would replace it).
 */
function unstorableText(value: unknown, path = ''): InvalidField[] {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) return [{ field: path || '/', message: 'must not contain NUL (U+0000)' }];
    if (LONE_SURROGATE.test(value)) return [{ field: path || '/', message: 'must be well-formed Unicode' }];
    return [];
  }
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, v]) => unstorableText(v, `${path}/${key}`));
}

/** The body checked against `schema` and free of unstorable text, or the issues (JSON pointers). */
function checkBody<S extends TSchema>(
  schema: S,
  value: unknown,
): { ok: true; value: Static<S> } | { ok: false; fields: InvalidField[] } {
  const result = check(schema, value);
  if (!result.ok) return { ok: false, fields: invalidFields(result.issues) };
  const text = unstorableText(result.value);
  return text.length > 0 ? { ok: false, fields: text } : result;
}

function valid<S extends TSchema>(schema: S, value: unknown): Static<S> {
  const result = checkBody(schema, value);
  if (!result.ok) throw new ProblemResponse(invalidRequest(result.fields));
  return result.value;
}

function idParam(c: Context, what: 'order' | 'customer'): string {
  const id = c.req.param('id') ?? '';
  if (!ID.test(id)) {
    fail(
      400,
      'INVALID_ID',
      `"${id.slice(0, 80)}" is not ${what === 'order' ? 'an order' : 'a customer'} id`,
      [{ field: 'path:id', message: `must match ${ID_PATTERN}` }],
    );
  }
  return id;
}
const orderIdParam = (c: Context) => idParam(c, 'order');

/** A route's path pattern (`/orders/:id/events`) as a matcher of request paths; a parameter is one segment. */
const pathMatcher = (pattern: string): RegExp =>
  new RegExp(
    `^${pattern
      .split('/')
      .map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/')}$`,
  );

/**
 * The methods each path pattern of `app` serves (HEAD wherever GET is: Hono answers it from the GET
 * route), to answer a known path with a method it does not serve: 405 with `Allow`.
 */
function allowedMethods(app: Hono): (path: string) => string[] {
  const byPattern = new Map<string, Set<string>>();
  for (const route of app.routes) {
    if (route.method === 'ALL') continue;
    const methods = byPattern.get(route.path) ?? new Set<string>();
    methods.add(route.method);
    if (route.method === 'GET') methods.add('HEAD');
    byPattern.set(route.path, methods);
  }
  const matchers = [...byPattern].map(([pattern, methods]) => ({ match: pathMatcher(pattern), methods }));
  return (path) =>
    [...new Set(matchers.filter((m) => m.match.test(path)).flatMap((m) => [...m.methods]))].sort();
}

export function createGateway(options: GatewayOptions): Hono {
  const { topology, requester, invoices } = options;
  const { bodyLimitBytes, requestTimeoutMs, liveHeartbeatMs } = { ...defaults, ...options };
  const logger = options.logger ?? pino({ level: 'silent' });
  const call = { timeoutMs: requestTimeoutMs };
  const app = new Hono();
  // Outermost: every request is counted, timed and traced, errors and 404s included.
  app.use(observeHttp(options.metrics ? { registry: options.metrics } : {}));

  app.onError((error, c) => {
    const p = problemFor(error);
    if (p.status >= 500) logger.error({ err: error, path: c.req.path }, 'request failed');
    return send(c, p);
  });
  // Known once every route below is registered (the handler runs only for requests).
  let allowed: ((path: string) => string[]) | undefined;
  app.notFound((c) => {
    allowed ??= allowedMethods(app);
    const methods = allowed(c.req.path);
    if (methods.length === 0) {
      return send(c, problem(404, 'NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`));
    }
    const p = problem(
      405,
      'METHOD_NOT_ALLOWED',
      `${c.req.method} is not served on ${c.req.path}; use ${methods.join(', ')}`,
    );
    return c.body(JSON.stringify(p), 405, {
      'content-type': PROBLEM_CONTENT_TYPE,
      allow: methods.join(', '),
    });
  });

  const limit = bodyLimit({
    maxSize: bodyLimitBytes,
    onError: (c) => send(c, problem(413, 'BODY_TOO_LARGE', `the body exceeds ${bodyLimitBytes} bytes`)),
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', (c) => {
    const ready = options.ready?.() ?? true;
    return c.json({ ready }, ready ? 200 : 503);
  });
  app.get('/metrics', async (c) =>
    c.body(options.metrics ? await options.metrics.metrics() : '', 200, {
      'content-type': options.metrics?.contentType ?? METRICS_CONTENT_TYPE,
    }),
  );
  const openapi = openApiDocument({ PlaceOrderBody, RegisterCustomerBody });
  app.get('/openapi.json', (c) => c.json(openapi));
  // The messaging API (subjects of this deployment's topology), as docs/asyncapi.json is for production.
  const asyncapi = asyncApiDocument(topology);
  app.get('/asyncapi.json', (c) => c.json(asyncapi));

  app.post('/customers', limit, async (c) => {
    const body = valid(RegisterCustomerBody, await jsonBody(c));
    const reply = await requester.request(topology.endpoints.registerCustomer, body, call);
    return c.json(reply, 201, { location: `/customers/${reply.customerId}` });
  });

  app.get('/customers/:id', async (c) => {
    const customerId = idParam(c, 'customer');
    return c.json(await requester.request(topology.endpoints.getCustomer, { customerId }, call));
  });

  app.post('/orders', limit, async (c) => {
    const key = c.req.header('idempotency-key');
    const keyCheck = check(IdempotencyKey, key);
    const parsed = await jsonBody(c);
    const body = checkBody(PlaceOrderBody, parsed);
    const fields = [
      ...(keyCheck.ok
        ? []
        : [
            {
              field: 'header:idempotency-key',
              message: key === undefined ? 'required' : 'must be 1..200 visible ASCII characters',
            },
          ]),
      ...(body.ok ? [] : body.fields),
    ];
    if (fields.length > 0 || !body.ok || key === undefined) throw new ProblemResponse(invalidRequest(fields));
    // The shop's rule, also enforced by order-storage: a sale costs something.
    if (body.value.items.every((item) => item.unitPrice === 0)) {
      fail(422, OrderingErrorCode.ZeroTotal, 'the order total is 0: there is nothing to sell', [
        { field: '/items', message: 'at least one item must have a price above 0' },
      ]);
    }
    const reply = await requester.request(
      topology.endpoints.placeOrder,
      { ...body.value, idempotencyKey: key },
      call,
    );
    return c.json(reply, 201, { location: `/orders/${reply.orderId}` });
  });

  app.get('/orders/:id', async (c) => {
    const orderId = orderIdParam(c);
    return c.json(await requester.request(topology.endpoints.getOrderStatus, { orderId }, call));
  });

  app.get('/orders/:id/events', async (c) => {
    const orderId = orderIdParam(c);
    const reply = await requester.request(topology.endpoints.getOrderHistory, { orderId }, call);
    return c.json(toCloudEvents(orderId, reply.events), 200, {
      'content-type': 'application/cloudevents-batch+json',
    });
  });

  app.get('/orders/:id/invoice.pdf', async (c) => {
    const orderId = orderIdParam(c);
    const order = await requester.request(topology.endpoints.getOrderStatus, { orderId }, call);
    const name = order.invoiceNumber ? topology.objectStores.invoicePdf(order.invoiceNumber) : undefined;
    const pdf = name ? await invoices.pdf(name) : undefined;
    if (!name || !pdf)
      return send(c, problem(404, 'INVOICE_NOT_FOUND', `no invoice for order ${orderId} (yet)`));
    // A copy of exactly the PDF: the blob may be a view into a larger (protocol) buffer.
    return c.body(new Uint8Array(pdf).buffer, 200, {
      'content-type': 'application/pdf',
      'content-disposition': `inline; filename="${name}"`,
    });
  });

  app.post('/orders/:id/cancel', async (c) => {
    const orderId = orderIdParam(c);
    return c.json(await requester.request(topology.endpoints.cancelOrder, { orderId }, call), 202);
  });

  app.get('/status-changes', (c) => {
    const ids = c.req.queries('orderId') ?? [];
    const bad = ids.filter((id) => !ID.test(id));
    if (bad.length > 0 || ids.length > MAX_STREAM_ORDER_IDS) {
      fail(400, 'INVALID_QUERY', `orderId must be up to ${MAX_STREAM_ORDER_IDS} order ids`, [
        ...bad.slice(0, 20).map((id) => ({
          field: 'query:orderId',
          message: `"${id.slice(0, 80)}" does not match ${ID_PATTERN}`,
        })),
        ...(ids.length > MAX_STREAM_ORDER_IDS
          ? [{ field: 'query:orderId', message: `at most ${MAX_STREAM_ORDER_IDS} ids` }]
          : []),
      ]);
    }
    if (!options.statusChanges)
      return send(c, problem(503, 'LIVE_UPDATES_UNAVAILABLE', 'live status changes are not available'));
    const wanted = new Set(ids);
    return statusChangeStream(options.statusChanges, {
      accept: wanted.size === 0 ? () => true : (change) => wanted.has(change.orderId),
      heartbeatMs: liveHeartbeatMs,
      retryMs: 2_000,
      maxQueuedEvents: 1_000,
    });
  });

  const serve = (c: Context, asset: StaticAsset) => c.body(asset.body, 200, asset.headers);
  app.get('/', (c) => serve(c, DASHBOARD_PAGE));
  app.get('/dashboard', (c) => serve(c, DASHBOARD_PAGE));
  app.get('/dashboard/:file', (c) => {
    const asset = DASHBOARD_ASSETS.get(c.req.param('file'));
    return asset ? serve(c, asset) : send(c, problem(404, 'NOT_FOUND', `no route for GET ${c.req.path}`));
  });

  return app;
}
