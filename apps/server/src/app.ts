import type { Socket } from 'node:net';
import type { Logger } from '@tasker/engine';
import { type FastifyTRPCPluginOptions, fastifyTRPCPlugin } from '@trpc/server/adapters/fastify';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  LogController,
} from 'fastify';
import { restError } from './errors.ts';
import { openApiDocument } from './openapi.ts';
import { registerRestRoutes } from './rest.ts';
import { type AppRouter, appRouter } from './root.ts';
import { registerEventStream } from './sse.ts';
import { createContextFactory } from './trpc.ts';

export interface AppOptions {
  log: Logger;
  bodyLimit: number;
  services: Parameters<typeof createContextFactory>[0];
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

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { log } = options;
  const createContext = createContextFactory(options.services);
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
  // Streams (SSE, tRPC subscriptions) never end on their own: on close, cut them so that clients
  // reconnect (with their last event id) to another instance, instead of holding shutdown.
  const streams = new Set<Socket>();
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0] ?? '';
    if (path.endsWith('/events') || path.startsWith('/trpc/onTask')) {
      const socket = request.raw.socket;
      streams.add(socket);
      socket.once('close', () => streams.delete(socket));
    }
  });
  app.addHook('preClose', async () => {
    for (const socket of streams) socket.destroy();
  });

  await app.register(fastifyTRPCPlugin, {
    prefix: '/trpc',
    trpcOptions: {
      router: appRouter,
      createContext,
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

  // REST: the same procedures as plain routes, described by the OpenAPI document.
  registerRestRoutes(app, createContext, doc);
  registerEventStream(app, options.services.live);

  return app;
}
