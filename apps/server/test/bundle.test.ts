/**
 * What the built server (dist/main.js, as `pnpm start:server` and the image run it) leaves to Node's
 * ESM loader. Node 24 parses a package's `exports` map again for every file of that package it loads
 * (getPackageScopeConfig): drizzle-orm, external, has a 130 kB map and a few hundred files, which
 * made about 160 MB of garbage at start, an old generation of 200 MB before the first full GC and
 * 55 MB more RSS for the server's whole life (V8 keeps the pages it freed in its pool). So
 * drizzle-orm is bundled (tsup.config.ts), and no external package may bring a large `exports` map.
 */
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const bundle = readFileSync(path.resolve(here, '../dist/main.js'), 'utf8');

/**
 * The packages the bundle imports, by name: its import statements (esbuild writes each at the start
 * of a line, `import … from "x";` or `import "x";`) and its dynamic `import("x")`; Node's own
 * modules left out. Comments and strings of bundled code that quote an import are not statements.
 */
function externalPackages(code: string): string[] {
  const statements = [...code.matchAll(/^import\s(?:[^;"']*?\sfrom\s*)?"([^"]+)";$/gm)];
  const dynamic = [...code.matchAll(/\bimport\("([^"]+)"\)/g)];
  const names = [...statements, ...dynamic]
    .map((m) => m[1] ?? '')
    .filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtinModules.includes(s))
    .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : (s.split('/')[0] ?? '')));
  return [...new Set(names)].sort();
}

/** Largest `exports` map (JSON text) an external package may have: the largest today is openai's, 4 kB. */
const MAX_EXPORTS_BYTES = 16_384;

describe('the built server bundle', () => {
  const packages = externalPackages(bundle);

  it('bundles drizzle-orm and imports the npm packages it depends on', () => {
    expect(packages).not.toContain('drizzle-orm');
    // The parse is not vacuous: the usual externals are found.
    expect(packages).toEqual(expect.arrayContaining(['fastify', 'bullmq', 'postgres', 'zod']));
  });

  it('imports no package whose exports map Node would parse again per file', () => {
    const large = packages.flatMap((name) => {
      const manifest = JSON.parse(
        readFileSync(path.resolve(here, '../node_modules', name, 'package.json'), 'utf8'),
      ) as { exports?: unknown };
      const bytes = JSON.stringify(manifest.exports ?? null).length;
      return bytes > MAX_EXPORTS_BYTES ? [`${name} (${bytes} bytes)`] : [];
    });
    expect(large, 'bundle these (tsup.config.ts noExternal)').toEqual([]);
  });
});
