import { nodeResolve } from '@rollup/plugin-node-resolve';
import esbuild from 'rollup-plugin-esbuild';

const WORKER_URL = /new\s+URL\(\s*(['"])([^'"]+\.ts)\1\s*,\s*import\.meta\.url\s*\)/g;

/**
 * The packages we depend on, and the frameworks the helpers are for (optional peers); the library
 * build leaves them to the app's bundler.
 */
const DEPENDENCY = /^(lit|lit-html|lit-element|@lit\/[^/]+|react|react-dom|vue|@vue\/[^/]+|@angular\/[^/]+)(\/|$)/;

/**
 * Rollup leaves `new Worker(new URL('./x.ts', import.meta.url))` alone; this emits each such
 * module as a chunk of its own and points the URL at the emitted file. With `fixedName`, the
 * chunk keeps its module's name (`sync-worker.js`), so the package can export it.
 */
function workerChunks({ fixedName = false } = {}) {
  return {
    name: 'worker-chunks',
    async transform(code, id) {
      if (!WORKER_URL.test(code)) return null;
      WORKER_URL.lastIndex = 0;
      let output = '';
      let last = 0;
      for (const match of code.matchAll(WORKER_URL)) {
        const resolved = await this.resolve(match[2], id);
        if (!resolved) this.error(`Cannot resolve worker module ${match[2]} from ${id}`);
        const name = match[2].split('/').pop().replace(/\.ts$/, '');
        const ref = this.emitFile(
          fixedName ? { type: 'chunk', id: resolved.id, fileName: `${name}.js` } : { type: 'chunk', id: resolved.id, name },
        );
        output += code.slice(last, match.index) + `import.meta.ROLLUP_FILE_URL_${ref}`;
        last = match.index + match[0].length;
      }
      return { code: output + code.slice(last), map: null };
    },
    // Written back as the literal `new URL('./x.js', import.meta.url)` that bundlers (vite,
    // webpack) recognise in a dependency and follow to bundle the worker themselves.
    resolveFileUrl({ relativePath }) {
      const path = relativePath.startsWith('.') ? relativePath : `./${relativePath}`;
      return `new URL(${JSON.stringify(path)}, import.meta.url)`;
    },
  };
}

const resolve = () => nodeResolve({ browser: true, extensions: ['.ts', '.js', '.mjs'] });

export default [
  // The package's modules, for apps with a bundler: one file per entry, our code only.
  {
    input: {
      index: 'src/index.ts',
      element: 'src/element.ts',
      service: 'src/service.ts',
      compat: 'src/compat.ts',
      react: 'src/react.ts',
      vue: 'src/vue.ts',
      angular: 'src/angular.ts',
    },
    external: (id) => DEPENDENCY.test(id),
    output: {
      dir: 'dist/lib',
      format: 'es',
      entryFileNames: '[name].js',
      chunkFileNames: 'chunks/[name]-[hash].js',
      sourcemap: true,
    },
    plugins: [resolve(), esbuild({ target: 'es2022', tsconfig: './tsconfig.json' }), workerChunks({ fixedName: true })],
  },
  // One self-contained file for a plain page (`<script type="module">`), the demo and the benchmarks.
  {
    input: { 'sync-connection': 'src/index.ts' },
    output: {
      dir: 'dist',
      format: 'es',
      entryFileNames: '[name].js',
      chunkFileNames: '[name]-[hash].js',
      sourcemap: true,
    },
    plugins: [resolve(), esbuild({ target: 'es2022', tsconfig: './tsconfig.json', minify: true }), workerChunks()],
  },
];
