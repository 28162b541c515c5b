import {
  type AppProcess,
  createTestEnv,
  type FakeOpenAI,
  freePort,
  spawnApp,
  startFakeOpenAI,
  type TestEnv,
  waitFor,
} from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, type Run, tasker as runTasker } from './run.ts';

/**
 * The prompt's words come back one per 300 ms (24 words: 7 s), so the progress writes (every 200 ms
 * at most) see most of them, and a CLI process started on a busy machine still sees the reply grow.
 */
const PROMPT = Array.from({ length: 24 }, (_, i) => `word${i + 1}`).join(' ');
const REPLY = `echo: ${PROMPT}`;

let env: TestEnv;
let fake: FakeOpenAI;
let server: AppProcess;
let authServer: AppProcess;
let worker: AppProcess;

/** The CLI against the server (no key), `vars` over it; `live` sees its output as it comes. */
const tasker = (args: string[], vars: Record<string, string> = {}, live?: (run: Run) => void) =>
  runTasker(args, { TASKER_URL: server.url ?? '', TASKER_API_KEY: '', ...vars }, live);

/** A failure is exactly one line on stderr, naming the CLI. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter(Boolean);
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^tasker: /);
  return lines[0] ?? '';
}

beforeAll(async () => {
  assertBuilt();
  fake = await startFakeOpenAI({ chunkDelayMs: 300 });
  env = createTestEnv({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: fake.baseURL });
  server = await spawnApp('server', { ...env.vars, LOG_LEVEL: 'info' });
  // A second server on the same database and queue, with API keys required (as NODE_ENV=production has it).
  authServer = await spawnApp('server', { ...env.vars, LOG_LEVEL: 'info', AUTH_MODE: 'required' });
  worker = await spawnApp('worker', { ...env.vars, LOG_LEVEL: 'info' });
}, 60_000);

afterAll(async () => {
  await Promise.all([server?.stop(), authServer?.stop(), worker?.stop()]);
  await fake?.close();
  await env?.cleanup();
});

describe('tasker run', () => {
  it('--wait prints the result, and nothing else', async () => {
    const run = await tasker(['run', 'sum_two_numbers', '--param', 'a=1', '--param', 'b=2.5', '--wait']);
    expect(run).toMatchObject({ code: 0, stdout: '3.5\n', stderr: '' });
  });

  it('without --wait prints the id; get, list and --json show the task', async () => {
    const submitted = await tasker(['run', 'find_longest_consecutive_letters', '--param', 'string=abbbcc']);
    expect(submitted.code, submitted.stderr).toBe(0);
    const id = submitted.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const waited = await tasker([
      'run',
      'sum_two_numbers',
      '--input',
      '{"a": 2}',
      '--param',
      'b=40',
      '--wait',
      '--json',
    ]);
    expect(waited.code, waited.stderr).toBe(0);
    const record = JSON.parse(waited.stdout) as Record<string, unknown>;
    expect(record).toMatchObject({
      name: 'sum_two_numbers',
      status: 'COMPLETED',
      input: { a: 2, b: 40 },
      output: 42,
    });

    const got = await tasker(['get', id, '--json']);
    expect(JSON.parse(got.stdout)).toMatchObject({
      id,
      name: 'find_longest_consecutive_letters',
      input: { string: 'abbbcc' },
    });
    const human = await tasker(['get', id]);
    expect(human.stdout).toMatch(
      /^id\s+[0-9a-f-]{36}\ntype\s+find_longest_consecutive_letters\nstatus\s+\w+/,
    );

    const listed = await tasker([
      'list',
      '--type',
      'sum_two_numbers',
      '--status',
      'COMPLETED',
      '--limit',
      '5',
      '--json',
    ]);
    const page = JSON.parse(listed.stdout) as {
      tasks: { id: string; name: string }[];
      nextCursor: string | null;
    };
    expect(page.tasks.map((t) => t.id)).toContain(record.id);
    expect(new Set(page.tasks.map((t) => t.name))).toEqual(new Set(['sum_two_numbers']));
    const table = await tasker(['list', '--limit', '50']);
    expect(table.stdout.split('\n')[0]).toMatch(
      /^ID\s+TYPE\s+STATUS\s+ATTEMPTS\s+KEY\s+CREATED\s+FINISHED\s+TAGS\s+INPUT$/,
    );
    expect(table.stdout).toContain(id);
  });

  it('--json without --wait prints the task record as JSON', async () => {
    const run = await tasker(['run', 'sum_two_numbers', '--param', 'a=1', '--param', 'b=1', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const record = JSON.parse(run.stdout) as {
      id: string;
      name: string;
      input: unknown;
      maxAttempts: number;
    };
    expect(record).toMatchObject({ name: 'sum_two_numbers', input: { a: 1, b: 1 }, maxAttempts: 1 });
  });

  it('a bad parameter: exit 2 and the server’s message in one line, nothing on stdout', {
    timeout: 120_000,
  }, async () => {
    const run = await tasker(['run', 'sum_two_numbers', '--param', 'a=1', '--param', 'b=abc', '--wait']);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(oneLine(run.stderr)).toBe(
      'tasker: task_parameters.b: Invalid input: expected number, received string',
    );

    const missing = await tasker(['run', 'sum_two_numbers', '--param', 'a=1']);
    expect(missing.code).toBe(2);
    expect(oneLine(missing.stderr)).toContain('task_parameters.b');

    const unknown = await tasker(['run', 'no_such_task', '--param', 'a=1']);
    expect(unknown.code).toBe(2);
    expect(oneLine(unknown.stderr)).toMatch(/^tasker: task_name: /);

    for (const args of [
      ['run', 'sum_two_numbers', '--param', 'novalue'],
      ['run', 'sum_two_numbers', '--input', '[1, 2]'],
      ['list', '--limit', '0'],
      ['list', '--status', 'DONE'],
      ['get', 'not-a-uuid'],
      ['run'],
      ['frobnicate'],
    ]) {
      const bad = await tasker(args);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(bad.stdout, args.join(' ')).toBe('');
      expect(bad.stderr.trim().split('\n'), `${args.join(' ')}: ${bad.stderr}`).toHaveLength(1);
    }
  });

  it('a server that is not there: exit 3, one line', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const run = await tasker(['run', 'sum_two_numbers', '--param', 'a=1', '--param', 'b=2'], {
      TASKER_URL: url,
    });
    expect(run.code).toBe(3);
    expect(oneLine(run.stderr)).toMatch(
      new RegExp(`^tasker: cannot reach the Tasker server at ${url}: .*ECONNREFUSED`),
    );
    const get = await tasker(['get', '00000000-0000-4000-8000-000000000000', '--url', url]);
    expect(get.code).toBe(3);
  });

  it('no such task: exit 5', async () => {
    const run = await tasker(['get', '00000000-0000-4000-8000-000000000000']);
    expect(run.code).toBe(5);
    oneLine(run.stderr);
    expect((await tasker(['watch', '00000000-0000-4000-8000-000000000000'])).code).toBe(5);
  });
});

describe('tasker watch', () => {
  it('streams the reply of a query_chatgpt piece by piece, in order, then exits 0', async () => {
    const submitted = await tasker(['run', 'query_chatgpt', '--param', `prompt=${PROMPT}`]);
    const id = submitted.stdout.trim();
    const watch = await tasker(['watch', id]);
    expect(watch.code, watch.stderr).toBe(0);
    expect(watch.stdout).toBe(`${REPLY}\n`);
    // Several pieces, over time, each one the next part of the reply.
    const pieces = watch.chunks.filter((c) => c.text.trim() !== '');
    expect(pieces.length, JSON.stringify(watch.chunks)).toBeGreaterThanOrEqual(4);
    const [first, last] = [pieces[0], pieces.at(-1)];
    expect((last?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThan(900);
    let sofar = '';
    for (const piece of watch.chunks) {
      sofar += piece.text;
      expect(`${REPLY}\n`.startsWith(sofar)).toBe(true);
    }
    expect(first?.text.length).toBeLessThan(REPLY.length / 2);
    // The statuses went to stderr, one line each.
    expect(watch.stderr).toMatch(/RUNNING \(attempt 1 of 3\)\n[\s\S]*COMPLETED\n$/);
    // What its model call used, on its record.
    const got = await tasker(['get', id]);
    expect(got.stdout).toMatch(
      /model usage +[1-9]\d* \+ [1-9]\d* tokens, 1 calls \(gpt-4o-mini\), \$0\.0\d*[1-9]/,
    );
  });

  it("shows a durable task's steps as they are written, between its statuses", async () => {
    const run = await tasker([
      'run',
      'summarize_documents',
      '--input',
      JSON.stringify({ documents: ['one', 'two'] }),
      '--watch',
    ]);
    expect(run.code, run.stderr).toBe(0);
    // Its fan-out's step: begun (the parent waits for its children), then done; then its end. When
    // the stream opened before the task waited: RUNNING (unless it opened between the two), WAITING,
    // then the step as it is written. When the task was already WAITING (on a busy machine the CLI's
    // start can take seconds): a stream starts with the steps recorded so far, then the task's
    // state, so the step comes first.
    const waiting = String.raw`[^\n]*WAITING \(waiting for 2 child tasks\)\n`;
    const stepWaiting = String.raw` {2}step \$children:0 waiting\n`;
    expect(run.stderr).toMatch(
      new RegExp(
        String.raw`(?:(?:[^\n]*RUNNING \(attempt 1 of 3\)\n)?${waiting}${stepWaiting}|${stepWaiting}${waiting})` +
          String.raw`[^\n]*PENDING \(its wait is over: it resumes\)\n[^\n]*RUNNING \(attempt 1 of 3\)\n {2}step \$children:0 completed\n[^\n]*COMPLETED\n$`,
      ),
    );
    // The fake model echoes each child's prompt: the summaries in the documents' order.
    const { summaries } = JSON.parse(run.stdout) as { summaries: string[] };
    expect(summaries.map((text) => text.split('\n').at(-1))).toEqual(['one', 'two']);
  }, 60_000);

  it('run --watch does the same from the submission; --watch --json is one JSON line per update', async () => {
    const run = await tasker(['run', 'query_chatgpt', '--param', `prompt=${PROMPT}`, '--watch']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe(`${REPLY}\n`);
    expect(run.chunks.filter((c) => c.text.trim() !== '').length).toBeGreaterThanOrEqual(4);

    const json = await tasker(['run', 'query_chatgpt', '--param', `prompt=${PROMPT}`, '--watch', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const updates = json.stdout
      .trim()
      .split('\n')
      .map(
        (line) =>
          JSON.parse(line) as {
            status: string;
            version: number;
            progress: { partial?: string } | null;
            output: unknown;
          },
      );
    expect(updates.at(-1)).toMatchObject({ status: 'COMPLETED', output: REPLY });
    const partials = updates
      .map((u) => u.progress?.partial)
      .filter((p): p is string => typeof p === 'string');
    expect(new Set(partials).size).toBeGreaterThanOrEqual(3);
    const versions = updates.map((u) => u.version);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
  });

  it('a cancelled task: run --wait exits 1 with one line; retry runs it again, watch follows it', async () => {
    let waited: Run | undefined;
    const waiting = tasker(['run', 'query_chatgpt', '--param', `prompt=${PROMPT}`, '--wait'], {}, (run) => {
      waited = run;
    });
    const id = await waitFor(
      async () => {
        const running = await tasker(['list', '--status', 'RUNNING', '--type', 'query_chatgpt', '--json']);
        return (JSON.parse(running.stdout) as { tasks: { id: string }[] }).tasks[0]?.id;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'the task to run' },
    );
    const cancel = await tasker(['cancel', id]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`^${id} (CANCELLED|RUNNING \\(cancellation requested)`));
    const ended = await waiting;
    expect(waited).toBeDefined();
    expect(ended.code).toBe(1);
    expect(ended.stdout).toBe('');
    expect(oneLine(ended.stderr)).toMatch(new RegExp(`^tasker: task ${id} was cancelled`));

    const again = await tasker(['cancel', id]);
    expect(again.code).toBe(5);
    expect(oneLine(again.stderr)).toMatch(/only a PENDING, RUNNING or WAITING task can be cancelled/);

    const retried = await tasker(['retry', id, '--json']);
    expect(retried.code, retried.stderr).toBe(0);
    expect(JSON.parse(retried.stdout)).toMatchObject({ id, status: 'PENDING' });
    const done = await tasker(['watch', id]);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toBe(`${REPLY}\n`);
  });
});

describe('tasker queue', () => {
  it('shows depths, pauses and resumes one task type', async () => {
    const state = await tasker(['queue', '--json']);
    expect(state.code, state.stderr).toBe(0);
    expect(JSON.parse(state.stdout)).toMatchObject({ paused: false, pausedTypes: [], suspended: 0 });
    const paused = await tasker(['queue', 'pause', '--type', 'sum_two_numbers', '--json']);
    expect(JSON.parse(paused.stdout)).toMatchObject({ paused: false, pausedTypes: ['sum_two_numbers'] });
    const human = await tasker(['queue']);
    expect(human.stdout).toMatch(/^processing\s+running\npaused types\s+sum_two_numbers\nwaiting\s+\d+\n/);
    expect(human.stdout).toMatch(/\nsuspended \(WAITING\)\s+0\n/);
    const resumed = await tasker(['queue', 'resume', '--type', 'sum_two_numbers']);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/paused types\s+-\n/);
    const bad = await tasker(['queue', 'pause', '--type', 'nope']);
    expect(bad.code).toBe(2);
    oneLine(bad.stderr);
  });
});

describe('with AUTH_MODE=required', () => {
  it('a key from `tasker keys create` works; none, or one without the scope, is exit 4 with one line', async () => {
    // `keys create` makes keys for a server run with AUTH_MODE=required: the same variable here.
    const keys = { DATABASE_URL: env.databaseUrl, TASKER_URL: authServer.url ?? '', AUTH_MODE: 'required' };
    const create = async (scopes: string) => {
      const made = await tasker(
        ['keys', 'create', '--tenant', 'acme', '--name', scopes, '--scopes', scopes],
        keys,
      );
      expect(made.code, made.stderr).toBe(0);
      return made.stdout.trim();
    };
    const writer = await create('tasks:write,tasks:read');
    const reader = await create('tasks:read');
    const admin = await create('admin');
    const operator = await create('operator');

    const anonymous = await tasker(
      ['run', 'sum_two_numbers', '--param', 'a=1', '--param', 'b=2', '--wait'],
      keys,
    );
    expect(anonymous.code).toBe(4);
    expect(oneLine(anonymous.stderr)).toMatch(/\(401\)$/);

    const ok = await tasker(['run', 'sum_two_numbers', '--param', 'a=1', '--param', 'b=2', '--wait'], {
      ...keys,
      TASKER_API_KEY: writer,
    });
    expect(ok).toMatchObject({ code: 0, stdout: '3\n' });
    const viaFlag = await tasker(['list', '--json', '--api-key', writer], keys);
    expect((JSON.parse(viaFlag.stdout) as { tasks: unknown[] }).tasks).toHaveLength(1); // tenant acme's only

    const readOnly = await tasker(['run', 'sum_two_numbers', '--param', 'a=1', '--param', 'b=2'], {
      ...keys,
      TASKER_API_KEY: reader,
    });
    expect(readOnly.code).toBe(4);
    expect(oneLine(readOnly.stderr)).toMatch(/\(403\)$/);

    const notAdmin = await tasker(['queue'], { ...keys, TASKER_API_KEY: writer });
    expect(notAdmin.code).toBe(4);
    // The queue is every tenant's: a tenant's admin key is refused it, an operator key is not.
    const tenantAdmin = await tasker(['queue', 'pause', '--type', 'sum_two_numbers'], {
      ...keys,
      TASKER_API_KEY: admin,
    });
    expect(tenantAdmin.code).toBe(4);
    expect(oneLine(tenantAdmin.stderr)).toMatch(/operator.*\(403\)$/);
    const queue = await tasker(['queue', '--json'], { ...keys, TASKER_API_KEY: operator });
    expect(queue.code, queue.stderr).toBe(0);
    expect(JSON.parse(queue.stdout)).toMatchObject({ paused: false });

    const wrong = await tasker(['get', '00000000-0000-4000-8000-000000000000'], {
      ...keys,
      TASKER_API_KEY: 'tsk_not-a-real-key',
    });
    expect(wrong.code).toBe(4);
    oneLine(wrong.stderr);
  }, 180_000);
});
