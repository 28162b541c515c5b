/**
 * Wait tokens over HTTP (issue 21): POST /tokens/{token}/complete (a key with tasks:write, the
 * token's tenant) and POST /token-callbacks/{secret} (no key), on the REST and tRPC doors, in
 * AUTH_MODE=required and disabled, and under a rate limit. No worker runs: the tokens are made in
 * the store for delayed tasks, as a handler's ctx.createToken makes them (the worker's side, the
 * task resuming with the output, is apps/worker/test/tokens.test.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ApiKeyStore, createDb, type DbClient, hashTokenSecret, WaitTokens } from '@tasker/db';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRouter } from '../src/index.ts';
import { createdAtOf, type Stack, startStack } from './helpers.ts';

interface Made {
  id: string;
  secret: string;
  task: string;
}

async function call(stack: Stack, method: string, path: string, key?: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${stack.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A delayed task of `tenant` (submitted with `key`), and a wait token of it made in the store. */
async function tokenOf(
  stack: Stack,
  db: DbClient,
  key: string | undefined,
  tenant: string,
  timeoutMs = 3_600_000,
): Promise<Made> {
  const task = await call(stack, 'POST', '/tasks', key, {
    name: 'sum_two_numbers',
    input: { a: 1, b: 2 },
    delay_ms: 3_600_000,
  });
  expect(task.status, JSON.stringify(task.body)).toBe(201);
  const id = randomUUID();
  const secret = randomBytes(32).toString('base64url');
  await new WaitTokens(db.sql).create({
    id,
    tenantId: tenant,
    taskId: task.body.id as string,
    taskCreatedAt: createdAtOf(task.body.id as string),
    stepId: '$token:0',
    seq: 0,
    secretHash: hashTokenSecret(secret),
    timeoutAt: new Date(Date.now() + timeoutMs),
    result: { id },
    startedAt: new Date(),
  });
  return { id, secret, task: task.body.id as string };
}

describe('wait tokens over HTTP, AUTH_MODE=required', () => {
  let stack: Stack;
  let db: DbClient;
  const keys = { write: '', readOnly: '', other: '' };

  beforeAll(async () => {
    stack = await startStack({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0' }, { worker: false });
    db = createDb(stack.env.databaseUrl, { max: 2 });
    const store = new ApiKeyStore(db.db);
    const make = async (tenantId: string, scopes: ('tasks:write' | 'tasks:read')[]) =>
      (await store.create({ tenantId, name: 'tokens', scopes, expiresAt: null })).key;
    keys.write = await make('acme', ['tasks:write', 'tasks:read']);
    keys.readOnly = await make('acme', ['tasks:read']);
    keys.other = await make('globex', ['tasks:write', 'tasks:read']);
  }, 60_000);

  afterAll(async () => {
    await db?.close();
    await stack?.close();
  });

  it('completes a token once: 200, then 409 TOKEN_ALREADY_COMPLETED; the output is kept on the token', async () => {
    const made = await tokenOf(stack, db, keys.write, 'acme');
    const done = await call(stack, 'POST', `/tokens/${made.id}/complete`, keys.write, {
      output: { approved: true },
    });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ id: made.id, taskId: made.task, status: 'completed' });
    expect(typeof done.body.completedAt).toBe('string');
    const again = await call(stack, 'POST', `/tokens/${made.id}/complete`, keys.write, { output: 2 });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'TOKEN_ALREADY_COMPLETED', status: 409 });
    // The output is kept on the token for the handler's run.
    const [row] = await db.sql`select status, output from wait_tokens where id = ${made.id}::uuid`;
    expect(row).toEqual({ status: 'completed', output: { approved: true } });
  });

  it("another tenant's token, an unknown one and no UUID are 404; a key without tasks:write is 403; none is 401", async () => {
    const made = await tokenOf(stack, db, keys.write, 'acme');
    const path = `/tokens/${made.id}/complete`;
    expect((await call(stack, 'POST', path, keys.other, { output: 1 })).status).toBe(404);
    expect(
      (await call(stack, 'POST', `/tokens/${randomUUID()}/complete`, keys.write, { output: 1 })).status,
    ).toBe(404);
    expect(
      (await call(stack, 'POST', '/tokens/not-a-token/complete', keys.write, { output: 1 })).status,
    ).toBe(404);
    expect((await call(stack, 'POST', path, keys.readOnly, { output: 1 })).status).toBe(403);
    expect((await call(stack, 'POST', path, undefined, { output: 1 })).status).toBe(401);
    // None of them completed it.
    expect((await call(stack, 'POST', path, keys.write, {})).status).toBe(200);
  });

  it('a callback URL completes its token without a key, once; used again or guessed: 404', async () => {
    const made = await tokenOf(stack, db, keys.write, 'acme');
    const path = `/token-callbacks/${made.secret}`;
    const done = await call(stack, 'POST', path, undefined, { output: { shipped: true } });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ id: made.id, status: 'completed' });
    expect((await call(stack, 'POST', path, undefined, { output: 1 })).status).toBe(404);
    const guessed = await call(
      stack,
      'POST',
      `/token-callbacks/${randomBytes(32).toString('base64url')}`,
      undefined,
      {
        output: 1,
      },
    );
    expect(guessed.status).toBe(404);
    expect(guessed.body).toMatchObject({ code: 'NOT_FOUND' });
    expect((await call(stack, 'POST', '/token-callbacks/short', undefined, { output: 1 })).status).toBe(404);
    // A key, even another tenant's, changes nothing: the secret is the credential.
    const other = await tokenOf(stack, db, keys.write, 'acme');
    expect(
      (await call(stack, 'POST', `/token-callbacks/${other.secret}`, keys.other, { output: 1 })).status,
    ).toBe(200);
  });

  it('a token past its timeout: 409 TOKEN_TIMED_OUT with a key, 404 by its callback URL', async () => {
    const made = await tokenOf(stack, db, keys.write, 'acme', 1000);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const late = await call(stack, 'POST', `/tokens/${made.id}/complete`, keys.write, { output: 1 });
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ code: 'TOKEN_TIMED_OUT' });
    expect(
      (await call(stack, 'POST', `/token-callbacks/${made.secret}`, undefined, { output: 1 })).status,
    ).toBe(404);
  });

  it('a token of a cancelled task: 409 TOKEN_TASK_FINISHED', async () => {
    const made = await tokenOf(stack, db, keys.write, 'acme');
    expect((await call(stack, 'POST', `/tasks/${made.task}/cancel`, keys.write)).status).toBe(200);
    const res = await call(stack, 'POST', `/tokens/${made.id}/complete`, keys.write, { output: 1 });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 'TOKEN_TASK_FINISHED' });
  });

  it('an output over 64 KiB is a 413 naming output', async () => {
    const made = await tokenOf(stack, db, keys.write, 'acme');
    const res = await call(stack, 'POST', `/tokens/${made.id}/complete`, keys.write, {
      output: 'x'.repeat(70_000),
    });
    expect(res.status).toBe(413);
    expect(String(res.body.error)).toMatch(/^output: at most 65536 bytes/);
  });

  it('the tRPC door: completeToken with a key, completeTokenCallback without one', async () => {
    const client = (key?: string) =>
      createTRPCClient<AppRouter>({
        links: [
          httpLink({ url: `${stack.url}/trpc`, headers: key ? { authorization: `Bearer ${key}` } : {} }),
        ],
      });
    const made = await tokenOf(stack, db, keys.write, 'acme');
    expect(await client(keys.write).completeToken.mutate({ token: made.id, output: 'yes' })).toMatchObject({
      status: 'completed',
    });
    const again = await client(keys.write)
      .completeToken.mutate({ token: made.id, output: 'no' })
      .catch((e: unknown) => e);
    expect(again).toBeInstanceOf(TRPCClientError);
    expect((again as TRPCClientError<AppRouter>).data).toMatchObject({
      code: 'TOKEN_ALREADY_COMPLETED',
      httpStatus: 409,
    });
    const other = await tokenOf(stack, db, keys.write, 'acme');
    expect(await client().completeTokenCallback.mutate({ secret: other.secret, output: 1 })).toMatchObject({
      id: other.id,
      status: 'completed',
    });
  });
});

describe('wait tokens over HTTP, AUTH_MODE=disabled, with a rate limit', () => {
  let stack: Stack;
  let db: DbClient;

  beforeAll(async () => {
    stack = await startStack({ AUTH_MODE: 'disabled', RATE_LIMIT_PER_MINUTE: '8' }, { worker: false });
    db = createDb(stack.env.databaseUrl, { max: 2 });
  }, 60_000);

  afterAll(async () => {
    await db?.close();
    await stack?.close();
  });

  it("completes the default tenant's tokens without a key, and counts callbacks against the client IP", async () => {
    const made = await tokenOf(stack, db, undefined, 'default');
    expect((await call(stack, 'POST', `/tokens/${made.id}/complete`, undefined, { output: 1 })).status).toBe(
      200,
    );
    const other = await tokenOf(stack, db, undefined, 'default');
    expect(
      (await call(stack, 'POST', `/token-callbacks/${other.secret}`, undefined, { output: 1 })).status,
    ).toBe(200);
    // Four requests so far (two submissions, two completions): guessing callback URLs soon hits the limit.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++)
      statuses.push(
        (
          await call(
            stack,
            'POST',
            `/token-callbacks/${randomBytes(32).toString('base64url')}`,
            undefined,
            {},
          )
        ).status,
      );
    expect(statuses.slice(0, 4)).toEqual([404, 404, 404, 404]);
    expect(statuses.slice(4)).toEqual([429, 429]);
  });
});
