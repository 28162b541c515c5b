// The README's Quick start, as a new user runs it: a fresh copy of the repository, DATABASE_URL and
// REDIS_URL unset, nothing of ours on 5432 or 6379 in play (the embedded PostgreSQL takes a free port
// of its own). Its first command installs, builds and starts; the README's curl lines then give 15
// for 5 + 10; Ctrl-C stops everything.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from '@tasker/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { processes, repoRoot, tempDir } from './helpers.ts';

const run = promisify(execFile);

const readme = await readFile(path.join(repoRoot, 'README.md'), 'utf8');
const quickStart = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('## Using it with curl'));
const commands = [...quickStart.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => (m[1] ?? '').trim());
const curls = [...readme.matchAll(/```bash\n([\s\S]*?)```/g)]
  .flatMap((m) => (m[1] ?? '').split('\n'))
  .filter((line) => line.startsWith('curl '));

let copy: string | undefined;
let child: ChildProcess | undefined;

afterAll(async () => {
  try {
    if (child?.pid && child.exitCode === null && child.signalCode === null)
      process.kill(-child.pid, 'SIGKILL');
  } catch {
    // its group is gone already
  }
  if (copy) await rm(copy, { recursive: true, force: true });
});

/** The files a fresh clone of the working tree has: tracked ones and new ones not ignored. */
async function freshCopy(): Promise<string> {
  const dir = await tempDir('tasker-quickstart-');
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: repoRoot,
    maxBuffer: 64 << 20,
  });
  for (const file of stdout.split('\0').filter(Boolean)) {
    await cp(path.join(repoRoot, file), path.join(dir, file), { recursive: true }).catch(
      (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error; // deleted in the working tree, not yet in git
      },
    );
  }
  return dir;
}

describe("the README's Quick start on a machine with nothing but Node and pnpm", () => {
  it('has two commands: one installs and starts the service, one runs the tests', () => {
    expect(commands).toHaveLength(2);
    expect(commands[0]).toMatch(/pnpm install --frozen-lockfile && pnpm start$/);
    expect(commands[1]).toBe('pnpm test');
  });

  it('the first, in a fresh copy with DATABASE_URL and REDIS_URL unset, serves the old curl lines: 5 + 10 = 15', async () => {
    copy = await freshCopy();
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1' };
    // A user's terminal: none of ours, nor what pnpm, turbo and vitest put in this process's env.
    for (const name of Object.keys(env))
      if (/^(DATABASE_|REDIS_|TEST_|TASKER_|TURBO_|VITEST|npm_|PNPM_|NODE_ENV$|AUTH_MODE$)/i.test(name))
        delete env[name];
    let output = '';
    // The command's first part installs pnpm globally: a test must not change the machine's global
    // packages, so it checks instead that the pnpm at hand is the one that part would install.
    const installPnpm = 'npm install -g pnpm@12.4.2 && ';
    expect(commands[0]?.startsWith(installPnpm)).toBe(true);
    expect((await run('pnpm', ['--version'])).stdout.trim()).toBe('12.4.2');
    child = spawn('bash', ['-c', (commands[0] ?? 'false').slice(installPnpm.length)], {
      cwd: copy,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [child.stdout, child.stderr])
      stream?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
    const exited = new Promise<number | null>((resolve) => child?.once('exit', resolve));
    await Promise.race([
      waitFor(() => /"msg":"server listening"/.test(output) && /"msg":"worker ready/.test(output), {
        timeoutMs: 240_000,
        intervalMs: 500,
        what: 'the server and worker of pnpm start',
      }),
      exited.then((code) => {
        throw new Error(`the command ended (${code}) before the service was ready:\n${output.slice(-4000)}`);
      }),
    ]).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${output.slice(-4000)}`);
    });
    expect(output).toMatch(
      /\[start\] database: embedded PostgreSQL 18 at \.tasker\/pg \(postgres:\/\/[^:@/]+@127\.0\.0\.1:\d+\/tasker, password in \.tasker\/pg\/superuser\.password\); queue: PostgreSQL \(REDIS_URL unset\)/,
    );

    const url = `http://127.0.0.1:${port}`;
    const shell = async (command: string) =>
      JSON.parse(
        (await run('bash', ['-c', command.replaceAll('http://localhost:5000', url)])).stdout,
      ) as unknown;
    const submit = curls.find((c) => c.includes('/run-task') && c.includes('"a": 5, "b": 10'));
    const get = curls.find((c) => c.includes('/get-task-output'));
    expect(submit && get).toBeTruthy();
    const { task_uuid } = (await shell(submit ?? '')) as { task_uuid: string };
    const outcome = await waitFor(
      async () => {
        const body = (await shell((get ?? '').replace('<task_uuid>', task_uuid))) as {
          task_output: { status: string };
        };
        return body.task_output.status === 'PENDING' ? undefined : body.task_output;
      },
      { timeoutMs: 20_000, what: 'the sum to finish' },
    );
    expect(outcome).toEqual({ status: 'COMPLETED', result: 15, error: null });

    // Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
    process.kill(-(child.pid ?? 0), 'SIGINT');
    await exited;
    expect(output).toContain('embedded PostgreSQL stopped');
    const left = (await processes()).filter((p) => copy && p.args.includes(copy));
    expect(left).toEqual([]);
  }, 300_000);
});
