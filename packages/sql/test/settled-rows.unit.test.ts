import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SettledRows } from '../src/settled-rows.ts';

test('a row read once is answered from memory; a missing one is read again each time', async () => {
  const rows = new SettledRows<{ name: string }>();
  let reads = 0;
  const stored = new Map([['c-1', { name: 'Ada' }]]);
  const read = (key: string) => () => {
    reads += 1;
    return Promise.resolve(stored.get(key));
  };
  assert.deepEqual(await rows.through('c-1', read('c-1')), { name: 'Ada' });
  assert.deepEqual(await rows.through('c-1', read('c-1')), { name: 'Ada' });
  assert.equal(reads, 1);
  assert.equal(await rows.through('c-2', read('c-2')), undefined);
  stored.set('c-2', { name: 'Grace' });
  assert.deepEqual(await rows.through('c-2', read('c-2')), { name: 'Grace' }, 'registered since');
  assert.equal(reads, 3);
});

test('beyond its capacity the least recently used row is forgotten; capacity 0 keeps none', () => {
  const rows = new SettledRows<number>(2);
  rows.keep('a', 1);
  rows.keep('b', 2);
  assert.equal(rows.get('a'), 1, 'a is now the most recently used');
  rows.keep('c', 3);
  assert.equal(rows.get('b'), undefined);
  assert.equal(rows.get('a'), 1);
  assert.equal(rows.get('c'), 3);
  const none = new SettledRows<number>(0);
  none.keep('a', 1);
  assert.equal(none.get('a'), undefined);
});
