// Observability of the whole system as processes: one `POST /orders` yields one trace across the
// gateway and all six services (each exporting over OTLP/HTTP, http/json, to a receiver this test
// runs), and every /metrics endpoint passes `promtool check metrics` and says what happened.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import {
  OtlpSpanKind,
  startOtlpReceiver,
  waitFor,
  type OtlpReceiver,
  type ReceivedSpan,
} from '@orderflow/testing';
import { OrderingTopology, OrderPlaced } from '@orderflow/contracts';
import { SERVICES } from '../cli/system.ts';
import {
  placeOrder,
  registerCustomer,
  startTestSystem,
  waitTerminal,
  type PlacedOrder,
  type TestSystem,
} from './support/system.ts';

/** `promtool check metrics` over `text`: its exit code and what it printed. */
function promtool(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error) =>
      reject(
        new Error('promtool is not installed (Debian package prometheus; .ci/run installs it)', {
          cause: error,
        }),
      ),
    );
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

/** The value of the first sample of `name` whose labels include all of `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const line = text
    .split('\n')
    .find(
      (l) =>
        (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) &&
        Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)),
    );
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('observability of the running system', { timeout: 300_000 }, () => {
  let receiver: OtlpReceiver;
  let sys: TestSystem;
  before(async () => {
    receiver = await startOtlpReceiver();
    const otel = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '200',
    };
    sys = await startTestSystem({ env: Object.fromEntries(SERVICES.map((name) => [name, otel])) });
  });
  after(async () => {
    await sys?.dispose();
    await receiver?.close();
  });

  let order: PlacedOrder;
  test('the order flow is one trace: HTTP server → RPC → producers → consumers in every service', async () => {
    const customer = await registerCustomer(sys.api);
    order = await placeOrder(sys.api, customer);
    const view = await waitTerminal(sys, order.orderId);
    assert.equal(view.status, 'confirmed');

    const root = await waitFor(
      () =>
        receiver.spans.find(
          (s) => s.service === 'gateway' && s.name === 'POST /orders' && s.kind === OtlpSpanKind.Server,
        ),
      { timeoutMs: 20_000, message: 'the gateway exported its POST /orders span' },
    );
    assert.equal(root.parentSpanId, '', 'the HTTP request is the root of the trace');
    assert.equal(root.attributes['http.route'], '/orders');
    assert.equal(root.attributes['http.response.status_code'], 201);
    const inTrace = (): ReceivedSpan[] => receiver.spans.filter((s) => s.traceId === root.traceId);
    // Every service took part, and mail went out (email-notify handles the last customer-visible step).
    const services = await waitFor(
      () => {
        const seen = new Set(inTrace().map((s) => s.service));
        const spans = inTrace();
        const confirmedMail = spans.some(
          (s) => s.service === 'email-notify' && s.name === 'process order.confirmed.v1',
        );
        return SERVICES.every((name) => seen.has(name)) && confirmedMail ? seen : undefined;
      },
      {
        timeoutMs: 30_000,
        message: `spans of all of ${SERVICES.join(', ')} in trace ${root.traceId}`,
      },
    );
    assert.deepEqual([...services].sort(), [...SERVICES].sort());

    // Seven processes export in batches of their own, so a consumer's span may arrive before the
    // producer span it is a child of: judge the trace once every parent has arrived (or after 20 s,
    // when the loop below names the first span whose parent never came).
    const whole = (all: ReceivedSpan[]) => {
      const ids = new Set(all.map((s) => s.spanId));
      return all.every((s) => s === root || ids.has(s.parentSpanId));
    };
    const spans = await waitFor(() => (whole(inTrace()) ? inTrace() : undefined), {
      timeoutMs: 20_000,
    }).catch(() => inTrace());
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    for (const span of spans) {
      if (span === root) continue;
      const parent = byId.get(span.parentSpanId);
      assert.ok(parent, `${span.service}: "${span.name}" has its parent in the trace`);
      if (span.kind === OtlpSpanKind.Consumer) {
        assert.equal(
          parent.kind,
          OtlpSpanKind.Producer,
          `${span.service}: "${span.name}" is a child of a producer span`,
        );
        assert.equal(span.attributes['messaging.message.id'], parent.attributes['messaging.message.id']);
        assert.equal(span.attributes['messaging.system'], 'nats');
        assert.equal(span.attributes['messaging.operation.type'], 'process');
      }
      if (span.kind === OtlpSpanKind.Server && span.service !== 'gateway') {
        assert.equal(
          parent.kind,
          OtlpSpanKind.Client,
          `${span.service}: "${span.name}" answers a client span`,
        );
      }
    }
    // The request to order-storage, and the event it stored, as the semantic conventions name them.
    const client = spans.find(
      (s) =>
        s.service === 'gateway' &&
        s.kind === OtlpSpanKind.Client &&
        s.name === OrderingTopology.endpoints.placeOrder.name,
    );
    assert.ok(client, 'the gateway called order.place in a CLIENT span');
    assert.equal(client.parentSpanId, root.spanId);
    const server = spans.find(
      (s) =>
        s.service === 'order-storage' && s.kind === OtlpSpanKind.Server && s.parentSpanId === client.spanId,
    );
    assert.ok(server, 'order-storage answered in a SERVER span');
    const placed = spans.find(
      (s) => s.kind === OtlpSpanKind.Producer && s.name === `send ${OrderPlaced.type}`,
    );
    assert.ok(placed, 'order.placed was sent in a PRODUCER span');
    assert.equal(placed.service, 'order-storage');
    assert.equal(placed.attributes['messaging.operation.type'], 'send');
    assert.equal(placed.attributes['cloudevents.event_subject'], order.orderId);
    const charged = spans.find(
      (s) => s.service === 'payment-processor' && s.name === `process ${OrderPlaced.type}`,
    );
    assert.ok(charged, 'payment-processor handled order.placed in the same trace');
    assert.equal(charged.parentSpanId, placed.spanId);
  });

  test('every /metrics endpoint passes promtool and counts by route pattern, outbox and ledger', async () => {
    assert.ok(order, 'the first test placed an order');
    const api = sys.system.apiUrl;
    assert.equal((await fetch(`${api}/no/such/route`)).status, 404);
    const operator = { authorization: `Bearer ${sys.api.token}` };
    const bad = await fetch(`${api}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...operator },
      body: '{',
    });
    assert.equal(bad.status, 400);
    const endpoints: { who: string; url: string }[] = [
      { who: 'gateway', url: `${api}/metrics` },
      { who: 'payment-provider', url: `${sys.system.pspUrl}/metrics` },
      { who: 'smtp-sink', url: `${sys.system.mailboxUrl}/metrics` },
      ...sys.system.supervisor
        .list()
        .filter((r) => r.port !== undefined)
        .map((r) => ({ who: `${r.program}#${r.replica}`, url: `http://127.0.0.1:${r.port}/metrics` })),
    ];
    assert.equal(endpoints.length, 3 + SERVICES.length - 1, 'gateway, PSP, SMTP sink and the six services');
    const scraped = new Map<string, string>();
    for (const { who, url } of endpoints) {
      // The gateway's /metrics is for operators.
      const response = await fetch(url, who === 'gateway' ? { headers: operator } : {});
      assert.equal(response.status, 200, `${who} serves /metrics`);
      const text = await response.text();
      scraped.set(who, text);
      const check = await promtool(text);
      assert.equal(check.code, 0, `promtool check metrics on ${who}:\n${check.output}`);
    }

    const gateway = scraped.get('gateway') ?? '';
    const http = 'http_server_requests_total';
    assert.ok((sample(gateway, http, { method: 'POST', route: '/orders', status: '201' }) ?? 0) >= 1);
    assert.ok((sample(gateway, http, { method: 'POST', route: '/orders', status: '400' }) ?? 0) >= 1);
    assert.ok((sample(gateway, http, { method: 'GET', route: '/orders/:id', status: '200' }) ?? 0) >= 1);
    assert.ok((sample(gateway, http, { method: 'GET', route: 'unmatched', status: '404' }) ?? 0) >= 1);
    assert.ok(
      (sample(gateway, 'http_server_request_duration_seconds_count', {
        method: 'POST',
        route: '/orders',
        status: '201',
      }) ?? 0) >= 1,
    );
    assert.ok(
      !gateway.split('\n').some((l) => l.startsWith('http_') && l.includes(order.orderId)),
      'no raw path in a label',
    );

    const storage = scraped.get('order-storage#1') ?? '';
    assert.equal(
      typeof sample(storage, 'orderflow_outbox_unpublished'),
      'number',
      'order-storage reports its outbox backlog',
    );
    assert.equal(typeof sample(storage, 'orderflow_outbox_oldest_unpublished_age_seconds'), 'number');
    assert.ok((sample(storage, 'orderflow_outbox_published_total') ?? 0) >= 1, 'its relay published rows');

    const psp = scraped.get('payment-provider') ?? '';
    assert.ok((sample(psp, http, { method: 'POST', route: '/v1/charges', status: '201' }) ?? 0) >= 1);
    assert.ok(
      (sample(psp, 'payment_provider_ledger_entries', { kind: 'charge', status: 'succeeded' }) ?? 0) >= 1,
    );
    const smtp = scraped.get('smtp-sink') ?? '';
    assert.ok((sample(smtp, 'smtp_sink_messages_received_total') ?? 0) >= 1);
    assert.ok((sample(smtp, http, { method: 'GET', route: '/messages', status: '200' }) ?? 0) >= 1);
  });
});
