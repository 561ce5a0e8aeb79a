// Runs every test file of the monorepo with node's test runner (Node 20 does not expand globs itself).
// Unit and integration files run a few at a time; the system tests (`*.e2e.test.ts`), each of which
// starts the whole system as a dozen processes, run one after the other so they never starve each
// other of the two cores. Ends with one summary line over both runs: `N passed, N failed`.
// Usage: node scripts/run-tests.mjs [path-prefix…]   e.g. `node scripts/run-tests.mjs packages/messaging`
import { spawn, spawnSync } from 'node:child_process';
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

/** Runs one `node --test` over `batch`, echoing its output; resolves with its counts and exit code. */
function run(batch, concurrency) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...batch],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let tail = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString()).slice(-4000);
    });
    child.on('close', (code) => {
      const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tail)?.[1] ?? 0);
      resolve({ code: code ?? 1, pass: count('pass'), fail: count('fail') + count('cancelled') });
    });
  });
}

const systemTests = selected.filter((f) => f.endsWith('.e2e.test.ts'));
const others = selected.filter((f) => !f.endsWith('.e2e.test.ts'));
const results = [];
if (others.length > 0) results.push(await run(others, process.env.TEST_CONCURRENCY ?? '3'));
if (systemTests.length > 0) {
  // The system tests run the programs as production does, bundled (`npm start` builds them too):
  // each process starts without compiling TypeScript (seconds of CPU each, per start and restart).
  // Built here, after the other files (one of which builds on its own) and before the first system.
  const build = spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  if (build.status === 0) {
    process.env.ORDERFLOW_TEST_RUNTIME = 'dist';
    results.push(await run(systemTests, '1'));
  } else {
    console.log(`the build failed: the ${systemTests.length} system test files did not run`);
    results.push({ code: 1, pass: 0, fail: systemTests.length });
  }
}
const passed = results.reduce((n, r) => n + r.pass, 0);
const failed = results.reduce((n, r) => n + r.fail, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(results.some((r) => r.code !== 0) || failed > 0 ? 1 : 0);
