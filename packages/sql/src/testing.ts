// Test support (`@orderflow/sql/testing`): PGlite data directories that start initialised.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { openPglite } from './pglite.ts';

const COMPLETE = 'orderflow-template-complete';
const execFileAsync = promisify(execFile);

async function pgliteVersion(): Promise<string> {
  let dir = dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite')));
  for (;;) {
    try {
      const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (manifest.name === '@electric-sql/pglite' && manifest.version) return manifest.version;
    } catch {
      // not this directory: look further up
    }
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

let template: Promise<string> | undefined;

/**
 * The template: a database initialised by `openPglite` and closed, under the OS temp directory, one per
 * PGlite version, made by the first process that needs it and renamed into place whole. A process that
 * loses the race to another uses the other's; one that finds the place taken by anything else uses its
 * own draft.
 */
function initialisedTemplate(): Promise<string> {
  return (template ??= (async () => {
    const path = join(tmpdir(), `orderflow-pglite-template-${await pgliteVersion()}`);
    if (await exists(join(path, COMPLETE))) return path;
    const draft = await mkdtemp(`${path}-draft-`);
    const db = join(draft, 'db');
    await (await openPglite({ dataDir: db })).close();
    await mkdir(join(db, COMPLETE));
    try {
      await rename(db, path);
    } catch {
      if (!(await exists(join(path, COMPLETE)))) return db;
    }
    await rm(draft, { recursive: true, force: true, maxRetries: 5 });
    return path;
  })());
}

/**
 * Fills `dataDir` (created if missing; it must be empty) with an initialised PGlite database, so that
 * the process opening it reopens a database (about 0.4 s of CPU) instead of running initdb (about 4 s,
 * a minute on a saturated machine), as a service does on every start after its first. Tests that are
 * about a first start use an empty directory instead.
 */
export async function seedPgliteDataDir(dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  if ((await readdir(dataDir)).length > 0) throw new Error(`${dataDir} is not empty`);
  // cp(1) copies the 40 MB in about a third of the CPU time of fs.cp.
  await execFileAsync('cp', ['-R', `${await initialisedTemplate()}/.`, dataDir]);
  await rm(join(dataDir, COMPLETE), { recursive: true });
}
