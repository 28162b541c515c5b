import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/main.ts'],
  banner: { js: '#!/usr/bin/env node' },
  format: ['esm'],
  platform: 'node',
  target: 'node22',
  // Workspace packages are TypeScript sources: bundle them. The SDK's transport (tRPC's client and
  // the eventsource ponyfill) is bundled too, so that the CLI brings no TypeScript peer into the
  // Docker image (tRPC declares one). Other npm dependencies stay external.
  noExternal: [/^@tasker\//, /^@trpc\//, /^eventsource/],
  clean: true,
  sourcemap: true,
});
