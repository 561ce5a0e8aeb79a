// The Node versions the project declares (package.json `engines`) must be ones every installed package
// declares support for, the README must state them, and the Node running the tests must be one of them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import semver from 'semver';

const root = new URL('../', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
  engines: { node: string };
};
const lock = JSON.parse(readFileSync(new URL('package-lock.json', root), 'utf8')) as {
  packages: Record<string, { version?: string; optional?: boolean; engines?: { node?: string } | string[] }>;
};
const declared = manifest.engines.node;

test('every package in the lock file supports every Node version package.json declares', () => {
  const conflicts: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    // Optional platform binaries (esbuild's) are skipped by npm where they do not fit.
    if (!path || entry.optional || Array.isArray(entry.engines) || !entry.engines?.node) continue;
    if (!semver.subset(declared, entry.engines.node, { includePrerelease: false }))
      conflicts.push(`${path}@${entry.version}: node ${entry.engines.node}`);
  }
  assert.deepEqual(conflicts, [], `declared node "${declared}" is wider than these packages allow`);
});

test('the Node running the tests is one the project declares', () => {
  assert.ok(
    semver.satisfies(process.versions.node, declared),
    `node ${process.versions.node} is outside "${declared}"`,
  );
});

test('the README states the declared Node versions', () => {
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  assert.ok(readme.includes(`\`${declared}\``), `README does not name engines "${declared}"`);
});
