// `pnpm start` with DATABASE_URL unset: scripts/start.mjs starts the embedded PostgreSQL, then the
// built server and worker; killed, restarted and stopped as a user's terminal would.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { deleteKeys, freePort, waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, type Proc, processes, repoRoot, tempDir } from './helpers.ts';

/**
 * The queue of the supervised server and worker: none set, as on a bare machine (REDIS_URL unset:
 * the queue is in the embedded PostgreSQL too). Set REDIS_URL and REDIS_PREFIX here to run the
 * same checks with a Redis queue.
 */
const exec = promisify(execFile);

const QUEUE: { REDIS_URL?: string; REDIS_PREFIX?: string } = {};

let tmp: string;
let dataDir: string;
const supervisors: ChildProcess[] = [];
/** Every pid seen in a run, killed in afterAll should a test fail half-way. */
const seen = new Set<number>();

beforeAll(async () => {
  assertBuilt('apps/server/dist/main.js', 'apps/worker/dist/main.js', 'packages/embedded-pg/dist/index.js');
  tmp = await tempDir('tasker-start-test-');
  dataDir = path.join(tmp, 'data', 'pg');
});

afterAll(async () => {
  for (const child of supervisors) {
    if (child.exitCode === null && child.signalCode === null) kill(-(child.pid ?? 0), 'SIGKILL');
  }
  for (const pid of seen) kill(pid, 'SIGKILL');
  if (tmp) await rm(tmp, { recursive: true, force: true });
  if (QUEUE.REDIS_URL && QUEUE.REDIS_PREFIX) await deleteKeys(QUEUE.REDIS_URL, QUEUE.REDIS_PREFIX);
});

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

interface Run {
  child: ChildProcess;
  url: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The supervisor, the server, the worker, the postmaster and its processes, the watchdog. */
  family(): Promise<Proc[]>;
}

/** `node scripts/start.mjs` in a process group of its own (as a terminal runs `pnpm start`), until the server and worker are ready. */
async function startSupervisor(): Promise<Run> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'REDIS_PREFIX', 'TASKER_PG_PORT']) delete env[name];
  Object.assign(env, QUEUE, {
    TASKER_DATA_DIR: path.dirname(dataDir),
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
  });
  const child = spawn(process.execPath, ['scripts/start.mjs'], {
    cwd: repoRoot,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  supervisors.push(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = waitFor(() => /"msg":"server listening"/.test(output) && /"msg":"worker ready/.test(output), {
    timeoutMs: 60_000,
    what: 'server and worker to be ready',
  });
  await Promise.race([
    ready.catch((error: unknown) => {
      throw new Error(`${String(error)}:\n${output}`);
    }),
    exited.then(({ code, signal }) => {
      throw new Error(`start.mjs ended (${code ?? signal}) before it was ready:\n${output}`);
    }),
  ]);
  const started = /started server \(pid (\d+)\) and worker \(pid (\d+)\)/.exec(output);
  const family = async () => {
    const postmaster = Number((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    const pids = [child.pid, Number(started?.[1]), Number(started?.[2]), postmaster];
    const all = await processes();
    const members = all.filter(
      (p) =>
        pids.includes(p.pid) ||
        p.ppid === postmaster ||
        p.args.includes(dataDir) ||
        p.args.includes(`tasker-pg-watchdog ${postmaster} `),
    );
    for (const p of members) seen.add(p.pid);
    return members;
  };
  return { child, url: `http://127.0.0.1:${port}`, output: () => output, exited, family };
}

/** Which of these processes still run (zombies, exited but not yet reaped, don't), or anything on our data directory. */
async function stillRunning(family: Proc[]): Promise<Proc[]> {
  const pids = new Set(family.map((p) => p.pid));
  return (await processes()).filter((p) => pids.has(p.pid) || p.args.includes(dataDir));
}

async function output(url: string, taskId: string) {
  return waitFor(
    async () => {
      const res = await fetch(`${url}/get-task-output?task_uuid=${taskId}`);
      const body = (await res.json()) as { task_output: { status: string; result: unknown; error: unknown } };
      return body.task_output.status === 'PENDING' ? undefined : body.task_output;
    },
    { timeoutMs: 20_000, what: `task ${taskId} to finish` },
  );
}

describe('pnpm start with DATABASE_URL unset (scripts/start.mjs)', () => {
  let taskId: string;

  it('starts the embedded PostgreSQL, then the server and worker on it, and says so in one line', async () => {
    const run = await startSupervisor();
    const redis = QUEUE.REDIS_URL ? new URL(QUEUE.REDIS_URL) : undefined;
    const queue = redis ? `Redis at ${redis.host}${redis.pathname}` : 'PostgreSQL (REDIS_URL unset)';
    const mode =
      /^\[start\] database: embedded PostgreSQL 18 at (.+) \((postgres:\/\/\S+), password in (.+)\); queue: (.+)$/m.exec(
        run.output(),
      );
    expect(mode?.slice(1)).toEqual([
      dataDir,
      expect.stringMatching(/^postgres:\/\/[^:@/]+@127\.0\.0\.1:\d+\/tasker$/),
      path.join(dataDir, 'superuser.password'),
      queue,
    ]);
    // The password is in no line printed.
    const password = (await readFile(path.join(dataDir, 'superuser.password'), 'utf8')).trim();
    expect(password).toMatch(/^[\w-]{32}$/);
    expect(run.output()).not.toContain(password);
    expect(run.output().match(/\[start\] database: /g)).toHaveLength(1);
    expect(run.output()).toContain(
      `[start] embedded PostgreSQL: initialising a new PostgreSQL 18 cluster in ${dataDir}`,
    );

    const res = await fetch(`${run.url}/run-task`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task_name: 'sum_two_numbers', task_parameters: { a: 5, b: 10 } }),
    });
    expect(res.status).toBe(200);
    taskId = ((await res.json()) as { task_uuid: string }).task_uuid;
    expect(await output(run.url, taskId)).toEqual({ status: 'COMPLETED', result: 15, error: null });

    // The CLI, with DATABASE_URL unset too, finds the embedded PostgreSQL that runs on the data
    // directory, and a key it makes is one the server knows (here: its database has it).
    const cliEnv: NodeJS.ProcessEnv = {
      ...process.env,
      TASKER_DATA_DIR: path.dirname(dataDir),
      AUTH_MODE: 'required', // keys are made for a server that asks for them
    };
    delete cliEnv.DATABASE_URL;
    // As `pnpm tasker` runs it (scripts/tasker.mjs: the CLI's bundle, built first if it is not).
    const tasker = (...args: string[]) =>
      exec(process.execPath, ['scripts/tasker.mjs', ...args], { cwd: repoRoot, env: cliEnv });
    const { stdout: key } = await tasker(
      'keys',
      'create',
      '--tenant',
      'acme',
      '--name',
      'embedded',
      '--scopes',
      'tasks:read',
    );
    expect(key.trim()).toMatch(/^tsk_[\w-]{43}$/);
    const { stdout: listed } = await tasker('keys', 'list');
    expect(listed).toContain('embedded');

    // A crashed terminal: SIGKILL to the whole process group of `pnpm start`.
    const family = await run.family();
    expect(family.some((p) => p.args.includes(`-D ${dataDir}`))).toBe(true); // the postmaster
    expect(family.some((p) => p.args.includes('tasker-pg-watchdog'))).toBe(true);
    expect(family.filter((p) => p.args.includes('dist/main.js'))).toHaveLength(2); // server, worker
    const killedAt = performance.now();
    process.kill(-(run.child.pid ?? 0), 'SIGKILL');
    expect((await run.exited).signal).toBe('SIGKILL');
    const left = await waitFor(
      async () => {
        const running = await stillRunning(family);
        return running.length === 0 ? running : undefined;
      },
      { timeoutMs: 30_000, what: 'every process of the killed pnpm start to be gone' },
    ).catch(async (error: unknown) => {
      throw new Error(
        `${String(error)}; still running:\n${JSON.stringify(await stillRunning(family), null, 1)}`,
      );
    });
    expect(left).toEqual([]);
    console.log(
      `[start test] after the SIGKILL of its process group, all ${family.length} processes of pnpm start were gone within ${Math.round(performance.now() - killedAt)} ms`,
    );
    // PostgreSQL was stopped, not left to crash: a fast shutdown removes its postmaster.pid.
    expect(existsSync(path.join(dataDir, 'postmaster.pid'))).toBe(false);
  });

  it('started again on the same data directory, it has the earlier task; Ctrl-C then stops everything', async () => {
    expect(taskId).toBeDefined();
    const run = await startSupervisor();
    expect(run.output()).not.toContain('initialising');
    expect(await output(run.url, taskId)).toEqual({ status: 'COMPLETED', result: 15, error: null });

    // Ctrl-C: the terminal sends SIGINT to the foreground process group.
    const family = await run.family();
    process.kill(-(run.child.pid ?? 0), 'SIGINT');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.output()).toMatch(/\[start\] SIGINT: sending SIGINT to server and worker/);
    expect(run.output()).toMatch(/\[start\] embedded PostgreSQL stopped/);
    // The supervisor waited for its children and PostgreSQL; only the disarmed watchdog may take a moment.
    await waitFor(async () => (await stillRunning(family)).length === 0, {
      timeoutMs: 5_000,
      what: 'every process of pnpm start to be gone',
    }).catch(async (error: unknown) => {
      throw new Error(
        `${String(error)}; still running:\n${JSON.stringify(await stillRunning(family), null, 1)}`,
      );
    });
    expect(existsSync(path.join(dataDir, 'postmaster.pid'))).toBe(false);
  });
});
