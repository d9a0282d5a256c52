import { nodeResolve } from '@rollup/plugin-node-resolve';
import esbuild from 'rollup-plugin-esbuild';

const WORKER_URL = /new\s+URL\(\s*(['"])([^'"]+\.ts)\1\s*,\s*import\.meta\.url\s*\)/g;

/**
 * Rollup leaves `new Worker(new URL('./x.ts', import.meta.url))` alone; this emits each such
 * module as a chunk of its own and points the URL at the emitted file.
 */
function workerChunks() {
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
        const ref = this.emitFile({ type: 'chunk', id: resolved.id, name });
        output += code.slice(last, match.index) + `new URL(import.meta.ROLLUP_FILE_URL_${ref})`;
        last = match.index + match[0].length;
      }
      return { code: output + code.slice(last), map: null };
    },
  };
}

export default {
  input: { 'sync-connection': 'src/index.ts' },
  output: {
    dir: 'dist',
    format: 'es',
    entryFileNames: '[name].js',
    chunkFileNames: '[name]-[hash].js',
    sourcemap: true,
  },
  plugins: [
    nodeResolve({ browser: true, extensions: ['.ts', '.js', '.mjs'] }),
    esbuild({ target: 'es2022', tsconfig: './tsconfig.json', minify: true }),
    workerChunks(),
  ],
};
