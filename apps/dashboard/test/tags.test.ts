/**
 * Tags and metadata in the dashboard (a real browser against a real server, no worker: the tasks
 * stay PENDING): shown in the tasks table and on the task page, and the table filtered by tag and by
 * metadata containment.
 */
import { testMode } from '@tasker/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { openDashboard, screenshot, setupBrowserStack, type TaskRecord } from './harness.ts';

const harness = setupBrowserStack({}, { worker: false });
let key: string;

beforeAll(async () => {
  key = await harness.stack.key('tags-tenant', ['tasks:write', 'tasks:read']);
});

describe(`tags and metadata in the dashboard (${testMode} mode)`, () => {
  it('shows them in the table and on the task page, and filters the table by them', async () => {
    const submit = (input: object, extra: object) =>
      harness.stack.api<TaskRecord>(key, 'POST', '/tasks', { name: 'sum_two_numbers', input, ...extra });
    const tagged = await submit(
      { a: 1, b: 2 },
      { tags: ['nightly', 'billing'], metadata: { team: 'billing' } },
    );
    const other = await submit({ a: 3, b: 4 }, { tags: ['nightly'], metadata: { team: 'ops' } });
    const plain = await submit({ a: 5, b: 6 }, {});
    const page = await openDashboard(harness.browser, harness.stack.url, key);
    const row = (id: string) => page.locator(`tr[data-task-id="${id}"]`);
    const cell = (id: string, testId: string) => row(id).locator(`[data-testid="${testId}"]`);
    await cell(tagged.id, 'tags').waitFor();
    expect(await cell(tagged.id, 'tags').textContent()).toBe('nightly, billing');
    expect(await cell(tagged.id, 'metadata').textContent()).toBe('{"team":"billing"}');
    expect(await cell(plain.id, 'tags').textContent()).toBe('');

    // By tag: every tag given.
    await page.getByLabel('Tags').fill('nightly');
    await page.getByRole('button', { name: 'Apply' }).click();
    await row(plain.id).waitFor({ state: 'detached' });
    expect(await row(tagged.id).count()).toBe(1);
    expect(await row(other.id).count()).toBe(1);
    // And by metadata.
    await page.getByLabel('Metadata search').fill('{"team": "billing"}');
    await page.getByRole('button', { name: 'Apply' }).click();
    await row(other.id).waitFor({ state: 'detached' });
    expect(await row(tagged.id).count()).toBe(1);
    await screenshot(page, 'tasks-tags');
    // Not an object: said, not sent.
    await page.getByLabel('Metadata search').fill('[1]');
    await page.getByRole('button', { name: 'Apply' }).click();
    expect(await page.getByRole('alert').textContent()).toMatch(/must be a JSON object/);

    await page.goto(`${harness.stack.url}/ui/tasks/${tagged.id}`);
    await page.getByTestId('task-detail').waitFor();
    expect(await page.getByTestId('task-tags').textContent()).toBe('nightly, billing');
    expect(await page.getByTestId('task-metadata').textContent()).toBe('{"team":"billing"}');
    await page.goto(`${harness.stack.url}/ui/tasks/${plain.id}`);
    await page.getByTestId('task-detail').waitFor();
    expect(await page.getByTestId('task-tags').count()).toBe(0);
  });
});
