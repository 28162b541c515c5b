// Where things live (locations.ts) and the cache of the binaries (binary-cache.ts), piece by piece;
// mode-700.test.ts runs them together from a clone the OS user postgres cannot enter.
import { execFile } from 'node:child_process';
import {
  link,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { reachableCopy } from '../src/binary-cache.ts';
import { chooseDataDir } from '../src/index.ts';
import { repoRoot, tempDir } from './helpers.ts';

const run = promisify(execFile);

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe('reachableCopy (the cache of the binaries)', () => {
  /** A small tree like the binaries' `native` folder: executables, a library under two hard-linked names, a symlink. */
  async function fakeNative(): Promise<string> {
    const dir = path.join(await tempDir('tasker-cache-source-'), 'native');
    cleanups.push(() => rm(path.dirname(dir), { recursive: true, force: true }));
    await mkdir(path.join(dir, 'bin'), { recursive: true });
    await mkdir(path.join(dir, 'lib'));
    await writeFile(path.join(dir, 'bin', 'postgres'), '#!/bin/sh\necho postgres\n', { mode: 0o700 });
    await writeFile(path.join(dir, 'lib', 'libicu.so.60.2'), 'x'.repeat(100_000), { mode: 0o600 });
    await link(path.join(dir, 'lib', 'libicu.so.60.2'), path.join(dir, 'lib', 'libicu.so.60'));
    await symlink('libicu.so.60.2', path.join(dir, 'lib', 'libicu.so'));
    return dir;
  }

  it('copies once, world-readable, hard links and symlinks kept; reuses the copy; remakes a damaged one', async () => {
    const source = await fakeNative();
    const cacheRoot = path.join(await tempDir('tasker-cache-'), 'cache', 'embedded-pg');
    cleanups.push(() => rm(path.dirname(path.dirname(cacheRoot)), { recursive: true, force: true }));
    const options = { source, cacheRoot, name: 'linux-x64', version: '18.4.0-test' };
    const first = await reachableCopy(options);
    expect(first.copied).toBe(true);
    expect(path.basename(first.dir)).toMatch(/^linux-x64-18\.4\.0-test-[0-9a-f]{12}$/);
    expect((await stat(cacheRoot)).mode & 0o777).toBe(0o755);
    expect((await stat(first.dir)).mode & 0o777).toBe(0o755);
    expect((await stat(path.join(first.dir, 'bin'))).mode & 0o777).toBe(0o755);
    expect((await stat(path.join(first.dir, 'bin', 'postgres'))).mode & 0o777).toBe(0o755);
    const lib = await stat(path.join(first.dir, 'lib', 'libicu.so.60.2'));
    expect(lib.mode & 0o777).toBe(0o644);
    expect((await stat(path.join(first.dir, 'lib', 'libicu.so.60'))).ino).toBe(lib.ino);
    expect(await readlink(path.join(first.dir, 'lib', 'libicu.so'))).toBe('libicu.so.60.2');
    expect(await readFile(path.join(first.dir, 'bin', 'postgres'), 'utf8')).toBe(
      '#!/bin/sh\necho postgres\n',
    );

    expect(await reachableCopy(options)).toEqual({ dir: first.dir, copied: false });

    // Damaged by hand: made again.
    await unlink(path.join(first.dir, 'lib', 'libicu.so.60'));
    expect(await reachableCopy(options)).toEqual({ dir: first.dir, copied: true });
    expect((await lstat(path.join(first.dir, 'lib', 'libicu.so.60'))).size).toBe(100_000);

    // Another build (a file of another size): a copy of its own, beside the first.
    await writeFile(path.join(source, 'bin', 'postgres'), '#!/bin/sh\necho postgres 2\n');
    const other = await reachableCopy(options);
    expect(other.copied).toBe(true);
    expect(other.dir).not.toBe(first.dir);
    expect((await readdir(cacheRoot)).sort()).toEqual(
      [path.basename(first.dir), path.basename(other.dir)].sort(),
    );
  });

  it('gives processes racing for the same copy one complete copy, and leaves no temporary folder', async () => {
    const source = await fakeNative();
    const cacheRoot = path.join(await tempDir('tasker-cache-race-'), 'embedded-pg');
    cleanups.push(() => rm(path.dirname(cacheRoot), { recursive: true, force: true }));
    const entry = pathToFileURL(path.join(repoRoot, 'packages/embedded-pg/src/binary-cache.ts')).href;
    // Separate processes (tsx runs the source), started together.
    const script = `
      const { reachableCopy } = await import(${JSON.stringify(entry)});
      console.log(JSON.stringify(await reachableCopy(${JSON.stringify({ source, cacheRoot, name: 'linux-x64', version: '1' })})));
    `;
    const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        run(tsx, ['--input-type=module', '-e', script]).then(
          (r) => JSON.parse(r.stdout) as { dir: string; copied: boolean },
        ),
      ),
    );
    const dirs = new Set(results.map((r) => r.dir));
    expect(dirs.size).toBe(1);
    // Each process either made the copy that won the rename or used the winner's.
    expect(results.filter((r) => r.copied).length).toBeGreaterThanOrEqual(1);
    expect(await readdir(cacheRoot)).toEqual([path.basename([...dirs][0] ?? '')]);
    expect((await lstat(path.join([...dirs][0] ?? '', 'lib', 'libicu.so.60.2'))).size).toBe(100_000);
  });
});

describe('chooseDataDir on a clone PostgreSQL can reach', () => {
  it('keeps the data in the clone, or in TASKER_DATA_DIR (relative to the clone)', async () => {
    const clone = await tempDir('tasker-clone-');
    cleanups.push(() => rm(clone, { recursive: true, force: true }));
    expect(await chooseDataDir(clone, undefined)).toEqual({
      dataDir: path.join(clone, '.tasker', 'pg'),
      note: undefined,
    });
    expect(await chooseDataDir(clone, '../elsewhere')).toEqual({
      dataDir: path.join(path.dirname(clone), 'elsewhere', 'pg'),
      note: undefined,
    });
  });
});
