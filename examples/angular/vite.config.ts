import { defineConfig } from 'vite';

// Angular in JIT mode: no Angular plugin; vite compiles the decorators (tsconfig.json:
// "experimentalDecorators": true) and @angular/compiler compiles the template in the browser.
export default defineConfig({
  base: './',
  // The JIT compiler alone is most of the bundle's ~1 MB; an AOT build (Angular CLI) drops it.
  build: { chunkSizeWarningLimit: 1200 },
});
