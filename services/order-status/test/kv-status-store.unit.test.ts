import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryKeyValueStores } from '@orderflow/messaging';
import { KvStatusStore } from '../src/mod.ts';
import type { StatusRecord } from '../src/domain/status.ts';
import { OrderStatusError, StatusErrorCode } from '../src/errors.ts';

const record = (n: number): StatusRecord => ({ facts: [], view: null, n }) as unknown as StatusRecord;

test('reads what it wrote with its revision; a lost compare-and-set is undefined, not an error', async () => {
  const store = await KvStatusStore.open(new MemoryKeyValueStores(), 'order-status');
  assert.equal(await store.read('o-1'), undefined);
  const created = await store.write('o-1', record(1), 0);
  const first = await store.read('o-1');
  assert.ok(first);
  assert.deepEqual(first.record, record(1));
  assert.equal(created, first.revision, 'the write resolves with the revision a read then gives');
  assert.equal(await store.write('o-1', record(2), 0), undefined, 'a second create lost');
  const updated = await store.write('o-1', record(2), first.revision);
  assert.equal(updated, (await store.read('o-1'))?.revision);
  assert.ok(updated !== undefined && updated > first.revision);
  assert.equal(await store.write('o-1', record(3), first.revision), undefined, 'a stale revision lost');
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
