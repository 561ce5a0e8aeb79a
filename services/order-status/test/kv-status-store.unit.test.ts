import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryKeyValueStores } from '@orderflow/messaging';
import { KvStatusStore } from '../src/mod.ts';
import type { StatusRecord } from '../src/domain/status.ts';
import { OrderStatusError, StatusErrorCode } from '../src/errors.ts';

const record = (n: number): StatusRecord => ({ facts: [], view: null, n }) as unknown as StatusRecord;

test('reads what it wrote with its revision; a lost compare-and-set is false, not an error', async () => {
  const store = await KvStatusStore.open(new MemoryKeyValueStores(), 'order-status');
  assert.equal(await store.read('o-1'), undefined);
  assert.equal(await store.write('o-1', record(1), 0), true);
  const first = await store.read('o-1');
  assert.ok(first);
  assert.deepEqual(first.record, record(1));
  assert.equal(await store.write('o-1', record(2), 0), false, 'a second create lost');
  assert.equal(await store.write('o-1', record(2), first.revision), true);
  assert.equal(await store.write('o-1', record(3), first.revision), false, 'a stale revision lost');
  assert.deepEqual((await store.read('o-1'))?.record, record(2));
  await store.write('o-2', record(1), 0);
  assert.deepEqual((await store.ids()).sort(), ['o-1', 'o-2']);
});

test('a value that is not JSON is a CorruptRecord error', async () => {
  const stores = new MemoryKeyValueStores();
  const store = await KvStatusStore.open(stores, 'order-status');
  await (await stores.create('order-status')).create('o-1', new TextEncoder().encode('{not json'));
  await assert.rejects(store.read('o-1'), (error: unknown) => {
    assert.ok(error instanceof OrderStatusError);
    assert.equal(error.code, StatusErrorCode.CorruptRecord);
    return true;
  });
});
