/**
 * The usage page, in a real browser: a tenant's tokens and cost per day (a chart, and the totals),
 * by task type and by model, from real query_chatgpt tasks run by a worker against the fake
 * OpenAI server and a call of an earlier day in the ledger; another tenant's calls are not shown.
 */
import { randomUUID } from 'node:crypto';
import { createDb } from '@tasker/db';
import { testMode } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDashboard, screenshot, setupBrowserStack, waitForTask } from './harness.ts';

const harness = setupBrowserStack({}, { chunkDelayMs: 0 });
let reader: string;
/** An operator's key: LLM budgets are an operator's to set. */
let operator: string;
let db: ReturnType<typeof createDb>;
/** What acme's two tasks used, as GET /usage sums it. */
let today = { prompt: 0, completion: 0, cost: 0 };

beforeAll(async () => {
  const { stack } = harness;
  const writer = await stack.key('acme', ['tasks:write', 'tasks:read']);
  reader = await stack.key('acme', ['tasks:read']);
  operator = await stack.key('ops', ['operator']);
  const other = await stack.key('globex', ['tasks:write', 'tasks:read']);
  const ids: string[] = [];
  for (const prompt of ['first question', 'second question'])
    ids.push(
      (
        await stack.api<{ id: string }>(writer, 'POST', '/tasks', {
          name: 'query_chatgpt',
          input: { prompt },
        })
      ).id,
    );
  const theirs = (
    await stack.api<{ id: string }>(other, 'POST', '/tasks', {
      name: 'query_chatgpt',
      input: { prompt: 'a question of globex' },
    })
  ).id;
  for (const id of ids) await waitForTask(stack, writer, id, (t) => t.status === 'COMPLETED');
  await waitForTask(stack, other, theirs, (t) => t.status === 'COMPLETED');
  db = createDb(stack.env.databaseUrl, { max: 1 });
  // A call of three days ago, in the ledger only (its task long gone).
  await db.sql`insert into task_llm_calls (tenant_id, task_id, task_name, attempt, base_url, model, prompt_tokens, completion_tokens, cost_usd, created_at)
    values ('acme', ${randomUUID()}, 'query_chatgpt', 1, 'http://fake/v1', 'gpt-4o', 4000, 1000, 1.5, now() - interval '3 days')`;
  const [row] = await db.sql<{ prompt: number; completion: number; cost: string }[]>`
    select sum(prompt_tokens)::int as prompt, sum(completion_tokens)::int as completion, sum(cost_usd)::text as cost
    from task_llm_calls where tenant_id = 'acme' and created_at > now() - interval '1 day'`;
  today = { prompt: row?.prompt ?? 0, completion: row?.completion ?? 0, cost: Number(row?.cost ?? 0) };
  expect(today.prompt).toBeGreaterThan(0);
}, 60_000);

afterAll(async () => {
  await db?.close();
});

describe(`the usage page (${testMode} mode)`, () => {
  it("shows the tenant's tokens and cost per day in a chart, and by task type and model", async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, reader, '/ui/');
    await page.getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('heading', { name: 'Usage' }).waitFor();
    const tokens = today.prompt + today.completion + 5000;
    const totals = page.getByTestId('usage-totals');
    await totals.filter({ hasText: `${tokens}tokens` }).waitFor();
    expect(await totals.textContent()).toContain('3calls');
    expect(await totals.textContent()).toContain('3tasks');
    // The chart: uPlot's canvas, and its legend's series.
    const chart = page.getByTestId('usage-chart');
    await chart.locator('canvas').waitFor();
    expect(await chart.textContent()).toContain('prompt tokens');
    expect(await chart.textContent()).toContain('cost (USD)');
    // Only acme's calls: globex's task is in no row.
    const byType = page.locator('[data-testid="usage-by-type"] tr[data-key="query_chatgpt"] td');
    await byType.first().waitFor();
    expect(await byType.allTextContents()).toEqual([
      'query_chatgpt',
      String(tokens),
      String(today.prompt + 4000),
      String(today.completion + 1000),
      expect.stringMatching(/^\$\d/),
      '3',
      '3',
    ]);
    await page.locator('[data-testid="usage-by-model"] tr[data-key="gpt-4o"]').waitFor();
    expect(
      await page.locator('[data-testid="usage-by-model"] tr[data-key="gpt-4o"] td').allTextContents(),
    ).toEqual(['gpt-4o', '5000', '4000', '1000', '$1.50', '1', '1']);
    await screenshot(page, 'usage');
    // 7 days still holds the call of 3 days ago; the buttons change the range.
    await page.getByRole('button', { name: '7 days' }).click();
    await totals.filter({ hasText: `${tokens}tokens` }).waitFor();
    expect(await page.getByTestId('usage-budgets').textContent()).toContain('No budget is set');
  });

  it("says when the tenant's LLM tasks are held: a budget reached, until when", async () => {
    await harness.stack.api(operator, 'PUT', '/tenants/acme/limits', { llm_tokens_per_day: 10 });
    const page = await openDashboard(harness.browser, harness.stack.url, reader, '/ui/usage');
    const held = page.getByTestId('budget-held');
    await held.waitFor();
    const midnight = new Date(
      Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1),
    );
    expect(await held.textContent()).toContain('llm_tokens_per_day');
    expect(await held.textContent()).toContain(midnight.toISOString());
    expect(await page.getByTestId('budget-tokens').textContent()).toMatch(/^\d+ \/ 10tokens today/);
    await screenshot(page, 'usage-held');
  });
});
