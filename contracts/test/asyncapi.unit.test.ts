// The AsyncAPI document: valid for the official parser, complete, and the committed copy up to date.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { Parser } from '@asyncapi/parser';
import type { MessageContract } from '@orderflow/messaging';
import {
  asyncApiDocument,
  asyncApiText,
  EVENT_PRODUCERS,
  EventCatalog,
  OrderingEvents,
  OrderingTopology,
  orderingTopology,
} from '../src/mod.ts';

const committedPath = new URL('../../docs/asyncapi.json', import.meta.url);

test('@asyncapi/parser reads the generated document with no errors and no warnings', async () => {
  const { document, diagnostics } = await new Parser().parse(asyncApiText());
  // Severity 0 is an error, 1 a warning; 2 and 3 are information and hints (e.g. "3.1.0 exists").
  const problems = diagnostics.filter((d) => d.severity <= 1);
  assert.deepEqual(
    problems.map((d) => `${d.code}: ${d.message} at ${d.path.join('/')}`),
    [],
  );
  assert.ok(document, 'a document was parsed');
  assert.equal(document.version(), '3.0.0');
  const placed = document.messages().get('order.placed.v2');
  assert.ok(placed, 'order.placed.v2 is a message');
  assert.equal(placed.payload()?.type(), 'object');
  assert.ok(placed.headers()?.properties()?.['ce-type'], 'CloudEvents headers are declared');
});

test('docs/asyncapi.json is what `npm run asyncapi` generates (regenerate and commit when this fails)', async () => {
  assert.equal(await readFile(committedPath, 'utf8'), asyncApiText());
});

test('every stored event is a message of the channel of its source, with its schema', () => {
  const doc = asyncApiDocument(OrderingTopology) as {
    channels: Record<string, { address: string | null; messages: Record<string, unknown> }>;
    operations: Record<string, { action: string; bindings?: { nats?: { queue?: string } } }>;
    components: { schemas: Record<string, unknown> };
  };
  const inChannels = Object.values(doc.channels).flatMap((c) => Object.keys(c.messages));
  for (const event of OrderingEvents) {
    assert.equal(
      inChannels.filter((id) => id === event.type).length,
      1,
      `${event.type} is in exactly one channel`,
    );
    assert.deepEqual(doc.components.schemas[event.type], JSON.parse(JSON.stringify(event.schema)));
  }
  // Every event a producer may publish (older versions still accepted included) has its message.
  const published: readonly MessageContract[] = Object.values(EVENT_PRODUCERS).flatMap(
    (source): readonly MessageContract[] => source.events,
  );
  for (const event of published)
    assert.equal(inChannels.filter((id) => id === event.type).length, 1, `${event.type} has one message`);
  assert.ok(
    OrderingEvents.every((event) => published.includes(event)),
    'every current event has a producer',
  );
  assert.equal(doc.channels['events-orders']?.address, 'orders.{orderId}');
  // Durables and endpoints with their queue groups.
  const paymentOrders =
    doc.operations[`${OrderingTopology.consumers.paymentProcessor.orders.name}.receive.orders`];
  assert.equal(paymentOrders?.action, 'receive');
  assert.equal(paymentOrders?.bindings?.nats?.queue, 'payment-processor-orders');
  const place = doc.operations[`order-storage.serve.${OrderingTopology.endpoints.placeOrder.name}`];
  assert.equal(place?.bindings?.nats?.queue, 'q');
  // An `all` consumer receives every source.
  for (const source of Object.keys(EventCatalog.subjectKeys))
    assert.ok(doc.operations[`email-notify-all.receive.${source}`], `email-notify-all receives ${source}`);
});

test('a namespaced topology yields its own subjects', () => {
  const doc = asyncApiDocument(orderingTopology({ namespace: 'ns1' })) as {
    channels: Record<string, { address: string | null }>;
  };
  assert.equal(doc.channels['events-payments']?.address, 'ns1.payments.{orderId}');
  assert.equal(doc.channels['rpc-order-place']?.address, 'ns1.ordering.rpc.order.place');
});
