import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Served by the server at /ui (apps/server/src/dashboard.ts): every asset URL starts there.
// `pnpm --filter @tasker/dashboard dev` serves it on :5173 and proxies the API to a server on :5000.
export default defineConfig({
  base: '/ui/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 800 },
  server: {
    proxy: { '/trpc': 'http://127.0.0.1:5000' },
  },
});
