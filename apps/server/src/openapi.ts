import { generateOpenApiDocument } from 'trpc-to-openapi';
import { appRouter } from './router.ts';

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
  return doc;
}
