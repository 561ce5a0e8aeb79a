import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { OrderPlaced } from '@orderflow/contracts';
import { PaymentAuthorized, PaymentDeclined, PaymentRefunded } from '@orderflow/contracts';
import type { PayloadOf } from '@orderflow/messaging';
import {
  chargeFor,
  chargeResult,
  paymentKeys,
  refundableCharge,
  refundedEvent,
} from '../src/domain/payments.ts';

const order: PayloadOf<typeof OrderPlaced> = {
  orderId: 'o-1',
  customer: { customerId: 'c-1', email: 'ada@example.test', name: 'Ada' },
  lines: [{ sku: 'A', quantity: 2, unitPrice: 500, lineTotal: 1000 }],
  currency: 'EUR',
  total: 1000,
  shippingAddress: { line1: 'Main St 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
  placedAt: '2026-01-01T00:00:00.000Z',
};
const at = '2026-01-01T00:00:01.000Z';

describe('charging', () => {
  test('given an order, the charge is its total under the order id as idempotency key', () => {
    assert.deepEqual(chargeFor(order, 'tok_visa'), {
      idempotencyKey: 'o-1',
      reference: 'o-1',
      amount: 1000,
      currency: 'EUR',
      token: 'tok_visa',
    });
  });

  test('given an authorization, then payment.authorized with the PSP charge id and time', () => {
    const result = chargeResult(order, { kind: 'authorized', chargeId: 'ch_1', created: at });
    assert.equal(result.kind, 'authorized');
    assert.ok(PaymentAuthorized.is(result.event));
    assert.deepEqual(result.event.amount, { amount: 1000, currency: 'EUR' });
  });

  test('given a decline, then payment.declined with the decline code', () => {
    const result = chargeResult(order, {
      kind: 'declined',
      code: 'card_declined',
      message: 'no',
      created: at,
    });
    assert.equal(result.kind, 'declined');
    assert.ok(PaymentDeclined.is(result.event));
  });
});

describe('refunding', () => {
  test('given a failed and no succeeded charge, then nothing is refundable', () => {
    assert.equal(
      refundableCharge([{ id: 'ch_1', status: 'failed', amount: 1, currency: 'EUR', created: at }]),
      undefined,
    );
  });

  test('given a succeeded charge, then it is the one refunded, under its own key', () => {
    const charge = { id: 'ch_2', status: 'succeeded' as const, amount: 1000, currency: 'EUR', created: at };
    assert.equal(refundableCharge([charge])?.id, 'ch_2');
    assert.equal(paymentKeys.refund('o-1'), 'refund-o-1');
    const event = refundedEvent('o-1', 'customer_request', {
      id: 're_1',
      chargeId: 'ch_2',
      amount: 1000,
      currency: 'EUR',
      created: at,
    });
    assert.ok(PaymentRefunded.is(event));
  });
});
