/**
 * The served OpenAPI document: clean under `redocly lint --extends=recommended`, and true to what the
 * routes answer (one error shape, the statuses each route can give, words for every operation).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './helpers.ts';

const run = promisify(execFile);
const redocly = join(import.meta.dirname, '..', 'node_modules', '.bin', 'redocly');

/**
 * The only problems ignored, each for a reason: `operation-4xx-response` wants a 4xx on every
 * operation, but /healthz and /readyz answer none (they take no input, need no key and are not
 * rate-limited); documenting one would make the document untrue.
 */
const IGNORED = `openapi.json:
  operation-4xx-response:
    - '#/paths/~1healthz/get/responses'
    - '#/paths/~1readyz/get/responses'
`;

/** The hand-written routes open to anyone (no key, no 401). */
const OPEN_PATHS = ['/healthz', '/readyz', '/openapi.json', '/metrics'];

interface Operation {
  operationId: string;
  description?: string;
  security?: unknown[];
  parameters?: { name: string; description?: string }[];
  requestBody?: { required?: boolean };
  responses: Record<
    string,
    { description: string; content?: Record<string, { schema?: { $ref?: string } }> }
  >;
}
interface Doc {
  info: { license?: { name: string }; contact?: object };
  tags?: { name: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
}

let stack: Stack;
let doc: Doc;
const operations = () =>
  Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ path, method, op })),
  );

beforeAll(async () => {
  stack = await startStack({}, { worker: false });
  doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as Doc;
});
afterAll(async () => {
  await stack?.close();
});

describe('/openapi.json', () => {
  it('passes redocly lint --extends=recommended with 0 errors and 0 warnings', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tasker-openapi-'));
    try {
      await writeFile(join(dir, 'openapi.json'), JSON.stringify(doc));
      await writeFile(join(dir, '.redocly.lint-ignore.yaml'), IGNORED);
      // redocly exits 1 when it finds errors: read its report either way.
      const { stdout } = await run(
        redocly,
        ['lint', '--extends=recommended', '--format=json', 'openapi.json'],
        {
          cwd: dir,
          env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
        },
      ).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
      const report = JSON.parse(stdout) as {
        totals: { errors: number; warnings: number; ignored: number };
        problems: { ruleId: string; message: string }[];
      };
      expect(report.problems.map((p) => `${p.ruleId}: ${p.message}`)).toEqual([]);
      expect(report.totals).toEqual({ errors: 0, warnings: 0, ignored: 2 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('describes every operation, parameter and success, with tags, a license and a contact', () => {
    expect(doc.info.license?.name).toBe('MIT');
    expect(doc.info.contact).toBeDefined();
    expect(doc.tags?.map((t) => t.name).sort()).toEqual([
      'health',
      'keys',
      'limits',
      'queue',
      'schedules',
      'tasks',
      'usage',
      'webhooks',
    ]);
    for (const { path, method, op } of operations()) {
      expect(op.description, `${method} ${path}`).toBeTruthy();
      for (const p of op.parameters ?? []) expect(p.description, `${method} ${path} ${p.name}`).toBeTruthy();
      const success = op.responses['200'] ?? op.responses['201'];
      expect(success?.description, `${method} ${path}`).toMatch(/^(?!Successful response$)./);
    }
    for (const path of ['/healthz', '/readyz', '/openapi.json']) {
      expect(doc.paths[path]?.get?.security).toEqual([]);
    }
    // A wait token's callback URL needs no key (its secret is the credential); completing by id does.
    expect(doc.paths['/token-callbacks/{secret}']?.post?.security).toEqual([]);
    expect(doc.paths['/tokens/{token}/complete']?.post?.security).toEqual([{ Authorization: [] }]);
  });

  it('answers every error in the one Error shape, with the statuses each route can give', () => {
    expect(Object.keys(doc.components.schemas).filter((name) => name.startsWith('error.'))).toEqual([]);
    for (const { path, method, op } of operations()) {
      const statuses = Object.keys(op.responses);
      for (const status of statuses.filter((s) => Number(s) >= 400)) {
        const schema = op.responses[status]?.content?.['application/json']?.schema;
        const expected = path === '/readyz' ? '#/components/schemas/NotReady' : '#/components/schemas/Error';
        expect(schema?.$ref, `${method} ${path} ${status}`).toBe(expected);
      }
      const open = [...OPEN_PATHS, '/token-callbacks/{secret}'].includes(path);
      if (!open) expect(statuses, `${method} ${path}`).toEqual(expect.arrayContaining(['401', '429', '503']));
      if (path === '/token-callbacks/{secret}') expect(statuses).not.toContain('401');
      // Every operation needs a scope (403 without it), but whoami, which any valid key may call.
      if (!open && path !== '/whoami') expect(statuses, `${method} ${path}`).toContain('403');
      if (path === '/whoami') expect(statuses).not.toContain('403');
      if (method === 'post')
        expect(statuses, `${method} ${path}`).toEqual(expect.arrayContaining(['400', '413', '415']));
      if (method === 'get') expect(statuses, `${method} ${path}`).not.toContain('413');
      const takesInput = method !== 'get' || (op.parameters ?? []).length > 0;
      if (!takesInput) expect(statuses, `${method} ${path}`).not.toContain('400');
      const looksUpId =
        path.includes('{id}') || path === '/get-task-output' || /\{(token|secret)\}/.test(path);
      if (!looksUpId) expect(statuses, `${method} ${path}`).not.toContain('404');
      else expect(statuses, `${method} ${path}`).toContain('404');
    }
  });

  it("gives each route's errors its own words, not those of the first route with that status", () => {
    expect(doc.paths['/tasks/{id}']?.get?.responses['400']?.description).toBe('Malformed id (not a UUID)');
    expect(doc.paths['/tasks']?.get?.responses['400']?.description).toBe(
      'A malformed filter, limit or cursor',
    );
    expect(doc.paths['/api-keys/{id}']?.delete?.responses['404']?.description).toMatch(/API key/);
    expect(doc.paths['/tasks/{id}/retry']?.post?.responses['409']?.description).toBe(
      'The task is not FAILED, CANCELLED or EXPIRED (CONFLICT); a child of it is unfinished (CHILDREN_RUNNING); another unfinished task holds its singleton_key (SINGLETON_KEY_HELD)',
    );
    const mentionsTaskParameters = operations().filter(({ op }) =>
      Object.values(op.responses).some((r) => r.description.includes('task_parameters')),
    );
    expect(mentionsTaskParameters.map(({ path }) => path)).toEqual(['/run-task']);
  });

  it('documents the pause/resume body as optional, and the server takes no body', async () => {
    expect(doc.paths['/queue/pause']?.post?.requestBody?.required).not.toBe(true);
    expect(doc.paths['/queue/resume']?.post?.requestBody?.required).not.toBe(true);
    expect((await fetch(`${stack.url}/queue/resume`, { method: 'POST' })).status).toBe(200);
  });

  it('ignores undocumented query parameters, so GET /queue cannot answer the 400 it does not document', async () => {
    const res = await fetch(`${stack.url}/queue?x=%00`);
    expect(res.status).toBe(200);
  });

  it('has examples on every operation: its success answer, its request body and each parameter', () => {
    type Media = { example?: unknown; examples?: Record<string, { value?: unknown }> };
    const hasExample = (media: Media | undefined) =>
      media?.example !== undefined || Object.values(media?.examples ?? {}).some((e) => e.value !== undefined);
    for (const { path, method, op } of operations()) {
      // Every success status (POST /tasks has two: 201 created, 200 an existing task).
      const successes = Object.entries(op.responses).filter(([status]) => status.startsWith('2'));
      expect(successes.length, `${method} ${path}: a success`).toBeGreaterThan(0);
      for (const [status, success] of successes) {
        const content = (success?.content ?? {}) as Record<string, Media>;
        expect(Object.keys(content).length, `${method} ${path}: ${status} content`).toBeGreaterThan(0);
        for (const [type, media] of Object.entries(content))
          expect(hasExample(media), `${method} ${path}: ${type} ${status} example`).toBe(true);
      }
      const body = (op.requestBody as { content?: Record<string, Media> } | undefined)?.content;
      for (const [type, media] of Object.entries(body ?? {}))
        expect(hasExample(media), `${method} ${path}: ${type} request example`).toBe(true);
      for (const p of (op.parameters ?? []) as { name: string; example?: unknown }[])
        expect(p.example, `${method} ${path}: parameter ${p.name}`).toBeDefined();
    }
    // One request example per task type, from its definition, the keys' (singleton, debounce), and tags.
    const created = doc.paths['/tasks']?.post as unknown as {
      requestBody: { content: { 'application/json': { examples: Record<string, unknown> } } };
    };
    expect(Object.keys(created.requestBody.content['application/json'].examples).sort()).toEqual([
      'debounced',
      'find_longest_consecutive_letters',
      'query_chatgpt',
      'singleton',
      'sum_two_numbers',
      'summarize_documents',
      'tagged',
    ]);
  });

  it('types the event stream: text/event-stream whose data is a TypedTaskEvent, a oneOf by name', () => {
    const stream = doc.paths['/tasks/{id}/events']?.get?.responses['200']?.content?.['text/event-stream'] as {
      schema: { type: string; contentSchema: { $ref: string } };
    };
    expect(stream.schema.type).toBe('string');
    expect(stream.schema.contentSchema.$ref).toBe('#/components/schemas/TaskStreamEvent');
    const event = doc.components.schemas.TaskStreamEvent as {
      properties: { data: { contentMediaType: string; contentSchema: { oneOf: { $ref: string }[] } } };
    };
    expect(event.properties.data.contentMediaType).toBe('application/json');
    expect(event.properties.data.contentSchema.oneOf.map((s) => s.$ref)).toContain(
      '#/components/schemas/TypedTaskEvent',
    );
    // A durable step: `event: step`, a TaskStepEvent (a TaskStep with its task's id).
    expect(event.properties.data.contentSchema.oneOf.map((s) => s.$ref)).toContain(
      '#/components/schemas/TaskStepEvent',
    );
    const stepEvent = doc.components.schemas.TaskStepEvent as { allOf: { $ref?: string }[] };
    expect(stepEvent.allOf[0]?.$ref).toBe('#/components/schemas/TaskStep');
    expect(doc.components.schemas.TaskStep).toBeDefined();
    const typed = doc.components.schemas.TypedTaskEvent as {
      discriminator: { propertyName: string; mapping: Record<string, string> };
    };
    expect(typed.discriminator.propertyName).toBe('name');
    expect(typed.discriminator.mapping.sum_two_numbers).toBe('#/components/schemas/SumTwoNumbersTaskEvent');
    const taskEvent = doc.components.schemas.TaskEvent as { properties: object; required: string[] };
    expect(Object.keys(taskEvent.properties)).not.toContain('input');
    expect(taskEvent.required).toContain('output');
    expect(doc.paths['/tasks/{id}/events']?.get?.description).toMatch(/Last-Event-ID/);
  });

  it('types the durable steps: WAITING among the statuses, waitingFor and steps on the record', () => {
    const schemas = doc.components.schemas as Record<string, { enum?: string[] } & Record<string, unknown>>;
    expect(schemas.TaskStatus?.enum).toContain('WAITING');
    const task = schemas.Task as { properties: Record<string, unknown>; required: string[] };
    expect(JSON.stringify(task.properties.waitingFor)).toContain('#/components/schemas/WaitingFor');
    expect(JSON.stringify(task.properties.steps)).toContain('#/components/schemas/TaskStep');
    // Every record has waitingFor (null unless WAITING); steps only in the full record.
    expect(task.required).toContain('waitingFor');
    expect(task.required).not.toContain('steps');
    const step = schemas.TaskStep as { properties: Record<string, unknown>; required: string[] };
    expect(Object.keys(step.properties).sort()).toEqual(
      ['error', 'finishedAt', 'id', 'preview', 'seq', 'startedAt', 'status'].sort(),
    );
    expect(JSON.stringify(step.properties.status)).toMatch(/"completed","failed","waiting"/);
    const waitingFor = schemas.WaitingFor as { properties: { kind: unknown } };
    expect(JSON.stringify(waitingFor.properties.kind)).toContain('"time"');
  });

  it('types child tasks: parentId on every record, the children counted by status, the list in the full record', () => {
    const schemas = doc.components.schemas as Record<string, Record<string, unknown>>;
    const waitingFor = schemas.WaitingFor as { properties: Record<string, unknown> };
    expect(JSON.stringify(waitingFor.properties.kind)).toContain('"children"');
    expect(waitingFor.properties.children).toMatchObject({ type: 'array', items: { format: 'uuid' } });
    for (const name of ['Task', 'TaskSummary']) {
      const record = schemas[name] as { properties: Record<string, unknown>; required: string[] };
      expect(record.required, name).toContain('parentId');
      expect(JSON.stringify(record.properties.children), name).toContain(
        '#/components/schemas/ChildrenSummary',
      );
    }
    const task = schemas.Task as { properties: Record<string, unknown>; required: string[] };
    expect(JSON.stringify(task.properties.childTasks)).toContain('#/components/schemas/ChildTask');
    expect(task.required).not.toContain('childTasks');
    const summary = schemas.ChildrenSummary as { properties: { byStatus: { required?: string[] } } };
    expect(summary.properties.byStatus.required ?? []).toEqual(
      expect.arrayContaining(['COMPLETED', 'WAITING']),
    );
    // The body of POST /tasks names summarize_documents among its task types.
    expect(JSON.stringify(doc.paths['/tasks']?.post)).toContain('summarize_documents');
  });

  it("carries the README's examples", () => {
    const run = doc.paths['/run-task']?.post as unknown as {
      requestBody: { content: { 'application/json': { examples: Record<string, { value: unknown }> } } };
    };
    expect(run.requestBody.content['application/json'].examples.sum_two_numbers?.value).toEqual({
      task_name: 'sum_two_numbers',
      task_parameters: { a: 5, b: 10 },
    });
  });
});
