import { defineConfig } from 'vite';

/** Where `npm run dev:web` forwards API calls: a local control plane (`npm start`) unless told otherwise. */
const apiUrl = process.env.GITSPACES_API_URL ?? 'http://127.0.0.1:3000';

// Run with web/ as the root (`vite build web`): the dashboard is served by the API from dist/web at `/`.
export default defineConfig({
  base: '/',
  // No @vitejs/plugin-react: Vite's own transformer compiles JSX with React's automatic runtime.
  oxc: { jsx: { runtime: 'automatic', importSource: 'react' } },
  build: { outDir: '../dist/web', emptyOutDir: true, sourcemap: true },
  server: {
    host: '127.0.0.1',
    proxy: Object.fromEntries(['/api', '/auth', '/metrics'].map((prefix) => [prefix, { target: apiUrl }])),
  },
  preview: { host: '127.0.0.1' },
});
