/**
 * A page of tasks stays small whatever the tasks hold: each row carries a bounded preview of its
 * input and output (their JSON text cut at PREVIEW_BYTES, `truncated`, the whole size), never the
 * payloads; the full record stays GET /tasks/{id}. 200 tasks of 512 KiB input each, listed with
 * limit=500, answer under the bound the README and the route's description state.
 */
import { MAX_LIST_ROW_BYTES, PREVIEW_BYTES } from '@tasker/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './helpers.ts';

const TASKS = 200;
const INPUT_BYTES = 512 * 1024;
/** The bound the README states for a page of 500 rows. */
const PAGE_BOUND = 500 * MAX_LIST_ROW_BYTES;

let stack: Stack;
const ids: string[] = [];

async function create(input: unknown): Promise<string> {
  const res = await fetch(`${stack.url}/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    // Delayed: they stay PENDING, with no output; the worker has nothing to do with them.
    body: JSON.stringify({ name: 'find_longest_consecutive_letters', input, delay_ms: 3_600_000 }),
  });
  const body = (await res.json()) as { id: string };
  if (res.status !== 201) throw new Error(`POST /tasks: ${res.status} ${JSON.stringify(body)}`);
  return body.id;
}

interface Row {
  id: string;
  inputPreview: { json: string; truncated: boolean; bytes: number };
  outputPreview: unknown;
  [field: string]: unknown;
}

beforeAll(async () => {
  stack = await startStack({ BODY_LIMIT_BYTES: String(2 * INPUT_BYTES) }, { worker: false });
  // 200 different inputs of 512 KiB (in the JSON text), 8 at a time.
  for (let i = 0; i < TASKS; i += 8) {
    const batch = Array.from({ length: Math.min(8, TASKS - i) }, (_, j) =>
      create({ string: `${i + j}:`.padEnd(INPUT_BYTES - 16, 'ab') }),
    );
    ids.push(...(await Promise.all(batch)));
  }
}, 180_000);
afterAll(async () => {
  await stack?.close();
});

describe('GET /tasks?limit=500 over 200 tasks of 512 KiB input each', () => {
  it('answers under the stated bound; every row says its input preview is truncated', async () => {
    const res = await fetch(`${stack.url}/tasks?limit=500`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const bytes = Buffer.byteLength(text);
    expect(bytes).toBeLessThan(TASKS * MAX_LIST_ROW_BYTES);
    expect(bytes).toBeLessThan(PAGE_BOUND);
    const page = JSON.parse(text) as { tasks: Row[]; next_cursor: string | null };
    expect(page.tasks).toHaveLength(TASKS);
    expect(new Set(page.tasks.map((t) => t.id))).toEqual(new Set(ids));
    for (const row of page.tasks) {
      expect(row).not.toHaveProperty('input');
      expect(row).not.toHaveProperty('output');
      expect(row.inputPreview.truncated).toBe(true);
      expect(row.inputPreview.bytes).toBeGreaterThan(INPUT_BYTES - 100);
      expect(Buffer.byteLength(row.inputPreview.json)).toBeLessThanOrEqual(PREVIEW_BYTES);
      expect(row.inputPreview.json).toMatch(/^\{"string": "\d+:abab/);
      expect(row.outputPreview).toBeNull();
      expect(Buffer.byteLength(JSON.stringify(row))).toBeLessThanOrEqual(MAX_LIST_ROW_BYTES);
    }
  });

  it('tRPC listTasks answers the same rows, under the same bound', async () => {
    const input = encodeURIComponent(JSON.stringify({ limit: 500 }));
    const res = await fetch(`${stack.url}/trpc/listTasks?input=${input}`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(Buffer.byteLength(text)).toBeLessThan(TASKS * MAX_LIST_ROW_BYTES);
    const rows = (JSON.parse(text) as { result: { data: { tasks: Row[] } } }).result.data.tasks;
    expect(rows).toHaveLength(TASKS);
    expect(rows.every((row) => row.inputPreview.truncated && !('input' in row))).toBe(true);
  });

  it('keeps the whole record at GET /tasks/{id}', async () => {
    const id = ids[0] ?? '';
    const record = (await (await fetch(`${stack.url}/tasks/${id}`)).json()) as { input: { string: string } };
    expect(record.input.string.length).toBe(INPUT_BYTES - 16);
  });
});

describe('the worst a row can hold', () => {
  it('escapes and four-byte characters in the payloads keep a row under the bound; a small input is whole', async () => {
    // `"` and `\` are doubled by the JSON of the answer, and the emoji are 4 bytes each.
    const nasty = `${'"\\😀'.repeat(50_000)}`;
    const id = await create({ string: nasty });
    const small = await create({ string: 'aab' });
    const res = await fetch(`${stack.url}/tasks?limit=2`);
    const page = (await res.json()) as { tasks: Row[] };
    const [smallRow, nastyRow] = page.tasks;
    expect(nastyRow?.id).toBe(id);
    expect(Buffer.byteLength(JSON.stringify(nastyRow))).toBeLessThanOrEqual(MAX_LIST_ROW_BYTES);
    expect(nastyRow?.inputPreview.truncated).toBe(true);
    expect(Buffer.byteLength(nastyRow?.inputPreview.json ?? '')).toBeLessThanOrEqual(PREVIEW_BYTES);
    // Cut on a character boundary: no broken emoji.
    expect(nastyRow?.inputPreview.json).not.toMatch(/[\ud800-\udbff]$/);
    expect(smallRow?.id).toBe(small);
    expect(smallRow?.inputPreview).toEqual({ json: '{"string": "aab"}', truncated: false, bytes: 17 });
    expect(JSON.parse(smallRow?.inputPreview.json ?? '')).toEqual({ string: 'aab' });
  });
});
