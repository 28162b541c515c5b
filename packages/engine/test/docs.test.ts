import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { envSchema, loadEnv } from '../src/index.ts';

const read = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');

describe('configuration docs', () => {
  const names = Object.keys(envSchema.shape);

  it('README lists every variable in its configuration table', () => {
    const readme = read('README.md');
    for (const name of names) expect(readme).toMatch(new RegExp(`\\| \`${name}\` +\\|`));
  });

  it('.env.example lists every variable, with values that parse to the defaults (DATABASE_URL has none)', () => {
    const lines = read('.env.example')
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l));
    const vars = Object.fromEntries(
      lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(Object.keys(vars).sort()).toEqual([...names].sort());
    expect(loadEnv(vars)).toEqual(loadEnv({ DATABASE_URL: vars.DATABASE_URL }));
  });
});
