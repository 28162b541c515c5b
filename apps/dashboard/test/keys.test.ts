/**
 * The keys of a task in the dashboard (a real browser against a real server, no worker: the tasks
 * stay PENDING): the concurrency key in the tasks table and on the task page (the tenant's when none
 * was given), the singleton and debounce keys and the expiry on the task page.
 */
import { testMode } from '@tasker/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { openDashboard, screenshot, setupBrowserStack, type TaskRecord } from './harness.ts';

const harness = setupBrowserStack({}, { worker: false });
let key: string;

beforeAll(async () => {
  key = await harness.stack.key('keys-tenant', ['tasks:write', 'tasks:read']);
});

describe(`a task's keys in the dashboard (${testMode} mode)`, () => {
  it('shows the concurrency key in the table, and every key on the task page', async () => {
    const keyed = await harness.stack.api<TaskRecord>(key, 'POST', '/tasks', {
      name: 'sum_two_numbers',
      input: { a: 1, b: 2 },
      concurrency_key: 'customer-7',
      singleton_key: 'nightly-report',
      ttl_ms: 600_000,
    });
    const plain = await harness.stack.api<TaskRecord>(key, 'POST', '/tasks', {
      name: 'sum_two_numbers',
      input: { a: 3, b: 4 },
      debounce: { key: 'reindex', delay_ms: 60_000 },
    });
    const page = await openDashboard(harness.browser, harness.stack.url, key);
    const cell = (id: string) => page.locator(`tr[data-task-id="${id}"] [data-testid="concurrency-key"]`);
    await cell(keyed.id).waitFor();
    expect(await cell(keyed.id).textContent()).toBe('customer-7');
    expect(await cell(plain.id).textContent()).toBe('keys-tenant');
    await screenshot(page, 'tasks-keys');

    await page.locator(`tr[data-task-id="${keyed.id}"] a`).first().click();
    await page.getByTestId('task-detail').waitFor();
    expect(await page.getByTestId('concurrency-key').textContent()).toBe('customer-7');
    expect(await page.getByTestId('singleton-key').textContent()).toBe('nightly-report');
    expect(await page.getByText('Expires').count()).toBe(1);
    expect(await page.getByTestId('debounce-key').count()).toBe(0);
    await screenshot(page, 'task-keys');

    await page.goto(`${harness.stack.url}/ui/tasks/${plain.id}`);
    await page.getByTestId('task-detail').waitFor();
    expect(await page.getByTestId('debounce-key').textContent()).toBe('reindex');
    expect(await page.getByTestId('concurrency-key').textContent()).toBe('keys-tenant');
  });
});
