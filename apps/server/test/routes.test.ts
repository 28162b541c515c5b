/**
 * One place per HTTP concern: the route facts (routes.ts) that auth, rate limits, metrics, the REST
 * adapter and the document read, and the one error mapping (errors.ts). No server: these are facts.
 */
import { DependencyUnavailableError, InvalidTaskInputError, NotFoundError } from '@tasker/engine';
import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { toPublicError } from '../src/errors.ts';
import { openApiDocument } from '../src/openapi.ts';
import { REST_ROUTES, routeFacts } from '../src/routes.ts';

type Operation = { operationId: string; parameters?: { name: string; in: string }[]; responses: object };
const doc = openApiDocument() as unknown as { paths: Record<string, Record<string, Operation>> };

describe('route facts', () => {
  it('the document describes exactly the routes served, with their success status and query parameters', () => {
    const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => ({
        operationId: op.operationId,
        method: method.toUpperCase(),
        path,
        // A creating route's success is its 201 (POST /tasks may also answer 200: an existing task);
        // one that accepts work for later, its 202 (POST /tasks/cancel: 200 for a dry run).
        successStatus: Number(
          '201' in op.responses
            ? 201
            : '202' in op.responses
              ? 202
              : Object.keys(op.responses).find((s) => s.startsWith('2')),
        ),
        query: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
      })),
    );
    const served = REST_ROUTES.map(({ operationId, method, path, successStatus, query, handWritten }) => ({
      operationId,
      method,
      path,
      successStatus,
      // The hand-written routes read their own query parameters (the event stream's lastEventId).
      query: handWritten ? documented.find((d) => d.operationId === operationId)?.query : query,
    }));
    const byId = (a: { operationId: string }, b: { operationId: string }) =>
      a.operationId.localeCompare(b.operationId);
    expect(served.sort(byId)).toEqual(documented.sort(byId));
    expect(REST_ROUTES.find((r) => r.operationId === 'createTask')?.successStatus).toBe(201);
    expect(REST_ROUTES.find((r) => r.operationId === 'cancelTasks')?.successStatus).toBe(202);
    expect(REST_ROUTES.find((r) => r.operationId === 'listTasks')?.query).toContain('input_contains');
  });

  it('says per route whether it is open, rate-limited or a stream', () => {
    expect(routeFacts('/healthz')).toEqual({ open: true, rateLimited: false });
    expect(routeFacts('/readyz?x=1')).toEqual({ open: true, rateLimited: false });
    expect(routeFacts('/metrics')).toEqual({ open: true, rateLimited: false });
    expect(routeFacts('/openapi.json')).toEqual({ open: true, rateLimited: true });
    expect(routeFacts('/docs/static/index.html')).toEqual({ open: true, rateLimited: true });
    expect(routeFacts('/ui')).toEqual({ open: true, rateLimited: true });
    expect(routeFacts('/uix')).toEqual({ open: false, rateLimited: true });
    expect(routeFacts('/tasks/abc')).toEqual({ open: false, rateLimited: true });
    expect(routeFacts('/tasks/abc/events?lastEventId=3')).toMatchObject({ open: false, stream: 'sse' });
    expect(routeFacts('/trpc/onTaskUpdate?input=%7B%7D').stream).toBe('subscription');
    expect(routeFacts('/trpc/getTask,listTasks?batch=1').stream).toBeUndefined();
    expect(routeFacts('/trpc/%E0%A4%A').open).toBe(false);
    // A wait token's callback URL reads no key, and counts against the client IP; completing by id needs one.
    expect(routeFacts('/token-callbacks/abc')).toEqual({ open: true, rateLimited: true });
    expect(routeFacts('/tokens/abc/complete')).toEqual({ open: false, rateLimited: true });
    expect(routeFacts('/token-callbacks/abc/more').open).toBe(false);
  });
});

describe('the one error mapping', () => {
  it('maps engine errors, dependency failures, tRPC codes and Fastify errors to status, code and words', () => {
    expect(toPublicError(new NotFoundError('Task not found'))).toMatchObject({
      status: 404,
      code: 'NOT_FOUND',
    });
    expect(
      toPublicError(new TRPCError({ code: 'NOT_FOUND', message: 'x', cause: new NotFoundError('y') })),
    ).toMatchObject({ status: 404, message: 'y' });
    expect(toPublicError(new DependencyUnavailableError('Redis'))).toMatchObject({
      status: 503,
      code: 'SERVICE_UNAVAILABLE',
      message: 'Redis is unavailable',
    });
    const refused = new InvalidTaskInputError('bad', [
      { code: 'invalid_type', expected: 'number', path: ['a'], message: 'expected number', input: 'x' },
    ]);
    expect(toPublicError(refused, { taskParametersField: 'input' })).toMatchObject({
      status: 400,
      message: 'input.a: expected number',
      issues: [{ path: 'input.a', message: 'expected number', expected: 'number' }],
    });
    expect(toPublicError(new TRPCError({ code: 'PARSE_ERROR', message: 'bad JSON' }))).toMatchObject({
      status: 400,
      code: 'BAD_REQUEST',
    });
    const tooLarge = Object.assign(new Error('Request body is too large'), {
      statusCode: 413,
      code: 'FST_ERR_CTP_BODY_TOO_LARGE',
    });
    expect(toPublicError(tooLarge)).toMatchObject({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
    const media = Object.assign(new Error('x'), { statusCode: 415, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' });
    expect(toPublicError(media, { contentType: 'text/plain' }).message).toBe(
      'Content-Type must be application/json (got "text/plain")',
    );
    expect(toPublicError(new Error('relation "x" does not exist'))).toEqual({
      status: 500,
      code: 'INTERNAL_SERVER_ERROR',
      message: 'Internal server error',
      internal: true,
    });
  });
});
