// Builds every program of the system for production: `services/<name>/src/main.ts` → one ES module
// `services/<name>/dist/main.mjs` (esbuild; the workspace's own packages are bundled in, npm packages
// stay imports resolved from node_modules, so PGlite's WebAssembly and pdfkit's fonts load as usual).
// `npm start` runs it first; the system then starts each service with plain `node`, without tsx and
// its per-process esbuild helper. Files a program reads next to its code at run time (the gateway's
// dashboard) are copied beside the bundle.
// Usage: node scripts/build.mjs [service…]   (default: every service with a src/main.ts)
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
/** Files read at run time through `new URL(file, import.meta.url)`, per service: copied into dist/. */
const assets = {
  gateway: ['index.html', 'dashboard.mjs', 'dashboard.css', 'console.html', 'console.mjs', 'console.css'].map(
    (file) => `src/dashboard/${file}`,
  ),
};

const wanted = process.argv.slice(2);
const services = readdirSync(join(root, 'services')).filter(
  (name) =>
    existsSync(join(root, 'services', name, 'src', 'main.ts')) &&
    (wanted.length === 0 || wanted.includes(name)),
);

/** npm packages stay external; `@orderflow/*` (TypeScript sources) and relative imports are bundled. */
const externalNpmPackages = {
  name: 'external-npm-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) =>
      args.path.startsWith('@orderflow/') ? undefined : { path: args.path, external: true },
    );
  },
};

const started = performance.now();
await Promise.all(
  services.map(async (name) => {
    const dir = join(root, 'services', name);
    rmSync(join(dir, 'dist'), { recursive: true, force: true });
    await build({
      entryPoints: [join(dir, 'src', 'main.ts')],
      outfile: join(dir, 'dist', 'main.mjs'),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      sourcemap: 'linked',
      logLevel: 'warning',
      plugins: [externalNpmPackages],
    });
    for (const file of assets[name] ?? []) cpSync(join(dir, file), join(dir, 'dist', file.split('/').at(-1)));
  }),
);
console.log(
  `built ${services.length} programs into services/*/dist in ${Math.round(performance.now() - started)} ms`,
);
