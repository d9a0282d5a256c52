/**
 * Serves the frameworks to the browser tests of the framework helpers (test/frameworks/), as
 * modules the dev server cannot make from the packages alone:
 * - React and react-dom are CommonJS only: `react`, `react-dom` and `react-dom/client` resolve to
 *   one ES module that esbuild bundles from them once (the development build: StrictMode mounts
 *   twice, as in an app under development), so that the test and the helper share one React.
 * - Vue's default entry is for bundlers (it reads `process.env`): `vue` resolves to its browser build.
 * Angular's packages are ES modules already and resolve as they are.
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const REACT_PATH = '/__frameworks__/react.js';
const REACT_SPECIFIERS = new Set(['react', 'react-dom', 'react-dom/client']);
const VUE_PATH = '/node_modules/vue/dist/vue.esm-browser.js';

/** What the tests and the helper import from react, react-dom and react-dom/client. */
const REACT_EXPORTS = `
export { StrictMode, createElement, useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
export { flushSync } from 'react-dom';
export { createRoot } from 'react-dom/client';
`;

async function bundleReact() {
  const result = await build({
    stdin: { contents: REACT_EXPORTS, resolveDir: ROOT, loader: 'js' },
    bundle: true,
    format: 'esm',
    write: false,
    define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

export function frameworkModulesPlugin() {
  let react;
  return {
    name: 'framework-modules',
    resolveImport({ source }) {
      if (REACT_SPECIFIERS.has(source)) return REACT_PATH;
      if (source === 'vue') return VUE_PATH;
      return undefined;
    },
    async serve(context) {
      if (context.path !== REACT_PATH) return undefined;
      react ??= bundleReact();
      return { body: await react, type: 'js' };
    },
  };
}
