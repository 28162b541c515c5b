import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/main.ts'],
  banner: { js: '#!/usr/bin/env node' },
  format: ['esm'],
  platform: 'node',
  target: 'node22',
  // Workspace packages are TypeScript sources: bundle them; npm dependencies stay external.
  noExternal: [/^@tasker\//],
  clean: true,
  sourcemap: true,
});
