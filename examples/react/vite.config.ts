import { defineConfig } from 'vite';

// No React plugin: vite transforms JSX itself (tsconfig.json: "jsx": "react-jsx").
export default defineConfig({
  base: './',
});
