/**
 * `tasker tokens complete TOKEN [--output JSON] [--json]`, as built: a token completed once (then
 * exit 5, 409 TOKEN_ALREADY_COMPLETED), by its id with a key or by its callback URL without one, an
 * unknown token (exit 5), output that is not JSON (exit 2), a key without tasks:write (exit 4).
 * Against a real server with API keys required; the tokens are made in the store for delayed tasks,
 * as a handler's ctx.createToken makes them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ApiKeyStore, createDb, type DbClient, hashTokenSecret, uuidv7Time, WaitTokens } from '@tasker/db';
import { type AppProcess, createTestEnv, spawnApp, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, tasker as runTasker } from './run.ts';

let env: TestEnv;
let server: AppProcess;
let db: DbClient;
const keys = { writer: '', reader: '' };

const tasker = (args: string[], key = keys.writer) =>
  runTasker(args, { TASKER_URL: server.url ?? '', TASKER_API_KEY: key, NO_COLOR: '1' });

/** A delayed task of tenant acme, and a wait token of it: its id and its callback URL. */
async function token(): Promise<{ id: string; url: string; task: string }> {
  const res = await fetch(`${server.url}/tasks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${keys.writer}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'sum_two_numbers', input: { a: 1, b: 2 }, delay_ms: 3_600_000 }),
  });
  const task = ((await res.json()) as { id: string }).id;
  const id = randomUUID();
  const secret = randomBytes(32).toString('base64url');
  await new WaitTokens(db.sql).create({
    id,
    tenantId: 'acme',
    taskId: task,
    taskCreatedAt: uuidv7Time(task) ?? new Date(), // a task's created_at is its id's time
    stepId: '$token:0',
    seq: 0,
    secretHash: hashTokenSecret(secret),
    timeoutAt: new Date(Date.now() + 3_600_000),
    result: { id },
    startedAt: new Date(),
  });
  return { id, url: `${server.url}/token-callbacks/${secret}`, task };
}

beforeAll(async () => {
  assertBuilt();
  env = createTestEnv({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0' });
  server = await spawnApp('server', env.vars);
  db = createDb(env.databaseUrl, { max: 1 });
  const store = new ApiKeyStore(db.db);
  keys.writer = (
    await store.create({ tenantId: 'acme', name: 'w', scopes: ['tasks:write', 'tasks:read'] })
  ).key;
  keys.reader = (await store.create({ tenantId: 'acme', name: 'r', scopes: ['tasks:read'] })).key;
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.close();
  await env?.cleanup();
});

describe('tasker tokens complete', () => {
  it('completes a token once with its output; a second completion exits 5 naming TOKEN_ALREADY_COMPLETED', async () => {
    const made = await token();
    const first = await tasker(['tokens', 'complete', made.id, '--output', '{"approved":true}']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`token\\s+${made.id}`));
    expect(first.stdout).toMatch(/status\s+completed/);
    expect(first.stderr).toContain(`Task ${made.task} resumes with the output.`);
    const [row] = await db.sql`select output from wait_tokens where id = ${made.id}::uuid`;
    expect(row?.output).toEqual({ approved: true });

    const second = await tasker(['tokens', 'complete', made.id, '--output', '1']);
    expect(second.code).toBe(5);
    expect(second.stderr).toMatch(
      /^tasker: Token .* was completed already .*\(409 TOKEN_ALREADY_COMPLETED\)\n$/,
    );
  });

  it('--json prints the token; without --output the output is null', async () => {
    const made = await token();
    const run = await tasker(['tokens', 'complete', made.id, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ id: made.id, taskId: made.task, status: 'completed' });
    const [row] = await db.sql`select output from wait_tokens where id = ${made.id}::uuid`;
    expect(row?.output).toBeNull();
  });

  it('completes by the callback URL without any key', async () => {
    const made = await token();
    const run = await tasker(['tokens', 'complete', made.url, '--output', '"done"', '--json'], '');
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ id: made.id, status: 'completed' });
    const reused = await tasker(['tokens', 'complete', made.url], '');
    expect(reused.code).toBe(5);
    expect(reused.stderr).toMatch(/^tasker: Unknown callback URL/);
  });

  it('an unknown token exits 5, output that is not JSON 2, a key without tasks:write 4', async () => {
    const unknown = await tasker(['tokens', 'complete', randomUUID()]);
    expect(unknown.code).toBe(5);
    expect(unknown.stderr).toMatch(/^tasker: Token not found/);
    const made = await token();
    const bad = await tasker(['tokens', 'complete', made.id, '--output', '{nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not JSON/);
    const reader = await tasker(['tokens', 'complete', made.id], keys.reader);
    expect(reader.code).toBe(4);
    expect(reader.stderr).toMatch(/tasks:write/);
  });
});
