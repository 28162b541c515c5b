import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LiveStack, startLiveStack } from './stack.ts';

const exec = promisify(execFile);
const sdkDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let project: string;
let stack: LiveStack;

const GOOD = `
import {
  createTaskerClient,
  TaskerNotFoundError,
  TaskerValidationError,
  TaskFailedError,
  type ListOptions,
  type ListResult,
  type RunOptions,
  type Task,
  type TaskUpdate,
} from '@tasker/sdk';

const tasker = createTaskerClient({
  url: process.env.TASKER_URL ?? 'http://localhost:5000',
  headers: { 'x-client': 'consumer' },
  retry: { attempts: 4, delayMs: 100, maxDelayMs: 500 },
});

const sum = await tasker.run('sum_two_numbers', { a: 2, b: 3 });
const five: number = await sum.result();

const letters = await tasker.run('find_longest_consecutive_letters', { string: 'aaabbccccdd' });
const updates: TaskUpdate<'find_longest_consecutive_letters'>[] = [];
for await (const update of letters.updates()) updates.push(update);
const four: number | null = updates[updates.length - 1]?.output ?? null;

const chat = await tasker.run('query_chatgpt', { prompt: 'hello' });
const reply: string = await chat.result();

const record: Task<'sum_two_numbers'> = await tasker.get<'sum_two_numbers'>(sum.id);
const again = await tasker.task<'sum_two_numbers'>(sum.id).get();
const viaTrpc = await tasker.trpc.getTaskOutput.query({ task_uuid: sum.id });

let notFound = false;
try {
  await tasker.get('00000000-0000-4000-8000-000000000000');
} catch (error) {
  notFound = error instanceof TaskerNotFoundError;
}
let invalid: string[] = [];
try {
  await tasker.run('sum_two_numbers', { a: 1 } as unknown as { a: number; b: number });
} catch (error) {
  if (error instanceof TaskerValidationError) invalid = error.issues.map((i) => i.path);
}
const failedClass = TaskFailedError.name;

const runOptions: RunOptions = { delayMs: 60_000, priority: 5, maxAttempts: 2, timeoutMs: 10_000, idempotencyKey: \`k-\${sum.id}\` };
const delayed = await tasker.run('sum_two_numbers', { a: 9, b: 9 }, runOptions);
const cancelled = await delayed.cancel();
const retried = await delayed.retry();
const later = await tasker.run('sum_two_numbers', { a: 1, b: 1 }, { runAt: new Date(Date.now() + 60_000) });
await later.cancel();
const listOptions: ListOptions = { limit: 2, createdAfter: new Date(Date.now() - 3_600_000), status: ['COMPLETED', 'PENDING', 'CANCELLED'] };
const page: ListResult = await tasker.list(listOptions);
const next = await tasker.list({ ...listOptions, cursor: page.nextCursor ?? undefined });

console.log(JSON.stringify({ five, four, reply, status: record.status, input: record.input, again: again.output, legacy: viaTrpc.task_output, notFound, invalid, failedClass, cancelled: cancelled.status, retried: retried.status, listed: page.tasks.length, more: page.nextCursor !== null, nextPage: next.tasks.length > 0 }));
`;

const BAD: Record<string, { code: string; source: string }> = {
  'bad-name.ts': {
    code: 'TS2345',
    source: `import { createTaskerClient } from '@tasker/sdk';
const tasker = createTaskerClient({ url: 'http://localhost:5000' });
await tasker.run('sum_two_numberz', { a: 1, b: 2 });
`,
  },
  'bad-param.ts': {
    code: 'TS2322',
    source: `import { createTaskerClient } from '@tasker/sdk';
const tasker = createTaskerClient({ url: 'http://localhost:5000' });
await tasker.run('sum_two_numbers', { a: '1', b: 2 });
`,
  },
  'bad-legacy-option.ts': {
    code: 'TS2561',
    source: `import { createTaskerClient } from '@tasker/sdk';
const tasker = createTaskerClient({ url: 'http://localhost:5000' });
await tasker.run('sum_two_numbers', { a: 1, b: 2 }, { delay_ms: 1000 });
`,
  },
  'bad-list-status.ts': {
    code: 'TS2322',
    source: `import { createTaskerClient } from '@tasker/sdk';
const tasker = createTaskerClient({ url: 'http://localhost:5000' });
await tasker.list({ status: 'DONE' });
`,
  },
  'bad-list-result.ts': {
    code: 'TS2551',
    source: `import { createTaskerClient } from '@tasker/sdk';
const tasker = createTaskerClient({ url: 'http://localhost:5000' });
const page = await tasker.list();
console.log(page.next_cursor);
`,
  },
  'bad-retry-option.ts': {
    code: 'TS2322',
    source: `import { createTaskerClient } from '@tasker/sdk';
createTaskerClient({ url: 'http://localhost:5000', retry: true });
`,
  },
  'bad-result.ts': {
    code: 'TS2322',
    source: `import { createTaskerClient } from '@tasker/sdk';
const tasker = createTaskerClient({ url: 'http://localhost:5000' });
const task = await tasker.run('sum_two_numbers', { a: 1, b: 2 });
const text: string = await task.result();
`,
  },
};

async function tsc(file: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout } = await exec(
      path.join(project, 'node_modules', '.bin', 'tsc'),
      ['-p', `tsconfig.${file}.json`],
      {
        cwd: project,
      },
    );
    return { ok: true, output: stdout };
  } catch (error) {
    return { ok: false, output: String((error as { stdout?: string }).stdout ?? error) };
  }
}

/**
 * `npm install` in the consumer project, as a user would, made to survive a registry that fails now
 * and then: npm's own fetch retries for what it retries (timeouts, resets, 5xx), and up to three
 * whole installs for what it does not (a TLS error on one tarball, seen on this kind of machine).
 * The registry settings that matter are passed on unchanged from the environment (CI exports
 * NPM_CONFIG_GLOBALCONFIG: with a Node from the registry first on PATH, npm would otherwise read its
 * global config from that Node's folder, not the machine's, and miss its `cafile`).
 */
async function npmInstall(dir: string): Promise<void> {
  const args = [
    'install',
    '--no-audit',
    '--no-fund',
    '--loglevel=error',
    '--prefer-offline',
    '--fetch-retries=3',
    '--fetch-retry-mintimeout=1000',
    '--fetch-retry-maxtimeout=10000',
  ];
  for (let attempt = 1; ; attempt++) {
    try {
      // Bounded: npm retrying a fetch it cannot make (a missing CA, say) would otherwise run silently
      // until the hook's timeout, saying nothing of why.
      await exec('npm', args, { cwd: dir, timeout: 150_000, killSignal: 'SIGKILL' });
      return;
    } catch (error) {
      const stderr = String((error as { stderr?: string }).stderr ?? error);
      if (attempt >= 3) throw new Error(`npm install failed ${attempt} times; the last:\n${stderr}`);
      process.stderr.write(
        `[pack test] npm install failed (attempt ${attempt} of 3), retrying: ${stderr.trim().split('\n').slice(-3).join(' | ')}\n`,
      );
      rmSync(path.join(dir, 'node_modules'), { recursive: true, force: true });
      rmSync(path.join(dir, 'package-lock.json'), { force: true });
      await new Promise((resolve) => setTimeout(resolve, 5000 * attempt));
    }
  }
}

function tsconfigFor(file: string, emit: boolean) {
  writeFileSync(
    path.join(project, `tsconfig.${file}.json`),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        types: ['node'],
        skipLibCheck: true,
        ...(emit ? { outDir: 'out' } : { noEmit: true }),
      },
      files: [file],
    }),
  );
}

beforeAll(async () => {
  // Pack the SDK as it would be published, and install the tarball in a project outside the workspace.
  project = mkdtempSync(path.join(tmpdir(), 'tasker-sdk-consumer-'));
  const packs = path.join(project, 'packs');
  mkdirSync(packs);
  await exec('pnpm', ['pack', '--pack-destination', packs], { cwd: sdkDir });
  const tarball = path.join(packs, readdirSync(packs)[0] ?? '');
  writeFileSync(
    path.join(project, 'package.json'),
    JSON.stringify({
      name: 'consumer',
      private: true,
      type: 'module',
      dependencies: { '@tasker/sdk': `file:${tarball}`, typescript: '6.0.3', '@types/node': '^22.20.7' },
    }),
  );
  await npmInstall(project);
  stack = await startLiveStack();
}, 600_000); // up to three installs, each of which may fetch from the registry

afterAll(async () => {
  await stack?.close();
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('the packed @tasker/sdk, installed outside the workspace', () => {
  it('depends on no workspace package, at runtime or in its types', () => {
    const installed = path.join(project, 'node_modules', '@tasker', 'sdk');
    const manifest = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8'));
    const deps = Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies });
    expect(deps.filter((d) => d.startsWith('@tasker/'))).toEqual([]);
    for (const file of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts']) {
      expect(readFileSync(path.join(installed, file), 'utf8')).not.toMatch(/['"]@tasker\//);
    }
    expect(readdirSync(path.join(project, 'node_modules', '@tasker'))).toEqual(['sdk']);
    // The router's type carries the server's context: it must name no server package either.
    for (const file of ['dist/index.d.ts', 'dist/index.d.cts']) {
      const text = readFileSync(path.join(installed, file), 'utf8');
      const imported = [...text.matchAll(/from ['"]([^'"]+)['"]/g)].map((m) => m[1] ?? '');
      expect(
        imported.filter((m) => !/^(@trpc\/(client|server)(\/.*)?|zod)$/.test(m)),
        file,
      ).toEqual([]);
    }
  });

  it('type-checks the README examples', async () => {
    // This package's README, and the SDK example of the project README.
    const readmes = [path.join(sdkDir, 'README.md'), path.join(sdkDir, '..', '..', 'README.md')];
    const blocks = readmes
      .flatMap((file) =>
        [...readFileSync(file, 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? ''),
      )
      .filter((block) => block.includes("from '@tasker/sdk'"));
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    for (const [i, block] of blocks.entries()) {
      const file = `readme-${i}.ts`;
      writeFileSync(path.join(project, file), block);
      tsconfigFor(file, false);
      const result = await tsc(file);
      expect(result, `README example ${i}`).toMatchObject({ ok: true });
    }
  });

  it('a consumer using every call type-checks and runs against a live server', async () => {
    writeFileSync(path.join(project, 'good.ts'), GOOD);
    tsconfigFor('good.ts', true);
    expect(await tsc('good.ts')).toMatchObject({ ok: true });
    const { stdout } = await exec(process.execPath, [path.join(project, 'out', 'good.js')], {
      env: { ...process.env, TASKER_URL: stack.url },
    });
    expect(JSON.parse(stdout)).toEqual({
      five: 5,
      four: 4,
      reply: 'one two three four five six seven eight',
      status: 'COMPLETED',
      input: { a: 2, b: 3 },
      again: 5,
      legacy: { status: 'COMPLETED', result: 5, error: null },
      notFound: true,
      invalid: ['task_parameters.b'],
      failedClass: 'TaskFailedError',
      cancelled: 'CANCELLED',
      retried: 'PENDING',
      listed: 2,
      more: true,
      nextPage: true,
    });
  });

  it('runs from CommonJS too, live updates included (eventsource 5 is ESM-only: the .cjs build relies on require(esm))', async () => {
    writeFileSync(
      path.join(project, 'consumer.cjs'),
      `const { createTaskerClient } = require('@tasker/sdk');
(async () => {
  const tasker = createTaskerClient({ url: process.env.TASKER_URL });
  const task = await tasker.run('find_longest_consecutive_letters', { string: 'aaabbccccdd' });
  const updates = [];
  for await (const update of task.updates()) updates.push(update);
  const last = updates[updates.length - 1];
  console.log(JSON.stringify({ entry: require.resolve('@tasker/sdk'), status: last.status, output: last.output }));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
`,
    );
    const { stdout } = await exec(process.execPath, [path.join(project, 'consumer.cjs')], {
      cwd: project,
      env: { ...process.env, TASKER_URL: stack.url },
    });
    const result = JSON.parse(stdout);
    expect(result.entry).toMatch(/index\.cjs$/);
    expect(result).toMatchObject({ status: 'COMPLETED', output: 4 });
  });

  it.each(Object.entries(BAD))('%s fails to type-check', async (file, { code, source }) => {
    writeFileSync(path.join(project, file), source);
    tsconfigFor(file, false);
    const result = await tsc(file);
    expect(result.ok).toBe(false);
    expect(result.output).toContain(code);
  });
});
