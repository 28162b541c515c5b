/**
 * The dashboard across a rolling deploy (issue 24): two servers behind a load balancer
 * (@tasker/testing's startBalancer), the dashboard opened through it on a task page while the task
 * streams its reply; each server in turn gets SIGTERM and starts again. The page's live stream
 * (tRPC onTaskActivity over the `eventsource` package) ends with the server's reconnect hint,
 * reconnects through the balancer with Last-Event-ID and resumes: the page reaches the final state
 * and the whole reply, without a reload and without a console error.
 */
import {
  type AppProcess,
  type Balancer,
  freePort,
  spawnApp,
  startBalancer,
  testMode,
  waitFor,
} from '@tasker/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { openDashboard, screenshot, setupBrowserStack, type TaskRecord } from './harness.ts';

const [port1, port2] = [await freePort(), await freePort()];
// The reply streams for some 22 s (about 225 words, 100 ms each).
const harness = setupBrowserStack({ PORT: String(port1) }, { chunkDelayMs: 100 });
const servers = new Map<string, AppProcess>();
let balancer: Balancer | undefined;

afterAll(async () => {
  await balancer?.close();
  // The stack's own close stops the first server process it started; these are the others.
  await Promise.all([...servers.values()].map((server) => server.stop('SIGKILL')));
});

describe(`the dashboard across a rolling restart (${testMode} mode)`, () => {
  it('keeps following a running task while each server restarts, and shows its final state and output', async () => {
    const { stack } = harness;
    const vars = { server1: stack.env.vars, server2: { ...stack.env.vars, PORT: String(port2) } };
    servers.set('server2', await spawnApp('server', vars.server2));
    balancer = await startBalancer([`http://127.0.0.1:${port1}`, `http://127.0.0.1:${port2}`]);
    const key = await stack.key('acme', ['tasks:write', 'tasks:read']);
    const task = await stack.api<TaskRecord>(key, 'POST', '/tasks', {
      name: 'query_chatgpt',
      input: { prompt: 'a long story' },
    });
    const page = await openDashboard(harness.browser, balancer.url, key, `/ui/tasks/${task.id}`);
    await page.evaluate(() => Object.assign(window, { rollingMark: 'unchanged' }));
    await page.getByTestId('task-partial').waitFor();
    // The reply grows on the page only by the stream's events: once it has grown, the stream has
    // delivered an event id, which its reconnection sends back (the first paint may come from the
    // task's query alone; a restart before any event would reconnect with no id to resume after).
    const partial = async () => (await page.getByTestId('task-partial').textContent())?.length ?? 0;
    const painted = await partial();
    await waitFor(async () => (await partial()) > painted, {
      timeoutMs: 20_000,
      what: "an event of the page's stream",
    });

    // First the server holding the page's stream (its stream resumes on the other at once), then
    // the other one.
    const urls = { server1: `http://127.0.0.1:${port1}`, server2: `http://127.0.0.1:${port2}` };
    const holding = await waitFor(() => balancer?.streams()[0], { what: "the page's stream" });
    const order =
      holding === urls.server1 ? (['server1', 'server2'] as const) : (['server2', 'server1'] as const);
    for (const name of order) {
      const running = servers.get(name) ?? stack.server;
      expect(await running.stop('SIGTERM'), `${name}'s exit code`).toBe(0);
      servers.set(name, await spawnApp('server', vars[name]));
    }
    await page
      .locator('[data-testid="task-detail"] [data-status="COMPLETED"]')
      .first()
      .waitFor({ timeout: 45_000 });
    await page.getByTestId('task-output').waitFor();
    await screenshot(page, 'rolling-restart');
    const output = (await page.getByTestId('task-output').textContent()) ?? '';
    expect(output).toContain('a long story');
    expect(output.match(/More words\./g)?.length).toBe(100);
    // The same document throughout: the page resumed its stream, it was not reloaded.
    expect(await page.evaluate(() => (window as unknown as { rollingMark?: string }).rollingMark)).toBe(
      'unchanged',
    );
    // The browser's stream was ended by a restart and came back with its last event id.
    expect(balancer.resumed).toBeGreaterThan(0);
  }, 120_000);
});
