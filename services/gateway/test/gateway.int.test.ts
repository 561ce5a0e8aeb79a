import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { orderingTopology } from '@orderflow/contracts';
import { runService, type RunningService, NatsBlobStores } from '@orderflow/messaging';
import { jetStreamPorts, orderStorageMigrations, startOrderStorage } from '@orderflow/order-storage';
import { migrate, migrateInboxOutbox, openPostgres, type SqlStore } from '@orderflow/sql';
import { startNatsServer, uniqueName, type NatsServer } from '@orderflow/testing';
import { pino } from 'pino';
import { createGateway, listen, ObjectStoreInvoices } from '../src/mod.ts';
import { bearer, testAuth, type TestAuth } from './auth-support.ts';

// Real nats-server and PostgreSQL (a schema for the test); order-storage runs in process, the gateway
// listens on a free port and is called over HTTP. order-status is not running: its route answers 503.
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const topology = orderingTopology({ namespace: uniqueName('gw') });
const schema = uniqueName('gw_order_storage');
let nats: NatsServer;
let store: SqlStore;
let storage: RunningService;
let gatewayService: RunningService;
let base: string;
let closeHttp: () => Promise<void>;
let auth: TestAuth;

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
  };
  storage = await runService(
    { ...common, name: 'order-storage', logger: pino({ level: 'silent' }) },
    async (context) => {
      await startOrderStorage(context, {
        topology,
        store,
        ...jetStreamPorts(context.broker.transport, topology),
        relayPollIntervalMs: 100,
      });
    },
  );
  gatewayService = await runService(
    { ...common, name: 'gateway', logger: pino({ level: 'silent' }) },
    async (context) => {
      const app = createGateway({
        topology,
        requester: context.transport,
        invoices: new ObjectStoreInvoices(
          new NatsBlobStores(context.broker.nc),
          topology.objectStores.invoices,
        ),
        metrics: context.metrics,
        requestTimeoutMs: 2_000,
        authenticator: auth.authenticator,
        tokens: auth.issuer,
      });
      const server = await listen(app, { port: 0 });
      base = `http://127.0.0.1:${server.port}`;
      closeHttp = () => server.close();
    },
  );
});
after(async () => {
  await closeHttp?.();
  await gatewayService?.stop();
  await storage?.stop();
  await store?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await store?.close();
  await nats?.dispose();
  await auth?.dispose();
});

const json = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, {
    method,
    headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });

test('sign up → place (idempotent) → events as CloudEvents → cancel; status without order-status is 503', async () => {
  const created = await json('POST', '/customers', { name: 'Ada', email: `${randomUUID()}@example.test` });
  assert.equal(created.status, 201);
  const { customerId, token } = (await created.json()) as { customerId: string; token: string };
  const as = bearer(token);

  const order = {
    customerId,
    items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1250 }],
    currency: 'EUR',
    shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
    payment: { token: 'tok_visa' },
  };
  const key = { 'idempotency-key': randomUUID(), ...as };
  const placed = await json('POST', '/orders', order, key);
  assert.equal(placed.status, 201);
  const { orderId, status } = (await placed.json()) as { orderId: string; status: string };
  assert.equal(status, 'placed');
  const again = await json('POST', '/orders', order, key);
  assert.equal(((await again.json()) as { orderId: string }).orderId, orderId);
  const reused = await json('POST', '/orders', { ...order, currency: 'USD' }, key);
  assert.equal(reused.status, 409);
  assert.equal(((await reused.json()) as { code: string }).code, 'IDEMPOTENCY_KEY_REUSED');
  // A valid token of a customer order-storage does not know.
  const stranger = randomUUID();
  const unknown = await json(
    'POST',
    '/orders',
    { ...order, customerId: stranger },
    { 'idempotency-key': randomUUID(), ...(await auth.customer(stranger)) },
  );
  assert.equal(unknown.status, 404);
  assert.match(unknown.headers.get('content-type') ?? '', /problem\+json/);

  const events = await json('GET', `/orders/${orderId}/events`, undefined, as);
  assert.equal(events.status, 200);
  const list = (await events.json()) as {
    specversion: string;
    type: string;
    subject: string;
    id: string;
    data: { total: number };
  }[];
  assert.deepEqual(
    list.map((e) => [e.specversion, e.type, e.subject]),
    [['1.0', 'order.placed.v2', orderId]],
  );
  assert.equal(list[0]?.data.total, 2500);
  assert.equal(list[0]?.id, `order.placed.v2:${orderId}`);

  const cancel = await json('POST', `/orders/${orderId}/cancel`, undefined, as);
  assert.equal(cancel.status, 202);
  const twice = await json('POST', `/orders/${orderId}/cancel`, undefined, as);
  assert.equal(twice.status, 409);
  assert.equal(((await twice.json()) as { code: string }).code, 'ORDER_ALREADY_CANCELLED');
  const after = (await (await json('GET', `/orders/${orderId}/events`, undefined, as)).json()) as {
    type: string;
  }[];
  assert.deepEqual(
    after.map((e) => e.type),
    ['order.placed.v2', 'order.cancel-requested.v1'],
  );

  assert.equal((await json('GET', `/orders/${randomUUID()}/events`, undefined, as)).status, 404);
  // The invoice is found through the order's status (its invoice number); order-status is not running here.
  assert.equal((await json('GET', `/orders/${orderId}/invoice.pdf`, undefined, as)).status, 503);
  const noStatusService = await json('GET', `/orders/${orderId}`, undefined, as);
  assert.equal(noStatusService.status, 503);
  assert.match(noStatusService.headers.get('content-type') ?? '', /problem\+json/);
  assert.equal((await json('GET', '/healthz')).status, 200);
  assert.equal((await json('GET', '/metrics', undefined, as)).status, 403);
  assert.match(await (await json('GET', '/metrics', undefined, await auth.operator())).text(), /process_cpu/);
});

test('a known path with a method it does not serve is a 405 problem+json with Allow; an unknown path a 404', async () => {
  const orderId = randomUUID();
  const cases: [method: string, path: string, allow: string][] = [
    ['DELETE', `/orders/${orderId}`, 'GET, HEAD'],
    ['PUT', '/customers', 'POST'],
    ['GET', '/orders', 'POST'],
    ['GET', `/orders/${orderId}/cancel`, 'POST'],
    ['POST', `/orders/${orderId}/events`, 'GET, HEAD'],
    ['PATCH', `/customers/${randomUUID()}`, 'GET, HEAD'],
    ['OPTIONS', '/healthz', 'GET, HEAD'],
  ];
  for (const [method, path, allow] of cases) {
    const answer = await json(method, path);
    assert.equal(answer.status, 405, `${method} ${path}`);
    assert.equal(answer.headers.get('allow'), allow, `${method} ${path}`);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const body = (await answer.json()) as { status: number; code: string };
    assert.deepEqual([body.status, body.code], [405, 'METHOD_NOT_ALLOWED']);
  }
  const unknown = await json('DELETE', '/nowhere');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.headers.get('allow'), null);
  assert.equal(((await unknown.json()) as { code: string }).code, 'NOT_FOUND');
});

test('the Location of a new customer is a route: GET /customers/:id answers the customer', async () => {
  const email = `${randomUUID()}@example.test`;
  const created = await json('POST', '/customers', { name: 'Grace', email });
  assert.equal(created.status, 201);
  const { customerId, token } = (await created.json()) as { customerId: string; token: string };
  const as = bearer(token);
  const location = created.headers.get('location');
  assert.equal(location, `/customers/${customerId}`);
  const customer = await json('GET', location, undefined, as);
  assert.equal(customer.status, 200);
  const body = (await customer.json()) as Record<string, string>;
  assert.deepEqual(
    { ...body, registeredAt: typeof body.registeredAt },
    {
      customerId,
      email,
      name: 'Grace',
      registeredAt: 'string',
    },
  );
  assert.ok(!Number.isNaN(Date.parse(body.registeredAt ?? '')));
  // Another customer's record is not found, for a customer; an operator reads it; nobody: 401.
  const operator = await auth.operator();
  assert.equal((await json('GET', location, undefined, operator)).status, 200);
  assert.equal((await json('GET', location)).status, 401);
  const missing = await json('GET', `/customers/${randomUUID()}`, undefined, as);
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { code: string }).code, 'CUSTOMER_NOT_FOUND');
  const unknown = await json('GET', `/customers/${randomUUID()}`, undefined, operator);
  assert.equal(((await unknown.json()) as { code: string }).code, 'CUSTOMER_NOT_FOUND');
  const bad = await json('GET', '/customers/not.an.id', undefined, as);
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { code: string }).code, 'INVALID_ID');
  // A taken e-mail is the documented 409, also in other letter case.
  const taken = await json('POST', '/customers', { name: 'Grace', email: email.toUpperCase() });
  assert.equal(taken.status, 409);
  assert.equal(((await taken.json()) as { code: string }).code, 'CUSTOMER_EMAIL_TAKEN');
});

test('/healthz, /readyz and /metrics answer with the content types and bodies the OpenAPI document states', async () => {
  type Operation = { responses: Record<string, { content?: Record<string, { schema: unknown }> }> };
  const doc = (await (await json('GET', '/openapi.json')).json()) as {
    paths: Record<string, { get: Operation }>;
  };
  const documented = (path: string, status: string) =>
    Object.keys(doc.paths[path]?.get.responses[status]?.content ?? {});
  const health = await json('GET', '/healthz');
  assert.deepEqual(documented('/healthz', '200'), [health.headers.get('content-type')]);
  assert.deepEqual(await health.json(), { status: 'ok' });
  const ready = await json('GET', '/readyz');
  assert.equal(ready.status, 200);
  assert.deepEqual(documented('/readyz', '200'), [ready.headers.get('content-type')]);
  assert.deepEqual(documented('/readyz', '503'), [ready.headers.get('content-type')]);
  assert.deepEqual(await ready.json(), { ready: true });
  const metrics = await json('GET', '/metrics', undefined, await auth.operator());
  assert.deepEqual(documented('/metrics', '200'), [metrics.headers.get('content-type')]);
  assert.match(await metrics.text(), /^# HELP /m);
});

test('an order whose total is 0 is refused at the edge: 422 ORDER_TOTAL_ZERO naming /items', async () => {
  const created = await json('POST', '/customers', { name: 'Free', email: `${randomUUID()}@example.test` });
  const { customerId, token } = (await created.json()) as { customerId: string; token: string };
  const answer = await json(
    'POST',
    '/orders',
    {
      customerId,
      items: [
        { sku: 'GIFT', quantity: 3, unitPrice: 0 },
        { sku: 'SAMPLE', quantity: 1, unitPrice: 0 },
      ],
      currency: 'EUR',
      shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
      payment: { token: 'tok_visa' },
    },
    { 'idempotency-key': randomUUID(), ...bearer(token) },
  );
  assert.equal(answer.status, 422);
  assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const problem = (await answer.json()) as { code: string; errors: { field: string }[] };
  assert.equal(problem.code, 'ORDER_TOTAL_ZERO');
  assert.deepEqual(
    problem.errors.map((e) => e.field),
    ['/items'],
  );
});
