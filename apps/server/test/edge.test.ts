/**
 * The HTTP edge, safe by default: what a client can send (ids, bodies, batches, slow bodies, random
 * keys) and what it is told (errors, headers). In both queue modes.
 */
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { createDb, type DbClient } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRouter } from '../src/index.ts';
import { startServer, type TaskerServer } from '../src/server.ts';

interface Started {
  env: TestEnv;
  server: TaskerServer;
  url: string;
}
const started: Started[] = [];

/** A server of its own (no worker), on a database of its own. */
async function start(vars: Record<string, string> = {}): Promise<Started> {
  const env = createTestEnv(vars);
  const parsed = loadEnv(env.vars);
  const server = await startServer(parsed, createLogger(parsed, 'test-edge'));
  const one = { env, server, url: server.url };
  started.push(one);
  return one;
}

afterAll(async () => {
  for (const { server, env } of started.reverse()) {
    await server.close();
    await env.cleanup();
  }
});

/** Sends raw bytes and collects the answer until the server closes or `ms` pass. */
function raw(url: string, text: string, ms = 3000): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text));
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString();
    });
    socket.on('error', reject);
    const timer = setTimeout(() => socket.destroy(), ms);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

describe('a development server (AUTH_MODE=disabled)', () => {
  let dev: Started;
  let db: DbClient;
  beforeAll(async () => {
    dev = await start();
    db = createDb(dev.env.databaseUrl, { max: 1 });
  });
  afterAll(async () => {
    await db?.close();
  });

  describe('x-request-id', () => {
    it('echoes a well-formed one, and replaces one too long or with characters outside [A-Za-z0-9._:-]', async () => {
      const id = async (sent: string) =>
        (await fetch(`${dev.url}/healthz`, { headers: { 'x-request-id': sent } })).headers.get(
          'x-request-id',
        );
      expect(await id('req-42.a:b_c')).toBe('req-42.a:b_c');
      expect(await id('a'.repeat(128))).toBe('a'.repeat(128));
      const long = await id('a'.repeat(129));
      const spaced = await id('evil id <script>');
      for (const generated of [long, spaced]) expect(generated).toMatch(/^[0-9a-f-]{36}$/);
      // A control character (here a tab) through a raw socket: fetch would refuse to send it.
      const answer = await raw(
        dev.url,
        'GET /healthz HTTP/1.1\r\nHost: x\r\nx-request-id: a\tb\r\nConnection: close\r\n\r\n',
      );
      const echoed = /^x-request-id: (.*)$/im.exec(answer)?.[1]?.trim();
      expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
    });
  });

  describe('a failure that is a bug (a database error other than "unavailable")', () => {
    it('answers 500 with generic words on both doors, never the database text', async () => {
      const trpc = createTRPCClient<AppRouter>({ links: [httpLink({ url: `${dev.url}/trpc` })] });
      await db.sql`ALTER TABLE tasks RENAME TO tasks_hidden_by_test`;
      try {
        const rest = await fetch(`${dev.url}/tasks/${randomUUID()}`);
        expect(rest.status).toBe(500);
        expect(await rest.json()).toEqual({
          error: 'Internal server error',
          code: 'INTERNAL_SERVER_ERROR',
          status: 500,
        });
        const error = await trpc.getTask.query({ id: randomUUID() }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(TRPCClientError);
        const { message, data } = error as TRPCClientError<AppRouter>;
        expect(message).toBe('Internal server error');
        expect(data).toMatchObject({ code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 });
        expect(JSON.stringify(data)).not.toMatch(/tasks|relation/);
      } finally {
        await db.sql`ALTER TABLE tasks_hidden_by_test RENAME TO tasks`;
      }
    });
  });
});
