// Writes the AsyncAPI document generated from the contracts and topology to docs/asyncapi.json
// (`npm run asyncapi`); with `--check`, exits 1 when the committed file differs from what it generates.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { asyncApiText } from '../src/asyncapi.ts';

const target = fileURLToPath(new URL('../../docs/asyncapi.json', import.meta.url));
const text = asyncApiText();
if (process.argv.includes('--check')) {
  const committed = await readFile(target, 'utf8').catch(() => '');
  if (committed !== text) {
    console.error('docs/asyncapi.json is stale: run `npm run asyncapi` and commit it');
    process.exit(1);
  }
  console.log('docs/asyncapi.json is up to date');
} else {
  await writeFile(target, text);
  console.log(`wrote ${target}`);
}
