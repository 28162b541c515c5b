/**
 * Bulk cancel and retry from the dashboard, in a real browser against a real server and worker: the
 * buttons on a filtered table, the confirmation showing the count (a dry run), the progress of the
 * operation to its end; no buttons without a filter, nor for a read-only key.
 */
import { testMode, waitFor } from '@tasker/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { openDashboard, screenshot, setupBrowserStack, type TaskRecord } from './harness.ts';

const harness = setupBrowserStack({ BULK_POLL_MS: '100' });
let key: string;
let reader: string;
const sums: TaskRecord[] = [];
const scans: TaskRecord[] = [];

beforeAll(async () => {
  key = await harness.stack.key('bulk', ['tasks:write', 'tasks:read']);
  reader = await harness.stack.key('bulk', ['tasks:read']);
  // Delayed by an hour: PENDING until cancelled.
  for (let a = 0; a < 12; a++)
    sums.push(
      await harness.stack.api<TaskRecord>(key, 'POST', '/tasks', {
        name: 'sum_two_numbers',
        input: { a, b: 1 },
        delay_ms: 3_600_000,
      }),
    );
  for (const string of ['aab', 'abbb', 'cccc'])
    scans.push(
      await harness.stack.api<TaskRecord>(key, 'POST', '/tasks', {
        name: 'find_longest_consecutive_letters',
        input: { string },
        delay_ms: 3_600_000,
      }),
    );
});

const statuses = async (tasks: TaskRecord[]) =>
  Promise.all(
    tasks.map(async (t) => (await harness.stack.api<TaskRecord>(key, 'GET', `/tasks/${t.id}`)).status),
  );

describe(`bulk actions on the tasks table (${testMode} mode)`, () => {
  it('cancels the filtered tasks after a confirmation with their count, shows the progress, then retries them', async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, key);
    const bulk = page.getByTestId('bulk-actions');
    // No filter: no bulk action (it would act on every task).
    await page.getByTestId('task-table').waitFor();
    expect(await bulk.count()).toBe(0);

    await page.getByLabel('Task type', { exact: true }).selectOption('sum_two_numbers');
    await page.getByLabel('PENDING').check();
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('button', { name: 'Cancel matching…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Confirm bulk action' });
    await expect
      .poll(() => dialog.textContent())
      .toContain('Cancel 12 PENDING, RUNNING or WAITING tasks matching these filters?');
    await screenshot(page, 'bulk-confirm');
    // Nothing is touched before the confirmation.
    expect(new Set(await statuses(sums))).toEqual(new Set(['PENDING']));
    await dialog.getByRole('button', { name: 'Cancel 12' }).click();
    const progress = page.getByTestId('bulk-progress');
    await expect.poll(() => progress.textContent(), { timeout: 15_000 }).toBe('12 of 12 cancelled (done)');
    await screenshot(page, 'bulk-done');
    expect(new Set(await statuses(sums))).toEqual(new Set(['CANCELLED']));
    expect(new Set(await statuses(scans))).toEqual(new Set(['PENDING']));
    // The table shows them CANCELLED: none is PENDING any more.
    await waitFor(async () => (await page.locator('tbody tr[data-task-id]').count()) === 0, {
      what: 'the filtered table emptied',
    });

    await page.getByLabel('PENDING').uncheck();
    await page.getByLabel('CANCELLED').check();
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('button', { name: 'Retry matching…' }).click();
    await expect
      .poll(() => dialog.textContent())
      .toContain('Retry 12 FAILED, CANCELLED or EXPIRED tasks matching these filters?');
    await dialog.getByRole('button', { name: 'Retry 12' }).click();
    await expect.poll(() => progress.textContent(), { timeout: 15_000 }).toBe('12 of 12 retried (done)');
    // Retried, they run at once (a retry starts a new round) and complete.
    await waitFor(async () => (await statuses(sums)).every((s) => s === 'COMPLETED'), {
      timeoutMs: 20_000,
      what: 'the retried sums completed',
    });

    // A filter nothing matches: the confirmation says so, and offers nothing to confirm.
    await page.getByRole('button', { name: 'Cancel matching…' }).click();
    await expect
      .poll(() => dialog.textContent())
      .toContain('No PENDING, RUNNING or WAITING task matches these filters.');
    expect(await dialog.getByRole('button', { name: /^Cancel \d/ }).count()).toBe(0);
    await dialog.getByRole('button', { name: 'Back' }).click();
    expect(await dialog.count()).toBe(0);
  });

  it('a read-only key sees no bulk action', async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, reader);
    await page.getByLabel('PENDING').check();
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByTestId('task-table').waitFor();
    await waitFor(async () => (await page.locator('tbody tr[data-task-id]').count()) === 3, {
      what: 'the 3 pending scans',
    });
    expect(await page.getByTestId('bulk-actions').count()).toBe(0);
  });
});
