/**
 * OpenTelemetry: with an in-process exporter, one trace runs from the submitting HTTP request
 * (the server's span) to the worker's attempt span, the job carrying the request's W3C context
 * (on Redis and in PostgreSQL-only mode, where it rides in the task's handout). Server
 * and worker run in this process, so that one exporter sees both.
 */

import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { createLogger, loadEnv, startTracing, type Tracing } from '@tasker/engine';
import { waitFor } from '@tasker/testing';
import { startWorker, type TaskerWorker } from '@tasker/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './helpers.ts';

const exporter = new InMemorySpanExporter();
let tracing: Tracing | undefined;
let stack: Stack;
let worker: TaskerWorker;

beforeAll(async () => {
  tracing = await startTracing({ serviceName: 'tasker-test', exporter });
  stack = await startStack({}, { worker: false });
  const env = loadEnv(stack.env.vars);
  worker = await startWorker(env, createLogger(env, 'test-worker'));
});

afterAll(async () => {
  await worker?.close();
  await stack?.close();
  await tracing?.shutdown();
});

async function submit(headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${stack.url}/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ name: 'sum_two_numbers', input: { a: 2, b: 3 } }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

/** The finished spans of one task: the POST /tasks request span and the attempt span. */
async function spansOf(taskId: string): Promise<{ request: ReadableSpan; attempt: ReadableSpan }> {
  return waitFor(
    () => {
      const spans = exporter.getFinishedSpans();
      const attempt = spans.find((s) => s.attributes['tasker.task.id'] === taskId);
      const request = spans.find(
        (s) =>
          s.name === 'POST /tasks' && attempt && s.spanContext().traceId === attempt.spanContext().traceId,
      );
      return attempt && request ? { request, attempt } : undefined;
    },
    { timeoutMs: 20_000, what: `the spans of task ${taskId}` },
  );
}

describe('tracing', () => {
  it('one trace runs from the submitting HTTP request to the worker attempt, its child', async () => {
    const id = await submit();
    const { request, attempt } = await spansOf(id);
    expect(request.parentSpanContext).toBeUndefined(); // the request started the trace
    expect(request.kind).toBe(1); // SERVER
    expect(request.attributes).toMatchObject({ 'http.route': '/tasks', 'http.response.status_code': 201 });
    expect(attempt.name).toBe('task sum_two_numbers');
    expect(attempt.kind).toBe(4); // CONSUMER
    expect(attempt.spanContext().traceId).toBe(request.spanContext().traceId);
    expect(attempt.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(attempt.attributes).toMatchObject({
      'tasker.task.type': 'sum_two_numbers',
      'tasker.attempt': 1,
      'tasker.outcome': 'completed',
    });
    expect(attempt.resource.attributes['service.name']).toBe('tasker-test');
  });

  it("continues a caller's trace: a traceparent header makes the request span, and so the attempt, part of it", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const id = await submit({ traceparent: `00-${traceId}-${callerSpan}-01` });
    const { request, attempt } = await spansOf(id);
    expect(request.spanContext().traceId).toBe(traceId);
    expect(request.parentSpanContext?.spanId).toBe(callerSpan);
    expect(attempt.spanContext().traceId).toBe(traceId);
    expect(attempt.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
  });

  it('gives each of many concurrent submissions its own trace, though they share queue batches', async () => {
    const ids = await Promise.all(Array.from({ length: 30 }, () => submit()));
    const pairs = await Promise.all(ids.map((id) => spansOf(id)));
    const traces = new Set(pairs.map(({ attempt }) => attempt.spanContext().traceId));
    expect(traces.size).toBe(30);
    for (const { request, attempt } of pairs)
      expect(attempt.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
  });
});
