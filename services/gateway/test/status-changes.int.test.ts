import assert from 'node:assert/strict';
import { get, type IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { orderingTopology, OrderStatusChanged } from '@orderflow/contracts';
import { connectNats, CoreBroadcaster, NatsTransport, type Requester } from '@orderflow/messaging';
import { startNatsServer, uniqueName, type NatsServer } from '@orderflow/testing';
import { BroadcastStatusFeed } from '../src/adapters/broadcast-status-feed.ts';
import { createGateway, listen, type StatusChange } from '../src/mod.ts';
import { testAuth, type TestAuth } from './auth-support.ts';

// GET /status-changes against a real nats-server: order-status's `order.status-changed` broadcasts
// (sent here by a CoreBroadcaster on another connection) reach the event streams of the gateway through
// one BroadcastStatusFeed; the dashboard page is served as it is.
const topology = orderingTopology({ namespace: uniqueName('gwlive') });
const noRequests: Requester = { request: () => Promise.reject(new Error('no requests in this test')) };
const noInvoices = { pdf: () => Promise.resolve(undefined) };
let nats: NatsServer;
let gatewayNc: NatsConnection;
let senderNc: NatsConnection;
let transport: NatsTransport;
let feed: BroadcastStatusFeed;
let sender: CoreBroadcaster;
let base: string;
let server: { close(graceMs?: number): Promise<void> };
let auth: TestAuth;
/** Authorization headers: customers A and B (the changes below are A's unless said), an operator. */
let asA: Record<string, string>;
let asB: Record<string, string>;
let asOperator: Record<string, string>;
const MAX_STREAMS_PER_CLIENT = 3;
const MAX_STREAMS = 6;

before(async () => {
  auth = await testAuth();
  [asA, asB, asOperator] = await Promise.all([
    auth.customer('cust-a'),
    auth.customer('cust-b'),
    auth.operator(),
  ]);
  nats = await startNatsServer();
  ({ nc: gatewayNc } = await connectNats({ servers: nats.url, name: 'gateway' }));
  ({ nc: senderNc } = await connectNats({ servers: nats.url, name: 'order-status' }));
  transport = await NatsTransport.create(gatewayNc, { source: 'orderflow/gateway' });
  feed = new BroadcastStatusFeed(transport, topology.notifications.statusChangedAll);
  sender = new CoreBroadcaster(senderNc, 'orderflow/order-status');
  const app = createGateway({
    topology,
    requester: noRequests,
    invoices: noInvoices,
    statusChanges: feed,
    liveHeartbeatMs: 100,
    authenticator: auth.authenticator,
    limits: { maxStreamsPerClient: MAX_STREAMS_PER_CLIENT, maxStreams: MAX_STREAMS },
  });
  const listening = await listen(app, { port: 0 });
  server = listening;
  base = `http://127.0.0.1:${listening.port}`;
});
after(async () => {
  await server?.close(100);
  await transport?.close();
  await gatewayNc?.close();
  await senderNc?.close();
  await nats?.dispose();
  await auth?.dispose();
});

const change = (orderId: string, version: number, customerId = 'cust-a'): StatusChange => ({
  orderId,
  customerId,
  status: version === 1 ? 'placed' : 'paid',
  ...(version > 1 && { previousStatus: 'placed' as const }),
  cause: version === 1 ? 'order.placed.v2' : 'payment.authorized.v1',
  version,
  changedAt: '2025-11-04T10:00:00.000Z',
});

const broadcast = (data: StatusChange) =>
  sender.broadcast(OrderStatusChanged, data, { subject: topology.notifications.statusChanged(data.orderId) });

/**
 * An open event stream: its `status-changed` data so far, and whether the server ended it. Read with
 * node:http, which closes the connection when the stream is dropped (as a browser does; an aborted
 * fetch leaves the server's socket open for a few seconds).
 */
async function openStream(query = '', headers: Record<string, string> = asA) {
  const state = { text: '', ended: false };
  let ended = (): void => undefined;
  const reading = new Promise<void>((resolve) => (ended = resolve));
  const request = get(`${base}/status-changes${query}`, { agent: false, headers });
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    request.on('response', resolve).on('error', reject);
  });
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['content-type'], 'text/event-stream; charset=utf-8');
  response.setEncoding('utf8');
  response.on('data', (chunk: string) => (state.text += chunk));
  response.on('end', () => {
    state.ended = true;
    ended();
  });
  response.on('error', () => ended());
  // The feed's subscription is on the gateway's connection: make sure the server has it.
  await gatewayNc.flush();
  return {
    state,
    reading,
    changes: () =>
      state.text
        .split('\n\n')
        .filter((block) => block.startsWith('event: status-changed\n'))
        .map((block) => JSON.parse(block.slice(block.indexOf('data: ') + 6)) as StatusChange),
    close: () => request.destroy(),
  };
}

/** The status an event stream request gets; a 200 is closed at once. */
async function tryOpen(headers: Record<string, string>): Promise<number> {
  const request = get(`${base}/status-changes`, { agent: false, headers });
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    request.on('response', resolve).on('error', reject);
  });
  request.destroy();
  return response.statusCode ?? 0;
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('GET /status-changes (server-sent events)', () => {
  test('every client gets the changes it asked for, in order; heartbeats keep it open', async () => {
    const all = await openStream();
    const one = await openStream('?orderId=order-a');
    broadcast(change('order-a', 1));
    broadcast(change('order-b', 1));
    broadcast(change('order-a', 2));
    await until(() => all.changes().length === 3 && one.changes().length === 2, 'the changes');
    assert.deepEqual(
      all.changes().map((c) => `${c.orderId} v${c.version} ${c.status}`),
      ['order-a v1 placed', 'order-b v1 placed', 'order-a v2 paid'],
    );
    assert.deepEqual(one.changes(), [change('order-a', 1), change('order-a', 2)]);
    assert.match(all.state.text, /^retry: \d+\n: connected\n\n/);
    await until(() => all.state.text.includes(': keep-alive\n\n'), 'a heartbeat');
    all.close();
    one.close();
  });

  test("a customer's stream carries only their own orders (also when naming another's); an operator's all", async () => {
    const a = await openStream('', asA);
    const b = await openStream('', asB);
    const bSnooping = await openStream('?orderId=order-of-a&orderId=order-of-b', asB);
    const operator = await openStream('', asOperator);
    broadcast(change('order-of-a', 1, 'cust-a'));
    broadcast(change('order-of-b', 1, 'cust-b'));
    broadcast(change('order-of-a', 2, 'cust-a'));
    await until(() => operator.changes().length === 3, "the operator's changes");
    await until(() => a.changes().length === 2 && b.changes().length === 1, "each customer's changes");
    await until(() => bSnooping.changes().length === 1, 'the named stream');
    assert.deepEqual(
      a.changes().map((c) => `${c.orderId} v${c.version}`),
      ['order-of-a v1', 'order-of-a v2'],
    );
    assert.deepEqual(
      b.changes().map((c) => c.orderId),
      ['order-of-b'],
    );
    assert.deepEqual(
      bSnooping.changes().map((c) => c.orderId),
      ['order-of-b'],
    );
    for (const stream of [a, b, bSnooping, operator]) stream.close();
  });

  test('a malformed notification on the subject is dropped; the stream carries on', async () => {
    const stream = await openStream();
    senderNc.publish(topology.notifications.statusChanged('order-c'), 'not an event');
    broadcast(change('order-c', 1));
    await until(() => stream.changes().length === 1, 'the valid change');
    assert.equal(stream.changes()[0]?.orderId, 'order-c');
    stream.close();
  });

  test('bad input is a 400 problem naming the query parameter', async () => {
    for (const query of [
      '?orderId=a.b',
      '?orderId=',
      `?${Array.from({ length: 101 }, (_, i) => `orderId=o${i}`).join('&')}`,
    ]) {
      const response = await fetch(`${base}/status-changes${query}`, { headers: asA });
      assert.equal(response.status, 400, query);
      assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
      const problem = (await response.json()) as { code: string; errors: { field: string }[] };
      assert.equal(problem.code, 'INVALID_QUERY');
      assert.equal(problem.errors[0]?.field, 'query:orderId');
    }
  });

  test('without a feed the route is a 503 problem', async () => {
    const app = createGateway({
      topology,
      requester: noRequests,
      invoices: noInvoices,
      authenticator: auth.authenticator,
    });
    const response = await app.request('/status-changes', { headers: asA });
    assert.equal(response.status, 503);
    assert.equal(((await response.json()) as { code: string }).code, 'LIVE_UPDATES_UNAVAILABLE');
  });

  test('the dashboard: page, script and style sheet under a strict CSP; unknown files 404', async () => {
    for (const [path, type] of [
      ['/', /^text\/html/],
      ['/dashboard', /^text\/html/],
      ['/dashboard/dashboard.mjs', /^text\/javascript/],
      ['/dashboard/dashboard.css', /^text\/css/],
    ] as const) {
      const response = await fetch(`${base}${path}`);
      assert.equal(response.status, 200, path);
      assert.match(response.headers.get('content-type') ?? '', type, path);
      assert.match(response.headers.get('content-security-policy') ?? '', /default-src 'none'/, path);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      assert.ok((await response.text()).length > 100, path);
    }
    const page = await (await fetch(`${base}/`)).text();
    assert.match(page, /src="\/dashboard\/dashboard\.mjs"/);
    const missing = await fetch(`${base}/dashboard/nope.js`);
    assert.equal(missing.status, 404);
    assert.match(missing.headers.get('content-type') ?? '', /^application\/problem\+json/);
  });

  test('no token → 401; open streams are capped per client (429) and in all (503), a closed one frees its slot', async () => {
    const anonymous = await fetch(`${base}/status-changes`);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer realm="orderflow"/);

    const mine = await Promise.all(Array.from({ length: MAX_STREAMS_PER_CLIENT }, () => openStream('', asA)));
    const refused = await fetch(`${base}/status-changes`, { headers: asA });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '5');
    assert.equal(((await refused.json()) as { code: string }).code, 'TOO_MANY_STREAMS');

    const others = await Promise.all(
      Array.from({ length: MAX_STREAMS - MAX_STREAMS_PER_CLIENT }, async (_, i) =>
        openStream('', await auth.customer(`cust-cap-${i}`)),
      ),
    );
    const full = await fetch(`${base}/status-changes`, { headers: asB });
    assert.equal(full.status, 503);
    assert.ok(full.headers.get('retry-after'));

    // HEAD opens no stream (its body is never read): it takes no slot.
    const head = createGateway({
      topology,
      requester: noRequests,
      invoices: noInvoices,
      statusChanges: feed,
      authenticator: auth.authenticator,
      limits: { maxStreamsPerClient: 1 },
    });
    for (let i = 0; i < 3; i++)
      assert.equal((await head.request('/status-changes', { method: 'HEAD', headers: asB })).status, 200);
    const afterHeads = await head.request('/status-changes', { headers: asB });
    assert.equal(afterHeads.status, 200);
    await afterHeads.body?.cancel();

    mine[0]?.close();
    await mine[0]?.reading;
    await until(async () => (await tryOpen(asA)) === 200, 'a freed slot');
    for (const stream of [...mine, ...others]) stream.close();
  });

  test('closing the feed (drain) ends open streams at once, so the server closes without waiting', async () => {
    // A client of its own: the slots of the streams closed above may still be freeing.
    const stream = await openStream('', await auth.customer('cust-drain'));
    feed.close();
    await stream.reading;
    assert.equal(stream.state.ended, true, 'the server ended the stream');
    const started = Date.now();
    await server.close(5_000);
    assert.ok(Date.now() - started < 2_000, `closed in ${Date.now() - started} ms`);
  });
});
