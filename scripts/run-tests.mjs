// Runs every test file of the monorepo with node's test runner (Node 20 does not expand globs itself).
// Usage: node scripts/run-tests.mjs [path-prefix…]   e.g. `node scripts/run-tests.mjs packages/messaging`
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['packages', 'contracts', 'services', 'examples', 'cli', 'test'];
const files = [];
const walk = (dir) => {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path);
    else if (entry.name.endsWith('.test.ts')) files.push(path);
  }
};
roots.forEach(walk);
const prefixes = process.argv.slice(2);
const selected = files.sort().filter((f) => prefixes.length === 0 || prefixes.some((p) => f.startsWith(p)));
if (selected.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '3';
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...selected],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
