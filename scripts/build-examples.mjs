/**
 * Builds the framework examples (vue, react, angular) with vite into examples/<name>/dist/,
 * after `npm run build` made the package's dist/. Each example imports `sync-connection` the way
 * an app does: through node_modules and the package.json `exports` map, to dist/lib/*.js, whose
 * worker vite follows and bundles. Each example is typechecked first (tsc; Vue: main.ts only).
 *
 *   node scripts/build-examples.mjs            all three
 *   node scripts/build-examples.mjs react vue  some
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const EXAMPLES = ['vue', 'react', 'angular'];

const names = process.argv.slice(2);
for (const name of names) {
  if (!EXAMPLES.includes(name)) throw new Error(`unknown example ${name}; one of ${EXAMPLES.join(', ')}`);
}

if (!existsSync(join(ROOT, 'dist/lib/index.js')) || !existsSync(join(ROOT, 'dist/types/index.d.ts'))) {
  console.error('dist/lib is missing: run `npm run build` first.');
  process.exit(1);
}

// This repository installed as a package, as `npm link` would: node_modules/sync-connection -> ..
const link = join(ROOT, 'node_modules', 'sync-connection');
if (!lstatExists(link)) symlinkSync('..', link, 'dir');

for (const name of names.length > 0 ? names : EXAMPLES) {
  const root = join(ROOT, 'examples', name);
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], {
    stdio: 'inherit',
  });
  await build({
    root,
    configFile: join(root, 'vite.config.ts'),
    base: './',
    logLevel: 'warn',
    build: { outDir: 'dist', emptyOutDir: true },
  });
}

function lstatExists(path) {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
