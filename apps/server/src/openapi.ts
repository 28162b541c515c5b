import { generateOpenApiDocument } from 'trpc-to-openapi';
import { appRouter } from './root.ts';

export type OpenApiDocument = ReturnType<typeof openApiDocument>;

/** The OpenAPI 3 document of the REST routes, generated from the router's procedures and their zod schemas. */
export function openApiDocument(version = '0.1.0') {
  const doc = generateOpenApiDocument(appRouter, {
    title: 'Tasker',
    description:
      'Runs long work in the background. Submit with POST /run-task, follow with GET /get-task-output or GET /tasks/{id}. ' +
      'The same procedures are served over tRPC at /trpc. Every error is a JSON object: {"error", "code", "status", "issues"?}.',
    version,
    baseUrl: '/',
  });
  // trpc-to-openapi describes its own error body; ours is the one RestError shape for every route.
  type Schema = NonNullable<NonNullable<typeof doc.components>['schemas']>[string];
  const errorSchema: Schema = {
    type: 'object',
    required: ['error', 'code', 'status'],
    properties: {
      error: { type: 'string', description: 'What was wrong, in words' },
      code: { type: 'string', description: 'BAD_REQUEST, NOT_FOUND, PAYLOAD_TOO_LARGE, ...' },
      status: { type: 'integer' },
      issues: {
        type: 'array',
        items: {
          type: 'object',
          required: ['path', 'message'],
          properties: { path: { type: 'string' }, message: { type: 'string' }, expected: { type: 'string' } },
        },
      },
    },
  };
  doc.components = { ...doc.components, schemas: { ...doc.components?.schemas, Error: errorSchema } };
  for (const item of Object.values(doc.paths ?? {})) {
    for (const operation of Object.values(item as Record<string, { responses?: Record<string, unknown> }>)) {
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        if (Number(status) >= 400 || status === 'default') {
          const description = (response as { description?: string }).description ?? 'Error';
          operation.responses = {
            ...operation.responses,
            [status]: {
              description,
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
          };
        }
      }
    }
  }
  // The event stream is a plain Fastify route (SSE), described here by hand.
  doc.paths = {
    ...doc.paths,
    '/tasks/{id}/events': {
      get: {
        operationId: 'taskEvents',
        summary: "A task's states as Server-Sent Events",
        description:
          'text/event-stream. Each event: `id:` the task version, `data:` the task as JSON (the Task schema without ' +
          '`input`). The current state comes first, then every change; the stream ends after COMPLETED, FAILED or ' +
          'CANCELLED. Comments (`: keep-alive`) every 15 s. Send `Last-Event-ID` (or `?lastEventId=`) to resume.',
        tags: ['tasks'],
        parameters: [
          { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } },
          { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } },
          { name: 'lastEventId', in: 'query', required: false, schema: { type: 'string' } },
        ],
        responses: {
          200: {
            description: 'The event stream',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          400: {
            description: 'Malformed id',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
          },
          404: {
            description: 'Task not found',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
          },
        },
      },
    },
  };
  return doc;
}
