import type { Logger } from '@tasker/core';
import { type FastifyTRPCPluginOptions, fastifyTRPCPlugin } from '@trpc/server/adapters/fastify';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  LogController,
} from 'fastify';
import { fastifyTRPCOpenApiPlugin, generateOpenApiDocument } from 'trpc-to-openapi';
import { type PublicIssue, type RestError, restError } from './errors.ts';
import { type AppRouter, appRouter } from './router.ts';
import type { Context } from './trpc.ts';

export interface AppOptions {
  log: Logger;
  bodyLimit: number;
  context: Context;
  /** Each resolves when its dependency answers, rejects otherwise. */
  readiness: Record<'postgres' | 'redis', () => Promise<unknown>>;
  version?: string;
}

const MAX_JSON_DEPTH = 64;

/** True when the JSON text nests arrays/objects deeper than `max` (strings are skipped). */
function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > max) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

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

/** Known REST paths and their methods, to answer 405 (not 404) for a wrong method. */
function routeTable(doc: ReturnType<typeof openApiDocument>) {
  return Object.entries(doc.paths ?? {}).map(([path, item]) => ({
    pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}/?$`),
    methods: Object.keys(item as object).map((m) => m.toUpperCase()),
  }));
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { log, context } = options;
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: options.bodyLimit,
    requestIdHeader: 'x-request-id',
    // Per-request logs at info would dominate at thousands of requests/s; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });

  // JSON with prototype-poisoning protection (Fastify's parser) and a nesting limit.
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
      const error = new Error(`JSON nests deeper than ${MAX_JSON_DEPTH} levels`) as FastifyError;
      error.statusCode = 400;
      done(error, undefined);
      return;
    }
    defaultJson(request, text, done);
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err: error }, 'unhandled error');
      return reply.code(status).send(restError(status, 'Internal server error'));
    }
    const type = request.headers['content-type'];
    const message =
      error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? `Content-Type must be application/json${type ? ` (got "${type}")` : ' (none was sent)'}`
        : error.message;
    return reply.code(status).send(restError(status, message));
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(restError(404, `No route ${request.method} ${request.url.split('?')[0]}`)),
  );

  await app.register(fastifyTRPCPlugin, {
    prefix: '/trpc',
    trpcOptions: {
      router: appRouter,
      createContext: () => context,
      onError: ({ error, path }) => {
        if (error.code === 'INTERNAL_SERVER_ERROR') log.error({ err: error, path }, 'tRPC procedure failed');
      },
    } satisfies FastifyTRPCPluginOptions<AppRouter>['trpcOptions'],
  });

  const doc = openApiDocument(options.version);
  app.get('/openapi.json', { logLevel: 'warn' }, async () => doc);
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }));
  app.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
    const checks = await Promise.all(
      Object.entries(options.readiness).map(async ([name, check]) => {
        try {
          await Promise.race([
            check(),
            new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), 2000).unref()),
          ]);
          return [name, 'ok'] as const;
        } catch {
          return [name, 'unavailable'] as const;
        }
      }),
    );
    const down = checks.filter(([, state]) => state !== 'ok').map(([name]) => name);
    const dependencies = Object.fromEntries(checks);
    if (down.length === 0) return { status: 'ok', dependencies };
    const names = down.map((n) => (n === 'postgres' ? 'PostgreSQL' : 'Redis')).join(' and ');
    return reply
      .code(503)
      .send({ ...restError(503, `${names} ${down.length > 1 ? 'are' : 'is'} unavailable`), dependencies });
  });

  // REST: the same procedures through the OpenAPI adapter, in its own context so that its hooks
  // (405 for wrong methods, one error shape) apply to it alone.
  const routes = routeTable(doc);
  await app.register(async (rest) => {
    rest.addHook('onRequest', async (request, reply) => {
      const path = request.url.split('?')[0] ?? '';
      const route = routes.find((r) => r.pattern.test(path));
      if (route && !route.methods.includes(request.method) && request.method !== 'HEAD') {
        return reply
          .code(405)
          .header('allow', route.methods.join(', '))
          .send(
            restError(
              405,
              `${request.method} is not supported on ${path}; use ${route.methods.join(' or ')}`,
            ),
          );
      }
    });
    rest.addHook('preHandler', async (request, reply) => {
      if (request.method === 'POST' || request.method === 'PUT' || request.method === 'PATCH') {
        const type = request.headers['content-type'];
        if (!type?.toLowerCase().startsWith('application/json')) {
          return reply
            .code(415)
            .send(
              restError(
                415,
                `Content-Type must be application/json${type ? ` (got "${type}")` : ' (none was sent)'}`,
              ),
            );
        }
      }
      const body = request.body;
      if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body))) {
        return reply.code(400).send(restError(400, 'The request body must be a JSON object'));
      }
    });
    rest.addHook('onSend', async (_request, reply, payload) => {
      if (reply.statusCode < 400 || typeof payload !== 'string') return payload;
      let parsed: Partial<RestError> & { message?: string; data?: { issues?: PublicIssue[] } };
      try {
        parsed = JSON.parse(payload);
      } catch {
        return payload;
      }
      if (typeof parsed.status === 'number') return payload; // already ours
      const status = reply.statusCode;
      const message =
        status >= 500 && status !== 503
          ? 'Internal server error'
          : (parsed.error ?? parsed.message ?? 'Error');
      return JSON.stringify(restError(status, message, parsed.data?.issues));
    });
    await rest.register(fastifyTRPCOpenApiPlugin, { router: appRouter, createContext: () => context });
  });

  return app;
}
