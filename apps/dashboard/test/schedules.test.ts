/**
 * The schedules page, in a real browser: a writer creates a seconds schedule, sees its next fires
 * and its runs complete (a worker runs them), changes its cron, pauses, resumes and deletes it; a refused cron is
 * shown with the server's words; a read-only key sees the list without the form or the buttons.
 */
import { testMode } from '@tasker/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { openDashboard, screenshot, setupBrowserStack } from './harness.ts';

const harness = setupBrowserStack({ SCHEDULE_INTERVAL_MS: '100' });
let writer: string;
let reader: string;

beforeAll(async () => {
  writer = await harness.stack.key('acme', ['tasks:write', 'tasks:read']);
  reader = await harness.stack.key('acme', ['tasks:read']);
});

describe(`the schedules page (${testMode} mode)`, () => {
  it('creates a schedule, shows its next fires and completed runs, pauses, resumes and deletes it', async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, writer, '/ui/schedules');
    const form = page.getByTestId('new-schedule');
    await form.getByLabel('Task').selectOption('sum_two_numbers');
    await form.getByLabel('Input (JSON)').fill('{"a": 2, "b": 5}');
    await form.getByLabel('Cron').fill('*/2 * * * * *');
    await form.getByLabel('Time zone').fill('Europe/Paris');
    await form.getByLabel('Key (optional)').fill('every-two');
    await form.getByRole('button', { name: 'Create' }).click();
    const row = page.locator('tr[data-schedule="every-two"]');
    await row.waitFor();
    expect(await row.locator('td').nth(2).textContent()).toBe('*/2 * * * * *');
    await row.getByRole('button', { name: 'every-two' }).click();
    const detail = page.getByTestId('schedule-detail');
    await detail.locator('li[data-run-status="COMPLETED"]').first().waitFor({ timeout: 20_000 });
    expect(await detail.locator('li.mono').count()).toBe(5);
    await screenshot(page, 'schedules');

    // A change of cron: the row shows it, the detail's next fires follow it.
    const change = detail.getByTestId('change-schedule');
    await change.getByLabel('Cron').fill('*/3 * * * * *');
    await change.getByRole('button', { name: 'Save' }).click();
    await row.locator('td', { hasText: '*/3 * * * * *' }).waitFor();

    await row.getByRole('button', { name: 'Pause' }).click();
    await row.locator('td', { hasText: 'paused' }).waitFor();
    await row.getByRole('button', { name: 'Resume' }).click();
    await row.getByRole('button', { name: 'Pause' }).waitFor();
    // The detail closed first, so that nothing asks for the schedule once it is deleted.
    await row.getByRole('button', { name: 'every-two' }).click();
    await detail.waitFor({ state: 'detached' });
    await row.getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached' });
  });

  it("shows a refused cron in the server's words, and stores nothing", async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, writer, '/ui/schedules');
    const form = page.getByTestId('new-schedule');
    await form.getByLabel('Task').selectOption('sum_two_numbers');
    await form.getByLabel('Input (JSON)').fill('{"a": 1, "b": 1}');
    await form.getByLabel('Cron').fill('0 25 * * *');
    await form.getByRole('button', { name: 'Create' }).click();
    await form.getByRole('alert').filter({ hasText: 'hour "25" is not in 0-23' }).waitFor();
    // The 400 itself is what this test asks for: the browser logs it as a failed resource.
    harness.browser.problems.splice(
      0,
      harness.browser.problems.length,
      ...harness.browser.problems.filter((p) => !p.includes('status of 400')),
    );
    expect(await page.getByText('No schedules yet.').count()).toBe(1);
  });

  it('a read-only key sees the schedules, without the form or the buttons', async () => {
    await harness.stack.api(writer, 'POST', '/schedules', {
      name: 'sum_two_numbers',
      input: { a: 1, b: 2 },
      cron: '0 3 * * *',
      key: 'nightly',
    });
    const page = await openDashboard(harness.browser, harness.stack.url, reader, '/ui/schedules');
    await page.locator('tr[data-schedule="nightly"]').waitFor();
    expect(await page.getByTestId('new-schedule').count()).toBe(0);
    expect(await page.getByRole('button', { name: /Pause|Delete/ }).count()).toBe(0);
  });
});
