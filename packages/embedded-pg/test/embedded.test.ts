import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { waitFor } from '@tasker/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedPostgres, EmbeddedPostgresError, startEmbeddedPostgres } from '../src/index.ts';
import { assertBuilt, processes, query, repoRoot, tempDir } from './helpers.ts';

const run = promisify(execFile);

let tmp: string;
/** Servers started here, stopped after each test whatever happened. */
const servers: EmbeddedPostgres[] = [];
async function start(options: Parameters<typeof startEmbeddedPostgres>[0]): Promise<EmbeddedPostgres> {
  const pg = await startEmbeddedPostgres(options);
  servers.push(pg);
  return pg;
}

beforeAll(async () => {
  tmp = await tempDir('tasker-embedded-pg-test-');
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((pg) => pg.stop()));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

const alive = async (pid: number) => (await processes()).some((p) => p.pid === pid);

describe('startEmbeddedPostgres', () => {
  it('initialises an empty directory once, keeps its data across stop and start, and says how long it took', async () => {
    const dataDir = path.join(tmp, 'keep');
    const messages: string[] = [];
    const before = performance.now();
    const first = await start({ dataDir, log: (m) => messages.push(m) });
    const firstMs = Math.round(performance.now() - before);
    console.log(
      `[embedded-pg] new cluster: initdb ${first.initdbMs} ms + start ${first.startMs} ms = ${firstMs} ms in all (PostgreSQL ${first.version}, port ${first.port})`,
    );
    expect(first.version).toBe('18');
    expect(first.initdbMs).toBeGreaterThan(0);
    expect(messages.some((m) => m.startsWith('initialising a new PostgreSQL 18 cluster'))).toBe(true);
    expect(first.port).not.toBe(5432);
    const password = (await readFile(path.join(dataDir, 'superuser.password'), 'utf8')).trim();
    expect(first.passwordFile).toBe(path.join(dataDir, 'superuser.password'));
    expect(first.url).toBe(`postgres://${userInfo().username}:${password}@127.0.0.1:${first.port}/tasker`);
    expect(first.urlWithoutPassword).toBe(`postgres://${userInfo().username}@127.0.0.1:${first.port}/tasker`);
    // Generous: this machine is shared. The figure above is the measurement.
    expect(firstMs).toBeLessThan(10_000);

    const adminUrl = first.urlFor('postgres');
    expect(await query(adminUrl, 'show max_connections')).toEqual([{ max_connections: '200' }]);
    expect(await query(adminUrl, 'show listen_addresses')).toEqual([{ listen_addresses: '127.0.0.1' }]);
    await query(adminUrl, 'create table kept (note text)');
    await query(adminUrl, 'insert into kept values ($1)', ['written before the restart']);
    const watchdogs = (await processes()).filter((p) => p.args.includes(`tasker-pg-watchdog ${first.pid} `));
    expect(watchdogs).toHaveLength(1);

    await first.stop();
    expect(await first.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(path.join(dataDir, 'postmaster.pid'))).toBe(false);
    await expect(query(adminUrl, 'select 1')).rejects.toThrow();
    // stop() disarmed the watchdog: it is gone too.
    await waitFor(async () => !(await alive(watchdogs[0]?.pid ?? 0)), { what: 'the watchdog to exit' });

    const again = performance.now();
    const second = await start({ dataDir, port: first.port, log: (m) => messages.push(m) });
    console.log(
      `[embedded-pg] existing cluster: start ${second.startMs} ms (${Math.round(performance.now() - again)} ms in all)`,
    );
    expect(second.initdbMs).toBeUndefined();
    expect(messages.filter((m) => m.startsWith('initialising'))).toHaveLength(1);
    expect(await query(second.urlFor('postgres'), 'select note from kept')).toEqual([
      { note: 'written before the restart' },
    ]);
  });

  it('starts over a stale postmaster.pid: after a SIGKILL, and when its pid now belongs to another process', async () => {
    const dataDir = path.join(tmp, 'stale');
    const pidFile = path.join(dataDir, 'postmaster.pid');
    const messages: string[] = [];
    const log = (m: string) => messages.push(m);
    const first = await start({ dataDir, log });
    await query(first.urlFor('postgres'), 'create table t as select 1 as v');
    process.kill(first.pid, 'SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    expect(existsSync(pidFile)).toBe(true);

    const second = await start({ dataDir, log });
    expect(await query(second.urlFor('postgres'), 'select v from t')).toEqual([{ v: 1 }]);
    process.kill(second.pid, 'SIGKILL');
    await second.exited;

    // pids are reused (in a container, soon after a restart): the file now names a live process
    // of the same OS user that is not PostgreSQL. PostgreSQL alone would refuse to start ("lock
    // file "postmaster.pid" already exists"). As root, PostgreSQL runs as the OS user postgres.
    const sameUser = process.getuid?.() === 0 ? await postgresIds() : {};
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore', ...sameUser });
    try {
      const lines = (await readFile(pidFile, 'utf8')).split('\n');
      await writeFile(pidFile, [String(stranger.pid), ...lines.slice(1)].join('\n'));
      const third = await start({ dataDir, log });
      expect(await query(third.urlFor('postgres'), 'select v from t')).toEqual([{ v: 1 }]);
      expect(messages).toContain(
        `removed a stale postmaster.pid (pid ${stranger.pid} is not a PostgreSQL of ${dataDir})`,
      );
      expect(await alive(stranger.pid ?? 0)).toBe(true); // left alone
    } finally {
      stranger.kill();
    }
  });

  it('refuses, in one line, a second server on a directory in use', async () => {
    const dataDir = path.join(tmp, 'busy');
    const first = await start({ dataDir });
    const error = await startEmbeddedPostgres({ dataDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EmbeddedPostgresError);
    expect((error as Error).message).toBe(
      `a PostgreSQL (pid ${first.pid}) is already running on ${dataDir}: stop it first, or use another data directory`,
    );
    expect((error as EmbeddedPostgresError).failure).toBe('in-use');
    // The same directory through a symlink: still in use.
    const link = path.join(tmp, 'busy-link');
    await symlink(dataDir, link);
    await expect(startEmbeddedPostgres({ dataDir: link })).rejects.toThrow(
      `a PostgreSQL (pid ${first.pid}) is already running on ${link}`,
    );
    expect(await query(first.urlFor('postgres'), 'select 1 as ok')).toEqual([{ ok: 1 }]);
  });

  it('refuses, in one line, a directory that holds something else, and leaves it as it was', async () => {
    const dataDir = path.join(tmp, 'other');
    await mkdir(dataDir);
    await writeFile(path.join(dataDir, 'notes.txt'), 'mine');
    const error = await startEmbeddedPostgres({ dataDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EmbeddedPostgresError);
    expect((error as Error).message).toBe(
      `${dataDir} is not empty but holds no PostgreSQL cluster (no PG_VERSION file): empty it or choose another directory`,
    );
    expect((error as EmbeddedPostgresError).failure).toBe('data-dir');
    expect(await readFile(path.join(dataDir, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('uses another port when the one asked for is taken', async () => {
    const squatter = createServer();
    squatter.listen(0, '127.0.0.1');
    await once(squatter, 'listening');
    const address = squatter.address();
    const taken = typeof address === 'object' && address ? address.port : 0;
    try {
      const messages: string[] = [];
      const pg = await start({ dataDir: path.join(tmp, 'port'), port: taken, log: (m) => messages.push(m) });
      expect(pg.port).not.toBe(taken);
      expect(messages).toContain(`port ${taken} is taken: using ${pg.port}`);
      expect(await query(pg.urlFor('postgres'), 'select 1 as ok')).toEqual([{ ok: 1 }]);
    } finally {
      squatter.close();
    }
  });
});

describe('the watchdog', () => {
  it('stops PostgreSQL (fast shutdown) when its starter is SIGKILLed with its process group, once the clients have exited', async () => {
    assertBuilt('packages/embedded-pg/dist/index.js');
    const dataDir = path.join(tmp, 'orphan');
    // The starter: a process that starts PostgreSQL and a client (here `sleep 3`, in a process
    // group of its own, like the server and worker of `pnpm start`), then waits to be killed.
    const script = `
      import { execFile, spawn } from 'node:child_process';
      import { startEmbeddedPostgres } from ${JSON.stringify(pathToFileURL(path.join(repoRoot, 'packages/embedded-pg/dist/index.js')).href)};
      const pg = await startEmbeddedPostgres({ dataDir: process.env.DATA_DIR, port: 0 });
      const client = spawn('sleep', ['3'], { detached: true, stdio: 'ignore' });
      pg.addClientProcess(client.pid);
      console.log(JSON.stringify({ pid: pg.pid, url: pg.urlFor('postgres'), client: client.pid }));
      setInterval(() => {}, 1000);
    `;
    const starter = spawn(process.execPath, ['--input-type=module', '-e', script], {
      detached: true,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, DATA_DIR: dataDir },
    });
    const [line] = (await once(createInterface({ input: starter.stdout }), 'line')) as [string];
    const started = JSON.parse(line) as { pid: number; url: string; client: number };
    const killedAt = performance.now();
    process.kill(-(starter.pid ?? 0), 'SIGKILL');
    try {
      await once(starter, 'exit');
      // The client still runs: PostgreSQL stays up for it.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(await alive(started.client)).toBe(true);
      expect(await query(started.url, 'select 1 as ok')).toEqual([{ ok: 1 }]);
      // Then it is stopped, cleanly: a fast shutdown removes postmaster.pid, a crash would not.
      await waitFor(async () => !(await alive(started.pid)), {
        timeoutMs: 15_000,
        what: 'PostgreSQL to stop',
      });
      const after = Math.round(performance.now() - killedAt);
      console.log(
        `[embedded-pg] orphaned PostgreSQL stopped ${after} ms after its starter was killed (client ran 3 s)`,
      );
      expect(after).toBeGreaterThan(2500);
      expect(await alive(started.client)).toBe(false);
      expect(existsSync(path.join(dataDir, 'postmaster.pid'))).toBe(false);
      expect(await readFile(path.join(dataDir, 'postgres.log'), 'utf8')).toMatch(
        /received fast shutdown request/,
      );
      expect((await processes()).filter((p) => p.args.includes(dataDir))).toEqual([]);
    } finally {
      for (const pid of [started.pid, started.client]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone, as it should be
        }
      }
    }
  });
});
