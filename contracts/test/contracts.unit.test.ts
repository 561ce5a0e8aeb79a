import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ValidationError } from '@orderflow/messaging';
import {
  ContractsError,
  eventIdFor,
  formatMoney,
  ignoringOthers,
  ORDER_EVENT_SOURCES,
  OrderingEvents,
  orderingTopology,
  OrderingTopology,
  OrderPlaced,
  PaymentAuthorized,
  PlaceOrder,
  priceItems,
  EVENT_PRODUCERS,
  EVENT_SOURCES,
  LegacyOrderingEvents,
  OrderPlacedV1,
  producerOf,
  sourceOf,
} from '../src/mod.ts';

const placeOrder = {
  customerId: 'c-1',
  items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1999 }],
  currency: 'EUR',
  shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
  payment: { token: 'tok_visa' },
  idempotencyKey: 'k-1',
};

describe('contracts', () => {
  test('ce-type is <name>.v<version> and names are unique', () => {
    assert.equal(OrderPlaced.type, 'order.placed.v2');
    const types = OrderingEvents.map((c) => c.type);
    assert.equal(new Set(types).size, types.length);
  });

  test('order.place accepts a valid request and reports every problem of an invalid one', () => {
    assert.deepEqual(PlaceOrder.parse(placeOrder), placeOrder);
    const bad = {
      ...placeOrder,
      currency: 'XXX',
      items: [{ sku: 'SKU-1', quantity: 1, unitPrice: 19.99 }],
      shippingAddress: { ...placeOrder.shippingAddress, country: 'Germany' },
    };
    assert.throws(
      () => PlaceOrder.parse(bad),
      (error: unknown) =>
        error instanceof ValidationError &&
        ['/currency', '/items/0/unitPrice', '/shippingAddress/country'].every((path) =>
          error.issues.some((issue) => issue.path === path),
        ),
    );
  });

  test('events are closed: an unknown field is rejected', () => {
    const authorized = {
      orderId: 'o-1',
      paymentId: 'ch_1',
      amount: { amount: 100, currency: 'EUR' },
      authorizedAt: '2026-01-01T00:00:00.000Z',
    };
    assert.equal(PaymentAuthorized.is(authorized), true);
    assert.equal(PaymentAuthorized.is({ ...authorized, extra: 1 }), false);
  });
});

describe('topology', () => {
  test('given an order id, subjects are one token per id and lie inside the stream', () => {
    assert.equal(OrderingTopology.subjects.order('o-1'), 'orders.o-1');
    assert.equal(OrderingTopology.subjects.payment('o-1'), 'payments.o-1');
    assert.deepEqual(OrderingTopology.streams[0]?.subjects, [
      'orders.*',
      'payments.*',
      'invoices.*',
      'deliveries.*',
      'customers.*',
    ]);
  });

  test("given an order id, the history subject matches every source's subject of that order, with a namespace too", () => {
    assert.equal(OrderingTopology.subjects.orderHistory('o-1'), '*.o-1');
    const ns = orderingTopology({ namespace: 'test-1' });
    assert.equal(ns.subjects.orderHistory('o-1'), 'test-1.*.o-1');
    assert.equal(ns.eventSourceOf(ns.subjects.payment('o-1')), 'payments');
    assert.equal(ns.eventSourceOf(ns.subjects.customer('o-1')), 'customers');
    assert.equal(ns.eventSourceOf('payments.o-1'), undefined, 'another namespace');
    assert.equal(OrderingTopology.eventSourceOf('payments.o-1'), 'payments');
    assert.equal(OrderingTopology.eventSourceOf('ordering.rpc.order.place'), undefined);
    assert.equal(OrderingTopology.eventSourceOf('refunds.o-1'), undefined);
    assert.deepEqual(ORDER_EVENT_SOURCES, ['orders', 'payments', 'invoices', 'deliveries']);
    assert.throws(() => OrderingTopology.subjects.orderHistory('>'), ContractsError);
  });

  test('given an id with a dot, building a subject throws a typed error', () => {
    assert.throws(() => OrderingTopology.subjects.order('a.b'), ContractsError);
    assert.throws(() => OrderingTopology.subjects.order('*'), ContractsError);
  });

  test('endpoint and notification subjects match no stream subject', () => {
    const streamSubjects = OrderingTopology.streams.flatMap((s) => s.subjects);
    const matches = (filter: string, subject: string): boolean => {
      const f = filter.split('.');
      const s = subject.split('.');
      return f.length === s.length && f.every((token, i) => token === '*' || token === s[i]);
    };
    const subjects = [
      ...Object.values(OrderingTopology.endpoints).map((e) => e.subject),
      OrderingTopology.notifications.statusChanged('o-1'),
    ];
    for (const subject of subjects) {
      for (const filter of streamSubjects)
        assert.equal(matches(filter, subject), false, `${filter} ~ ${subject}`);
    }
  });

  test('a namespace prefixes subjects, streams and buckets; durable names stay', () => {
    const t = orderingTopology({ namespace: 't-42' });
    assert.equal(t.stream, 'ORDERING_T_42');
    assert.equal(t.subjects.order('o-1'), 't-42.orders.o-1');
    assert.equal(t.endpoints.placeOrder.subject, 't-42.ordering.rpc.order.place');
    assert.deepEqual(t.consumers.paymentProcessor.orders, {
      name: 'payment-processor-orders',
      stream: 'ORDERING_T_42',
      filterSubject: 't-42.orders.*',
      orderingKey: 'subject',
      producers: [
        {
          subjects: 't-42.orders.*',
          source: 'orderflow/order-storage',
          types: [
            'order.placed.v2',
            'order.cancel-requested.v1',
            'order.confirmed.v1',
            'order.cancelled.v1',
            'order.placed.v1',
          ],
        },
      ],
    });
    assert.throws(() => orderingTopology({ namespace: 'Bad.NS' }), ContractsError);
  });

  test('deterministic event ids', () => {
    assert.equal(eventIdFor(PaymentAuthorized, 'o-1'), 'payment.authorized.v1:o-1');
  });

  test('ignoringOthers registers every other stored event', () => {
    const registrations = ignoringOthers([]);
    assert.equal(registrations.length, OrderingEvents.length + LegacyOrderingEvents.length);
  });

  test('every stored event has exactly one producer, and fan-in consumers check them all', () => {
    const declared = EVENT_SOURCES.flatMap((s) => EVENT_PRODUCERS[s].events.map((e) => e.type));
    assert.equal(new Set(declared).size, declared.length);
    for (const event of [...OrderingEvents, ...LegacyOrderingEvents]) {
      assert.ok(declared.includes(event.type), `${event.type} has no producer`);
    }
    assert.equal(producerOf(PaymentAuthorized), 'payment-processor');
    assert.equal(producerOf(OrderPlacedV1), 'order-storage');
    assert.equal(sourceOf('create-invoice'), 'orderflow/create-invoice');
    const all = OrderingTopology.consumers.emailNotify.all.producers;
    assert.deepEqual(
      all.map((p) => [p.subjects, p.source]),
      [
        ['orders.*', 'orderflow/order-storage'],
        ['payments.*', 'orderflow/payment-processor'],
        ['invoices.*', 'orderflow/create-invoice'],
        ['deliveries.*', 'orderflow/assign-delivery'],
        ['customers.*', 'orderflow/order-storage'],
      ],
    );
  });

  test('order.placed.v2 carries no payment token; v1 is still readable', () => {
    assert.equal('payment' in OrderPlaced.schema.properties, false);
    assert.equal('payment' in OrderPlacedV1.schema.properties, true);
  });
});

describe('money', () => {
  test('given items, lines and total are integer minor units', () => {
    const { lines, total } = priceItems([
      { sku: 'A', quantity: 3, unitPrice: 333 },
      { sku: 'B', quantity: 1, unitPrice: 1 },
    ]);
    assert.deepEqual(
      lines.map((l) => l.lineTotal),
      [999, 1],
    );
    assert.equal(total, 1000);
    assert.throws(() => priceItems([{ sku: 'A', quantity: 1000, unitPrice: 1_000_000_000 }]), RangeError);
  });

  test('formatting respects the minor units of the currency', () => {
    assert.equal(formatMoney(1999, 'EUR'), '19.99 EUR');
    assert.equal(formatMoney(5, 'USD'), '0.05 USD');
    assert.equal(formatMoney(1500, 'JPY'), '1500 JPY');
  });
});
