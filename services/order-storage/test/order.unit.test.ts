import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OrderingErrorCode, type CancellationReason } from '@orderflow/contracts';
import { deciderSpec } from '@orderflow/eventstore';
import { requestFingerprint } from '../src/domain/fingerprint.ts';
import {
  initialOrderState,
  orderDefinition,
  statusOf,
  type OrderCommand,
  type OrderEvent,
} from '../src/domain/order.ts';

const now = new Date('2026-01-01T00:00:00.000Z');
const at = now.toISOString();
const spec = deciderSpec(orderDefinition('ORDERING', 'orders'), { now });

const place: OrderCommand = {
  type: 'place',
  orderId: 'o-1',
  customer: { customerId: 'c-1', email: 'ada@example.test', name: 'Ada' },
  items: [
    { sku: 'A', quantity: 2, unitPrice: 500 },
    { sku: 'B', quantity: 1, unitPrice: 250 },
  ],
  currency: 'EUR',
  shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
};
const placed: OrderEvent = {
  type: 'order.placed',
  data: {
    orderId: 'o-1',
    customer: { customerId: 'c-1', email: 'ada@example.test', name: 'Ada' },
    lines: [
      { sku: 'A', quantity: 2, unitPrice: 500, lineTotal: 1000 },
      { sku: 'B', quantity: 1, unitPrice: 250, lineTotal: 250 },
    ],
    currency: 'EUR',
    total: 1250,
    shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
    placedAt: at,
  },
};
const confirm: OrderCommand = {
  type: 'confirm',
  paymentId: 'ch_1',
  invoiceNumber: '2026-000001',
  courierId: 'k-1',
};
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
const customerCancel: OrderEvent = {
  type: 'order.cancel-requested',
  data: { orderId: 'o-1', reason: 'customer_request', requestedAt: at },
};
const noCourier: OrderEvent = {
  type: 'order.cancel-requested',
  data: { orderId: 'o-1', reason: 'delivery_unavailable', requestedAt: at },
};
const refund: OrderCommand = {
  type: 'record-refund',
  reason: 'customer_request',
  amount: { amount: 1250, currency: 'EUR' },
};
const cancelledBy = (reason: CancellationReason): OrderEvent => ({
  type: 'order.cancelled',
  data: {
    orderId: 'o-1',
    reason,
    ...(reason !== 'payment_declined' &&
      reason !== 'payment_failed' && { refunded: { amount: 1250, currency: 'EUR' as const } }),
    cancelledAt: at,
  },
});
const stepFailed = (reason: 'invoice_failed' | 'delivery_failed'): OrderEvent => ({
  type: 'order.cancel-requested',
  data: { orderId: 'o-1', reason, requestedAt: at },
});

describe('placing', () => {
  test('given nothing, when placed, then order.placed with priced lines and the total', () => {
    spec.given([]).when(place).then([placed]);
  });
  test('given a placed order, when placed again, then nothing (idempotent)', () => {
    spec.given([placed]).when(place).then([]);
  });
  test('given nothing, when the total is above the limit, then ORDER_REJECTED', () => {
    spec
      .given([])
      .when({ ...place, items: [{ sku: 'A', quantity: 1000, unitPrice: 1_000_000_000 }] })
      .thenRejects(OrderingErrorCode.Rejected);
  });
  test('given nothing, when the total is 0, then ORDER_TOTAL_ZERO (a free item in a paid order is fine)', () => {
    spec
      .given([])
      .when({ ...place, items: [{ sku: 'A', quantity: 3, unitPrice: 0 }] })
      .thenRejects(OrderingErrorCode.ZeroTotal);
    spec
      .given([])
      .when({ ...place, items: [...place.items, { sku: 'GIFT', quantity: 1, unitPrice: 0 }] })
      .then([
        {
          ...placed,
          data: {
            ...placed.data,
            lines: [...placed.data.lines, { sku: 'GIFT', quantity: 1, unitPrice: 0, lineTotal: 0 }],
          },
        },
      ]);
  });
  test('given nothing, when anything but place, then ORDER_NOT_FOUND', () => {
    spec.given([]).when(confirm).thenRejects(OrderingErrorCode.OrderNotFound);
    spec
      .given([])
      .when({ type: 'request-cancel', courierAssigned: false })
      .thenRejects(OrderingErrorCode.OrderNotFound);
  });
});

describe('confirming', () => {
  test('given a placed order, when payment, invoice and courier are there, then order.confirmed', () => {
    spec.given([placed]).when(confirm).then([confirmed]);
  });
  test('given a confirmed order, when confirmed again, then nothing', () => {
    spec.given([placed, confirmed]).when(confirm).then([]);
  });
  test('given a cancellation was requested first, when confirm, then nothing (the cancellation wins)', () => {
    spec.given([placed, customerCancel]).when(confirm).then([]);
  });
});

describe('customer cancellation', () => {
  test('given a placed order without courier, when the customer cancels, then order.cancel-requested', () => {
    spec.given([placed]).when({ type: 'request-cancel', courierAssigned: false }).then([customerCancel]);
  });
  test("given another customer's order, when a customer cancels it, then ORDER_NOT_FOUND whatever its state", () => {
    const byEve: OrderCommand = { type: 'request-cancel', courierAssigned: false, customerId: 'c-eve' };
    spec.given([placed]).when(byEve).thenRejects(OrderingErrorCode.OrderNotFound);
    spec.given([placed, confirmed]).when(byEve).thenRejects(OrderingErrorCode.OrderNotFound);
    spec.given([placed, customerCancel]).when(byEve).thenRejects(OrderingErrorCode.OrderNotFound);
    spec
      .given([placed])
      .when({ type: 'request-cancel', courierAssigned: false, customerId: 'c-1' })
      .then([customerCancel]);
  });
  test('given a courier is assigned, when the customer cancels, then ORDER_CANCEL_TOO_LATE', () => {
    spec
      .given([placed])
      .when({ type: 'request-cancel', courierAssigned: true })
      .thenRejects(OrderingErrorCode.CancelTooLate);
  });
  test('given a confirmed order, when the customer cancels, then ORDER_CANCEL_TOO_LATE', () => {
    spec
      .given([placed, confirmed])
      .when({ type: 'request-cancel', courierAssigned: true })
      .thenRejects(OrderingErrorCode.CancelTooLate);
  });
  test('given a cancellation requested or done, when the customer cancels, then ORDER_ALREADY_CANCELLED', () => {
    const cancel: OrderCommand = { type: 'request-cancel', courierAssigned: false };
    spec.given([placed, customerCancel]).when(cancel).thenRejects(OrderingErrorCode.AlreadyCancelled);
    spec
      .given([placed, customerCancel, cancelledBy('customer_request')])
      .when(cancel)
      .thenRejects(OrderingErrorCode.AlreadyCancelled);
  });
  test('given a requested cancellation, when the refund is recorded, then order.cancelled with the refund', () => {
    spec
      .given([placed, customerCancel])
      .when(refund)
      .then([cancelledBy('customer_request')]);
    spec
      .given([placed, customerCancel])
      .when(refund)
      .thenState({
        ...initialOrderState(),
        status: 'cancelled',
        orderId: 'o-1',
        customerId: 'c-1',
        currency: 'EUR',
        total: 1250,
        requestedReason: 'customer_request',
        cancellationReason: 'customer_request',
      });
  });
});

describe('compensation', () => {
  test('given a placed order, when the payment is declined, then order.cancelled{payment_declined}', () => {
    spec
      .given([placed])
      .when({ type: 'record-decline' })
      .then([cancelledBy('payment_declined')]);
  });
  test('given a requested cancellation, when the payment is declined, then cancelled (nothing to refund)', () => {
    spec
      .given([placed, customerCancel])
      .when({ type: 'record-decline' })
      .then([cancelledBy('payment_declined')]);
  });
  test('given a cancelled order, when declined again, then nothing', () => {
    spec
      .given([placed, cancelledBy('payment_declined')])
      .when({ type: 'record-decline' })
      .then([]);
  });
  test('given a placed order, when no courier is available, then order.cancel-requested{delivery_unavailable}', () => {
    spec.given([placed]).when({ type: 'report-no-courier' }).then([noCourier]);
    spec.given([placed, noCourier]).when({ type: 'report-no-courier' }).then([]);
  });
  test('given no courier, when refunded, then order.cancelled{delivery_unavailable}', () => {
    spec
      .given([placed, noCourier])
      .when({ ...refund, reason: 'delivery_unavailable' })
      .then([cancelledBy('delivery_unavailable')]);
  });
  test('given the refund came before delivery.unavailable was seen, then cancelled, and the late report does nothing', () => {
    spec
      .given([placed])
      .when({ ...refund, reason: 'delivery_unavailable' })
      .then([cancelledBy('delivery_unavailable')]);
    spec
      .given([placed, cancelledBy('delivery_unavailable')])
      .when({ type: 'report-no-courier' })
      .then([]);
  });
  test('given a confirmed or cancelled order, when a refund is recorded, then nothing', () => {
    spec.given([placed, confirmed]).when(refund).then([]);
    spec
      .given([placed, customerCancel, cancelledBy('customer_request')])
      .when(refund)
      .then([]);
  });
});

describe('a saga step failed permanently', () => {
  test('given a placed or cancelling order, when the payment failed, then order.cancelled{payment_failed} (nothing to refund)', () => {
    spec
      .given([placed])
      .when({ type: 'record-payment-failure' })
      .then([cancelledBy('payment_failed')]);
    spec
      .given([placed, stepFailed('delivery_failed')])
      .when({ type: 'record-payment-failure' })
      .then([cancelledBy('payment_failed')]);
    spec
      .given([placed, cancelledBy('payment_failed')])
      .when({ type: 'record-payment-failure' })
      .then([]);
  });
  test('given a placed order, when the invoice or the delivery failed, then cancel-requested with that reason, then cancelled after the refund', () => {
    for (const reason of ['invoice_failed', 'delivery_failed'] as const) {
      spec
        .given([placed])
        .when({ type: 'report-step-failure', reason })
        .then([stepFailed(reason)]);
      spec
        .given([placed, stepFailed(reason)])
        .when({ ...refund, reason })
        .then([cancelledBy(reason)]);
      // Reported twice, or after another cancellation began, or after the end: nothing more.
      spec
        .given([placed, stepFailed(reason)])
        .when({ type: 'report-step-failure', reason })
        .then([]);
      spec.given([placed, customerCancel]).when({ type: 'report-step-failure', reason }).then([]);
      spec.given([placed, confirmed]).when({ type: 'report-step-failure', reason }).then([]);
    }
  });
});

describe('status', () => {
  test('placed becomes paid once the charge is known; later states are the lifecycle', () => {
    const state = { ...initialOrderState(), status: 'placed' as const };
    assert.equal(statusOf(state, { paymentId: null }), 'placed');
    assert.equal(statusOf(state, { paymentId: 'ch_1' }), 'paid');
    assert.equal(
      statusOf({ ...state, status: 'cancellation_requested' }, { paymentId: 'ch_1' }),
      'cancellation_requested',
    );
  });
});

describe('request fingerprint', () => {
  test('equal bodies in any key order match; another body or key does not matter / does', () => {
    const a = requestFingerprint({ a: 1, b: { c: [1, 2], d: 'x' }, idempotencyKey: 'k1' }, [
      'idempotencyKey',
    ]);
    const b = requestFingerprint({ b: { d: 'x', c: [1, 2] }, a: 1, idempotencyKey: 'k2' }, [
      'idempotencyKey',
    ]);
    const c = requestFingerprint({ a: 1, b: { c: [2, 1], d: 'x' } });
    assert.equal(a, b);
    assert.notEqual(a, c);
  });
});
