/**
 * The blob conformance suite: the behaviour every {@link BlobStores} implementation must show
 * (JetStream object store, SQL, a directory, in memory). The harness gives each test an empty backend;
 * `features` says what an implementation cannot be put through (such a case is skipped with the reason).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { uniqueName } from '@orderflow/testing';
import type { BlobStore, BlobStores } from '../ports/blob-store.ts';
import {
  badBuckets,
  badNames,
  edgeBuckets,
  invalidName,
  needsOutage,
  notFound,
  oddGoodNames,
  unavailable,
  withStores,
  type StoresHarness,
} from './stores.ts';

export type BlobHarness = StoresHarness<BlobStores>;

/** Larger than one JetStream message (1 MiB) and one object store chunk (128 KiB), not a multiple of either. */
const MULTI_MB = 5 * 1024 * 1024 + 7;

const same = (actual: Uint8Array, expected: Uint8Array, what: string) => {
  assert.equal(actual.length, expected.length, `${what}: size`);
  assert.ok(Buffer.from(actual).equals(Buffer.from(expected)), `${what}: bytes`);
};

export function blobStoreConformance(name: string, harness: BlobHarness): void {
  describe(`blob store conformance: ${name}`, () => {
    const withBuckets = (body: Parameters<typeof withStores<BlobStores>>[1]) => withStores(harness, body);

    test('a multi-MB blob: put, get (also from another process), stat, delete', async () => {
      await withBuckets(async ({ stores, replica }) => {
        const bucket = uniqueName('blobs');
        const blobs = await stores.create(bucket, { description: 'conformance' });
        assert.equal(blobs.bucket, bucket);
        const pdf = randomBytes(MULTI_MB);
        assert.deepEqual(await blobs.put('invoice-1.pdf', pdf, { description: 'application/pdf' }), {
          size: MULTI_MB,
        });
        same(await blobs.get('invoice-1.pdf'), pdf, 'read back');
        same(
          await (await (await replica()).open(bucket)).get('invoice-1.pdf'),
          pdf,
          'read by another process',
        );
        assert.deepEqual(await blobs.stat('invoice-1.pdf'), { size: MULTI_MB });
        await blobs.delete('invoice-1.pdf');
        await assert.rejects(blobs.get('invoice-1.pdf'), notFound({ store: bucket, key: 'invoice-1.pdf' }));
        assert.equal(await blobs.stat('invoice-1.pdf'), undefined);
        await blobs.delete('invoice-1.pdf'); // deleting what is not there resolves
      });
    });

    test('a missing bucket or object is StoreNotFoundError; stat of a missing object is undefined', async () => {
      await withBuckets(async ({ stores }) => {
        const bucket = uniqueName('blobs');
        await assert.rejects(stores.open(bucket), notFound({ store: bucket, key: undefined }));
        const blobs = await stores.create(bucket);
        await assert.rejects(blobs.get('none.pdf'), notFound({ store: bucket, key: 'none.pdf' }));
        assert.equal(await blobs.stat('none.pdf'), undefined);
        assert.equal((await stores.open(bucket)).bucket, bucket);
      });
    });

    test('put replaces the object whole; empty blobs and copies in and out', async () => {
      await withBuckets(async ({ stores }) => {
        const blobs = await stores.create(uniqueName('blobs'));
        const large = randomBytes(300_000);
        const small = Uint8Array.from([1, 2, 3]);
        await blobs.put('a', large);
        await blobs.put('a', small);
        same(await blobs.get('a'), Uint8Array.from([1, 2, 3]), 'the second write');
        assert.deepEqual(await blobs.stat('a'), { size: 3 });
        small[0] = 9;
        const read = await blobs.get('a');
        read[1] = 9;
        same(await blobs.get('a'), Uint8Array.from([1, 2, 3]), 'neither the input nor a read is shared');
        assert.deepEqual(await blobs.put('empty', new Uint8Array(0)), { size: 0 });
        assert.equal((await blobs.get('empty')).length, 0);
        assert.deepEqual(await blobs.stat('empty'), { size: 0 });
      });
    });

    test('readers see a blob whole or not at all while writers race on its name', async () => {
      await withBuckets(async ({ stores, replica }) => {
        const bucket = uniqueName('blobs');
        const [mine, theirs] = [await stores.create(bucket), await (await replica()).create(bucket)];
        const versions = [randomBytes(2 * 1024 * 1024), randomBytes(1024 * 1024 + 1)];
        let writing = true;
        const writer = async (blobs: BlobStore, bytes: Uint8Array) => {
          for (let i = 0; i < 4; i++) await blobs.put('race', bytes);
        };
        const writes = Promise.all([writer(mine, versions[0]!), writer(theirs, versions[1]!)]).finally(
          () => (writing = false),
        );
        const seen: Uint8Array[] = [];
        while (writing) {
          const read = await mine.get('race').catch((error: unknown) => {
            notFound({ store: bucket, key: 'race' })(error);
            return undefined;
          });
          if (read) seen.push(read);
        }
        await writes;
        seen.push(await theirs.get('race'));
        for (const read of seen) {
          assert.ok(
            versions.some((v) => Buffer.from(v).equals(Buffer.from(read))),
            `a read of ${read.length} bytes is one whole write`,
          );
        }
      });
    });

    test('creating a bucket is idempotent, also twice at once and from another process, and keeps its objects', async () => {
      await withBuckets(async ({ stores, replica }) => {
        const bucket = uniqueName('blobs');
        const other = await replica();
        const [a, b, c] = await Promise.all([
          stores.create(bucket, { description: 'conformance' }),
          stores.create(bucket, { description: 'conformance' }),
          other.create(bucket, { description: 'conformance' }),
        ]);
        await a.put('x.pdf', Uint8Array.from([7]));
        for (const blobs of [b, c, await stores.create(bucket), await other.open(bucket)]) {
          same(await blobs.get('x.pdf'), Uint8Array.from([7]), blobs.bucket);
        }
      });
    });

    test('odd names are refused with StoreInvalidNameError; names at the edges of the rule work', async () => {
      await withBuckets(async ({ stores }) => {
        for (const bucket of badBuckets) {
          const where = { store: bucket, key: undefined };
          await assert.rejects(stores.create(bucket), invalidName(where));
          await assert.rejects(stores.open(bucket), invalidName(where));
        }
        for (const bucket of edgeBuckets(uniqueName('b'))) {
          await stores.create(bucket);
          assert.equal((await stores.open(bucket)).bucket, bucket);
        }
        const blobs = await stores.create(uniqueName('blobs'));
        for (const name of badNames) {
          const where = { store: blobs.bucket, key: name };
          await assert.rejects(blobs.put(name, Uint8Array.from([1])), invalidName(where));
          await assert.rejects(blobs.get(name), invalidName(where));
          await assert.rejects(blobs.stat(name), invalidName(where));
          await assert.rejects(blobs.delete(name), invalidName(where));
        }
        for (const [i, name] of oddGoodNames.entries()) await blobs.put(name, Uint8Array.from([i]));
        for (const [i, name] of oddGoodNames.entries())
          same(await blobs.get(name), Uint8Array.from([i]), name);
      });
    });

    test(
      'an outage is StoreUnavailableError for every call, never "not found"',
      needsOutage(harness.features),
      async () => {
        await withBuckets(async ({ stores, outage }) => {
          const bucket = uniqueName('blobs');
          const blobs = await stores.create(bucket);
          await blobs.put('there.pdf', Uint8Array.from([1, 2, 3]));
          await outage!();
          for (const key of ['there.pdf', 'missing.pdf']) {
            await assert.rejects(blobs.get(key), unavailable({ store: bucket, key }));
            await assert.rejects(blobs.stat(key), unavailable({ store: bucket, key }));
            await assert.rejects(blobs.delete(key), unavailable({ store: bucket, key }));
          }
          await assert.rejects(
            blobs.put('new.pdf', Uint8Array.from([1])),
            unavailable({ store: bucket, key: 'new.pdf' }),
          );
          await assert.rejects(stores.open(bucket), unavailable({ store: bucket }));
          const never = uniqueName('never');
          await assert.rejects(stores.open(never), unavailable({ store: never }));
          await assert.rejects(stores.create(bucket), unavailable({ store: bucket }));
        });
      },
    );
  });
}
