/**
 * Property: whatever JSON or string a client sends to any REST route, the answer is never a 5xx,
 * and the service still works afterwards. Strings include NUL, lone surrogates, quotes and emoji.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awaitOutput, runTask, type Stack, startStack } from './helpers.ts';

let stack: Stack;
let operations: { method: string; path: string }[] = [];

beforeAll(async () => {
  stack = await startStack();
  const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as { paths: Record<string, object> };
  operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => ({ method: method.toUpperCase(), path })),
  );
});
afterAll(async () => {
  await stack?.close();
});

/** Characters that break naive code: NUL, both halves of a surrogate pair alone, quotes, emoji. */
const nasty = fc.oneof(
  fc.constantFrom('\u0000', '\ud800', '\udfff', '"', '\\', '😀', 'a', '%', '/', '?', ' '),
  fc.string({ unit: 'binary', maxLength: 3 }),
);
const text = fc.string({ unit: nasty, maxLength: 12 });
const json = fc.jsonValue({ stringUnit: nasty, maxDepth: 4 });
const taskNames = ['sum_two_numbers', 'query_chatgpt', 'find_longest_consecutive_letters'];
/** Bodies shaped like the real ones, so that generation reaches past the first check. */
const body = fc.oneof(
  json,
  fc.record(
    {
      task_name: fc.oneof(fc.constantFrom(...taskNames), text),
      task_parameters: fc.oneof(
        fc.dictionary(fc.oneof(text, fc.constantFrom('a', 'b', 'string', 'prompt')), json),
        json,
      ),
      priority: json,
      delay_ms: json,
      idempotency_key: fc.oneof(text, json),
    },
    { requiredKeys: [] },
  ),
  fc.record({ tenant: text, name: text, scopes: json }, { requiredKeys: [] }),
);

const unescapeSurrogates = (json: string) =>
  json.replace(/\\u(d[89a-f][0-9a-f]{2})/gi, (_, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );

/** A URL cannot carry a lone surrogate: it goes as U+FFFD, as any client would send it. */
function fill(path: string, segment: string): string {
  return path.replace(
    /\{[^}]+\}/g,
    encodeURIComponent([...segment].map((c) => (/^[\ud800-\udfff]$/.test(c) ? '\ufffd' : c)).join('')),
  );
}

describe('any input, any REST route', () => {
  it('never answers 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 1000 }),
        fc.oneof(fc.uuid(), text),
        fc.dictionary(
          fc.constantFrom(
            'task_uuid',
            'status',
            'name',
            'limit',
            'cursor',
            'created_after',
            'tenant',
            'lastEventId',
          ),
          text,
        ),
        body,
        fc.boolean(),
        async (pick, segment, query, payload, raw) => {
          const op = operations[pick % operations.length];
          if (!op) return;
          const search = new URLSearchParams(query).toString();
          const url = `${stack.url}${fill(op.path, segment)}${search ? `?${search}` : ''}`;
          const hasBody = op.method !== 'GET' && op.method !== 'DELETE';
          const res = await fetch(url, {
            method: op.method,
            headers: hasBody ? { 'content-type': 'application/json' } : {},
            // JSON.stringify escapes lone surrogates (\\ud800); `raw` sends them unescaped instead, which
            // UTF-8 on the wire turns into U+FFFD.
            body: hasBody
              ? raw
                ? unescapeSurrogates(JSON.stringify(payload))
                : JSON.stringify(payload)
              : undefined,
            signal: AbortSignal.timeout(5000),
          });
          const answer = res.headers.get('content-type')?.includes('event-stream')
            ? '(stream)'
            : await res.text();
          await res.body?.cancel().catch(() => {});
          expect(res.status, `${op.method} ${url}\n${answer.slice(0, 500)}`).toBeLessThan(500);
        },
      ),
      { numRuns: Number(process.env.TEST_PROPERTY_RUNS ?? 400) },
    );
  });

  it('NUL and lone surrogates get a 400 that says why, and the service still works', async () => {
    // The property run may have paused processing (POST /queue/pause is one of the routes): undo it.
    const post = (path: string, body: unknown) =>
      fetch(`${stack.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await post('/queue/resume', {})).status).toBe(200);
    for (const task_name of taskNames) expect((await post('/queue/resume', { task_name })).status).toBe(200);
    for (const string of ['a\u0000b', '\ud800', 'x\udc00']) {
      const res = await fetch(`${stack.url}/run-task`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ task_name: 'find_longest_consecutive_letters', task_parameters: { string } }),
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({
        issues: [
          { path: 'task_parameters.string', message: expect.stringMatching(/U\+0000|lone surrogate/) },
        ],
      });
    }
    const output = await awaitOutput(
      stack.url,
      await runTask(stack.url, 'find_longest_consecutive_letters', { string: '😀😀😀' }),
    );
    expect(output).toEqual({ status: 'COMPLETED', result: 3, error: null });
  });
});
