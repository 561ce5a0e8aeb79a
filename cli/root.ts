import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The workspace root: the nearest folder at or above `from` whose package.json is named `orderflow`. */
function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (
      existsSync(manifest) &&
      (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'orderflow'
    )
      return dir;
    if (dirname(dir) === dir) throw new Error(`no orderflow package.json above ${from}`);
  }
}

/**
 * The repository the CLI belongs to, found from this module's own location: the same answer from the
 * TypeScript sources (`cli/*.ts`, run through tsx) and from the bundle (`cli/dist/orderflow.mjs`).
 */
export const ROOT_DIR = findRoot(fileURLToPath(new URL('.', import.meta.url)));
