import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Objm } from '@nats-io/obj';
import { InvoiceCreated, orderingTopology } from '@orderflow/contracts';
import {
  connectNats,
  NatsTransport,
  runService,
  type RunningService,
  NatsBlobStores,
  NatsKeyValueStores,
} from '@orderflow/messaging';
import { jetStreamPorts, orderStorageMigrations, startOrderStorage } from '@orderflow/order-storage';
import { KvStatusStore, startOrderStatus } from '@orderflow/order-status';
import { migrate, migrateInboxOutbox, openPostgres, type SqlStore } from '@orderflow/sql';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import {
  BroadcastStatusFeed,
  createGateway,
  DEV_ALGORITHM,
  DevIssuer,
  JwtAuthenticator,
  listen,
  natsOperations,
  ObjectStoreInvoices,
  OPERATOR_SCOPE,
  readDevSigningKey,
  type GatewayOptions,
} from '../src/mod.ts';
import { bearer, testAuth, type TestAuth } from './auth-support.ts';

// Who may do what at the gateway, against real servers: nats-server, PostgreSQL (a schema for the
// file), order-storage and order-status in process, tokens from a development issuer on a real key
// file. The matrix takes its routes from the OpenAPI document, so a route added there without a case
// here fails the test; each route is called by anonymous, customer A, customer B and an operator, in
// process (`app.request`) and over HTTP.
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const topology = orderingTopology({ namespace: uniqueName('gwauth') });
const schema = uniqueName('gw_auth_order_storage');
let nats: NatsServer;
let store: SqlStore;
let auth: TestAuth;
const services: RunningService[] = [];
let gatewayOptions: GatewayOptions;
let app: ReturnType<typeof createGateway>;
let base: string;
let closeHttp: (() => Promise<void>) | undefined;
let client: NatsTransport;
let clientNc: Awaited<ReturnType<typeof connectNats>>['nc'];

before(async () => {
  auth = await testAuth();
  nats = await startNatsServer();
  store = await openPostgres({ url: DATABASE_URL, schema, poolSize: 3 });
  await migrateInboxOutbox(store);
  await migrate(store, orderStorageMigrations, { component: 'order-storage' });
  const common = {
    version: '0.1.0',
    broker: { kind: 'nats' as const, servers: nats.url },
    streams: topology.streams,
    handleSignals: false,
    logger: pino({ level: 'silent' }),
  };
  services.push(
    await runService({ ...common, name: 'order-storage' }, async (context) => {
      await startOrderStorage(context, {
        topology,
        store,
        ...jetStreamPorts(context.broker.transport, topology),
        relayPollIntervalMs: 100,
      });
    }),
    await runService({ ...common, name: 'order-status' }, async (context) => {
      const statusStore = await KvStatusStore.open(
        new NatsKeyValueStores(context.broker.nc),
        topology.kv.orderStatus,
      );
      await startOrderStatus(context, { topology, store: statusStore, broadcaster: context.transport });
    }),
    await runService({ ...common, name: 'gateway' }, async (context) => {
      gatewayOptions = {
        topology,
        requester: context.transport,
        invoices: new ObjectStoreInvoices(
          new NatsBlobStores(context.broker.nc),
          topology.objectStores.invoices,
        ),
        statusChanges: new BroadcastStatusFeed(context.transport, topology.notifications.statusChangedAll),
        metrics: context.metrics,
        authenticator: auth.authenticator,
        tokens: auth.issuer,
        // No SMTP sink or PSP here: their console routes answer 503.
        console: {
          operations: natsOperations(context.broker.nc, context.broker.transport),
          livePeriodMs: 200,
        },
      };
      app = createGateway(gatewayOptions);
      const server = await listen(app, { port: 0 });
      base = `http://127.0.0.1:${server.port}`;
      closeHttp = () => server.close(100);
    }),
  );
  ({ nc: clientNc } = await connectNats({ servers: nats.url, name: 'create-invoice-test' }));
  client = await NatsTransport.create(clientNc, { source: 'orderflow/create-invoice' });
});
after(async () => {
  await closeHttp?.();
  await client?.close();
  await clientNc?.close();
  for (const service of services.reverse()) await service.stop();
  await store?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await store?.close();
  await nats?.dispose();
  await auth?.dispose();
});

/** How a request reaches the gateway: in process or over HTTP. */
type Transport = (path: string, init?: RequestInit) => Promise<Response>;
const inProcess: Transport = (path, init) => Promise.resolve(app.request(path, init));
const overHttp: Transport = (path, init) => fetch(`${base}${path}`, init);

const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});
const order = (customerId?: string) => ({
  ...(customerId !== undefined && { customerId }),
  items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1250 }],
  currency: 'EUR',
  shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
  payment: { token: 'tok_visa' },
});

interface Party {
  readonly name: 'anonymous' | 'customer A' | 'customer B' | 'operator';
  readonly headers: Record<string, string>;
}

/** The world one run of the matrix acts on: A's and B's accounts, and an invoiced order of A's. */
interface World {
  readonly a: { customerId: string; headers: Record<string, string> };
  readonly b: { customerId: string; headers: Record<string, string> };
  readonly operator: Record<string, string>;
  /** A's order, invoiced (its PDF is in the object store). */
  readonly orderOfA: string;
}

async function signUp(send: Transport): Promise<{ customerId: string; headers: Record<string, string> }> {
  const response = await send('/customers', json({ name: 'Ada', email: `${randomUUID()}@example.test` }));
  assert.equal(response.status, 201);
  const { customerId, token } = (await response.json()) as { customerId: string; token: string };
  return { customerId, headers: bearer(token) };
}

async function world(send: Transport): Promise<World> {
  const [a, b] = [await signUp(send), await signUp(send)];
  const placed = await send('/orders', json(order(), { ...a.headers, 'idempotency-key': randomUUID() }));
  assert.equal(placed.status, 201);
  const { orderId } = (await placed.json()) as { orderId: string };
  // What create-invoice does: the PDF in the object store, then invoice.created.
  const invoiceNumber = `2026-${String(Math.floor(Math.random() * 1e6)).padStart(6, '0')}`;
  const name = topology.objectStores.invoicePdf(invoiceNumber);
  const pdf = new TextEncoder().encode('%PDF-1.4 authorization test');
  const objects = await new Objm(clientNc).create(topology.objectStores.invoices);
  await objects.putBlob({ name }, pdf);
  await client.publish(
    InvoiceCreated,
    {
      orderId,
      invoiceNumber,
      year: 2026,
      sequence: 1,
      total: { amount: 2500, currency: 'EUR' },
      pdf: { bucket: topology.objectStores.invoices, name, size: pdf.length },
      issuedAt: new Date().toISOString(),
    },
    { subject: topology.subjects.invoice(orderId), about: orderId },
  );
  await waitFor(async () => {
    const view = await send(`/orders/${orderId}`, { headers: a.headers });
    return view.status === 200 && ((await view.json()) as { invoiceNumber: unknown }).invoiceNumber !== null;
  });
  return { a, b, operator: await auth.operator(), orderOfA: orderId };
}

type Expectation = (response: Response, body: string) => void;
const status =
  (...statuses: number[]): Expectation =>
  (response) =>
    assert.ok(statuses.includes(response.status), `expected ${statuses.join('|')}, got ${response.status}`);
const problemCode =
  (expected: number, code: string): Expectation =>
  (response, body) => {
    assert.equal(response.status, expected, body);
    assert.equal((JSON.parse(body) as { code: string }).code, code, body);
  };

/**
 * One route's case: the request each party makes, and, where the OpenAPI document's `security` does not
 * say everything, what each may get (customer B acting on A's things).
 */
interface RouteCase {
  request(party: Party, w: World): { path: string; init?: RequestInit };
  /** What the owner (A) and the operator get; default a 2xx. */
  allowed?: Expectation;
  /** What customer B gets for A's resource (an authenticated route); default: the same as A. */
  otherCustomer?: Expectation;
}

const withHeaders = (party: Party, init: RequestInit = {}): RequestInit => ({
  ...init,
  headers: { ...(init.headers as Record<string, string>), ...party.headers },
});
const get = (path: string) => (party: Party) => ({ path, init: withHeaders(party) });
const ofA = (suffix: string, method = 'GET') => ({
  request: (party: Party, w: World) => ({
    path: `/orders/${w.orderOfA}${suffix}`,
    init: withHeaders(party, { method }),
  }),
  otherCustomer: problemCode(404, 'ORDER_NOT_FOUND'),
});

const CASES: Record<string, RouteCase> = {
  'GET /': { request: get('/') },
  'GET /dashboard': { request: get('/dashboard') },
  'GET /dashboard/{file}': { request: get('/dashboard/dashboard.mjs') },
  'GET /openapi.json': { request: get('/openapi.json') },
  'GET /asyncapi.json': { request: get('/asyncapi.json') },
  'GET /healthz': { request: get('/healthz') },
  'GET /readyz': { request: get('/readyz') },
  'GET /metrics': { request: get('/metrics') },
  'POST /customers': {
    request: (party) => ({
      path: '/customers',
      init: withHeaders(party, json({ name: 'Eve', email: `${randomUUID()}@example.test` })),
    }),
  },
  'GET /customers/{id}': {
    // Each asks for customer A: A and the operator read it, B is told there is no such customer.
    request: (party, w) => ({ path: `/customers/${w.a.customerId}`, init: withHeaders(party) }),
    otherCustomer: problemCode(404, 'CUSTOMER_NOT_FOUND'),
  },
  'POST /orders': {
    // Each names customer A: A and the operator place an order, B is refused.
    request: (party, w) => ({
      path: '/orders',
      init: withHeaders(party, json(order(w.a.customerId), { 'idempotency-key': randomUUID() })),
    }),
    otherCustomer: problemCode(403, 'FORBIDDEN'),
  },
  'GET /orders/{id}': ofA(''),
  'GET /orders/{id}/events': ofA('/events'),
  'GET /orders/{id}/invoice.pdf': ofA('/invoice.pdf'),
  'GET /orders/{id}/credit-note.pdf': {
    ...ofA('/credit-note.pdf'),
    // A's order is invoiced, not credited: its owner and the operator learn it has no credit note (the
    // PDF itself is served in documents.int.test.ts); B learns nothing of the order.
    allowed: problemCode(404, 'CREDIT_NOTE_NOT_FOUND'),
  },
  'POST /orders/{id}/cancel': {
    ...ofA('/cancel', 'POST'),
    // A cancels (202), the operator after A finds it cancelled already.
    allowed: (response, body) => {
      if (response.status === 202) return;
      problemCode(409, 'ORDER_ALREADY_CANCELLED')(response, body);
    },
  },
  'GET /status-changes': { request: get('/status-changes') },
  'GET /console/topology': { request: get('/console/topology') },
  'GET /console/consumers/live': { request: get('/console/consumers/live') },
  'GET /console/orders': { request: get('/console/orders?limit=5') },
  'GET /console/orders/{id}/timeline': {
    request: (party, w) => ({ path: `/console/orders/${w.orderOfA}/timeline`, init: withHeaders(party) }),
  },
  'GET /console/dead-letters': { request: get('/console/dead-letters') },
  'POST /console/dead-letters/redrive': {
    request: (party) => ({
      path: '/console/dead-letters/redrive',
      init: withHeaders(party, { method: 'POST' }),
    }),
  },
  'POST /console/dead-letters/{seq}/redrive': {
    request: (party) => ({
      path: '/console/dead-letters/999999/redrive',
      init: withHeaders(party, { method: 'POST' }),
    }),
    allowed: problemCode(404, 'DEAD_LETTER_NOT_FOUND'),
  },
  'POST /console/dead-letters/{seq}/discard': {
    request: (party) => ({
      path: '/console/dead-letters/999999/discard',
      init: withHeaders(party, { method: 'POST' }),
    }),
    allowed: problemCode(404, 'DEAD_LETTER_NOT_FOUND'),
  },
  'GET /console/mailbox': {
    request: get('/console/mailbox'),
    allowed: problemCode(503, 'DEV_TOOL_UNAVAILABLE'),
  },
  'GET /console/ledger': {
    request: get('/console/ledger'),
    allowed: problemCode(503, 'DEV_TOOL_UNAVAILABLE'),
  },
};

interface OpenApi {
  paths: Record<string, Record<string, { security?: { bearer?: string[] }[] }>>;
}

/** Each operation of the document with who may call it, from its `security`. */
async function documentedRoutes(send: Transport) {
  const doc = (await (await send('/openapi.json')).json()) as OpenApi;
  return Object.entries(doc.paths).flatMap(([path, operations]) =>
    Object.entries(operations).map(([method, operation]) => {
      const route = `${method.toUpperCase()} ${path}`;
      assert.ok(operation.security, `${route} states no security`);
      const scopes = operation.security.map((requirement) => requirement.bearer);
      const access =
        scopes.length === 0
          ? 'public'
          : scopes.some((s) => s?.includes(OPERATOR_SCOPE))
            ? 'operator'
            : 'authenticated';
      return { route, access };
    }),
  );
}

const SECURITY_HEADERS: Record<string, RegExp> = {
  'x-content-type-options': /^nosniff$/,
  'content-security-policy': /frame-ancestors 'none'/,
  'x-frame-options': /^DENY$/,
  'referrer-policy': /^no-referrer$/,
};
function assertSecurityHeaders(response: Response, what: string): void {
  for (const [name, pattern] of Object.entries(SECURITY_HEADERS))
    assert.match(response.headers.get(name) ?? '', pattern, `${what}: ${name}`);
}

async function runMatrix(send: Transport): Promise<string[]> {
  const w = await world(send);
  const parties: Party[] = [
    { name: 'anonymous', headers: {} },
    { name: 'customer B', headers: w.b.headers },
    { name: 'customer A', headers: w.a.headers },
    { name: 'operator', headers: w.operator },
  ];
  const checked: string[] = [];
  for (const { route, access } of await documentedRoutes(send)) {
    const routeCase = CASES[route];
    assert.ok(routeCase, `${route} (in the OpenAPI document) has no case in the authorization matrix`);
    for (const party of parties) {
      const { path, init } = routeCase.request(party, w);
      const response = await send(path, init);
      // Headers before the body: @hono/node-server's lightweight Response (in process) forgets headers
      // set by middleware once its body is read.
      assertSecurityHeaders(response, `${party.name} ${route} → ${response.status}`);
      // Event streams do not end: read no body.
      const endless = route === 'GET /status-changes' || route === 'GET /console/consumers/live';
      const body = endless ? '' : await response.text();
      if (endless) await response.body?.cancel();
      const what = `${party.name} ${route} → ${response.status} ${body.slice(0, 200)}`;
      if (access !== 'public' && party.name === 'anonymous') {
        assert.equal(response.status, 401, what);
        assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer realm="orderflow"/, what);
        assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/, what);
      } else if (access === 'operator' && party.name !== 'operator') {
        assert.equal(response.status, 403, what);
        assert.match(response.headers.get('www-authenticate') ?? '', /insufficient_scope/, what);
      } else if (access === 'authenticated' && party.name === 'customer B' && routeCase.otherCustomer) {
        try {
          routeCase.otherCustomer(response, body);
        } catch (error) {
          throw new Error(what, { cause: error });
        }
      } else {
        try {
          (routeCase.allowed ?? status(200, 201, 202))(response, body);
        } catch (error) {
          throw new Error(what, { cause: error });
        }
      }
      checked.push(`${party.name} ${route} ${response.status}`);
    }
  }
  return checked;
}

describe('authorization matrix: anonymous, customer A, customer B, operator × every documented route', () => {
  for (const [name, send] of [
    ['in process', inProcess],
    ['over HTTP', overHttp],
  ] as const) {
    test(name, async () => {
      const checked = await runMatrix(send);
      assert.equal(checked.length, Object.keys(CASES).length * 4);
    });
  }

  test("B cannot tell A's order from one that does not exist", async () => {
    const w = await world(inProcess);
    for (const suffix of ['', '/events', '/invoice.pdf', '/credit-note.pdf']) {
      const theirs = await inProcess(`/orders/${w.orderOfA}${suffix}`, { headers: w.b.headers });
      const none = await inProcess(`/orders/${w.orderOfA.replace(/.$/, 'x')}${suffix}`, {
        headers: w.b.headers,
      });
      assert.equal(theirs.status, 404);
      assert.equal(none.status, 404);
      const [p, q] = [
        (await theirs.json()) as { code: string; detail: string },
        (await none.json()) as { code: string; detail: string },
      ];
      assert.equal(p.code, q.code);
      assert.equal(p.detail.replace(w.orderOfA, '<id>'), q.detail.replace(/\S+$/, '<id>'));
    }
  });

  test("Idempotency-Keys are the customer's own: B's request with A's key is B's own new order", async () => {
    const w = await world(inProcess);
    const key = randomUUID();
    const placeAs = async (headers: Record<string, string>) => {
      const response = await inProcess('/orders', json(order(), { ...headers, 'idempotency-key': key }));
      assert.equal(response.status, 201);
      return ((await response.json()) as { orderId: string }).orderId;
    };
    const ofA = await placeAs(w.a.headers);
    const ofB = await placeAs(w.b.headers);
    assert.notEqual(ofB, ofA);
    assert.equal(await placeAs(w.a.headers), ofA);
    const view = await waitFor(async () => {
      const r = await inProcess(`/orders/${ofB}`, { headers: w.b.headers });
      return r.status === 200 ? ((await r.json()) as { customerId: string }) : undefined;
    });
    assert.equal(view.customerId, w.b.customerId);
  });
});

describe('tokens that are refused: 401 problem+json with WWW-Authenticate error="invalid_token"', () => {
  const refusedWith = async (authorization: string, detail: RegExp) => {
    const response = await inProcess('/orders/some-order', { headers: { authorization } });
    const body = (await response.json()) as { code: string; detail: string };
    assert.equal(response.status, 401, JSON.stringify(body));
    assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.match(
      response.headers.get('www-authenticate') ?? '',
      /^Bearer realm="orderflow", error="invalid_/,
    );
    assert.equal(body.code, 'INVALID_TOKEN');
    assert.match(body.detail, detail);
  };
  const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = () => Math.floor(Date.now() / 1000);

  test('expired', async () => {
    const past = await DevIssuer.open(auth.keyFile, { clock: () => new Date(Date.now() - 2 * 86_400_000) });
    await refusedWith(`Bearer ${await past.customerToken('c-1')}`, /expired/);
  });

  test('alg none, and a token signed with the public key as an HMAC secret', async () => {
    const claims = { sub: 'c-1', iss: auth.issuer.issuer, aud: auth.issuer.audience, exp: now() + 600 };
    await refusedWith(
      `Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`,
      /algorithm|malformed/,
    );
    const publicKey = new TextEncoder().encode(JSON.stringify(auth.issuer.jwks.keys[0]));
    const hmac = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(publicKey);
    await refusedWith(`Bearer ${hmac}`, /algorithm/);
  });

  test('wrong audience, wrong issuer', async () => {
    const otherAudience = await DevIssuer.open(auth.keyFile, { audience: 'another-api' });
    await refusedWith(`Bearer ${await otherAudience.customerToken('c-1')}`, /"aud"/);
    const otherIssuer = await DevIssuer.open(auth.keyFile, { issuer: 'https://evil.example' });
    await refusedWith(`Bearer ${await otherIssuer.customerToken('c-1')}`, /"iss"/);
  });

  test('signed by a key the gateway does not trust; no exp; not a customer id; not a bearer header', async () => {
    const stranger = await testAuth();
    try {
      await refusedWith((await stranger.customer('c-1')).authorization ?? '', /trusted key/);
    } finally {
      await stranger.dispose();
    }
    const key = await readDevSigningKey(auth.keyFile);
    const { importJWK } = await import('jose');
    const signer = await importJWK(key, DEV_ALGORITHM);
    const noExp = await new SignJWT({})
      .setProtectedHeader({ alg: DEV_ALGORITHM, kid: key.kid })
      .setIssuer(auth.issuer.issuer)
      .setAudience(auth.issuer.audience)
      .setSubject('c-1')
      .sign(signer);
    await refusedWith(`Bearer ${noExp}`, /"exp"/);
    await refusedWith(`Bearer ${await auth.issuer.customerToken('not.an>id')}`, /customer id/);
    await refusedWith('Basic dXNlcjpwYXNz', /Bearer/);
    await refusedWith('Bearer not-a-jwt', /malformed/);
  });

  test("an issuer's JWKS over HTTP: its tokens pass; while it is down the answer is 503, not 401", async () => {
    let jwksServer: Server | undefined = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(auth.issuer.jwks));
    });
    await new Promise<void>((resolve) => jwksServer?.listen(0, '127.0.0.1', resolve));
    const { port } = jwksServer.address() as AddressInfo;
    const remote = createGateway({
      ...gatewayOptions,
      authenticator: new JwtAuthenticator({
        keys: { jwksUrl: new URL(`http://127.0.0.1:${port}/.well-known/jwks.json`) },
        issuer: auth.issuer.issuer,
        audience: auth.issuer.audience,
        algorithms: ['EdDSA'],
        jwksTimeoutMs: 1_000,
      }),
      tokens: undefined,
    });
    const w = await world(inProcess);
    assert.equal((await remote.request(`/orders/${w.orderOfA}`, { headers: w.a.headers })).status, 200);
    // Without a development issuer, sign-up is for operators only and answers no token.
    assert.equal(
      (await remote.request('/customers', json({ name: 'A', email: 'a@example.test' }))).status,
      401,
    );
    const registered = await remote.request(
      '/customers',
      json({ name: 'Ada', email: `${randomUUID()}@example.test` }, w.operator),
    );
    assert.equal(registered.status, 201);
    assert.deepEqual(Object.keys((await registered.json()) as object), ['customerId']);

    await new Promise<void>((resolve) => jwksServer?.close(() => resolve()));
    jwksServer = undefined;
    const fresh = createGateway({
      ...gatewayOptions,
      authenticator: new JwtAuthenticator({
        keys: { jwksUrl: new URL(`http://127.0.0.1:${port}/.well-known/jwks.json`) },
        issuer: auth.issuer.issuer,
        audience: auth.issuer.audience,
        algorithms: ['EdDSA'],
        jwksTimeoutMs: 1_000,
      }),
    });
    const down = await fresh.request(`/orders/${w.orderOfA}`, { headers: w.a.headers });
    assert.equal(down.status, 503);
    assert.equal(((await down.json()) as { code: string }).code, 'AUTH_UNAVAILABLE');
  });
});

describe('limits', () => {
  test('writes over the rate → 429 problem+json with Retry-After; another customer is not slowed', async () => {
    const limited = createGateway({
      ...gatewayOptions,
      limits: { writes: { ratePerS: 1, burst: 2 }, signUps: { ratePerS: 1, burst: 3 } },
    });
    const send: Transport = (path, init) => Promise.resolve(limited.request(path, init));
    const [a, b] = [await signUp(send), await signUp(send)];
    const place = (who: { headers: Record<string, string> }) =>
      send('/orders', json(order(), { ...who.headers, 'idempotency-key': randomUUID() }));
    assert.equal((await place(a)).status, 201);
    assert.equal((await place(a)).status, 201);
    const refused = await place(a);
    assert.equal(refused.status, 429);
    assertSecurityHeaders(refused, '429');
    assert.match(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.equal(((await refused.json()) as { code: string }).code, 'RATE_LIMITED');
    assert.equal((await place(b)).status, 201);
    // Sign-ups are limited per address (here: all in process, one address).
    await signUp(send);
    const tooMany = await send('/customers', json({ name: 'Eve', email: `${randomUUID()}@example.test` }));
    assert.equal(tooMany.status, 429);
    assert.ok(tooMany.headers.get('retry-after'));
  });

  test('security headers on answers the app never sees, and HSTS only when configured', async () => {
    const raw = await new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
      const url = new URL(base);
      httpRequest({ host: url.hostname, port: url.port, path: '/orders/a\\b', agent: false }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, headers: res.headers });
      })
        .on('error', reject)
        .end();
    });
    assert.equal(raw.status, 400);
    assert.equal(raw.headers['x-content-type-options'], 'nosniff');
    assert.match(String(raw.headers['content-security-policy']), /frame-ancestors 'none'/);
    assert.equal((await inProcess('/healthz')).headers.get('strict-transport-security'), null);
    const tls = createGateway({ ...gatewayOptions, hstsMaxAgeS: 31_536_000 });
    assert.equal(
      (await tls.request('/healthz')).headers.get('strict-transport-security'),
      'max-age=31536000; includeSubDomains',
    );
    assertSecurityHeaders(await inProcess('/no-such-route'), '404');
  });
});

// The operations console's API as an operator (who may call it is the matrix's): its answers and its
// bad-input problems, against the same servers.
describe('the operations console API (operator)', () => {
  /** The events of a server-sent event stream, until `enough` says so. */
  async function events(response: Response, enough: (seen: { event: string; data: unknown }[]) => boolean) {
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const seen: { event: string; data: unknown }[] = [];
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    while (!enough(seen)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) seen.push({ event, data: JSON.parse(data) as unknown });
      }
    }
    await reader.cancel();
    return seen;
  }

  test('topology, orders, timeline, dead letters; bad input is a 400 naming the field', async () => {
    const w = await world(inProcess);
    const op = { headers: w.operator };
    const get = async (path: string, init: RequestInit = op) => {
      const response = await inProcess(path, init);
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };

    const topo = await get('/console/topology');
    assert.equal(topo.status, 200);
    const services = topo.body.services as {
      name: string;
      replicas: number;
      health: string;
      serves: string[];
    }[];
    const byName = new Map(services.map((s) => [s.name, s]));
    assert.equal(byName.get('order-status')?.health, 'up');
    assert.equal(byName.get('order-status')?.replicas, 1);
    assert.deepEqual(byName.get('order-status')?.serves, [
      topology.endpoints.getOrderStatus.subject,
      topology.endpoints.listOrders.subject,
    ]);
    // Not started in this test: declared, and shown down.
    assert.equal(byName.get('create-invoice')?.health, 'down');
    const consumers = topo.body.consumers as { stream: string; name: string; pending: number; lag: number }[];
    assert.ok(
      consumers.some((c) => c.name === topology.consumers.orderStatus.all.name),
      JSON.stringify(consumers),
    );

    const page = await get('/console/orders?limit=100');
    assert.equal(page.status, 200);
    assert.ok((page.body.orders as { orderId: string }[]).some((o) => o.orderId === w.orderOfA));
    const none = await get('/console/orders?status=cancelled&limit=100');
    assert.ok((none.body.orders as { status: string }[]).every((o) => o.status === 'cancelled'));
    const bad = await get('/console/orders?status=lost&limit=0&offset=-1');
    assert.equal(bad.status, 400);
    assert.deepEqual(
      (bad.body.errors as { field: string }[]).map((e) => e.field),
      ['query:status', 'query:offset', 'query:limit'],
    );

    const timeline = await get(`/console/orders/${w.orderOfA}/timeline`);
    assert.equal(timeline.status, 200);
    const steps = timeline.body.events as { type: string; source: string; traceUrl: unknown }[];
    assert.deepEqual(
      steps.map((e) => `${e.source} ${e.type}`),
      ['order-storage order.placed.v2', 'create-invoice invoice.created.v1'],
    );
    assert.ok(
      steps.every((e) => e.traceUrl === null),
      'no trace UI configured: no links',
    );
    assert.equal((await get(`/console/orders/${randomUUID()}/timeline`)).status, 404);
    assert.equal((await get('/console/orders/not%20an%20id/timeline')).status, 400);

    const letters = await get('/console/dead-letters');
    assert.equal(letters.status, 200);
    assert.ok(Array.isArray(letters.body.deadLetters));
    assert.equal((await get('/console/dead-letters?limit=0')).status, 400);
    const post = { method: 'POST', headers: w.operator };
    const badSeq = await get('/console/dead-letters/abc/redrive', post);
    assert.equal(badSeq.status, 400);
    assert.equal(badSeq.body.code, 'INVALID_SEQUENCE');

    // Redrive-all reports its progress and ends (nothing to redrive here: 0 of 0).
    const redrive = await events(await inProcess('/console/dead-letters/redrive', post), (seen) =>
      seen.some((e) => e.event === 'done'),
    );
    assert.deepEqual(redrive.at(-1), { event: 'done', data: { done: 0, total: 0 } });
    // The live consumer positions: the first snapshot arrives at once.
    const live = await events(await inProcess('/console/consumers/live', op), (seen) => seen.length > 0);
    assert.equal(live[0]?.event, 'consumers');
    assert.ok(Array.isArray(live[0]?.data));
  });
});
