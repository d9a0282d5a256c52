import { defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';

export default defineConfig({
  base: './',
  plugins: [
    // Tell Vue's template compiler that <sync-connection> is a custom element, not a component.
    vue({ template: { compilerOptions: { isCustomElement: (tag) => tag === 'sync-connection' } } }),
  ],
});
