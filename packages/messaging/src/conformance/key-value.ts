/**
 * The key-value conformance suite: the behaviour every {@link KeyValueStores} implementation must show
 * (JetStream KV, SQL, in memory). The harness gives each test an empty backend; `features` says what
 * an implementation cannot be put through (a case that needs it is skipped with that reason).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { uniqueName } from '@orderflow/testing';
import type { KeyValueStores } from '../ports/key-value.ts';
import {
  badBuckets,
  badNames,
  conflict,
  invalidName,
  needsOutage,
  notFound,
  edgeBuckets,
  oddGoodNames,
  unavailable,
  withStores,
  type StoresHarness,
} from './stores.ts';

export type KeyValueHarness = StoresHarness<KeyValueStores>;

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array) => new TextDecoder().decode(value);

export function keyValueConformance(name: string, harness: KeyValueHarness): void {
  describe(`key-value conformance: ${name}`, () => {
    const withBucket = (body: Parameters<typeof withStores<KeyValueStores>>[1]) => withStores(harness, body);

    test('create, get and update carry increasing revisions; a key never written is not found', async () => {
      await withBucket(async ({ stores }) => {
        const bucket = uniqueName('kv');
        const kv = await stores.create(bucket);
        assert.equal(kv.bucket, bucket);
        await assert.rejects(kv.get('order-1'), notFound({ store: bucket, key: 'order-1' }));
        const first = await kv.create('order-1', bytes('placed'));
        assert.ok(Number.isSafeInteger(first) && first > 0, `revision ${first}`);
        const entry = await kv.get('order-1');
        assert.deepEqual(
          { ...entry, value: text(entry.value) },
          {
            key: 'order-1',
            value: 'placed',
            revision: first,
          },
        );
        const other = await kv.create('order-2', bytes('placed'));
        const second = await kv.update('order-1', bytes('paid'), first);
        assert.ok(other > first && second > other, `revisions ${first}, ${other}, ${second} increase`);
        assert.deepEqual(await kv.get('order-1').then((e) => [text(e.value), e.revision]), ['paid', second]);
      });
    });

    test('compare-and-set: a second create, a stale or made-up revision conflict and write nothing', async () => {
      await withBucket(async ({ stores }) => {
        const bucket = uniqueName('kv');
        const kv = await stores.create(bucket);
        const first = await kv.create('k', bytes('one'));
        await assert.rejects(
          kv.create('k', bytes('two')),
          conflict({ store: bucket, key: 'k', expectedRevision: 0 }),
        );
        const second = await kv.update('k', bytes('three'), first);
        await assert.rejects(
          kv.update('k', bytes('four'), first),
          conflict({ store: bucket, key: 'k', expectedRevision: first }),
        );
        for (const revision of [0, -1, 1.5, second + 1_000]) {
          await assert.rejects(
            kv.update('k', bytes('five'), revision),
            conflict({ store: bucket, key: 'k', expectedRevision: revision }),
          );
        }
        await assert.rejects(
          kv.update('never-written', bytes('x'), second),
          conflict({ store: bucket, key: 'never-written', expectedRevision: second }),
        );
        await assert.rejects(kv.get('never-written'), notFound({ store: bucket, key: 'never-written' }));
        const entry = await kv.get('k');
        assert.deepEqual([text(entry.value), entry.revision], ['three', second]);
      });
    });

    test('of writers racing from one revision, also from another process, exactly one wins', async () => {
      await withBucket(async ({ stores, replica }) => {
        const bucket = uniqueName('kv');
        const [mine, theirs] = [await stores.create(bucket), await (await replica()).create(bucket)];
        const start = await mine.create('k', bytes('0'));
        const writers = Array.from({ length: 8 }, (_, i) =>
          (i % 2 ? theirs : mine).update('k', bytes(`w${i}`), start),
        );
        const results = await Promise.allSettled(writers);
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, revision: r.value }] : []));
        assert.equal(won.length, 1, 'one winner');
        for (const r of results) {
          if (r.status === 'rejected')
            conflict({ store: bucket, key: 'k', expectedRevision: start })(r.reason);
        }
        const entry = await theirs.get('k');
        assert.deepEqual([text(entry.value), entry.revision], [`w${won[0]!.i}`, won[0]!.revision]);
        const creators = await Promise.allSettled([
          mine.create('new', bytes('a')),
          theirs.create('new', bytes('b')),
        ]);
        assert.equal(creators.filter((r) => r.status === 'fulfilled').length, 1, 'one create wins');
      });
    });

    test('creating a bucket is idempotent, also twice at once and from another process, and keeps its data', async () => {
      await withBucket(async ({ stores, replica }) => {
        const bucket = uniqueName('kv');
        const other = await replica();
        const [a, b, c] = await Promise.all([
          stores.create(bucket, { history: 1, description: 'conformance' }),
          stores.create(bucket, { history: 1, description: 'conformance' }),
          other.create(bucket, { history: 1, description: 'conformance' }),
        ]);
        const revision = await a.create('k', bytes('v'));
        for (const kv of [b, c, await stores.create(bucket)]) {
          assert.deepEqual((await kv.get('k')).revision, revision);
        }
      });
    });

    test('buckets are apart: one key in two buckets holds two values', async () => {
      await withBucket(async ({ stores }) => {
        const [one, two] = [await stores.create(uniqueName('kv')), await stores.create(uniqueName('kv'))];
        await one.create('k', bytes('one'));
        await assert.rejects(two.get('k'), notFound({ store: two.bucket, key: 'k' }));
        await two.create('k', bytes('two'));
        assert.equal(text((await one.get('k')).value), 'one');
        assert.deepEqual(await one.keys(), ['k']);
      });
    });

    test('keys lists every key with a value', async () => {
      await withBucket(async ({ stores }) => {
        const kv = await stores.create(uniqueName('kv'));
        assert.deepEqual(await kv.keys(), []);
        const keys = ['b', 'a', 'c/d', 'e.f'];
        for (const key of keys) await kv.create(key, bytes(key));
        await kv.update('a', bytes('again'), (await kv.get('a')).revision);
        assert.deepEqual((await kv.keys()).sort(), [...keys].sort());
      });
    });

    test('values are bytes: empty and every byte value round-trip, copied in and out', async () => {
      await withBucket(async ({ stores }) => {
        const kv = await stores.create(uniqueName('kv'));
        await kv.create('empty', new Uint8Array(0));
        assert.equal((await kv.get('empty')).value.length, 0);
        const all = Uint8Array.from({ length: 256 * 4 }, (_, i) => i % 256);
        await kv.create('all', all);
        all[0] = 9;
        const read = await kv.get('all');
        assert.deepEqual(
          [...read.value],
          Array.from({ length: 256 * 4 }, (_, i) => i % 256),
        );
        read.value[1] = 9;
        assert.equal((await kv.get('all')).value[1], 1, 'a value read is a copy');
      });
    });

    test('odd names are refused with StoreInvalidNameError; names at the edges of the rule work', async () => {
      await withBucket(async ({ stores }) => {
        for (const bucket of badBuckets) {
          await assert.rejects(stores.create(bucket), invalidName({ store: bucket, key: undefined }));
        }
        for (const bucket of edgeBuckets(uniqueName('b'))) await (await stores.create(bucket)).keys();
        const kv = await stores.create(uniqueName('kv'));
        for (const key of badNames) {
          const where = { store: kv.bucket, key };
          await assert.rejects(kv.get(key), invalidName(where));
          await assert.rejects(kv.create(key, bytes('v')), invalidName(where));
          await assert.rejects(kv.update(key, bytes('v'), 1), invalidName(where));
        }
        for (const key of oddGoodNames) {
          const revision = await kv.create(key, bytes(key));
          assert.equal((await kv.get(key)).revision, revision, key);
        }
        assert.deepEqual((await kv.keys()).sort(), [...oddGoodNames].sort());
      });
    });

    test(
      'an outage is StoreUnavailableError for every call, never "not found"',
      needsOutage(harness.features),
      async () => {
        await withBucket(async ({ stores, outage }) => {
          const bucket = uniqueName('kv');
          const kv = await stores.create(bucket);
          const revision = await kv.create('there', bytes('v'));
          await outage!();
          await assert.rejects(kv.get('there'), unavailable({ store: bucket, key: 'there' }));
          await assert.rejects(kv.get('missing'), unavailable({ store: bucket, key: 'missing' }));
          await assert.rejects(kv.create('new', bytes('v')), unavailable({ store: bucket, key: 'new' }));
          await assert.rejects(
            kv.update('there', bytes('v'), revision),
            unavailable({ store: bucket, key: 'there' }),
          );
          await assert.rejects(kv.keys(), unavailable({ store: bucket }));
          await assert.rejects(stores.create(bucket), unavailable({ store: bucket }));
        });
      },
    );
  });
}
