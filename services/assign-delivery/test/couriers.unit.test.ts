import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  candidates,
  decideAssign,
  DEFAULT_COURIERS,
  poolProblems,
  unavailableReason,
} from '../src/domain/couriers.ts';

describe('courier choice', () => {
  test('given couriers with room, then the least loaded (relative to capacity) comes first', () => {
    const order = candidates([
      { courierId: 'a', name: 'A', load: 5, capacity: 10 },
      { courierId: 'b', name: 'B', load: 1, capacity: 10 },
      { courierId: 'c', name: 'C', load: 3, capacity: 3 },
    ]).map((c) => c.courierId);
    assert.deepEqual(order, ['b', 'a']);
  });

  test('given every courier full, then no candidate', () => {
    assert.deepEqual(candidates([{ courierId: 'a', name: 'A', load: 2, capacity: 2 }]), []);
  });

  test('the reason tells an unserved country from a full one', () => {
    assert.equal(unavailableReason('AQ', 0), 'no courier serves AQ');
    assert.match(unavailableReason('DE', 2), /at capacity/);
  });

  test('deciding: decided stays decided, cancelled is skipped, unknown waits', () => {
    assert.equal(decideAssign({ known: true, cancelled: true, decided: true }), 'already_decided');
    assert.equal(decideAssign({ known: true, cancelled: true, decided: false }), 'skip_cancelled');
    assert.equal(decideAssign({ known: false, cancelled: false, decided: false }), 'wait');
    assert.equal(decideAssign({ known: true, cancelled: false, decided: false }), 'assign');
  });

  test('the default pool serves DE, FR, NL, GB and US and is valid', () => {
    assert.deepEqual(poolProblems(DEFAULT_COURIERS), []);
    for (const country of ['DE', 'FR', 'NL', 'GB', 'US'])
      assert.equal(
        DEFAULT_COURIERS.some((c) => c.country === country),
        true,
        country,
      );
    assert.equal(poolProblems([{ courierId: 'x', name: 'X', country: 'de', capacity: -1 }]).length, 2);
  });
});
