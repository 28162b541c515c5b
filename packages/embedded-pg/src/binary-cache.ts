import { createHash, randomBytes } from 'node:crypto';
import {
  chmod,
  constants,
  copyFile,
  link,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { mkdirReachable } from './os-user.ts';
import { isAlive } from './processes.ts';

/** The file, inside a copy, that records what was copied (see `stamp`). */
const STAMP_FILE = '.tasker-stamp.json';

interface Entry {
  /** Relative to the copied folder, with `/`. */
  path: string;
  kind: 'dir' | 'file' | 'symlink';
  /** Files: their size. */
  size?: number;
  /** Files: whether they are executable. */
  exec?: boolean;
  /** Symlinks: their target. */
  target?: string;
}

/**
 * Lists a folder, depth first, sorted: what a copy of it must hold. The listing (with the package's
 * version) is the copy's stamp: a copy whose stamp and files match it is the same content.
 * Content hashes would cost a read of 60 MB at every start; the version pins the content, and the
 * sizes catch a different or damaged build.
 */
async function list(root: string, relative = ''): Promise<Entry[]> {
  const entries: Entry[] = [];
  const names = (await readdir(path.join(root, relative))).sort();
  for (const name of names) {
    const rel = relative ? `${relative}/${name}` : name;
    const info = await lstat(path.join(root, rel));
    if (info.isSymbolicLink()) {
      entries.push({ path: rel, kind: 'symlink', target: await readlink(path.join(root, rel)) });
    } else if (info.isDirectory()) {
      entries.push({ path: rel, kind: 'dir' }, ...(await list(root, rel)));
    } else if (info.isFile()) {
      entries.push({ path: rel, kind: 'file', size: info.size, exec: (info.mode & 0o111) !== 0 });
    }
  }
  return entries;
}

/** Whether `dir` is a complete copy with this stamp: the stamp file, and every entry, sizes equal. */
async function isCopy(dir: string, stamp: string, entries: Entry[]): Promise<boolean> {
  const recorded = await readFile(path.join(dir, STAMP_FILE), 'utf8').catch(() => undefined);
  if (recorded !== stamp) return false;
  for (const entry of entries) {
    const info = await lstat(path.join(dir, entry.path)).catch(() => undefined);
    if (!info) return false;
    if (entry.kind === 'file' && (!info.isFile() || info.size !== entry.size)) return false;
    if (entry.kind === 'dir' && !info.isDirectory()) return false;
  }
  return true;
}

/**
 * Copies `entries` of `source` into `dest` (created), world-readable (folders 755, files 644 or
 * 755) whatever the umask. Files that are hard links of one another in the source (the shared
 * libraries' versioned names, 26 MB each for ICU) stay hard links of one another.
 */
async function copyEntries(source: string, dest: string, entries: Entry[]): Promise<void> {
  await mkdir(dest);
  await chmod(dest, 0o755);
  const copied = new Map<string, string>();
  for (const entry of entries) {
    const from = path.join(source, entry.path);
    const to = path.join(dest, entry.path);
    if (entry.kind === 'dir') {
      await mkdir(to);
      await chmod(to, 0o755);
    } else if (entry.kind === 'symlink') {
      await symlink(entry.target ?? '', to);
    } else {
      const info = await lstat(from);
      const inode = `${info.dev}:${info.ino}`;
      const first = copied.get(inode);
      if (first) {
        await link(first, to);
      } else {
        await copyFile(from, to, constants.COPYFILE_FICLONE);
        await chmod(to, entry.exec ? 0o755 : 0o644);
        copied.set(inode, to);
      }
    }
  }
}

/** What `reachableCopy` did. */
export interface CopyResult {
  dir: string;
  /** False when an existing copy was reused. */
  copied: boolean;
}

/**
 * A copy of the folder `source` under `cacheRoot` (created, mode 755), named
 * `<name>-<version>-<hash of the listing>`, made once and reused while its stamp matches.
 *
 * Made in a sibling temporary folder that is renamed into place when complete, so a copy is never
 * seen half-made: of two processes racing, one rename wins and the other's copy is discarded. A copy
 * that no longer matches its stamp (files removed by hand) is moved aside and made again.
 * Temporary folders of processes that died while copying are removed.
 */
export async function reachableCopy({
  source,
  cacheRoot,
  name,
  version,
}: {
  source: string;
  cacheRoot: string;
  name: string;
  version: string;
}): Promise<CopyResult> {
  const entries = await list(source);
  const stamp = JSON.stringify({ name, version, entries });
  const hash = createHash('sha256').update(stamp).digest('hex').slice(0, 12);
  const base = `${name}-${version}-${hash}`;
  const dir = path.join(cacheRoot, base);
  if (await isCopy(dir, stamp, entries)) return { dir, copied: false };

  await mkdirReachable(cacheRoot);
  await removeAbandoned(cacheRoot, base);
  for (let attempt = 1; ; attempt++) {
    const temporary = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await copyEntries(source, temporary, entries);
      await writeFile(path.join(temporary, STAMP_FILE), stamp, { mode: 0o644 });
      await chmod(path.join(temporary, STAMP_FILE), 0o644);
      await rename(temporary, dir);
      return { dir, copied: true };
    } catch (error) {
      await rm(temporary, { recursive: true, force: true });
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      // Something is at `dir` already: another process's complete copy, or a damaged one.
      if (await isCopy(dir, stamp, entries)) return { dir, copied: false };
      if (attempt >= 3) throw error;
      const aside = `${dir}.damaged-${process.pid}-${randomBytes(4).toString('hex')}`;
      await rename(dir, aside).catch(() => undefined); // another process may have moved it already
      await rm(aside, { recursive: true, force: true });
    }
  }
}

/** Removes `<base>.tmp-<pid>-*` folders whose process is gone (killed while copying). */
async function removeAbandoned(cacheRoot: string, base: string): Promise<void> {
  for (const name of await readdir(cacheRoot).catch(() => [])) {
    const match = /^(.*)\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
    if (match?.[1] === base && !isAlive(Number(match[2]))) {
      await rm(path.join(cacheRoot, name), { recursive: true, force: true });
    }
  }
}
