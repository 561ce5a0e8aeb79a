import {
  asyncApiDocument,
  ID_PATTERN,
  OrderingErrorCode,
  PlaceOrder,
  RegisterCustomer,
  type OrderingTopology,
  type OrderStatusChanged,
  type OrderView,
} from '@orderflow/contracts';
import {
  NoRespondersError,
  RemoteError,
  TimeoutError,
  StoreUnavailableError,
  ValidationError,
  type PayloadOf,
  type Requester,
  type ValidationIssue,
} from '@orderflow/messaging';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { secureHeaders } from 'hono/secure-headers';
import type { Logger } from 'pino';
import { pino } from 'pino';
import type { Registry } from 'prom-client';
import type { Authenticator } from './adapters/jwt-authenticator.ts';
import type { InvoicePdfs } from './adapters/object-store-invoices.ts';
import { DASHBOARD_ASSETS, DASHBOARD_PAGE, type StaticAsset } from './dashboard/assets.ts';
import {
  Access,
  clientKey,
  mayAccess,
  OPERATOR_SCOPE,
  ownerFilter,
  type Principal,
} from './domain/access.ts';
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
import { consoleApi, type ConsoleOptions } from './console.ts';
import { observeHttp } from './observe.ts';
import { RateLimiter, type RateLimitOptions } from './domain/rate-limit.ts';
import { AuthenticationError, GatewayErrorCode } from './errors.ts';
import { statusChangeStream } from './sse.ts';

/**
 * gateway — table of contents. The only public edge: HTTP in, NATS request-reply out.
 *
 * Access (bearer JWT, see `domain/access.ts`; the OpenAPI document states the same per operation):
 * public — `GET /`, `/dashboard…`, `/healthz`, `/readyz`, `/openapi.json`, and `POST /customers` when
 * the gateway issues development tokens; operator — `GET /metrics` (and `POST /customers` otherwise);
 * every other route needs a customer's or an operator's token, and a customer reaches only their own
 * orders and customer record (another customer's is a 404, as if it did not exist).
 *
 * - `POST /customers` {name, email} → `customer.register` → 201 {customerId, token} (the token only when
 *   the gateway has a development issuer), `Location: /customers/<id>`
 * - `GET /customers/:id` → `customer.get` (order-storage) → the customer (name, e-mail, registration time)
 * - `POST /orders` (header `Idempotency-Key`, the customer's own) → `order.place` → 201 {orderId, status}
 *   (same key + body → the same order; another body → 409; a total of 0 → 422 `ORDER_TOTAL_ZERO`); the
 *   customer is the token's, a body naming another one is a 403
 * - `GET /orders/:id` → `order.get-status` (order-status) → the order view
 * - `GET /orders/:id/events` → `order.get-history` → the order's whole history (every service's events
 *   about it) as CloudEvents (JSON array), in stream order, each with its producer's `source`
 * - `GET /orders/:id/invoice.pdf` → the PDF from the invoices object store (404 until it exists)
 * - `GET /orders/:id/credit-note.pdf` → the credit note's PDF (same object store) of a refunded,
 *   invoiced order (404 `CREDIT_NOTE_NOT_FOUND` when it has none, or not yet)
 * - `POST /orders/:id/cancel` → `order.cancel` → 202, or 409 with the reason
 * - `GET /status-changes[?orderId=…]` → server-sent events of `order.status-changed` (order-status's
 *   fan-out; best effort, live only): the caller's own orders (an operator's: all), or the ones named
 * - `GET /`, `/dashboard` → the dashboard (a page that signs up, places demo orders and follows them
 *   live); `GET /dashboard/<file>` its script and style sheet
 * - `/console/…` (operators) → the operations console's API, see `console.ts`
 * - `GET /healthz` (JSON `{status}`), `/readyz` (JSON `{ready}`, 200 or 503), `/metrics` (Prometheus
 *   text format 0.0.4), `/openapi.json`, `/asyncapi.json` (the messaging API, AsyncAPI 3.0)
 *
 * Limits: writes are rate-limited per client (429 + `Retry-After`), open event streams are capped (per
 * client and in all), every response carries the security headers.
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
  /** Checks bearer tokens (required: there is no unauthenticated mode). */
  authenticator: Authenticator;
  /**
   * Issues a token for a customer who signs up (development: the `DevIssuer`). Present: `POST /customers`
   * is public and answers the token; absent: only operators may register customers (the identity
   * provider's back office) and no token is answered.
   */
  tokens?: CustomerTokenIssuer;
  /** Per-client limits (defaults in {@link defaultLimits}). */
  limits?: Partial<GatewayLimits>;
  /** `Strict-Transport-Security` max-age; set it only when clients reach the gateway over TLS (default: no header). */
  hstsMaxAgeS?: number;
  /** The peer address of a request, for per-address limits (default: the socket's remote address). */
  clientAddress?: (c: Context) => string;
  /** The operations console's sources (`/console/…`, operators only; none: those routes answer 503). */
  console?: ConsoleOptions;
  /** Without `console`: why, the detail of the routes' 503 `CONSOLE_UNAVAILABLE` (default: no console). */
  consoleUnavailable?: string;
}

/** Issues development tokens to new customers. */
export interface CustomerTokenIssuer {
  customerToken(customerId: string): Promise<string>;
}

export interface GatewayLimits {
  /** Writes (`POST /orders`, `POST /orders/:id/cancel`) per authenticated client. */
  writes: RateLimitOptions;
  /** Sign-ups (`POST /customers`) per peer address. */
  signUps: RateLimitOptions;
  /** Open event streams (`GET /status-changes`) in all. */
  maxStreams: number;
  /** Open event streams per client. */
  maxStreamsPerClient: number;
}

export const defaultLimits: GatewayLimits = {
  writes: { ratePerS: 20, burst: 40 },
  signUps: { ratePerS: 5, burst: 20 },
  maxStreams: 1_000,
  maxStreamsPerClient: 5,
};

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

type Env = { Variables: { principal: Principal | undefined } };
/** Order ids one event stream may be narrowed to. */
const MAX_STREAM_ORDER_IDS = 100;

const { idempotencyKey: _header, customerId: CustomerIdField, ...placeFields } = PlaceOrder.schema.properties;
/**
 * The body of `POST /orders`: the `order.place` request without its idempotency key (a header);
 * `customerId` may be left out (it is the token's), and must be the token's when given.
 */
export const PlaceOrderBody = Type.Object(
  { customerId: Type.Optional(CustomerIdField), ...placeFields },
  { additionalProperties: false },
);
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
  constructor(
    readonly problem: Problem,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(problem.detail);
  }
}

const fail = (status: number, code: string, detail: string, errors?: readonly InvalidField[]): never => {
  throw new ProblemResponse(problem(status, code, detail, errors));
};

const REALM = 'Bearer realm="orderflow"';
/** RFC 6750 §3: a quoted-string value (no quotes or backslashes inside). */
const quoted = (text: string) => `"${text.replace(/["\\]/g, "'")}"`;

/** 401: no usable token. `error` absent when none was sent (RFC 6750 §3.1). */
function unauthorized(detail: string, error?: string): ProblemResponse {
  return new ProblemResponse(problem(401, GatewayErrorCode.InvalidToken, detail), {
    'www-authenticate': error ? `${REALM}, error="${error}", error_description=${quoted(detail)}` : REALM,
  });
}

/** The 404 of an order that does not exist, also for an order the caller may not see. */
const orderNotFound = (orderId: string) =>
  new ProblemResponse(problem(404, OrderingErrorCode.OrderNotFound, `no order ${orderId}`));

/** `request`'s answer; its ORDER_NOT_FOUND as {@link orderNotFound}, worded the same whichever service said it. */
async function aboutOrder<T>(orderId: string, request: Promise<T>): Promise<T> {
  try {
    return await request;
  } catch (error) {
    if (error instanceof RemoteError && error.code === OrderingErrorCode.OrderNotFound)
      throw orderNotFound(orderId);
    throw error;
  }
}

/** Maps a failure of a request to a service to a problem: never a 5xx for the caller's own mistakes. */
export function problemFor(error: unknown): Problem {
  if (error instanceof ProblemResponse) return error.problem;
  if (error instanceof AuthenticationError) {
    return error.code === GatewayErrorCode.InvalidToken
      ? problem(401, error.code, error.message)
      : problem(503, error.code, error.message);
  }
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
  if (error instanceof StoreUnavailableError) {
    // The blob or key-value store cannot be asked: nothing is known, so neither 404 nor 500.
    return problem(503, error.code, 'a store of the system is unavailable; try again later');
  }
  if (error instanceof ValidationError) {
    // A reply that breaks its contract: the service is at fault, not the caller.
    return problem(502, 'INVALID_REPLY', 'the service answered with an invalid reply');
  }
  return problem(500, 'INTERNAL', 'internal error');
}

function send(c: Context, p: Problem, headers: Readonly<Record<string, string>> = {}): Response {
  return c.body(JSON.stringify(p), p.status as 400, { ...headers, 'content-type': PROBLEM_CONTENT_TYPE });
}

/** The caller, once `authenticate` ran and the route's guard let it through. */
function principalOf(c: Context<Env>): Principal {
  const principal = c.get('principal');
  if (!principal) throw unauthorized('this route needs a bearer token');
  return principal;
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
function allowedMethods(app: Hono<Env>): (path: string) => string[] {
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

/** The socket's peer address under @hono/node-server; `unknown` in process (`app.request`). */
function socketAddress(c: Context): string {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return env?.incoming?.socket?.remoteAddress ?? 'unknown';
}

export function createGateway(options: GatewayOptions): Hono<Env> {
  const { topology, requester, invoices, authenticator, tokens } = options;
  const { bodyLimitBytes, requestTimeoutMs, liveHeartbeatMs } = { ...defaults, ...options };
  const limits = { ...defaultLimits, ...options.limits } satisfies GatewayLimits;
  const logger = options.logger ?? pino({ level: 'silent' });
  const addressOf = options.clientAddress ?? socketAddress;
  const call = { timeoutMs: requestTimeoutMs };
  const app = new Hono<Env>();
  // Outermost: every request is counted, timed and traced, errors and 404s included.
  app.use(observeHttp(options.metrics ? { registry: options.metrics } : {}));

  app.onError((error, c) => {
    const p = problemFor(error);
    if (p.status >= 500) logger.error({ err: error, path: c.req.path }, 'request failed');
    if (error instanceof AuthenticationError && p.status === 401)
      return send(c, p, unauthorized(error.message, 'invalid_token').headers);
    return send(c, p, error instanceof ProblemResponse ? error.headers : {});
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

  // ───────────── middleware, in this order, on every route ─────────────
  // 1. Security headers on every answer, errors included (a route's own, e.g. the dashboard's CSP, win).
  app.use(
    secureHeaders({
      contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"] },
      xFrameOptions: 'DENY',
      strictTransportSecurity:
        options.hstsMaxAgeS === undefined ? false : `max-age=${options.hstsMaxAgeS}; includeSubDomains`,
      overwrite: false,
    }),
  );
  app.use(async (c, next) => {
    await next();
    // Answers are per caller: no shared cache may keep them (static assets say otherwise themselves).
    if (!c.res.headers.has('cache-control')) c.res.headers.set('cache-control', 'no-store');
  });
  // 2. The caller: a bearer token, when one is sent, is verified on every route (public ones too).
  app.use(async (c, next) => {
    const header = c.req.header('authorization');
    if (header === undefined) {
      c.set('principal', undefined);
      return next();
    }
    const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header);
    if (!match?.[1])
      throw unauthorized('the Authorization header must be "Bearer <token>"', 'invalid_request');
    c.set('principal', await authenticator.authenticate(match[1]));
    return next();
  });

  /** 3. Per route: who may call it (the OpenAPI document states the same). */
  const guard = (access: Access): MiddlewareHandler<Env> =>
    async function guard(c, next) {
      const principal = c.get('principal');
      switch (access) {
        case Access.Public:
          return next();
        case Access.Authenticated:
          if (!principal) throw unauthorized('this route needs a bearer token');
          return next();
        case Access.Operator:
          if (!principal) throw unauthorized('this route needs an operator token');
          if (principal.kind !== 'operator') {
            throw new ProblemResponse(problem(403, 'FORBIDDEN', 'this route is for operators only'), {
              'www-authenticate': `${REALM}, error="insufficient_scope", scope="${OPERATOR_SCOPE}"`,
            });
          }
          return next();
        default:
          return access satisfies never;
      }
    };

  /** 4. On writes: a token bucket per client (`key` of the request). */
  const rateLimit = (limiter: RateLimiter, key: (c: Context<Env>) => string): MiddlewareHandler<Env> =>
    async function rateLimit(c, next) {
      const decision = limiter.take(key(c));
      if (!decision.allowed) {
        throw new ProblemResponse(
          problem(429, 'RATE_LIMITED', `too many requests; retry in ${decision.retryAfterS} s`),
          { 'retry-after': String(decision.retryAfterS) },
        );
      }
      return next();
    };
  const writes = rateLimit(new RateLimiter(limits.writes), (c) =>
    clientKey(c.get('principal'), addressOf(c)),
  );
  const signUps = rateLimit(new RateLimiter(limits.signUps), (c) => `addr:${addressOf(c)}`);

  const limit = bodyLimit({
    maxSize: bodyLimitBytes,
    onError: (c) => send(c, problem(413, 'BODY_TOO_LARGE', `the body exceeds ${bodyLimitBytes} bytes`)),
  });
  const isPublic = guard(Access.Public);
  const authenticated = guard(Access.Authenticated);
  const operator = guard(Access.Operator);

  // ───────────── routes ─────────────

  app.get('/healthz', isPublic, (c) => c.json({ status: 'ok' }));
  app.get('/readyz', isPublic, (c) => {
    const ready = options.ready?.() ?? true;
    return c.json({ ready }, ready ? 200 : 503);
  });
  app.get('/metrics', operator, async (c) =>
    c.body(options.metrics ? await options.metrics.metrics() : '', 200, {
      'content-type': options.metrics?.contentType ?? METRICS_CONTENT_TYPE,
    }),
  );
  const openapi = openApiDocument({
    PlaceOrderBody,
    RegisterCustomerBody,
    signUpIsPublic: tokens !== undefined,
  });
  app.get('/openapi.json', isPublic, (c) => c.json(openapi));
  // The messaging API (subjects of this deployment's topology), as docs/asyncapi.json is for production.
  const asyncapi = asyncApiDocument(topology);
  app.get('/asyncapi.json', isPublic, (c) => c.json(asyncapi));

  app.post('/customers', tokens ? isPublic : operator, signUps, limit, async (c) => {
    const body = valid(RegisterCustomerBody, await jsonBody(c));
    const reply = await requester.request(topology.endpoints.registerCustomer, body, call);
    const token = tokens ? await tokens.customerToken(reply.customerId) : undefined;
    return c.json({ ...reply, ...(token !== undefined && { token }) }, 201, {
      location: `/customers/${reply.customerId}`,
    });
  });

  app.get('/customers/:id', authenticated, async (c) => {
    const customerId = idParam(c, 'customer');
    // A customer reads only themself; another's record is answered as one that does not exist.
    if (!mayAccess(principalOf(c), customerId))
      throw new ProblemResponse(
        problem(404, OrderingErrorCode.CustomerNotFound, `no customer ${customerId}`),
      );
    return c.json(await requester.request(topology.endpoints.getCustomer, { customerId }, call));
  });

  app.post('/orders', authenticated, writes, limit, async (c) => {
    const principal = principalOf(c);
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
    const { customerId: named, ...order } = body.value;
    let customerId: string;
    switch (principal.kind) {
      case 'customer':
        if (named !== undefined && named !== principal.customerId)
          fail(403, 'FORBIDDEN', 'a customer may place orders only for themself');
        customerId = principal.customerId;
        break;
      case 'operator':
        if (named === undefined)
          fail(400, 'INVALID_REQUEST', 'an operator names the customer', [
            { field: '/customerId', message: 'required for an operator' },
          ]);
        customerId = named as string;
        break;
      default:
        return principal satisfies never;
    }
    const reply = await requester.request(
      topology.endpoints.placeOrder,
      { ...order, customerId, idempotencyKey: key },
      call,
    );
    return c.json(reply, 201, { location: `/orders/${reply.orderId}` });
  });

  /** The order's view if the caller may see it, else the 404 of an unknown order. */
  const ownOrder = async (c: Context<Env>, orderId: string) => {
    const view = await aboutOrder(
      orderId,
      requester.request(topology.endpoints.getOrderStatus, { orderId }, call),
    );
    if (!mayAccess(principalOf(c), view.customerId)) throw orderNotFound(orderId);
    return view;
  };

  app.get('/orders/:id', authenticated, async (c) => c.json(await ownOrder(c, orderIdParam(c))));

  app.get('/orders/:id/events', authenticated, async (c) => {
    const orderId = orderIdParam(c);
    const reply = await aboutOrder(
      orderId,
      requester.request(
        topology.endpoints.getOrderHistory,
        { orderId, ...ownerFilter(principalOf(c)) },
        call,
      ),
    );
    return c.json(toCloudEvents(orderId, reply.events), 200, {
      'content-type': 'application/cloudevents-batch+json',
    });
  });

  /** The PDF named after the order's view (`nameOf`), or the 404 problem `notFound`. */
  const pdfOf = async (
    c: Context<Env>,
    nameOf: (order: OrderView) => string | undefined,
    notFound: { code: string; detail: (orderId: string) => string },
  ): Promise<Response> => {
    const orderId = orderIdParam(c);
    const order = await ownOrder(c, orderId);
    const name = nameOf(order);
    const pdf = name ? await invoices.pdf(name) : undefined;
    if (!name || !pdf) return send(c, problem(404, notFound.code, notFound.detail(orderId)));
    // A copy of exactly the PDF: the blob may be a view into a larger (protocol) buffer.
    return c.body(new Uint8Array(pdf).buffer, 200, {
      'content-type': 'application/pdf',
      'content-disposition': `inline; filename="${name}"`,
    });
  };

  app.get('/orders/:id/invoice.pdf', authenticated, (c) =>
    pdfOf(c, (o) => (o.invoiceNumber ? topology.objectStores.invoicePdf(o.invoiceNumber) : undefined), {
      code: 'INVOICE_NOT_FOUND',
      detail: (orderId) => `no invoice for order ${orderId} (yet)`,
    }),
  );

  app.get('/orders/:id/credit-note.pdf', authenticated, (c) =>
    pdfOf(
      c,
      (o) => (o.creditNoteNumber ? topology.objectStores.creditNotePdf(o.creditNoteNumber) : undefined),
      {
        code: 'CREDIT_NOTE_NOT_FOUND',
        detail: (orderId) =>
          `no credit note for order ${orderId}: it has none (not refunded after an invoice) or not yet`,
      },
    ),
  );

  app.post('/orders/:id/cancel', authenticated, writes, async (c) => {
    const orderId = orderIdParam(c);
    const request = { orderId, ...ownerFilter(principalOf(c)) };
    return c.json(
      await aboutOrder(orderId, requester.request(topology.endpoints.cancelOrder, request, call)),
      202,
    );
  });

  let openStreams = 0;
  const streamsOf = new Map<string, number>();
  app.get('/status-changes', authenticated, (c) => {
    const principal = principalOf(c);
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
    // HEAD is answered from the GET route, but its body would never be read nor cancelled: no stream.
    if (c.req.method === 'HEAD')
      return c.body(null, 200, { 'content-type': 'text/event-stream; charset=utf-8' });
    const client = clientKey(principal, addressOf(c));
    const mine = streamsOf.get(client) ?? 0;
    if (mine >= limits.maxStreamsPerClient) {
      throw new ProblemResponse(
        problem(
          429,
          'TOO_MANY_STREAMS',
          `at most ${limits.maxStreamsPerClient} open event streams per client`,
        ),
        { 'retry-after': '5' },
      );
    }
    if (openStreams >= limits.maxStreams) {
      throw new ProblemResponse(
        problem(
          503,
          'TOO_MANY_STREAMS',
          'the gateway serves as many event streams as it can; try again later',
        ),
        { 'retry-after': '5' },
      );
    }
    openStreams += 1;
    streamsOf.set(client, mine + 1);
    const wanted = new Set(ids);
    const own = (change: StatusChange) => mayAccess(principal, change.customerId);
    return statusChangeStream(options.statusChanges, {
      accept: wanted.size === 0 ? own : (change) => wanted.has(change.orderId) && own(change),
      heartbeatMs: liveHeartbeatMs,
      retryMs: 2_000,
      maxQueuedEvents: 1_000,
      onClose: () => {
        openStreams -= 1;
        const left = (streamsOf.get(client) ?? 1) - 1;
        if (left > 0) streamsOf.set(client, left);
        else streamsOf.delete(client);
      },
    });
  });

  // The operations console's API: operators only (see `console.ts`).
  app.use('/console/*', operator);
  if (options.console) {
    app.route('/console', consoleApi(topology, requester, call, options.console));
  } else {
    app.all('/console/*', (c) =>
      send(
        c,
        problem(
          503,
          'CONSOLE_UNAVAILABLE',
          options.consoleUnavailable ?? 'this gateway has no operations console',
        ),
      ),
    );
  }

  const serve = (c: Context, asset: StaticAsset) => c.body(asset.body, 200, asset.headers);
  app.get('/', isPublic, (c) => serve(c, DASHBOARD_PAGE));
  app.get('/dashboard', isPublic, (c) => serve(c, DASHBOARD_PAGE));
  app.get('/dashboard/:file', isPublic, (c) => {
    const asset = DASHBOARD_ASSETS.get(c.req.param('file'));
    return asset ? serve(c, asset) : send(c, problem(404, 'NOT_FOUND', `no route for GET ${c.req.path}`));
  });

  return app;
}
