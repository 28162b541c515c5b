/**
 * The servers the tests start (redis-server, a cluster's nodes, PgBouncer) never outlive the process
 * that started them, even SIGKILLed, nor leave their folders (watchdog.ts); a cluster's keys are
 * deleted on the masters that answer; PgBouncer reads its ini again after dropping root.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPgBouncer, startPgBouncer } from '../src/pgbouncer.ts';
import { freePort } from '../src/processes.ts';
import {
  deleteClusterKeys,
  hasRedisClusterTools,
  prefixSlot,
  type RedisCluster,
  startRedisCluster,
} from '../src/redis-cluster.ts';
import { launchOnFreePorts, launchRedis, RedisStartError } from '../src/redis-server.ts';
import { waitFor } from '../src/wait.ts';
import { spawnWatched } from '../src/watchdog.ts';

const SRC = path.resolve(import.meta.dirname, '../src');

/** Whether a process of this pid runs (a zombie, which only waits for its parent, counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Whether something accepts connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Runs `code` (an ES module that imports from src/ by `SRC`) in a Node process of its own, and
 * resolves with the first line it prints (JSON) and the process, still running.
 */
async function startOwner(code: string): Promise<{ said: Record<string, unknown>; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code.replaceAll('SRC', SRC)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const end = out.indexOf('\n');
      if (end >= 0) resolve(out.slice(0, end));
    });
    child.once('exit', (code) => reject(new Error(`owner exited (${code}):\n${out}`)));
  });
  return { said: JSON.parse(line) as Record<string, unknown>, child };
}

async function killed(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describe('spawnWatched', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tasker-watchdog-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a signal to the process alone keeps its folder; stop() kills it and deletes the folder', async () => {
    const folder = path.join(dir, 'kept');
    await mkdir(folder);
    const first = spawnWatched('sleep', ['1000'], { signal: 'SIGKILL', removes: folder });
    await waitFor(() => first.pid(), { what: "the watched process's pid" });
    first.kill('SIGKILL');
    expect(await first.exited).toBe(137);
    expect(existsSync(folder)).toBe(true);

    const second = spawnWatched('sleep', ['1000'], { signal: 'SIGTERM', removes: folder });
    const pid = await waitFor(() => second.pid(), { what: "the watched process's pid" });
    await second.stop();
    expect(alive(pid)).toBe(false);
    expect(existsSync(folder)).toBe(false);
  });

  it('its owner SIGKILLed: the process is stopped (KILL after 5 s if it ignores the signal), its folder deleted', async () => {
    const folder = path.join(dir, 'orphaned');
    await mkdir(folder);
    await writeFile(path.join(folder, 'file'), 'x');
    const { said, child } = await startOwner(`
      import { spawnWatched } from 'SRC/watchdog.ts';
      import { setTimeout as sleep } from 'node:timers/promises';
      const w = spawnWatched('sh', ['-c', 'trap "" TERM; exec sleep 1000'], { signal: 'SIGTERM', removes: ${JSON.stringify(folder)} });
      while (w.pid() === undefined) await sleep(10);
      console.log(JSON.stringify({ pid: w.pid() }));
      setInterval(() => {}, 1000);
    `);
    const pid = said.pid as number;
    expect(alive(pid)).toBe(true);
    await killed(child);
    await waitFor(() => !alive(pid) && !existsSync(folder), {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: 'the process gone and its folder deleted',
    });
  });
});

describe.runIf(hasRedisClusterTools())('Redis Cluster', () => {
  it('its owner SIGKILLed: no node runs after it, nor is its /dev/shm folder left', async () => {
    const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
    const ours = async () => (await readdir(base)).filter((f) => f.startsWith('tasker-redis-cluster-'));
    const before = new Set(await ours());
    const { said, child } = await startOwner(`
      import { startRedisCluster } from 'SRC/redis-cluster.ts';
      const cluster = await startRedisCluster();
      // One node stopped, as a test does to restart it: its folder has no watchdog of its own left.
      await cluster.members[0].stop('SIGKILL');
      console.log(JSON.stringify({ ports: cluster.members.map((m) => m.port) }));
      setInterval(() => {}, 1000);
    `);
    const ports = said.ports as number[];
    const created = (await ours()).filter((f) => !before.has(f));
    expect(created).toHaveLength(1);
    expect(await listening(ports[1] ?? 0)).toBe(true);
    await killed(child);
    await waitFor(
      async () => {
        const up = await Promise.all(ports.map(listening));
        return !up.includes(true) && !existsSync(path.join(base, created[0] ?? ''));
      },
      { timeoutMs: 10_000, intervalMs: 100, what: 'every node stopped and the folder deleted' },
    );
  });

  it('a redis-server whose port was taken meanwhile starts again on another', async () => {
    const squatter = createServer();
    squatter.listen(0, '127.0.0.1');
    await new Promise((resolve) => squatter.once('listening', resolve));
    const taken = (squatter.address() as AddressInfo).port;
    const picks = [taken];
    const errors: unknown[] = [];
    try {
      const { ports, watched } = await launchOnFreePorts(
        async () => picks.shift() ?? (await freePort()),
        (port) =>
          launchRedis(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
            what: `redis-server :${port}`,
          }).catch((error: unknown) => {
            errors.push(error);
            throw error;
          }),
      );
      expect(ports).not.toBe(taken);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(RedisStartError);
      expect(String(errors[0])).toMatch(/Address already in use/);
      expect(await listening(ports)).toBe(true);
      await watched.stop();
      expect(await listening(ports)).toBe(false);
    } finally {
      squatter.close();
    }
  });

  describe('deleteClusterKeys', () => {
    let cluster: RedisCluster;
    // A long node timeout: a master stopped by a test is not marked failed (CLUSTERDOWN) meanwhile.
    beforeAll(async () => {
      cluster = await startRedisCluster({ nodeTimeoutMs: 30_000 });
    });
    afterAll(async () => {
      await cluster?.stop();
    });

    const keysOf = async (port: number) => {
      const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
      try {
        await redis.connect();
        return (await redis.keys('*')).sort();
      } finally {
        redis.disconnect();
      }
    };

    it("a hash-tagged prefix's slot is the one Redis computes", async () => {
      const [node] = cluster.members;
      const redis = new Redis({ port: node?.port ?? 0, host: '127.0.0.1' });
      try {
        for (const prefix of ['{tasker-test-0a1b2c3d4e}', '{a}', '{x}y', '{ü€}']) {
          expect(prefixSlot(prefix)).toBe(Number(await redis.call('CLUSTER', 'KEYSLOT', `${prefix}:k`)));
        }
      } finally {
        redis.disconnect();
      }
      expect(prefixSlot('plain')).toBeUndefined();
      expect(prefixSlot('{}x')).toBeUndefined();
    });

    it('deletes the keys of its prefix on every master that answers, names the one that does not', async () => {
      const { Cluster } = await import('ioredis');
      const client = new Cluster(
        cluster.nodes.split(',').map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })),
      );
      try {
        // Untagged keys spread over the masters; a tagged prefix's all on one; a look-alike kept.
        for (let i = 0; i < 60; i++) await client.set(`spread:${i}`, '1');
        for (let i = 0; i < 20; i++) await client.set(`{tagged}:${i}`, '1');
        await client.set('spread-other:1', '1');
        await client.set('{tagged}x:1', '1');
      } finally {
        client.disconnect();
      }
      const owner = await cluster.masterOf('{tagged}');
      await deleteClusterKeys(cluster.nodes, '{tagged}');
      expect((await keysOf(owner.port)).filter((k) => k.startsWith('{tagged}'))).toEqual(['{tagged}x:1']);

      const away = cluster.members.find((m) => m !== owner);
      if (!away) throw new Error('no second master');
      const kept = await keysOf(away.port);
      await away.stop('SIGKILL');
      try {
        await expect(deleteClusterKeys(cluster.nodes, 'spread')).rejects.toThrow(
          new RegExp(`spread:\\* not deleted on 127\\.0\\.0\\.1:${away.port} \\(`),
        );
        for (const master of cluster.members.filter((m) => m !== away)) {
          expect((await keysOf(master.port)).filter((k) => k.startsWith('spread:'))).toEqual([]);
        }
      } finally {
        await away.start();
        await cluster.waitUntilOk();
      }
      // The stopped master's keys are still there (its append-only file), the look-alike too.
      expect(await keysOf(away.port)).toEqual(kept);
      await deleteClusterKeys(cluster.nodes, 'spread');
      const left = (await Promise.all(cluster.members.map((m) => keysOf(m.port)))).flat().sort();
      expect(left).toEqual(['spread-other:1', '{tagged}x:1']);
    });
  });
});

describe.runIf(findPgBouncer() !== undefined || process.env.CI)('PgBouncer', () => {
  it('with TMPDIR in a mode-700 folder, it reads its ini again on RELOAD (as root: as postgres)', async () => {
    const home = await mkdtemp(path.join(tmpdir(), 'tasker-home-'));
    await chmod(home, 0o700);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = home;
    let pooler: Awaited<ReturnType<typeof startPgBouncer>> | undefined;
    try {
      pooler = await startPgBouncer();
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    try {
      const sql = postgres(`${pooler.url}pgbouncer`, { max: 1, fetch_types: false, prepare: false });
      try {
        await sql.unsafe('reload').simple();
      } finally {
        await sql.end({ timeout: 2 });
      }
      // It reads the ini on RELOAD in the command's turn: any error is logged by then.
      await pooler.show('pools');
      expect(pooler.output()).not.toMatch(/could not load|config file loading failed|Permission denied/);
      // Its own folder, which no other user may read (the ini may hold the target's password).
      expect(statSync(path.dirname(pooler.ini)).mode & 0o777).toBe(0o700);
      expect(statSync(pooler.ini).mode & 0o777).toBe(0o600);
      if (process.getuid?.() === 0) expect(pooler.ini.startsWith(home)).toBe(false);
    } finally {
      await pooler.stop();
      await rm(home, { recursive: true, force: true });
    }
    expect(existsSync(pooler.ini)).toBe(false);
  });

  it('its owner SIGKILLed: PgBouncer is stopped and its folder deleted', async () => {
    const { said, child } = await startOwner(`
      import { startPgBouncer } from 'SRC/pgbouncer.ts';
      const pooler = await startPgBouncer();
      console.log(JSON.stringify({ port: pooler.port, ini: pooler.ini }));
      setInterval(() => {}, 1000);
    `);
    const port = said.port as number;
    const ini = said.ini as string;
    expect(await listening(port)).toBe(true);
    expect(existsSync(ini)).toBe(true);
    await killed(child);
    await waitFor(async () => !(await listening(port)) && !existsSync(path.dirname(ini)), {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: 'PgBouncer stopped and its folder deleted',
    });
  });
});
