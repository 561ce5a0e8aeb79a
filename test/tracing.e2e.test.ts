// One `POST /orders` yields one trace across the gateway and all six services: the whole system as
// processes, each exporting its spans over OTLP/HTTP (http/json) to a receiver this test runs.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  OtlpSpanKind,
  startOtlpReceiver,
  waitFor,
  type OtlpReceiver,
  type ReceivedSpan,
} from '@orderflow/testing';
import { OrderingTopology } from '@orderflow/contracts';
import { SERVICES } from '../cli/system.ts';
import {
  placeOrder,
  registerCustomer,
  startTestSystem,
  waitTerminal,
  type TestSystem,
} from './support/system.ts';

describe('distributed tracing over OTLP/HTTP', { timeout: 300_000 }, () => {
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

  test('the order flow is one trace: HTTP server → RPC → producers → consumers in every service', async () => {
    const customer = await registerCustomer(sys.api);
    const order = await placeOrder(sys.api, customer);
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

    const spans = inTrace();
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
    const placed = spans.find((s) => s.kind === OtlpSpanKind.Producer && s.name === 'send order.placed.v1');
    assert.ok(placed, 'order.placed was sent in a PRODUCER span');
    assert.equal(placed.service, 'order-storage');
    assert.equal(placed.attributes['messaging.operation.type'], 'send');
    assert.equal(placed.attributes['cloudevents.event_subject'], order.orderId);
    const charged = spans.find(
      (s) => s.service === 'payment-processor' && s.name === 'process order.placed.v1',
    );
    assert.ok(charged, 'payment-processor handled order.placed in the same trace');
    assert.equal(charged.parentSpanId, placed.spanId);
  });
});
