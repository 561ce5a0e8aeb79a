// Builds every program of the system for production: `services/<name>/src/main.ts` → one ES module
// `services/<name>/dist/main.mjs` (esbuild; the workspace's own packages are bundled in, npm packages
// stay imports resolved from node_modules, so PGlite's WebAssembly and pdfkit's fonts load as usual).
// `npm start` runs it first; the system then starts each service with plain `node`, without tsx and
// its per-process esbuild helper. Files a program reads next to its code at run time (the gateway's
// dashboard) are copied beside the bundle. The `orderflow` CLI is bundled the same way into
// `cli/dist/orderflow.mjs`, so `npm start` runs its supervisor without tsx too.
// Usage: node scripts/build.mjs [service… | cli]   (default: every service with a src/main.ts, and the CLI)
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

/** One ES module for Node 20 from a TypeScript entry point. */
const bundle = (entryPoint, outfile) =>
  build({
    entryPoints: [entryPoint],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    logLevel: 'warning',
    plugins: [externalNpmPackages],
  });

const started = performance.now();
const cli = wanted.length === 0 || wanted.includes('cli');
await Promise.all([
  ...services.map(async (name) => {
    const dir = join(root, 'services', name);
    rmSync(join(dir, 'dist'), { recursive: true, force: true });
    await bundle(join(dir, 'src', 'main.ts'), join(dir, 'dist', 'main.mjs'));
    for (const file of assets[name] ?? []) cpSync(join(dir, file), join(dir, 'dist', file.split('/').at(-1)));
  }),
  ...(cli ? [bundle(join(root, 'cli', 'orderflow.ts'), join(root, 'cli', 'dist', 'orderflow.mjs'))] : []),
]);
console.log(
  `built ${services.length} programs into services/*/dist${cli ? ' and the CLI into cli/dist' : ''} in ${Math.round(performance.now() - started)} ms`,
);
