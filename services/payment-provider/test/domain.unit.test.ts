import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decideFault, defaultFaults, parseFaults } from '../src/domain/faults.ts';
import { classify, fingerprint } from '../src/domain/idempotency.ts';
import {
  decideCharge,
  decideRefund,
  parseChargeRequest,
  PspErrorCode,
  type ChargeEntry,
} from '../src/domain/ledger.ts';

const ids = { id: 'ch_1', now: '2026-01-01T00:00:00.000Z' };
const charge = (token: string) => ({ amount: 1999, currency: 'EUR', token, reference: 'order-1' });

describe('charges', () => {
  test('given tok_visa, when charged, then a succeeded charge is recorded and answered 201', () => {
    const { entry, response } = decideCharge(charge('tok_visa'), 'k1', ids);
    assert.equal(entry.status, 'succeeded');
    assert.equal(response.status, 201);
  });

  test('given tok_decline, when charged, then a failed charge is recorded and answered 402 card_declined', () => {
    const { entry, response } = decideCharge(charge('tok_decline'), 'k1', ids);
    assert.equal(entry.status, 'failed');
    assert.equal(response.status, 402);
    assert.equal((response.body as { error: { code: string } }).error.code, PspErrorCode.CardDeclined);
  });

  test('given a float amount and a bad currency, when parsed, then every problem is reported', () => {
    const parsed = parseChargeRequest({ amount: 19.99, currency: 'euro', token: 'visa', reference: '' });
    assert.equal(parsed.ok, false);
    assert.equal(parsed.ok ? 0 : parsed.issues.length, 4);
  });
});

describe('refunds', () => {
  const succeeded: ChargeEntry = { ...decideCharge(charge('tok_visa'), 'k1', ids).entry };

  test('given a succeeded charge, when refunded without amount, then the whole charge is refunded', () => {
    const { entry, response } = decideRefund({ charge: 'ch_1' }, succeeded, 0, 'r1', {
      id: 're_1',
      now: ids.now,
    });
    assert.equal(response.status, 201);
    assert.equal(entry?.amount, 1999);
  });

  test('given a fully refunded charge, when refunded again, then charge_already_refunded', () => {
    const { entry, response } = decideRefund({ charge: 'ch_1' }, succeeded, 1999, 'r2', {
      id: 're_2',
      now: ids.now,
    });
    assert.equal(entry, undefined);
    assert.equal(
      (response.body as { error: { code: string } }).error.code,
      PspErrorCode.ChargeAlreadyRefunded,
    );
  });

  test('given no charge, when refunded, then 404 no_such_charge', () => {
    assert.equal(
      decideRefund({ charge: 'ch_x' }, undefined, 0, 'r', { id: 're', now: ids.now }).response.status,
      404,
    );
  });

  test('given a failed charge, when refunded, then charge_not_refundable', () => {
    const failed = decideCharge(charge('tok_decline'), 'k', ids).entry;
    const { response } = decideRefund({ charge: 'ch_1' }, failed, 0, 'r', { id: 're', now: ids.now });
    assert.equal((response.body as { error: { code: string } }).error.code, PspErrorCode.ChargeNotRefundable);
  });
});

describe('idempotency', () => {
  const stored = {
    key: 'k',
    fingerprint: fingerprint('POST /v1/charges', { a: 1, b: 2 }),
    response: { status: 201, body: {} },
  };

  test('given a stored key, when the same body comes (keys in another order), then it is a replay', () => {
    assert.equal(classify(stored, fingerprint('POST /v1/charges', { b: 2, a: 1 })).kind, 'replay');
  });

  test('given a stored key, when another body comes, then it is a conflict', () => {
    assert.equal(classify(stored, fingerprint('POST /v1/charges', { a: 2, b: 2 })).kind, 'conflict');
  });

  test('given no stored key, then it is new', () => {
    assert.equal(classify(undefined, 'x').kind, 'new');
  });
});

describe('faults', () => {
  test('given a burst, then requests fail until the burst is used up', () => {
    assert.equal(decideFault({ ...defaultFaults, failNextRequests: 1 }, () => 0.99).fail, 'burst');
    assert.equal(decideFault(defaultFaults, () => 0).fail, 'none');
  });

  test('given an error rate of 1, then every request fails before processing', () => {
    assert.equal(decideFault({ ...defaultFaults, errorRate: 1 }, () => 0.5).fail, 'before');
  });

  test('given bad settings, when parsed, then every problem is reported', () => {
    const parsed = parseFaults({ errorRate: 2, latencyMs: -1, nonsense: 1 });
    assert.equal(parsed.ok ? 0 : parsed.issues.length, 3);
  });
});
