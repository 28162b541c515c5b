/**
 * `tasker webhooks create|list|get|test|deliveries|redeliver|task-secret|delete`, as built: the
 * secret shown once, the tables and --json, a delivery followed and redelivered, an unknown event
 * (exit 2), a key without the admin scope (exit 4), an unknown id (exit 5). Against a real server
 * and worker with API keys required.
 */
import { createServer, type Server } from 'node:http';
import { ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { type AppProcess, createTestEnv, spawnApp, type TestEnv, waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, tasker as runTasker } from './run.ts';

let env: TestEnv;
let server: AppProcess;
let worker: AppProcess;
let db: DbClient;
let receiver: Server;
let url = '';
let received = 0;
const keys = { admin: '', writer: '' };

const tasker = (args: string[], key = keys.admin) =>
  runTasker(args, { TASKER_URL: server.url ?? '', TASKER_API_KEY: key, NO_COLOR: '1' });

beforeAll(async () => {
  assertBuilt();
  env = createTestEnv({
    AUTH_MODE: 'required',
    RATE_LIMIT_PER_MINUTE: '0',
    WEBHOOK_ALLOW_PRIVATE: '1',
    WEBHOOK_INTERVAL_MS: '50',
  });
  [server, worker] = await Promise.all([spawnApp('server', env.vars), spawnApp('worker', env.vars)]);
  db = createDb(env.databaseUrl, { max: 1 });
  const store = new ApiKeyStore(db.db);
  keys.admin = (await store.create({ tenantId: 'acme', name: 'a', scopes: ['admin', 'tasks:write'] })).key;
  keys.writer = (
    await store.create({ tenantId: 'acme', name: 'w', scopes: ['tasks:write', 'tasks:read'] })
  ).key;
  receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const bound = receiver.address();
  url = `http://127.0.0.1:${typeof bound === 'object' && bound ? bound.port : 0}/hook`;
}, 60_000);

afterAll(async () => {
  await new Promise((resolve) => receiver?.close(resolve));
  await Promise.all([server?.stop(), worker?.stop()]);
  await db?.close();
  await env?.cleanup();
});

describe('tasker webhooks', () => {
  it('creates (the secret once), lists, tests, follows and redelivers a delivery, deletes', async () => {
    let run = await tasker(['webhooks', 'create', url, '-e', 'task.completed', '-t', 'sum_two_numbers']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/secret\s+whsec_/);
    expect(run.stderr).toContain('shown this once');
    const id = /id\s+([0-9a-f-]{36})/.exec(run.stdout)?.[1] ?? '';
    expect(id).not.toBe('');

    run = await tasker(['webhooks', 'list']);
    expect(run.stdout).toContain(id);
    expect(run.stdout).not.toContain('whsec_');
    run = await tasker(['webhooks', 'get', id, '--json']);
    expect(JSON.parse(run.stdout)).toMatchObject({ id, url, events: ['task.completed'] });

    run = await tasker(['webhooks', 'test', id]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('delivered (204)');

    run = await tasker(['run', 'sum_two_numbers', '-p', 'a=1', '-p', 'b=2', '--wait'], keys.writer);
    expect(run.code, run.stderr).toBe(0);
    const [delivery] = await waitFor(async () => {
      const list = JSON.parse(
        (await tasker(['webhooks', 'deliveries', id, '--status', 'delivered', '--json'])).stdout,
      );
      return list.length === 1 ? (list as { id: string }[]) : undefined;
    });
    run = await tasker(['webhooks', 'deliveries', id]);
    expect(run.stdout).toMatch(/delivered\s+1\s+204/);
    const before = received;
    run = await tasker(['webhooks', 'redeliver', id, delivery?.id ?? '']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('pending');
    await waitFor(() => received > before || undefined);

    run = await tasker(['webhooks', 'task-secret']);
    expect(run.stdout).toMatch(/tenant acme\s+secret\s+whsec_/);
    // A run's own --webhook-url, signed with that secret.
    const sent = received;
    run = await tasker(
      ['run', 'sum_two_numbers', '-p', 'a=2', '-p', 'b=2', '--webhook-url', url, '--wait'],
      keys.writer,
    );
    expect(run.code, run.stderr).toBe(0);
    await waitFor(() => received > sent || undefined);
    // `tasker get` names a task's own webhook.
    run = await tasker(
      ['run', 'sum_two_numbers', '-p', 'a=3', '-p', 'b=3', '--webhook-url', url],
      keys.writer,
    );
    run = await tasker(['get', run.stdout.trim()], keys.writer);
    expect(run.stdout).toMatch(new RegExp(`webhook\\s+${url}`));

    run = await tasker(['webhooks', 'delete', id]);
    expect(run.code).toBe(0);
    run = await tasker(['webhooks', 'get', id]);
    expect(run.code).toBe(5);
  }, 60_000);

  it('refuses an unknown event (exit 2) and a key without the admin scope (exit 4)', async () => {
    let run = await tasker(['webhooks', 'create', url, '-e', 'task.done']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('task.completed');
    run = await tasker(['webhooks', 'list'], keys.writer);
    expect(run.code).toBe(4);
  });
});
