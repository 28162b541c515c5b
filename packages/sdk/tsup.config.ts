import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  platform: 'neutral',
  target: 'es2022',
  clean: true,
  sourcemap: true,
  tsconfig: 'tsconfig.build.json',
  // The router's types are inlined from the server's sources (tsconfig.build.json "paths"), and
  // @tasker/states (statuses, canCancel, canRetry) is bundled, code and types: the published package
  // needs no workspace package, at runtime or in its types.
  noExternal: ['@tasker/states'],
  dts: { resolve: [/^@tasker\//] },
  external: ['@trpc/client', '@trpc/server', 'eventsource', 'zod'],
});
