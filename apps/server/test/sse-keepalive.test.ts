/**
 * A quiet SSE stream gets a comment line every SSE_KEEP_ALIVE_MS (one interval timer a stream, from
 * a random point of the first interval), so that a proxy with an idle timeout keeps it open; the
 * comment is no event (EventSource ignores it), and it stops with the stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, type Stack, startStack } from './helpers.ts';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ SSE_KEEP_ALIVE_MS: '100' }, { worker: false });
});
afterAll(async () => {
  await stack?.close();
});

describe('SSE keep-alive', () => {
  it('writes a comment line every SSE_KEEP_ALIVE_MS on a quiet stream', async () => {
    // No worker: the task stays PENDING, its stream quiet after its first event.
    const created = await postJson(`${stack.url}/tasks`, { name: 'sum_two_numbers', input: { a: 1, b: 2 } });
    expect(created.status).toBe(201);
    const controller = new AbortController();
    const res = await fetch(`${stack.url}/tasks/${String(created.body.id)}/events`, {
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    const until = Date.now() + 650;
    while (Date.now() < until) {
      const next = await Promise.race([
        reader.read(),
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), until - Date.now())),
      ]);
      if (next?.done) break;
      if (next?.value) text += decoder.decode(next.value, { stream: true });
    }
    controller.abort();
    const beats = text.split(': keep-alive\n\n').length - 1;
    // The first within 100 ms, then one every 100 ms: 5 to 7 in 650 ms (timers run late, not early).
    expect(beats).toBeGreaterThanOrEqual(4);
    expect(beats).toBeLessThanOrEqual(7);
    // One event (the task's state), beside the comments.
    expect(text.match(/^data: /gm)).toHaveLength(1);
  });
});
