/**
 * Nobody is open by accident: a server started the way `pnpm start:server`, a systemd unit or a PaaS
 * starts it (NODE_ENV unset, so AUTH_MODE=disabled) listens on loopback only and says so in words;
 * asked to listen elsewhere with auth disabled it refuses to start, in one line saying what to set;
 * and no API key is made while auth is disabled (it would protect nothing).
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestEnv, freePort, type TestEnv, waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './helpers.ts';

const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/main.js');

/** The built server with exactly these variables (none of this process's NODE_ENV, HOST or AUTH_MODE). */
function runServer(vars: Record<string, string>) {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...vars };
  const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => {
    out.stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    out.stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, out, exited };
}

/** Whether something accepts a TCP connection at host:port (within a second). */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 1000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** An address of this machine other machines could reach (the first non-internal IPv4), if any. */
const outside = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

let env: TestEnv;
beforeAll(() => {
  env = createTestEnv();
});
afterAll(async () => {
  await env?.cleanup();
});

/** The test environment's variables without NODE_ENV, HOST and AUTH_MODE: a bare `node apps/server/dist/main.js`. */
const bare = () => {
  const { NODE_ENV: _n, HOST: _h, AUTH_MODE: _a, ...rest } = env.vars;
  return rest;
};

describe('NODE_ENV unset (auth disabled by default)', () => {
  it('listens on 127.0.0.1 only and says, in words, that anyone who reaches it may do anything', async () => {
    const port = await freePort();
    const server = runServer({ ...bare(), PORT: String(port), LOG_LEVEL: 'info' });
    try {
      await waitFor(() => /"msg":"server listening"/.test(server.out.stdout), {
        timeoutMs: 20_000,
        what: `the server to listen:\n${server.out.stdout}${server.out.stderr}`,
      });
      expect(server.out.stdout).toContain(`"url":"http://127.0.0.1:${port}"`);
      const line = server.out.stdout.split('\n').find((l) => l.includes('auth OFF'));
      expect(JSON.parse(line ?? '{}')).toMatchObject({
        level: 40, // a warning
        msg: expect.stringMatching(
          new RegExp(
            `^auth OFF \\(AUTH_MODE=disabled\\): anyone who can reach 127\\.0\\.0\\.1:${port} may do anything.*listening on loopback only`,
          ),
        ),
      });
      expect(await accepts('127.0.0.1', port)).toBe(true);
      if (outside) expect(await accepts(outside, port), `reachable on ${outside}`).toBe(false);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  it.each([
    ['0.0.0.0', {}],
    ['::', {}],
    ['0.0.0.0', { NODE_ENV: 'development' }],
    ['10.1.2.3', { AUTH_MODE: 'disabled', NODE_ENV: 'production' }],
  ])(
    'refuses HOST=%s with auth disabled (%j): one line saying what to set, nothing listening',
    async (host, extra) => {
      const port = await freePort();
      const server = runServer({ ...bare(), ...extra, HOST: host, PORT: String(port), LOG_LEVEL: 'info' });
      const code = await Promise.race([
        server.exited,
        new Promise((resolve) => setTimeout(() => resolve('still running'), 15_000)),
      ]);
      if (code === 'still running') server.child.kill('SIGKILL');
      expect(code).toBe(1);
      const lines = server.out.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(
          `^HOST=${host.replaceAll('.', '\\.')} with AUTH_MODE=disabled would let anyone .*set AUTH_MODE=required.*or HOST=127\\.0\\.0\\.1`,
        ),
      );
      expect(server.out.stdout).not.toContain('server listening');
      expect(await accepts('127.0.0.1', port)).toBe(false);
    },
  );
});

describe('no API key is made while AUTH_MODE=disabled', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ AUTH_MODE: 'disabled' }, { worker: false });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('POST /api-keys and tRPC createApiKey answer 403 saying why and what to set', async () => {
    const body = { tenant: 'acme', name: 'ci', scopes: ['tasks:read'] };
    const res = await fetch(`${stack.url}/api-keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({
      status: 403,
      code: 'FORBIDDEN',
      error: expect.stringMatching(/^API keys are not made while AUTH_MODE=disabled.*AUTH_MODE=required/),
    });
    const trpc = await fetch(`${stack.url}/trpc/createApiKey`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(trpc.status).toBe(403);
    expect(await trpc.json()).toMatchObject({ error: { data: { code: 'FORBIDDEN', httpStatus: 403 } } });
    // Nothing was made.
    const listed = (await (await fetch(`${stack.url}/api-keys`)).json()) as { keys: unknown[] };
    expect(listed.keys).toEqual([]);
  });
});
