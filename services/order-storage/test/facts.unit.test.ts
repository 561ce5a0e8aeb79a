import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DomainError } from '@orderflow/eventstore';
import {
  admitFact,
  verdictNeedsCurrentStatus,
  type OrderFacts,
  type ReportedFact,
} from '../src/domain/facts.ts';
import { evolve, initialOrderState, type OrderEvent, type OrderState } from '../src/domain/order.ts';

// Given the order's own events and the facts recorded so far, when another service reports a fact,
// then it is admitted (undefined) or refused with a stable code.
const at = '2026-01-01T00:00:00.000Z';
const placed: OrderEvent = {
  type: 'order.placed',
  data: {
    orderId: 'o-1',
    customer: { customerId: 'c-1', email: 'ada@example.test', name: 'Ada' },
    lines: [{ sku: 'A', quantity: 1, unitPrice: 1250, lineTotal: 1250 }],
    currency: 'EUR',
    total: 1250,
    shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
    placedAt: at,
  },
};
const cancelRequested: OrderEvent = {
  type: 'order.cancel-requested',
  data: { orderId: 'o-1', reason: 'customer_request', requestedAt: at },
};
const cancelled = (reason: 'customer_request' | 'payment_declined'): OrderEvent => ({
  type: 'order.cancelled',
  data: { orderId: 'o-1', reason, cancelledAt: at },
});
const confirmed: OrderEvent = {
  type: 'order.confirmed',
  data: {
    orderId: 'o-1',
    paymentId: 'ch_1',
    invoiceNumber: '2026-000001',
    courierId: 'k-1',
    confirmedAt: at,
  },
};
const none: OrderFacts = {
  orderId: 'o-1',
  paymentId: null,
  declined: false,
  refundId: null,
  invoiceNumber: null,
  creditNoteNumber: null,
  courierId: null,
  courierReleased: false,
  deliveryUnavailable: false,
};
const eur = (amount: number) => ({ amount, currency: 'EUR' as const });
const payment = (paymentId = 'ch_1', amount = 1250): ReportedFact => ({
  kind: 'payment',
  paymentId,
  amount: eur(amount),
});
const refund = (reason: 'customer_request' | 'delivery_unavailable', refundId = 're_1'): ReportedFact => ({
  kind: 'refund',
  refundId,
  paymentId: 'ch_1',
  reason,
});
const courier = (courierId = 'k-1'): ReportedFact => ({ kind: 'courier', courierId });

const given = (events: OrderEvent[]): OrderState => events.reduce(evolve, initialOrderState());
const verdict = (events: OrderEvent[], known: Partial<OrderFacts>, fact: ReportedFact): string => {
  try {
    admitFact(given(events), { ...none, ...known }, fact);
    return 'admitted';
  } catch (error) {
    assert.ok(error instanceof DomainError, String(error));
    return error.code;
  }
};

const cases: [
  name: string,
  events: OrderEvent[],
  known: Partial<OrderFacts>,
  fact: ReportedFact,
  then: string,
][] = [
  ['any fact about an order never placed', [], {}, payment(), 'ORDER_NOT_FOUND'],
  ['authorized for the total', [placed], {}, payment(), 'admitted'],
  ['authorized again (redelivery)', [placed], { paymentId: 'ch_1' }, payment(), 'admitted'],
  ['a second charge', [placed], { paymentId: 'ch_1' }, payment('ch_2'), 'ORDER_FACT_CONFLICT'],
  ['authorized for another amount', [placed], {}, payment('ch_1', 1), 'ORDER_PAYMENT_MISMATCH'],
  [
    'authorized after declined',
    [placed, cancelled('payment_declined')],
    { declined: true },
    payment(),
    'ORDER_IMPOSSIBLE_TRANSITION',
  ],
  [
    'authorized while a cancel is requested (charge in flight)',
    [placed, cancelRequested],
    {},
    payment(),
    'admitted',
  ],
  [
    'authorized after the refund that undoes it (two replicas)',
    [placed, cancelRequested, cancelled('customer_request')],
    { refundId: 're_1' },
    payment(),
    'admitted',
  ],
  [
    'authorized for a cancelled order never refunded',
    [placed, cancelRequested, cancelled('customer_request')],
    {},
    payment(),
    'ORDER_IMPOSSIBLE_TRANSITION',
  ],
  ['declined', [placed], {}, { kind: 'declined' }, 'admitted'],
  [
    'declined after authorized',
    [placed],
    { paymentId: 'ch_1' },
    { kind: 'declined' },
    'ORDER_IMPOSSIBLE_TRANSITION',
  ],
  [
    'declined for a confirmed order',
    [placed, confirmed],
    {},
    { kind: 'declined' },
    'ORDER_IMPOSSIBLE_TRANSITION',
  ],
  [
    'refund of a requested cancel',
    [placed, cancelRequested],
    { paymentId: 'ch_1' },
    refund('customer_request'),
    'admitted',
  ],
  [
    'refund before the no-courier cancel is appended',
    [placed],
    { paymentId: 'ch_1' },
    refund('delivery_unavailable'),
    'admitted',
  ],
  [
    'customer refund nobody requested',
    [placed],
    { paymentId: 'ch_1' },
    refund('customer_request'),
    'ORDER_IMPOSSIBLE_TRANSITION',
  ],
  [
    'refund with no charge (declined)',
    [placed, cancelled('payment_declined')],
    { declined: true },
    refund('customer_request'),
    'ORDER_NOT_CHARGED',
  ],
  [
    'refund of another charge',
    [placed, cancelRequested],
    { paymentId: 'ch_9' },
    refund('customer_request'),
    'ORDER_FACT_CONFLICT',
  ],
  [
    'a second refund',
    [placed, cancelRequested],
    { refundId: 're_1' },
    refund('customer_request', 're_2'),
    'ORDER_FACT_CONFLICT',
  ],
  [
    'refund of a confirmed order',
    [placed, confirmed],
    { paymentId: 'ch_1' },
    refund('delivery_unavailable'),
    'ORDER_IMPOSSIBLE_TRANSITION',
  ],
  ['invoice', [placed], { paymentId: 'ch_1' }, { kind: 'invoice', invoiceNumber: '2026-000001' }, 'admitted'],
  [
    'invoice with another number',
    [placed],
    { invoiceNumber: '2026-000001' },
    { kind: 'invoice', invoiceNumber: '2026-000002' },
    'ORDER_FACT_CONFLICT',
  ],
  [
    'invoice of a declined order',
    [placed, cancelled('payment_declined')],
    { declined: true },
    { kind: 'invoice', invoiceNumber: '2026-000001' },
    'ORDER_NOT_CHARGED',
  ],
  ['courier', [placed], {}, courier(), 'admitted'],
  [
    'courier assigned while the order was cancelled (released later)',
    [placed, cancelRequested, cancelled('customer_request')],
    { refundId: 're_1' },
    courier(),
    'admitted',
  ],
  ['a second courier', [placed], { courierId: 'k-1' }, courier('k-2'), 'ORDER_FACT_CONFLICT'],
  [
    'courier of a declined order',
    [placed, cancelled('payment_declined')],
    { declined: true },
    courier(),
    'ORDER_NOT_CHARGED',
  ],
  [
    'courier after none was available',
    [placed],
    { deliveryUnavailable: true },
    courier(),
    'ORDER_IMPOSSIBLE_TRANSITION',
  ],
  [
    'no courier after a courier',
    [placed],
    { courierId: 'k-1' },
    { kind: 'delivery-unavailable' },
    'ORDER_IMPOSSIBLE_TRANSITION',
  ],
  [
    'release of the assigned courier',
    [placed, cancelRequested],
    { courierId: 'k-1' },
    { kind: 'courier-released', courierId: 'k-1' },
    'admitted',
  ],
  [
    'release of another courier',
    [placed, cancelRequested],
    { courierId: 'k-1' },
    { kind: 'courier-released', courierId: 'k-2' },
    'ORDER_FACT_CONFLICT',
  ],
  [
    'release for a confirmed order',
    [placed, confirmed],
    { courierId: 'k-1' },
    { kind: 'courier-released', courierId: 'k-1' },
    'ORDER_IMPOSSIBLE_TRANSITION',
  ],
];

describe('admitFact: given the order and its facts, when a service reports a fact', () => {
  for (const [name, events, known, fact, then] of cases) {
    test(`${name} → ${then}`, () => assert.equal(verdict(events, known, fact), then));
  }
});

describe('verdictNeedsCurrentStatus', () => {
  // Every state an order can be in once placed, and recorded facts that make verdicts differ.
  const histories: OrderEvent[][] = [
    [placed],
    [placed, cancelRequested],
    [placed, confirmed],
    [placed, cancelled('customer_request')],
    [placed, cancelled('payment_declined')],
  ];
  const knowns: Partial<OrderFacts>[] = [
    {},
    { paymentId: 'ch_1' },
    { declined: true },
    { refundId: 're_1' },
    { invoiceNumber: '2026-000001' },
    { courierId: 'k-1' },
    { deliveryUnavailable: true },
    { creditNoteNumber: 'CN-1' },
  ];
  const facts: ReportedFact[] = [
    payment(),
    { kind: 'declined' },
    refund('customer_request'),
    refund('delivery_unavailable'),
    { kind: 'invoice', invoiceNumber: '2026-000001' },
    { kind: 'invoice', invoiceNumber: '2026-000002' },
    { kind: 'credit-note', creditNoteNumber: 'CN-1' },
    courier(),
    courier('k-2'),
    { kind: 'courier-released', courierId: 'k-1' },
    { kind: 'delivery-unavailable' },
  ];

  test('a kind that does not need it gets one verdict in every placed state; every other kind does not', () => {
    for (const fact of facts) {
      const differs = knowns.some(
        (known) => new Set(histories.map((events) => verdict(events, known, fact))).size > 1,
      );
      assert.equal(verdictNeedsCurrentStatus(fact.kind), differs, `${fact.kind}: ${JSON.stringify(fact)}`);
    }
  });
});
