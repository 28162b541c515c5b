/**
 * The queue page's limits, in a real browser: a tenant admin sees its tenant's limits and its
 * running and queued tasks (live, within a refresh), an operator also every tenant, a read-only key
 * neither. No worker: submitted tasks stay PENDING.
 */
import { testMode } from '@tasker/testing';
import type { Request } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { openDashboard, screenshot, setupBrowserStack } from './harness.ts';

const harness = setupBrowserStack({ TENANT_MAX_RUNNING: '4' }, { worker: false });
let tenantAdmin: string;
let operator: string;
let reader: string;

beforeAll(async () => {
  tenantAdmin = await harness.stack.key('acme', ['tasks:write', 'tasks:read', 'admin']);
  operator = await harness.stack.key('ops', ['tasks:read', 'operator']);
  reader = await harness.stack.key('acme', ['tasks:read']);
  await harness.stack.key('globex', ['tasks:read']);
});

describe(`limits on the queue page (${testMode} mode)`, () => {
  it("a tenant admin sees its tenant's limits and its running and queued tasks, as they change", async () => {
    await harness.stack.api(tenantAdmin, 'PUT', '/tenants/acme/limits', { max_queued: 3 });
    const page = await openDashboard(harness.browser, harness.stack.url, tenantAdmin, '/ui/queue');
    const card = page.getByTestId('tenant-limits');
    await card.getByText('Limits of tenant acme').waitFor();
    await page.getByTestId('limit-queued').filter({ hasText: '0 / 3' }).waitFor();
    expect(await page.getByTestId('limit-queued').textContent()).toContain('set for this tenant');
    expect(await page.getByTestId('limit-running').textContent()).toMatch(/0 \/ 4.*max 4, the default/);
    expect(await page.getByTestId('limit-starts').textContent()).toContain('none');
    for (let i = 0; i < 2; i++)
      await harness.stack.api(tenantAdmin, 'POST', '/tasks', {
        name: 'sum_two_numbers',
        input: { a: i, b: 1 },
        delay_ms: 3_600_000,
      });
    await page.getByTestId('limit-queued').filter({ hasText: '2 / 3' }).waitFor();
    await screenshot(page, 'queue-limits');
    // Not an operator: no tenants list, no queue controls.
    expect(await page.getByTestId('tenants').count()).toBe(0);
    expect(await page.getByRole('button', { name: /Pause|Resume/ }).count()).toBe(0);
  });

  it('an operator sees every tenant with its limits and counts', async () => {
    await harness.stack.api(operator, 'PUT', '/tenants/globex/limits', {
      max_running: 1,
      starts_per_minute: 30,
    });
    // What the page asks: its own tenant's row comes with the list of tenants.
    const asked: string[] = [];
    const record = (request: Request) => asked.push(request.url());
    harness.browser.context.on('request', record);
    const page = await openDashboard(harness.browser, harness.stack.url, operator, '/ui/queue');
    const globex = page.locator('tr[data-tenant="globex"]');
    await globex.waitFor();
    expect(await globex.locator('td').allTextContents()).toEqual([
      'globex',
      '0 / 1',
      '0',
      '30',
      'set for this tenant',
    ]);
    const acme = page.locator('tr[data-tenant="acme"]');
    expect(await acme.textContent()).toContain('2 / 3');
    await page.getByTestId('tenant-limits').getByText('Limits of tenant ops').waitFor();
    await page.getByTestId('limit-running').filter({ hasText: '0 / 4' }).waitFor();
    harness.browser.context.off('request', record);
    expect(asked.some((url) => url.includes('listTenants'))).toBe(true);
    expect(asked.filter((url) => url.includes('getTenantLimits'))).toEqual([]);
    await screenshot(page, 'queue-tenants');
  });

  it('a read-only key sees neither, and a line saying why', async () => {
    const page = await openDashboard(harness.browser, harness.stack.url, reader, '/ui/queue');
    await page.getByText("Your tenant's limits and counts need a key with the admin scope").waitFor();
    expect(await page.getByTestId('tenant-limits').count()).toBe(0);
    expect(await page.getByTestId('tenants').count()).toBe(0);
  });
});
