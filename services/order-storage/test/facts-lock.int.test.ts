import assert from 'node:assert/strict';
import { test } from 'node:test';
import { migrate, openPglite, openPostgres, type SqlStore } from '@orderflow/sql';
import { deferred, uniqueName } from '@orderflow/testing';
import { OrderStorageDb, orderStorageMigrations } from '../src/mod.ts';

// Two replicas judging facts of one order at once (two consumers, or two replicas of one: per-key order
// holds per process only) must judge them one after the other, each on the facts the other recorded.
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Two replicas' stores on one database: two pools on one schema, or the one PGlite a process owns. */
async function replicas(
  backend: 'postgres' | 'pglite',
): Promise<{ stores: SqlStore[]; close: () => Promise<void> }> {
  if (backend === 'pglite') {
    const store = await openPglite();
    await migrate(store, orderStorageMigrations, { component: 'order-storage' });
    return { stores: [store, store], close: () => store.close() };
  }
  const schema = uniqueName('order_facts_lock');
  const stores = [
    await openPostgres({ url: DATABASE_URL, schema, poolSize: 2 }),
    await openPostgres({ url: DATABASE_URL, schema, poolSize: 2 }),
  ];
  await migrate(stores[0]!, orderStorageMigrations, { component: 'order-storage' });
  return {
    stores,
    close: async () => {
      await stores[0]!.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await Promise.all(stores.map((store) => store.close()));
    },
  };
}

for (const backend of ['postgres', 'pglite'] as const) {
  test(`facts locked for a verdict: another replica reads them only after the first recorded its fact (${backend})`, async (t) => {
    const locked = deferred();
    const release = deferred();
    const { stores, close } = await replicas(backend);
    t.after(async () => {
      // A failed assertion must not leave the first transaction open: close() waits for it.
      release.resolve();
      await close();
    });
    const [first, second] = stores.map((store) => new OrderStorageDb(store)) as [
      OrderStorageDb,
      OrderStorageDb,
    ];
    const recording = first.store.transaction(async (tx) => {
      const facts = await first.lockFacts('o-1', tx);
      assert.equal(facts.invoiceNumber, null, 'an order without facts reads as none recorded');
      await first.recordFact('o-1', { kind: 'invoice', invoiceNumber: 'INV-1' }, tx);
      locked.resolve();
      await release.promise;
    });
    await locked.promise;
    let seen: string | null | undefined;
    const judging = second.store.transaction(async (tx) => {
      seen = (await second.lockFacts('o-1', tx)).invoiceNumber;
    });
    // The first transaction is still open: the second waits for the order's row (PostgreSQL) or for
    // the instance (PGlite) instead of judging on the facts without the invoice.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(seen, undefined, 'the second replica read the facts while the first was recording one');
    release.resolve();
    await recording;
    await judging;
    assert.equal(seen, 'INV-1');
    // A rolled-back verdict leaves no row behind.
    await assert.rejects(
      second.store.transaction(async (tx) => {
        await second.lockFacts('o-2', tx);
        throw new Error('refused');
      }),
      /refused/,
    );
    assert.equal(await second.facts('o-2'), undefined);
  });
}
