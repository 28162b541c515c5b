/**
 * The SDK's webhooks: `webhooks.create/list/get/test/deliveries/redeliver/delete` and
 * `rotateTaskSecret`, camelCase in and out, refusals named as written; a run's `webhookUrl`
 * delivered. Against a real server and worker (AUTH_MODE=disabled: the default tenant, every scope).
 */
import { createServer, type Server } from 'node:http';
import { type AppProcess, createTestEnv, spawnApp, type TestEnv, waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTaskerClient,
  type TaskerClient,
  TaskerNotFoundError,
  TaskerValidationError,
} from '../src/index.ts';

let env: TestEnv;
let server: AppProcess;
let worker: AppProcess;
let tasker: TaskerClient;
let receiver: Server;
let url = '';
const received: { id: string; body: { event: string; task: { id: string } | null } }[] = [];

beforeAll(async () => {
  env = createTestEnv({ WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_INTERVAL_MS: '50' });
  [server, worker] = await Promise.all([spawnApp('server', env.vars), spawnApp('worker', env.vars)]);
  tasker = createTaskerClient({ url: server.url ?? '' });
  receiver = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    req.on('end', () => {
      received.push({ id: String(req.headers['webhook-id']), body: JSON.parse(text) });
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
  await env?.cleanup();
});

describe('webhooks from the SDK', () => {
  it('creates, lists, tests, follows deliveries, redelivers and deletes', async () => {
    const made = await tasker.webhooks.create({
      url,
      events: ['task.completed'],
      taskNames: ['sum_two_numbers'],
    });
    expect(made).toMatchObject({ url, events: ['task.completed'], taskNames: ['sum_two_numbers'] });
    expect(made.secret).toMatch(/^whsec_/);
    expect((await tasker.webhooks.list()).map((w) => w.id)).toEqual([made.id]);
    expect(await tasker.webhooks.get(made.id)).not.toHaveProperty('secret');

    const tested = await tasker.webhooks.test(made.id);
    expect(tested).toMatchObject({ delivered: true, attempt: { status: 204 } });

    const handle = await tasker.run('sum_two_numbers', { a: 1, b: 2 });
    await handle.result();
    const [delivery] = await waitFor(async () => {
      const list = await tasker.webhooks.deliveries(made.id, { status: 'delivered' });
      return list.length === 1 ? list : undefined;
    });
    expect(delivery).toMatchObject({
      taskId: handle.id,
      event: 'task.completed',
      attempts: 1,
      lastStatus: 204,
    });
    const again = await tasker.webhooks.redeliver(made.id, delivery?.id ?? '');
    expect(again.status).toBe('pending');
    await waitFor(() => received.filter((r) => r.id === delivery?.id).length === 2 || undefined);

    await tasker.webhooks.delete(made.id);
    await expect(tasker.webhooks.get(made.id)).rejects.toBeInstanceOf(TaskerNotFoundError);
  }, 30_000);

  it('names refused fields as written', async () => {
    const bad = await tasker.webhooks
      .create({ url, events: ['task.completed'], taskNames: ['nope' as 'sum_two_numbers'] })
      .catch((error: unknown) => error);
    expect(bad).toBeInstanceOf(TaskerValidationError);
    expect((bad as TaskerValidationError).issues[0]?.path).toMatch(/^taskNames/);
    const typo = await tasker.webhooks
      .create({ url, events: ['task.failed'], eventz: [] } as never)
      .catch((error: unknown) => error);
    expect((typo as TaskerValidationError).issues[0]?.path).toBe('eventz');
  });

  it("sends a run's own webhookUrl once the tenant has a task secret", async () => {
    const refused = await tasker
      .run('sum_two_numbers', { a: 1, b: 1 }, { webhookUrl: url })
      .catch((e: unknown) => e);
    expect((refused as TaskerValidationError).issues[0]?.path).toBe('webhookUrl');
    const { secret } = await tasker.webhooks.rotateTaskSecret();
    expect(secret).toMatch(/^whsec_/);
    const handle = await tasker.run('sum_two_numbers', { a: 3, b: 4 }, { webhookUrl: url });
    await waitFor(() => received.some((r) => r.body.task?.id === handle.id) || undefined);
  }, 30_000);
});
