import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ApiKeyScope, ApiKeyStore, createDb } from '@tasker/db';
import {
  type AppProcess,
  createTestEnv,
  type FakeOpenAI,
  spawnApp,
  startFakeOpenAI,
  type TestEnv,
  waitFor,
} from '@tasker/testing';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = path.resolve(here, '../test-output/screenshots');
const DIST = path.resolve(here, '../dist/index.html');

/** Debian's Chromium (apt-get install -y chromium), driven by playwright-core: nothing is downloaded. */
export const CHROMIUM = process.env.TASKER_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox', // needed as root
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  /**
   * A new tab (its own sessionStorage) that fails the test on any console error, page error or
   * request to anything but the server under test.
   */
  page(): Promise<Page>;
  /** Console errors and page errors seen so far, in every tab. */
  problems: string[];
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium`);
  if (!existsSync(DIST)) throw new Error('The dashboard is not built: pnpm --filter @tasker/dashboard build');
  const profile = await mkdtemp(path.join(tmpdir(), 'tasker-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1360, height: 900 },
    locale: 'en-GB',
    timezoneId: 'UTC',
  });
  // Room for a loaded machine (CI's 2 cores with benchmarks beside it: two waits of 15 s ran out
  // there, a cancel shown and the docs page rendered): a real fault still fails, later.
  context.setDefaultTimeout(30_000);
  const problems: string[] = [];
  for (const existing of context.pages()) await existing.close();
  return {
    context,
    problems,
    page: async () => {
      const page = await context.newPage();
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console error: ${message.text()} (${page.url()})`);
      });
      page.on('pageerror', (error) => problems.push(`page error: ${error.message} (${page.url()})`));
      // Everything comes from the server under test: no CDN, no web font, nothing from the internet.
      page.on('request', (request) => {
        if (!/^(http:\/\/127\.0\.0\.1[:/]|data:|blob:)/.test(request.url()))
          problems.push(`request outside the server under test: ${request.url()}`);
      });
      return page;
    },
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

export interface Stack {
  env: TestEnv;
  url: string;
  server: AppProcess;
  worker?: AppProcess;
  openai: FakeOpenAI;
  /** A new API key (created in PostgreSQL, as `tasker keys create` does). */
  key(tenant: string, scopes: ApiKeyScope[]): Promise<string>;
  /** A REST call with a key; throws unless the status is 2xx. */
  api<T>(key: string, method: string, route: string, body?: unknown): Promise<T>;
  close(): Promise<void>;
}

/** A real server and worker (built processes) on a database and key prefix of their own, and a fake OpenAI. */
export async function startStack(
  vars: Record<string, string> = {},
  { worker = true, chunkDelayMs = 80 } = {},
): Promise<Stack> {
  const openai = await startFakeOpenAI({
    chunkDelayMs,
    reply: (prompt) =>
      `Here is a reply to "${prompt}" that arrives one word at a time so that the dashboard can show it growing while it streams in.${
        // Long enough to be watched (40 more words) or cancelled (200 more) while it streams, however slow the machine.
        prompt.includes('long')
          ? ' More words.'.repeat(100)
          : prompt.includes('story')
            ? ' And then?'.repeat(20)
            : ''
      }`,
  });
  const env = createTestEnv({
    AUTH_MODE: 'required',
    RATE_LIMIT_PER_MINUTE: '0',
    OPENAI_API_KEY: 'sk-test',
    OPENAI_BASE_URL: openai.baseURL,
    DATABASE_POOL_SIZE: '3',
    ...vars,
  });
  let server: AppProcess | undefined;
  let workerProcess: AppProcess | undefined;
  const db = { client: undefined as ReturnType<typeof createDb> | undefined };
  try {
    server = await spawnApp('server', env.vars);
    workerProcess = worker ? await spawnApp('worker', env.vars) : undefined;
  } catch (error) {
    await workerProcess?.stop();
    await server?.stop();
    await openai.close();
    await env.cleanup();
    throw error;
  }
  const url = server.url ?? '';
  const running = server;
  return {
    env,
    url,
    server,
    worker: workerProcess,
    openai,
    key: async (tenant, scopes) => {
      db.client ??= createDb(env.databaseUrl, { max: 1 });
      return (await new ApiKeyStore(db.client.db).create({ tenantId: tenant, name: 'browser-test', scopes }))
        .key;
    },
    api: async <T>(key: string, method: string, route: string, body?: unknown): Promise<T> => {
      const res = await fetch(`${url}${route}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${route} answered ${res.status}: ${text}`);
      return JSON.parse(text) as T;
    },
    close: async () => {
      await workerProcess?.stop();
      await running.stop();
      await db.client?.close();
      await openai.close();
      await env.cleanup();
    },
  };
}

export interface TaskRecord {
  id: string;
  name: string;
  status: string;
  input: unknown;
  output: unknown;
  progress: unknown;
  createdAt: string;
}

/** Polls GET /tasks/{id} until `done` holds. */
export function waitForTask(
  stack: Stack,
  key: string,
  id: string,
  done: (task: TaskRecord) => boolean,
  timeoutMs = 15_000,
): Promise<TaskRecord> {
  return waitFor(
    async () => {
      const task = await stack.api<TaskRecord>(key, 'GET', `/tasks/${id}`);
      return done(task) ? task : undefined;
    },
    { timeoutMs, intervalMs: 50, what: `task ${id}` },
  );
}

/** Opens the dashboard in a new tab and enters `key` in its key form (none when AUTH_MODE=disabled). */
export async function openDashboard(
  browser: Browser,
  url: string,
  key?: string,
  path = '/ui/',
): Promise<Page> {
  const page = await browser.page();
  await page.goto(`${url}${path}`);
  if (key) {
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
  }
  await page.getByTestId('whoami').waitFor();
  return page;
}

/** The stack and the browser of a test file, once its beforeAll has run. */
export interface BrowserStack {
  readonly stack: Stack;
  readonly browser: Browser;
}

/**
 * A stack (startStack's `vars` and options) and a browser for the test file that calls it, from its
 * beforeAll (registered here, so before the file's own) to its afterAll. After each test, every tab
 * is closed and a console error or page error seen in it fails the test. (Not named use…: biome
 * takes that for a React hook, which this is not.)
 */
export function setupBrowserStack(
  vars: Record<string, string> = {},
  options: Parameters<typeof startStack>[1] = {},
): BrowserStack {
  let stack: Stack | undefined;
  let browser: Browser | undefined;
  beforeAll(async () => {
    // Both awaited, each kept if it started, so that afterAll closes it when the other failed.
    const [started, launched] = await Promise.allSettled([startStack(vars, options), launchBrowser()]);
    if (started.status === 'fulfilled') stack = started.value;
    if (launched.status === 'fulfilled') browser = launched.value;
    if (started.status === 'rejected') throw started.reason;
    if (launched.status === 'rejected') throw launched.reason;
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });
  afterEach(async () => {
    if (!browser) return;
    for (const page of browser.context.pages()) await page.close();
    expect(browser.problems.splice(0), 'console errors or page errors in the browser').toEqual([]);
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('setupBrowserStack: the stack and browser start in beforeAll');
    return value;
  };
  return {
    get stack() {
      return ready(stack);
    },
    get browser() {
      return ready(browser);
    },
  };
}
