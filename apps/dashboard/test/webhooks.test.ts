/**
 * The webhooks page, in a real browser: an admin registers a webhook (its secret shown once), sends
 * a test event, sees a task's delivery and redelivers it, and deletes the webhook; a refused URL is
 * shown in the server's words; a key without the admin scope has no Webhooks page.
 */
import { createServer, type Server } from 'node:http';
import { testMode } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDashboard, screenshot, setupBrowserStack } from './harness.ts';

const harness = setupBrowserStack({ WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_INTERVAL_MS: '50' });
let admin: string;
let writer: string;
let receiver: Server;
let url = '';
let received = 0;

beforeAll(async () => {
  admin = await harness.stack.key('acme', ['admin', 'tasks:read']);
  writer = await harness.stack.key('acme', ['tasks:write', 'tasks:read']);
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
});

afterAll(async () => {
  await new Promise((resolve) => receiver?.close(resolve));
});

describe(`the webhooks page (${testMode} mode)`, () => {
  it('registers a webhook, tests it, shows and redelivers a delivery, deletes it', async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, admin, '/ui/webhooks');
    const form = page.getByTestId('new-webhook');
    await form.getByLabel('URL').fill(url);
    await form.getByRole('button', { name: 'Create' }).click();
    const secret = await page.getByTestId('webhook-secret').textContent();
    expect(secret).toMatch(/whsec_/);
    const row = page.locator(`tr[data-webhook="${url}"]`);
    await row.waitFor();

    await row.getByRole('button', { name: 'Send test' }).click();
    await page.getByTestId('webhook-test').filter({ hasText: 'delivered (204)' }).waitFor();

    await harness.stack.api(writer, 'POST', '/tasks', { name: 'sum_two_numbers', input: { a: 1, b: 2 } });
    await row.getByRole('button', { name: url }).click();
    const deliveries = page.getByTestId('webhook-deliveries');
    const delivered = deliveries.locator('tr[data-delivery-status="delivered"]');
    await delivered.first().waitFor({ timeout: 20_000 });
    await screenshot(page, 'webhooks');
    const before = received;
    await delivered.first().getByRole('button', { name: 'Redeliver' }).click();
    await expect.poll(() => received, { timeout: 10_000 }).toBeGreaterThan(before);

    await row.getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached' });
  });

  it("shows a refused URL in the server's words, and stores nothing", async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, admin, '/ui/webhooks');
    const form = page.getByTestId('new-webhook');
    await form.getByLabel('URL').fill('ftp://example.com/x');
    await form.getByRole('button', { name: 'Create' }).click();
    await form.getByRole('alert').filter({ hasText: 'http' }).waitFor();
    harness.browser.problems.splice(
      0,
      harness.browser.problems.length,
      ...harness.browser.problems.filter((p) => !p.includes('status of 400')),
    );
    expect(await page.getByText('No webhooks yet.').count()).toBe(1);
  });

  it("a task's page names its own webhook_url", async () => {
    await harness.stack.api(admin, 'POST', '/webhooks/task-secret', {});
    const task = await harness.stack.api<{ id: string }>(writer, 'POST', '/tasks', {
      name: 'sum_two_numbers',
      input: { a: 1, b: 2 },
      webhook_url: url,
    });
    const page = await openDashboard(harness.browser, harness.stack.url, writer, `/ui/tasks/${task.id}`);
    await page.getByTestId('task-detail').waitFor();
    expect(await page.getByTestId('task-webhook-url').textContent()).toBe(url);
  });

  it('a key without the admin scope has no Webhooks page', async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, writer, '/ui/webhooks');
    await page.getByText('lacks the admin scope').waitFor();
    expect(await page.getByRole('link', { name: 'Webhooks' }).count()).toBe(0);
  });
});
