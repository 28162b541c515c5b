import type { TaskListRow } from '@tasker/db';
import { describe, expect, it } from 'vitest';
import { cutUtf8, MAX_LIST_ROW_BYTES, PREVIEW_BYTES, type TaskSummary, toTaskSummary } from '../src/index.ts';

/** A list row as the store reads it, its heads as long as the store reads them (1,024 characters, 1,025 for the message). */
function row(head: string, message: string): TaskListRow {
  const at = new Date('2026-11-28T09:00:00.000Z');
  return {
    id: '2b4d2c0e-53a8-4c8f-9a39-0f7f3c1b2d9e',
    tenantId: 'a-tenant-with-a-long-name',
    name: 'find_longest_consecutive_letters',
    status: 'FAILED',
    version: 2_000_000_000,
    attempts: 100,
    maxAttempts: 100,
    priority: 100,
    // The longest key the API takes (200 characters, no control character), in the character JSON escapes longest.
    concurrencyKey: '"'.repeat(200),
    // The most the API takes: 10 tags of 64 characters (here the 4-byte ones), and 4,096 bytes of metadata as JSON.
    tags: Array.from({ length: 10 }, (_, i) => `${i}${'😀'.repeat(63)}`),
    metadata: { k: 'x'.repeat(4096 - '{"k":""}'.length) } as Record<string, unknown>,
    runAfter: at,
    cancelRequestedAt: at,
    createdAt: at,
    startedAt: at,
    finishedAt: at,
    updatedAt: at,
    inputHead: head,
    inputBytes: 10_000_000,
    outputHead: head,
    outputBytes: 10_000_000,
    error: { message, name: 'n'.repeat(128), code: 'c'.repeat(128), attempt: 100, at: at.toISOString() },
  } as TaskListRow;
}

/** The same row as a child task, itself WAITING for the most children a call may have (CHILD_TASK_MAX_FAN_OUT's bound). */
const waitingParent = (head: string, message: string): TaskListRow => ({
  ...row(head, message),
  status: 'WAITING',
  parentId: '2b4d2c0e-53a8-4c8f-9a39-0f7f3c1b2d9f',
  waitingFor: {
    kind: 'children',
    children: Array.from({ length: 1000 }, () => '2b4d2c0e-53a8-4c8f-9a39-0f7f3c1b2d9e'),
  },
});

/** The children of a task counted as a list row shows them, the counts at their largest. */
const manyChildren = {
  total: 2_000_000_000,
  byStatus: Object.fromEntries(
    ['PENDING', 'RUNNING', 'WAITING', 'COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED'].map((s) => [
      s,
      2_000_000_000,
    ]),
  ),
} as NonNullable<TaskSummary['children']>;

describe('a list row', () => {
  it('stays under MAX_LIST_ROW_BYTES of JSON whatever its payloads and error hold', () => {
    // The worst characters for the answer's size: `"` and `\` double, the emoji are 4 bytes.
    for (const unit of ['\\"', '😀', 'é', '\\\\u0001']) {
      const head = unit.repeat(1024).slice(0, 1024);
      const summary = toTaskSummary(row(head, unit.repeat(1025).slice(0, 1025)));
      expect(Buffer.byteLength(JSON.stringify(summary)), unit).toBeLessThanOrEqual(MAX_LIST_ROW_BYTES);
      // A child waiting for its own children: their ids stay out of the row, their count is in it.
      const parent = toTaskSummary(waitingParent(head, unit.repeat(1025).slice(0, 1025)), manyChildren);
      expect(parent.waitingFor).toEqual({ kind: 'children' });
      expect(parent.children?.total).toBe(2_000_000_000);
      expect(Buffer.byteLength(JSON.stringify(parent)), unit).toBeLessThanOrEqual(MAX_LIST_ROW_BYTES);
      expect(Buffer.byteLength(summary.inputPreview.json)).toBeLessThanOrEqual(PREVIEW_BYTES);
      expect(summary.inputPreview.truncated).toBe(true);
      expect(summary.error?.message.endsWith('…')).toBe(true);
      expect(Buffer.byteLength(summary.error?.message ?? '')).toBeLessThanOrEqual(PREVIEW_BYTES);
    }
  });

  it('cuts on a character boundary, and leaves what fits whole', () => {
    expect(cutUtf8('😀😀', 7)).toBe('😀');
    expect(cutUtf8('abc', 3)).toBe('abc');
    const whole = toTaskSummary({
      ...row('{"a": 1}', 'boom'),
      inputBytes: 8,
      outputHead: null,
      outputBytes: null,
    });
    expect(whole.inputPreview).toEqual({ json: '{"a": 1}', truncated: false, bytes: 8 });
    expect(whole.outputPreview).toBeNull();
    expect(whole.error?.message).toBe('boom');
  });
});
