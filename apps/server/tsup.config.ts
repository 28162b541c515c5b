import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/main.ts'],
  format: ['esm'],
  platform: 'node',
  target: 'node22',
  // Workspace packages are TypeScript sources: bundle them; npm dependencies stay external, but for
  // drizzle-orm (bundled, as the worker's build does): its package.json has a 130 kB `exports` map,
  // and Node 24's ESM loader parses that map again for each of the few hundred files of drizzle-orm
  // it loads (getPackageScopeConfig), about 160 MB of garbage at start that took the old generation
  // to 200 MB before the first full GC; V8 keeps the pages it freed then (its page pool), about
  // 55 MB of the server's RSS for its whole life. Bundled: none of it, and a start 2-4 s shorter.
  noExternal: [/^@tasker\//, /^drizzle-orm(\/|$)/],
  clean: true,
  sourcemap: true,
});
