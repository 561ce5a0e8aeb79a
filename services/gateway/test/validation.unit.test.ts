import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { orderingTopology, type OrderingTopology } from '@orderflow/contracts';
import {
  NoRespondersError,
  RemoteError,
  TimeoutError,
  type EndpointContract,
  type PayloadOf,
  type Requester,
} from '@orderflow/messaging';
import { Registry } from 'prom-client';
import { createGateway, type InvoicePdfs } from '../src/mod.ts';
import { testAuth, type TestAuth } from './auth-support.ts';

// The bad-input matrix, in process (`app.request`): every case is a 4xx problem+json naming the field,
// and no request reaches a service.
const topology = orderingTopology({ namespace: 'gwunit' });
let auth: TestAuth;
/** Customer c-1's Authorization header. */
let asC1: Record<string, string>;
before(async () => {
  auth = await testAuth();
  asC1 = await auth.customer('c-1');
});
after(() => auth.dispose());

/** A requester that answers from a table by endpoint subject and records the calls. */
function fakeRequester(
  answers: Partial<Record<keyof OrderingTopology['endpoints'], (req: unknown) => unknown>>,
) {
  const calls: { endpoint: string; data: unknown }[] = [];
  const requester: Requester = {
    request<E extends EndpointContract>(
      endpoint: E,
      data: PayloadOf<E['request']>,
    ): Promise<PayloadOf<E['response']>> {
      calls.push({ endpoint: endpoint.name, data });
      const entry = Object.entries(topology.endpoints).find(([, e]) => e.subject === endpoint.subject);
      const answer = entry && answers[entry[0] as keyof OrderingTopology['endpoints']];
      if (!answer) return Promise.reject(new NoRespondersError(endpoint.subject));
      try {
        return Promise.resolve(answer(data) as PayloadOf<E['response']>);
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    },
  };
  return { requester, calls };
}

const noInvoices: InvoicePdfs = { pdf: () => Promise.resolve(undefined) };
const orderId = '5b0c7a6e-7f39-4f0e-9a59-0c7d2d3c9a11';
const validOrder = {
  customerId: 'c-1',
  items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1250 }],
  currency: 'EUR',
  shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
  payment: { token: 'tok_visa' },
};

function gateway(answers: Parameters<typeof fakeRequester>[0] = {}) {
  const fake = fakeRequester({
    placeOrder: () => ({ orderId, status: 'placed' }),
    registerCustomer: () => ({ customerId: 'c-1' }),
    ...answers,
  });
  const app = createGateway({
    topology,
    requester: fake.requester,
    invoices: noInvoices,
    bodyLimitBytes: 64 * 1024,
    authenticator: auth.authenticator,
    tokens: auth.issuer,
  });
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    app.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'k-1', ...asC1, ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  /** A request as customer c-1. */
  const request = (path: string, init: RequestInit = {}) =>
    app.request(path, { ...init, headers: { ...asC1, ...(init.headers as Record<string, string>) } });
  return { app, post, request, calls: fake.calls };
}

interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  errors?: { field: string; message: string }[];
}

async function expectProblem(response: Response, status: number, field?: string): Promise<ProblemBody> {
  assert.equal(response.status, status);
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const body = (await response.json()) as ProblemBody;
  assert.equal(body.status, status);
  assert.ok(body.type && body.title && body.detail && body.code, JSON.stringify(body));
  if (field !== undefined) {
    assert.ok(
      body.errors?.some((e) => e.field === field),
      `expected an error on ${field}, got ${JSON.stringify(body.errors)}`,
    );
  }
  return body;
}

const clone = <T>(value: T): T => structuredClone(value);
/** A mutable copy of the valid order, loosely typed so a test can break any field. */
interface Draft {
  [field: string]: unknown;
  items: Record<string, unknown>[];
  shippingAddress: Record<string, unknown>;
  payment: Record<string, unknown>;
}
const withOrder = (change: (o: Draft) => void): Draft => {
  const o = clone(validOrder) as unknown as Draft;
  change(o);
  return o;
};

describe('POST /orders bad input', () => {
  const cases: [name: string, body: unknown, field: string][] = [
    ['customerId null', withOrder((o) => (o.customerId = null)), '/customerId'],
    ['customerId of the wrong type', withOrder((o) => (o.customerId = 42)), '/customerId'],
    ['customerId that is no id', withOrder((o) => (o.customerId = 'a.b>')), '/customerId'],
    ['no items', withOrder((o) => (o.items = [])), '/items'],
    ['items not an array', withOrder((o) => ((o as Record<string, unknown>).items = 'x')), '/items'],
    ['zero quantity', withOrder((o) => (o.items[0]!.quantity = 0)), '/items/0/quantity'],
    ['negative quantity', withOrder((o) => (o.items[0]!.quantity = -1)), '/items/0/quantity'],
    ['fractional quantity', withOrder((o) => (o.items[0]!.quantity = 1.5)), '/items/0/quantity'],
    ['negative price', withOrder((o) => (o.items[0]!.unitPrice = -5)), '/items/0/unitPrice'],
    ['price as a string', withOrder((o) => (o.items[0]!.unitPrice = '12.50')), '/items/0/unitPrice'],
    ['unknown currency', withOrder((o) => (o.currency = 'XXX')), '/currency'],
    ['lower-case country', withOrder((o) => (o.shippingAddress.country = 'de')), '/shippingAddress/country'],
    [
      'country of three letters',
      withOrder((o) => (o.shippingAddress.country = 'DEU')),
      '/shippingAddress/country',
    ],
    ['missing city', withOrder((o) => delete o.shippingAddress.city), '/shippingAddress/city'],
    ['missing payment token', withOrder((o) => (o.payment = {})), '/payment/token'],
    ['unknown field', withOrder((o) => (o.discount = 100)), '/discount'],
    ['idempotency key in the body', withOrder((o) => (o.idempotencyKey = 'x')), '/idempotencyKey'],
  ];
  for (const [name, body, field] of cases) {
    test(`${name} → 400 naming ${field}`, async () => {
      const g = gateway();
      await expectProblem(await g.post('/orders', body), 400, field);
      assert.equal(g.calls.length, 0);
    });
  }

  test('malformed JSON → 400, an array or null body → 400', async () => {
    const g = gateway();
    const malformed = await expectProblem(await g.post('/orders', '{"customerId": '), 400, '/');
    assert.equal(malformed.code, 'MALFORMED_JSON');
    await expectProblem(await g.post('/orders', '[]'), 400);
    await expectProblem(await g.post('/orders', 'null'), 400);
    assert.equal(g.calls.length, 0);
  });

  test('missing or bad Idempotency-Key → 400 naming the header', async () => {
    const g = gateway();
    const response = await g.request('/orders', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(validOrder),
    });
    await expectProblem(response, 400, 'header:idempotency-key');
    await expectProblem(
      await g.post('/orders', validOrder, { 'idempotency-key': 'x'.repeat(201) }),
      400,
      'header:idempotency-key',
    );
    assert.equal(g.calls.length, 0);
  });

  test('not JSON → 415; oversized body → 413', async () => {
    const g = gateway();
    await expectProblem(
      await g.post('/orders', 'a=b', { 'content-type': 'application/x-www-form-urlencoded' }),
      415,
    );
    const huge = withOrder((o) => (o.payment.token = 'x'.repeat(70 * 1024)));
    const tooLarge = await expectProblem(await g.post('/orders', huge), 413);
    assert.equal(tooLarge.code, 'BODY_TOO_LARGE');
    assert.equal(g.calls.length, 0);
  });

  test('a valid order is sent with the header as idempotency key → 201', async () => {
    const g = gateway();
    const response = await g.post('/orders', validOrder);
    assert.equal(response.status, 201);
    assert.deepEqual(await response.json(), { orderId, status: 'placed' });
    assert.deepEqual(g.calls[0]?.data, { ...validOrder, idempotencyKey: 'k-1' });
    // The customer is the token's: the body may leave it out.
    const { customerId: _own, ...withoutCustomer } = validOrder;
    assert.equal((await g.post('/orders', withoutCustomer)).status, 201);
    assert.deepEqual(g.calls[1]?.data, { ...validOrder, idempotencyKey: 'k-1' });
  });
});

describe('other routes', () => {
  test('POST /customers validates name and email', async () => {
    const g = gateway();
    await expectProblem(await g.post('/customers', { name: 'Ada' }), 400, '/email');
    await expectProblem(await g.post('/customers', { name: '', email: 'ada@example.test' }), 400, '/name');
    await expectProblem(await g.post('/customers', { name: 'Ada', email: 'not-an-email' }), 400, '/email');
    const ok = await g.post('/customers', { name: 'Ada', email: 'ada@example.test' });
    assert.equal(ok.status, 201);
    const signedUp = (await ok.json()) as { customerId: string; token: string };
    assert.equal(signedUp.customerId, 'c-1');
    assert.deepEqual(await auth.authenticator.authenticate(signedUp.token), {
      kind: 'customer',
      customerId: 'c-1',
      subject: 'c-1',
    });
  });

  test('bad path ids → 400; unknown routes → 404 problem', async () => {
    const g = gateway();
    for (const path of ['/orders/a.b', '/orders/%3E/events', `/orders/${'x'.repeat(65)}/invoice.pdf`]) {
      await expectProblem(await g.request(path), 400, 'path:id');
    }
    await expectProblem(await g.request('/orders/a*b/cancel', { method: 'POST' }), 400, 'path:id');
    await expectProblem(await g.request('/nope'), 404);
    assert.equal(g.calls.length, 0);
  });

  test('typed service errors keep their status and code; silence is a 503, never a crash', async () => {
    const g = gateway({
      placeOrder: () => {
        throw new RemoteError('x', 409, 'IDEMPOTENCY_KEY_REUSED', 'used with another body');
      },
      cancelOrder: () => {
        throw new RemoteError('x', 409, 'ORDER_CANCEL_TOO_LATE', 'a courier is assigned');
      },
      getOrderStatus: () => {
        throw new TimeoutError('x', 5000);
      },
      getOrderHistory: () => {
        throw new RemoteError('x', 500, 'INTERNAL', 'boom');
      },
    });
    assert.equal(
      (await expectProblem(await g.post('/orders', validOrder), 409)).code,
      'IDEMPOTENCY_KEY_REUSED',
    );
    const cancel = await expectProblem(await g.request(`/orders/${orderId}/cancel`, { method: 'POST' }), 409);
    assert.equal(cancel.code, 'ORDER_CANCEL_TOO_LATE');
    assert.equal((await expectProblem(await g.request(`/orders/${orderId}`), 503)).code, 'SERVICE_TIMEOUT');
    await expectProblem(await g.request(`/orders/${orderId}/events`), 502);
    const none = gateway({ registerCustomer: undefined as never });
    const unavailable = await expectProblem(
      await none.post('/customers', { name: 'Ada', email: 'ada@example.test' }),
      503,
    );
    assert.equal(unavailable.code, 'SERVICE_UNAVAILABLE');
  });

  test('invoice.pdf is 404 until it exists, then the PDF', async () => {
    const pdf = new TextEncoder().encode('%PDF-1.4 test');
    const app = createGateway({
      topology,
      requester: fakeRequester({
        getOrderStatus: (request) => ({
          customerId: 'c-1',
          invoiceNumber: (request as { orderId: string }).orderId === orderId ? '2026-000001' : null,
        }),
      }).requester,
      invoices: { pdf: (name) => Promise.resolve(name === 'invoice-2026-000001.pdf' ? pdf : undefined) },
      authenticator: auth.authenticator,
    });
    await expectProblem(await app.request('/orders/other/invoice.pdf', { headers: asC1 }), 404);
    const response = await app.request(`/orders/${orderId}/invoice.pdf`, { headers: asC1 });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/pdf');
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), pdf);
  });

  test('health, readiness and the OpenAPI document from the contract schemas', async () => {
    let ready = false;
    const app = createGateway({
      topology,
      requester: fakeRequester({}).requester,
      invoices: noInvoices,
      ready: () => ready,
      authenticator: auth.authenticator,
    });
    assert.equal((await app.request('/healthz')).status, 200);
    assert.equal((await app.request('/readyz')).status, 503);
    ready = true;
    assert.equal((await app.request('/readyz')).status, 200);
    const doc = (await (await app.request('/openapi.json')).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
      components: { schemas: { PlaceOrder: { properties: Record<string, unknown>; required: string[] } } };
    };
    assert.equal(doc.openapi, '3.1.0');
    const asyncapi = (await (await app.request('/asyncapi.json')).json()) as {
      asyncapi: string;
      channels: Record<string, { address: string | null }>;
    };
    assert.equal(asyncapi.asyncapi, '3.0.0');
    assert.equal(
      asyncapi.channels['events-orders']?.address,
      'gwunit.orders.{orderId}',
      "this topology's subjects",
    );
    assert.ok(doc.paths['/orders/{id}/events']);
    assert.deepEqual(doc.components.schemas.PlaceOrder.required.sort(), [
      'currency',
      'items',
      'payment',
      'shippingAddress',
    ]);
  });

  test('HTTP metrics count and time requests by route pattern and status, never by raw path', async () => {
    const registry = new Registry();
    const app = createGateway({
      topology,
      requester: fakeRequester({ cancelOrder: () => ({ orderId, status: 'cancelled', accepted: true }) })
        .requester,
      invoices: noInvoices,
      metrics: registry,
      authenticator: auth.authenticator,
    });
    const asCustomer = { method: 'POST', headers: asC1 };
    assert.equal((await app.request(`/orders/${orderId}/cancel`, asCustomer)).status, 202);
    assert.equal((await app.request('/orders/bad%20id/cancel', asCustomer)).status, 400);
    assert.equal((await app.request(`/nothing/${orderId}`)).status, 404);
    const text = await registry.metrics();
    const line = (name: string, labels: string) =>
      text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    assert.match(
      line('http_server_requests_total', 'method="POST",route="/orders/:id/cancel",status="202"') ?? '',
      / 1$/,
    );
    assert.match(
      line('http_server_requests_total', 'method="POST",route="/orders/:id/cancel",status="400"') ?? '',
      / 1$/,
    );
    assert.match(
      line('http_server_requests_total', 'method="GET",route="unmatched",status="404"') ?? '',
      / 1$/,
    );
    assert.match(
      line('http_server_request_duration_seconds_count', 'route="/orders/:id/cancel",status="202"') ?? '',
      / 1$/,
    );
    assert.ok(!text.includes(orderId), 'no raw path in any label');
  });
});
