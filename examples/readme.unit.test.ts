import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';

test('the README shows the quickstart exactly as CI runs it', async () => {
  const source = await readFile(new URL('./quickstart.ts', import.meta.url), 'utf8');
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const example = /\/\/ readme:start\n([\s\S]*?)\/\/ readme:end/.exec(source)?.[1];
  assert.ok(example, 'quickstart.ts has readme markers');
  assert.ok(readme.includes('```ts\n' + example + '```'), 'README.md contains the quickstart verbatim');
});
