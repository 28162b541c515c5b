import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/main.ts'],
  banner: { js: '#!/usr/bin/env node' },
  format: ['esm'],
  platform: 'node',
  target: 'node22',
  // Workspace packages are TypeScript sources: bundle them. The SDK's transport (tRPC's client and
  // the eventsource ponyfill) is bundled too, so that the CLI brings no TypeScript peer into the
  // Docker image (tRPC declares one). drizzle-orm too, as the server's and the worker's builds do:
  // Node 24's ESM loader parses its 130 kB exports map again for each of the few hundred files it
  // loads, seconds of every command's start (apps/server/tsup.config.ts). Other npm dependencies
  // stay external.
  noExternal: [/^@tasker\//, /^@trpc\//, /^eventsource/, /^drizzle-orm(\/|$)/],
  clean: true,
  sourcemap: true,
});
