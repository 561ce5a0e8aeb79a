import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openPglite, PGLITE_SETTINGS } from '../src/mod.ts';

const show = async (store: Awaited<ReturnType<typeof openPglite>>, name: string) =>
  (await store.query<Record<string, string>>(`SHOW ${name}`)).rows[0]?.[name];

test('openPglite starts the backend with the memory settings, and a service may override them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pglite-settings-'));
  try {
    const store = await openPglite({ dataDir: join(dir, 'db') });
    try {
      for (const [name, value] of Object.entries(PGLITE_SETTINGS))
        assert.equal(await show(store, name), value);
      assert.equal(PGLITE_SETTINGS.shared_buffers, '8MB');
      await store.query('CREATE TABLE kept (id int PRIMARY KEY)');
      await store.query('INSERT INTO kept VALUES (1)');
    } finally {
      await store.close();
    }
    // Reopened on the same files with an override: the data is there, the override applies.
    const reopened = await openPglite({ dataDir: join(dir, 'db'), settings: { shared_buffers: '32MB' } });
    try {
      assert.equal(await show(reopened, 'shared_buffers'), '32MB');
      assert.equal(await show(reopened, 'work_mem'), PGLITE_SETTINGS.work_mem);
      assert.deepEqual((await reopened.query('SELECT id FROM kept')).rows, [{ id: 1 }]);
    } finally {
      await reopened.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
