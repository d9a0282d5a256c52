import { chromeLauncher } from '@web/test-runner-chrome';
import { esbuildPlugin } from '@web/dev-server-esbuild';
import { findChrome } from './scripts/find-chrome.mjs';
import { frameworkModulesPlugin } from './test/plugins/framework-modules.mjs';
import { referenceServerPlugin } from './test/plugins/reference-server.mjs';
import { summaryReporter } from './test/plugins/summary-reporter.mjs';
import { defaultReporter } from '@web/test-runner';

const chromeArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
  '--no-default-browser-check',
];

/** mock-socket's package.json points only at a UMD build; the browser needs its ES module. */
const mockSocketPlugin = {
  name: 'mock-socket-esm',
  resolveImport({ source }) {
    if (source === 'mock-socket') return '/node_modules/mock-socket/dist/mock-socket.es.mjs';
    return undefined;
  },
};

export default {
  files: ['test/**/*.test.ts'],
  nodeResolve: { exportConditions: ['production'] },
  concurrency: 1,
  testsFinishTimeout: 180_000,
  testFramework: { config: { timeout: 15_000 } },
  browsers: [
    chromeLauncher({
      launchOptions: { executablePath: findChrome(), headless: true, args: chromeArgs },
    }),
  ],
  plugins: [
    esbuildPlugin({ ts: true, target: 'es2022', tsconfig: './tsconfig.json' }),
    mockSocketPlugin,
    frameworkModulesPlugin(),
    referenceServerPlugin(),
  ],
  reporters: [defaultReporter(), summaryReporter()],
};
