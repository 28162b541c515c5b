/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core) against a real server
 * and worker: in the Redis mode, and in the PostgreSQL-only mode with TEST_MODE=postgres. Every tab
 * fails the test on a console error or an uncaught page error. Screenshots of each page go to
 * test-output/screenshots/.
 */
import { testMode, waitFor } from '@tasker/testing';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  openDashboard,
  type Stack,
  screenshot,
  setupBrowserStack,
  startStack,
  type TaskRecord,
  waitForTask,
} from './harness.ts';

const harness = setupBrowserStack();
/** tenant acme: every scope (an operator's too); a read-only key and a tenant admin's of the same tenant. */
let admin: string;
let reader: string;
let tenantAdmin: string;

beforeAll(async () => {
  admin = await harness.stack.key('acme', ['tasks:write', 'tasks:read', 'admin', 'operator']);
  reader = await harness.stack.key('acme', ['tasks:read']);
  tenantAdmin = await harness.stack.key('acme', ['tasks:write', 'tasks:read', 'admin']);
});

const row = (page: Page, id: string) => page.locator(`tr[data-task-id="${id}"]`);
/** Marks the document, so that a test can tell that the page was never reloaded. */
const mark = (page: Page) => page.evaluate(() => Object.assign(window, { tasksMark: 'unchanged' }));
const marked = (page: Page) =>
  page.evaluate(() => (window as unknown as { tasksMark?: string }).tasksMark === 'unchanged');

async function pauseType(key: string, name: string) {
  await harness.stack.api(key, 'POST', '/queue/pause', { task_name: name });
  // Every process reads the paused types at most 1 s stale.
  await new Promise((resolve) => setTimeout(resolve, 1200));
}

describe(`the dashboard (${testMode} mode)`, () => {
  it('runs a task from the form built from its JSON Schema, and watches it complete live in the table and on its page', async () => {
    await pauseType(admin, 'sum_two_numbers'); // so that the test sees it PENDING first
    const page = await openDashboard(harness.browser, harness.stack.url, admin);
    await page.getByRole('link', { name: 'Run a task' }).click();
    await page.getByLabel('Task type to run').selectOption('sum_two_numbers');
    await page.getByLabel(/^a/).fill('5');
    await page.getByLabel(/^b/).fill('10');
    await screenshot(page, 'run-form');
    await page.getByRole('button', { name: 'Run sum_two_numbers' }).click();
    const created = page.getByTestId('created');
    await created.waitFor();
    const id = (await created.getByRole('link').textContent()) ?? '';
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    await page.getByRole('link', { name: 'Tasks', exact: true }).click();
    await page.getByTestId('live-status').filter({ hasText: 'live' }).waitFor();
    await mark(page);
    await row(page, id).locator('[data-status="PENDING"]').waitFor();
    expect(await row(page, id).textContent()).toContain('sum_two_numbers');

    await harness.stack.api(admin, 'POST', '/queue/resume', { task_name: 'sum_two_numbers' });
    await row(page, id).locator('[data-status="COMPLETED"]').waitFor();
    expect(await marked(page)).toBe(true); // changed live, not by a reload
    await screenshot(page, 'tasks');

    await row(page, id).getByRole('link').click();
    await page.getByTestId('task-output').waitFor();
    expect(await page.getByTestId('task-output').textContent()).toBe('15');
    expect(await page.getByTestId('task-input').textContent()).toContain('"a": 5');
    const timeline = (await page.getByTestId('timeline').textContent()) ?? '';
    expect(timeline).toMatch(/Created.*Attempt 1 of \d+ started.*Finished COMPLETED/);
    await screenshot(page, 'task-detail');
  });

  it('shows an LLM reply growing while it streams, then the whole reply as the output', async () => {
    const task = await harness.stack.api<TaskRecord>(admin, 'POST', '/tasks', {
      name: 'query_chatgpt',
      input: { prompt: 'a slow story' },
    });
    const page = await openDashboard(harness.browser, harness.stack.url, admin, `/ui/tasks/${task.id}`);
    const partial = page.getByTestId('task-partial');
    await partial.waitFor();
    const lengths: number[] = [];
    let pictured = false;
    await waitFor(
      async () => {
        const status = await page
          .locator('[data-testid="task-detail"] [data-status]')
          .first()
          .getAttribute('data-status');
        if (status === 'COMPLETED') return true;
        const length = ((await partial.textContent({ timeout: 1000 })) ?? '').length;
        lengths.push(length);
        if (!pictured && length > 40) {
          pictured = true;
          await screenshot(page, 'llm-streaming');
        }
        return false;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'the reply to complete' },
    );
    await page.getByTestId('task-output').waitFor();
    await screenshot(page, 'llm-reply');
    const growing = new Set(lengths.filter((n) => n > 0));
    expect(growing.size, `lengths seen: ${lengths.join(',')}`).toBeGreaterThanOrEqual(3);
    expect(lengths).toEqual([...lengths].sort((a, b) => a - b)); // it only grows
    expect(await page.getByTestId('task-output').textContent()).toContain('a slow story');
    // What the call used (the fake counts words: 3 in the prompt), and its cost (gpt-4o-mini has a price).
    await page.getByTestId('task-usage').waitFor();
    expect(await page.getByTestId('usage-tokens').textContent()).toMatch(
      /^3 prompt \+ [1-9]\d* completion tokens$/,
    );
    expect(await page.getByTestId('usage-cost').textContent()).toMatch(/^\$\d/);
  });

  it("shows a durable task's steps and child tasks, and its steps move on live as its wait ends", async () => {
    const task = await harness.stack.api<TaskRecord>(admin, 'POST', '/tasks', {
      name: 'summarize_documents',
      input: { documents: ['one', 'two'], require_approval: true },
    });
    const waiting = await waitFor(
      async () => {
        const now = await harness.stack.api<
          TaskRecord & { waitingFor: { kind: string; token?: string } | null }
        >(admin, 'GET', `/tasks/${task.id}`);
        return now.waitingFor?.kind === 'token' && now.waitingFor.token;
      },
      { timeoutMs: 30_000, what: 'the approval wait' },
    );
    const page = await openDashboard(harness.browser, harness.stack.url, admin, `/ui/tasks/${task.id}`);
    const steps = page.getByTestId('task-steps');
    await steps.waitFor();
    const stepRow = (prefix: string) => steps.locator('tbody tr').filter({ hasText: prefix });
    await stepRow('$token-wait:').filter({ hasText: 'waiting' }).waitFor();
    await page.getByTestId('task-children-summary').filter({ hasText: '2 in all: 2 COMPLETED' }).waitFor();
    await screenshot(page, 'durable-steps-waiting');
    await mark(page);
    await harness.stack.api(admin, 'POST', `/tokens/${waiting}/complete`, { output: { approved: true } });
    // Without a reload: the wait's step completed, then the task.
    await stepRow('$token-wait:').filter({ hasText: 'completed' }).waitFor({ timeout: 20_000 });
    await page.locator('[data-testid="task-detail"] [data-status="COMPLETED"]').first().waitFor();
    expect(await marked(page)).toBe(true);
    await screenshot(page, 'durable-steps-done');
  });

  it('cancels a running task from the table, and retries it from its page', async () => {
    const task = await harness.stack.api<TaskRecord>(admin, 'POST', '/tasks', {
      name: 'query_chatgpt',
      input: { prompt: 'a long one, to be cancelled' },
    });
    const page = await openDashboard(harness.browser, harness.stack.url, admin);
    await row(page, task.id).locator('[data-status="RUNNING"]').waitFor();
    await waitForTask(
      harness.stack,
      admin,
      task.id,
      (t) => typeof (t.progress as { partial?: string })?.partial === 'string',
    );
    await row(page, task.id).getByRole('button', { name: 'Cancel' }).click();
    // A timeout here says where the task stands and what the row shows (CI once saw no CANCELLED
    // in 30 s, and nothing else: not reproduced here).
    await row(page, task.id)
      .locator('[data-status="CANCELLED"]')
      .waitFor()
      .catch(async (error: unknown) => {
        const now = await waitForTask(harness.stack, admin, task.id, () => true);
        const shown = await row(page, task.id).textContent();
        throw new Error(`${String(error)}\nthe task: ${JSON.stringify(now)}\nthe row: ${shown}`);
      });
    expect(await row(page, task.id).getByRole('button', { name: 'Cancel' }).count()).toBe(0);
    expect((await waitForTask(harness.stack, admin, task.id, () => true)).status).toBe('CANCELLED');

    await row(page, task.id).getByRole('link').click();
    const detail = page.getByTestId('task-detail');
    await detail.locator('[data-status="CANCELLED"]').waitFor();
    await page.getByTestId('task-error').waitFor();
    const timeline = (await page.getByTestId('timeline').textContent()) ?? '';
    expect(timeline).toMatch(/Cancel requested.*Finished CANCELLED/);
    await screenshot(page, 'task-cancelled');
    await detail.getByRole('button', { name: 'Retry' }).click();
    // Followed again, live: running, its reply streaming from the start.
    await detail.locator('[data-status="RUNNING"]').waitFor();
    await page.getByText('Reply so far (streaming)').waitFor();
    await detail.getByRole('button', { name: 'Cancel' }).click();
    await detail.locator('[data-status="CANCELLED"]').waitFor();
    expect((await waitForTask(harness.stack, admin, task.id, () => true)).status).toBe('CANCELLED');
  });

  it('a read-only key sees no cancel, retry or run', async () => {
    const held = await harness.stack.api<TaskRecord>(admin, 'POST', '/tasks', {
      name: 'sum_two_numbers',
      input: { a: 1, b: 2 },
      delay_ms: 600_000,
    });
    const failed = await harness.stack.api<TaskRecord>(admin, 'POST', '/tasks', {
      name: 'sum_two_numbers',
      input: { a: 2, b: 2 },
      delay_ms: 600_000,
    });
    await harness.stack.api(admin, 'POST', `/tasks/${failed.id}/cancel`);

    // The same rows with a key that may write: the buttons are there.
    const writer = await openDashboard(harness.browser, harness.stack.url, admin);
    await row(writer, held.id).getByRole('button', { name: 'Cancel' }).waitFor();
    await row(writer, failed.id).getByRole('button', { name: 'Retry' }).waitFor();
    await screenshot(writer, 'tasks-actions');

    const page = await openDashboard(harness.browser, harness.stack.url, reader);
    await row(page, held.id).waitFor();
    await row(page, failed.id).locator('[data-status="CANCELLED"]').waitFor();
    expect(await page.getByTestId('whoami').textContent()).toContain('tasks:read');
    expect(await page.getByRole('button', { name: /Cancel|Retry/ }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Run a task' }).count()).toBe(0);
    await screenshot(page, 'read-only');

    await row(page, failed.id).getByRole('link').click();
    await page.getByTestId('task-detail').locator('[data-status="CANCELLED"]').waitFor();
    expect(await page.getByRole('button', { name: /Cancel|Retry/ }).count()).toBe(0);

    await page.getByRole('link', { name: 'Queue' }).click();
    await page.getByText('need a key with the operator scope').waitFor();
    expect(await page.getByRole('button', { name: /Pause|Resume/ }).count()).toBe(0);
    await harness.stack.api(admin, 'POST', `/tasks/${held.id}/cancel`);
  });

  it("a tenant's admin key sees no queue controls (the queue is every tenant's); whoami shows its scopes", async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, tenantAdmin, '/ui/queue');
    await page.getByText('need a key with the operator scope').waitFor();
    expect(await page.getByTestId('whoami').textContent()).toContain('tasks:write, tasks:read, admin');
    expect(await page.getByRole('button', { name: /Pause|Resume/ }).count()).toBe(0);
    expect(await page.getByTestId('queue-paused').count()).toBe(0);
  });

  it('pauses and resumes one task type and everything on the queue page, with the last hour as a chart', async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, admin, '/ui/queue');
    const type = page.locator('tr[data-type="find_longest_consecutive_letters"]');
    await type.getByRole('button', { name: 'Pause' }).click();
    await type.getByRole('button', { name: 'Resume' }).waitFor();
    expect(await type.textContent()).toContain('PAUSED');
    const state = await harness.stack.api<{ paused: boolean; pausedTypes: string[] }>(admin, 'GET', '/queue');
    expect(state.pausedTypes).toEqual(['find_longest_consecutive_letters']);
    await new Promise((resolve) => setTimeout(resolve, 1200)); // every process sees the pause within 1 s

    const held = await harness.stack.api<TaskRecord>(admin, 'POST', '/tasks', {
      name: 'find_longest_consecutive_letters',
      input: { string: 'aaabbccccdd' },
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await waitForTask(harness.stack, admin, held.id, () => true)).status).toBe('PENDING');
    await screenshot(page, 'queue-paused-type');
    await type.getByRole('button', { name: 'Resume' }).click();
    expect((await waitForTask(harness.stack, admin, held.id, (t) => t.status === 'COMPLETED')).output).toBe(
      4,
    );

    await page.getByRole('button', { name: 'Pause all' }).click();
    await page.getByTestId('queue-paused').filter({ hasText: 'PAUSED' }).waitFor();
    expect((await harness.stack.api<{ paused: boolean }>(admin, 'GET', '/queue')).paused).toBe(true);
    await page.getByRole('button', { name: 'Resume all' }).click();
    await page.getByTestId('queue-paused').filter({ hasText: 'RUNNING' }).waitFor();
    expect((await harness.stack.api<{ paused: boolean }>(admin, 'GET', '/queue')).paused).toBe(false);

    // The tasks finished by the tests above, per minute (tenant acme's).
    await page.reload();
    await page.getByTestId('throughput-chart').locator('canvas').waitFor();
    const totals = (await page.getByTestId('throughput-totals').textContent()) ?? '';
    const completed = Number(/(\d+) completed/.exec(totals)?.[1]);
    expect(completed).toBeGreaterThanOrEqual(3); // the sum, the LLM reply, the string scan
    expect(totals).toMatch(/failure rate \d+\.\d%/);
    await page.getByTestId('queue-depths').waitFor();
    await screenshot(page, 'queue');
  });
});

describe(`filters and paging (${testMode} mode)`, () => {
  /** A tenant of its own: 23 sums (a = 0..22), 3 string scans. */
  let key: string;
  let sums: TaskRecord[];

  beforeAll(async () => {
    key = await harness.stack.key('paging', ['tasks:write', 'tasks:read']);
    sums = [];
    for (let a = 0; a < 23; a++) {
      sums.push(
        await harness.stack.api<TaskRecord>(key, 'POST', '/tasks', {
          name: 'sum_two_numbers',
          input: { a, b: 1 },
        }),
      );
    }
    for (const string of ['aab', 'abbb', 'cccc']) {
      await harness.stack.api(key, 'POST', '/tasks', {
        name: 'find_longest_consecutive_letters',
        input: { string },
      });
    }
    await waitFor(
      async () => {
        const page = await harness.stack.api<{ tasks: TaskRecord[] }>(
          key,
          'GET',
          '/tasks?status=COMPLETED&limit=100',
        );
        return page.tasks.length === 26;
      },
      { timeoutMs: 20_000, what: '26 tasks to complete' },
    );
  });

  const ids = async (page: Page) =>
    page
      .locator('tbody tr[data-task-id]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-task-id')));

  it('filters by type and status and time, and pages with the cursor', async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, key);
    await page.getByLabel('Page size').selectOption('10');
    await page.getByLabel('Task type', { exact: true }).selectOption('sum_two_numbers');
    await page.getByLabel('COMPLETED').check();
    await page.getByRole('button', { name: 'Apply' }).click();
    const newestFirst = [...sums].reverse().map((t) => t.id);
    await waitFor(async () => JSON.stringify(await ids(page)) === JSON.stringify(newestFirst.slice(0, 10)), {
      what: 'the first page',
    });
    await screenshot(page, 'tasks-filtered');
    await page.getByRole('button', { name: 'Older →' }).click();
    await waitFor(async () => JSON.stringify(await ids(page)) === JSON.stringify(newestFirst.slice(10, 20)), {
      what: 'the second page',
    });
    await page.getByRole('button', { name: 'Older →' }).click();
    await waitFor(async () => JSON.stringify(await ids(page)) === JSON.stringify(newestFirst.slice(20)), {
      what: 'the last page',
    });
    expect(await page.getByRole('button', { name: 'Older →' }).isDisabled()).toBe(true);
    expect(await page.getByTestId('page-number').textContent()).toBe('page 3');
    await page.getByRole('button', { name: '← Newer' }).click();
    await waitFor(async () => JSON.stringify(await ids(page)) === JSON.stringify(newestFirst.slice(10, 20)), {
      what: 'the second page again',
    });

    // The other type, and a status nothing has.
    await page.getByLabel('Task type', { exact: true }).selectOption('find_longest_consecutive_letters');
    await page.getByRole('button', { name: 'Apply' }).click();
    await waitFor(async () => (await ids(page)).length === 3, { what: 'three string scans' });
    await page.getByLabel('COMPLETED').uncheck();
    await page.getByLabel('FAILED').check();
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText('No tasks match.').waitFor();

    // Time: nothing was created after an hour from now; everything before it.
    await page.getByRole('button', { name: 'Clear' }).click();
    const inAnHour = new Date(Date.now() + 3600_000).toISOString().slice(0, 19); // the browser runs in UTC
    await page.getByLabel('Created after').fill(inAnHour);
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText('No tasks match.').waitFor();
    await page.getByRole('button', { name: 'Clear' }).click();
    await page.getByLabel('Created before').fill(inAnHour);
    await page.getByLabel('Page size').selectOption('50');
    await page.getByRole('button', { name: 'Apply' }).click();
    await waitFor(async () => (await ids(page)).length === 26, { what: 'all 26 tasks' });

    // Search by id opens the task's page.
    const target = sums[7];
    await page.getByLabel('Task id').fill(target?.id ?? '');
    await page.getByRole('button', { name: 'Open' }).click();
    await page.getByTestId('task-output').filter({ hasText: '8' }).waitFor();
    expect(page.url()).toBe(`${harness.stack.url}/ui/tasks/${target?.id}`);
  });

  it('searches by payload: input and output containment', async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, key);
    await page.getByLabel('Payload search').fill('{"a": 7}');
    await page.getByRole('button', { name: 'Apply' }).click();
    await waitFor(async () => JSON.stringify(await ids(page)) === JSON.stringify([sums[7]?.id]), {
      what: 'the one task whose input has a = 7',
    });
    await screenshot(page, 'tasks-payload-search');
    // Outputs: sum a + 1 = 4 (a = 3), and the scan of "cccc" (4).
    await page.getByLabel('Payload field').selectOption('output');
    await page.getByLabel('Payload search').fill('4');
    await page.getByRole('button', { name: 'Apply' }).click();
    await waitFor(async () => (await ids(page)).length === 2, { what: 'two tasks whose output is 4' });
    expect(await ids(page)).toContain(sums[3]?.id);
    // Not JSON: said on the page, nothing sent.
    await page.getByLabel('Payload search').fill('{a: 7');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('alert').filter({ hasText: 'must be JSON' }).waitFor();
  });
});

describe('the API docs page', () => {
  it('renders the OpenAPI document at /docs, every route, from assets the server serves', async () => {
    const page = await harness.browser.page();
    await page.goto(`${harness.stack.url}/docs`);
    // Operations by their summaries, as every OpenAPI renderer lists them.
    await page.getByText('Submit a task').first().waitFor();
    await page.getByText('Create a task').first().waitFor();
    await page
      .getByText("This tenant's completed and failed tasks per minute, over the last hour")
      .first()
      .waitFor();
    await screenshot(page, 'docs');
    // Every operation of the document is listed (Swagger UI shows each operationId).
    const doc = (await (await fetch(`${harness.stack.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { operationId: string }>>;
    };
    const operationIds = Object.values(doc.paths).flatMap((item) =>
      Object.values(item).map((op) => op.operationId),
    );
    expect(operationIds.length).toBeGreaterThan(15);
    for (const id of operationIds) await page.getByText(id, { exact: true }).first().waitFor();
    // An operation opened shows its examples: POST /tasks, one request example per task type.
    const createTask = page
      .locator('.opblock')
      .filter({ has: page.getByText('createTask', { exact: true }) });
    await createTask.locator('.opblock-summary').first().click();
    await createTask.getByText('"sum_two_numbers"').first().waitFor();
    await createTask.locator('select').first().waitFor();
    await screenshot(page, 'docs-create-task');
  });
});

describe(`AUTH_MODE=disabled (${testMode} mode)`, () => {
  let open: Stack;
  beforeAll(async () => {
    open = await startStack({ AUTH_MODE: 'disabled' }, { worker: false });
  });
  afterAll(async () => {
    await open?.close();
  });

  it('asks for no key', async () => {
    const page = await harness.browser.page();
    await page.goto(`${open.url}/ui/`);
    await page.getByTestId('whoami').filter({ hasText: 'AUTH_MODE=disabled' }).waitFor();
    expect(await page.getByLabel('API key').count()).toBe(0);
    expect(await page.getByTestId('whoami').textContent()).toContain('default');
    await page.getByRole('link', { name: 'Run a task' }).waitFor();
  });
});
