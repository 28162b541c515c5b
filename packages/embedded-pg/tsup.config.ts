import { defineConfig } from 'tsup';

// Built so that plain-JS callers (scripts/start.mjs, scripts/with-embedded-pg.mjs) can import it;
// TypeScript callers use the sources (see package.json "exports").
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  platform: 'node',
  target: 'node22',
  clean: true,
  sourcemap: true,
});
