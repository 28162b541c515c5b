import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import { isDatabaseUnavailable } from '@tasker/db';
import { isRedisUnavailable, type Logger, requestScope, type TaskerMetrics } from '@tasker/engine';
import { type FastifyTRPCPluginOptions, fastifyTRPCPlugin } from '@trpc/server/adapters/fastify';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  LogController,
} from 'fastify';
import type { Authenticator } from './auth.ts';
import { registerDashboard } from './dashboard.ts';
import { registerDocs } from './docs.ts';
import { restError } from './errors.ts';
import { registerObservability } from './observability.ts';
import { openApiDocument } from './openapi.ts';
import { registerRestRoutes } from './rest.ts';
import { type AppRouter, appRouter } from './root.ts';
import { registerEventStream } from './sse.ts';
import { createContextFactory, type Services } from './trpc.ts';

export interface AppOptions {
  log: Logger;
  bodyLimit: number;
  services: Services;
  authenticator: Authenticator;
  /**
   * Requests per minute per key (or client IP without one); 0: none. Shared by every server through
   * `rateLimitRedis`; without Redis (PostgreSQL-only mode) each server counts on its own, in memory:
   * a counter in PostgreSQL would add a write to every request, and that mode is meant for one
   * server or a few (with N servers, a key gets up to N times the budget).
   */
  rateLimitPerMinute: number;
  rateLimitRedis?: unknown;
  /** Prefix of the rate-limit counters in Redis (see keys.ts). */
  rateLimitNamespace: string;
  /** Origins allowed to call from a browser (CORS); none by default. */
  corsOrigins: string[];
  /** Each resolves when its dependency answers, rejects otherwise. */
  readiness: Record<string, () => Promise<unknown>>;
  version?: string;
  /** The built dashboard served at /ui (default: apps/dashboard/dist, see dashboard.ts). */
  dashboardDir?: string;
  /** Whether the dashboard should ask for an API key (the server's AUTH_MODE). */
  authMode?: 'required' | 'disabled';
  /** Prometheus metrics and `GET /metrics` (observability.ts); none without. */
  metrics?: TaskerMetrics;
  /** METRICS_TOKEN: `/metrics` then needs `Authorization: Bearer <token>`. */
  metricsToken?: string;
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
    genReqId: () => randomUUID(),
    // Every line logged during a request carries `requestId` through requestScope (below), request.log
    // and the engine's logger alike: no second binding here.
    childLoggerFactory: (logger) => logger,
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
    // A dependency that is down, met outside a procedure (the key lookup, a stream's first read).
    const down = isDatabaseUnavailable(error)
      ? 'PostgreSQL'
      : isRedisUnavailable(error)
        ? 'Redis'
        : undefined;
    if (down) return reply.code(503).send(restError(503, `${down} is unavailable`));
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
  // Metrics, request spans and GET /metrics: first, so that they cover every other hook.
  if (options.metrics) registerObservability(app, { metrics: options.metrics, token: options.metricsToken });
  // Streams (SSE, tRPC subscriptions) never end on their own: on close, cut them so that clients
  // reconnect (with their last event id) to another instance, instead of holding shutdown.
  const streams = new Set<Socket>();
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0] ?? '';
    const socket = request.raw.socket;
    if ((path.endsWith('/events') || path.startsWith('/trpc/onTask')) && !streams.has(socket)) {
      streams.add(socket);
      socket.once('close', () => streams.delete(socket));
    }
  });
  app.addHook('preClose', async () => {
    for (const socket of streams) socket.destroy();
  });

  // Every answer carries its request id, and so does every log line written while it is served.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    requestScope.run({ requestId: request.id }, done);
  });
  // Who is calling: read once per request, before the rate limit (which counts per key).
  options.authenticator.register(app);
  if (options.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: options.corsOrigins,
      allowedHeaders: ['authorization', 'content-type', 'last-event-id', 'x-request-id', 'trpc-accept'],
      exposedHeaders: [
        'x-request-id',
        'retry-after',
        'ratelimit-limit',
        'ratelimit-remaining',
        'ratelimit-reset',
      ],
      maxAge: 600,
    });
  }
  if (options.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      global: true,
      max: options.rateLimitPerMinute,
      timeWindow: 60_000,
      hook: 'onRequest',
      // One budget per key, shared by every server through Redis; per client IP without a key.
      keyGenerator: (request) =>
        request.auth?.ok && request.auth.identity.keyId
          ? `key:${request.auth.identity.keyId}`
          : `ip:${request.ip}`,
      redis: options.rateLimitRedis,
      nameSpace: options.rateLimitNamespace,
      // Redis away: serve rather than refuse everyone.
      skipOnError: true,
      enableDraftSpec: true,
      allowList: (request) => /^\/(healthz|readyz|metrics)$/.test(request.url.split('?')[0] ?? ''),
      // Thrown, so that the error handler answers it in the one error shape.
      errorResponseBuilder: (_request, context) =>
        Object.assign(
          new Error(`Rate limit exceeded: ${context.max} requests per minute; retry in ${context.after}`),
          { statusCode: 429 },
        ),
    });
  }

  await app.register(fastifyTRPCPlugin, {
    prefix: '/trpc',
    trpcOptions: {
      router: appRouter,
      createContext,
      onError: ({ error, path, req }) => {
        if (error.code === 'INTERNAL_SERVER_ERROR')
          req.log.error({ err: error, path }, 'tRPC procedure failed');
      },
      responseMeta: ({ errors }) =>
        errors.some((error) => error.code === 'UNAUTHORIZED')
          ? { headers: { 'www-authenticate': 'Bearer' } }
          : {},
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
    const names = down.map((n) => ({ postgres: 'PostgreSQL', redis: 'Redis' })[n] ?? n).join(' and ');
    return reply
      .code(503)
      .send({ ...restError(503, `${names} ${down.length > 1 ? 'are' : 'is'} unavailable`), dependencies });
  });

  // REST: the same procedures as plain routes, described by the OpenAPI document.
  registerRestRoutes(app, createContext, doc);
  registerEventStream(app, options.services.live, options.services.streams);
  // /docs: the document, rendered from assets served here.
  await registerDocs(app, doc);
  registerDashboard(app, { root: options.dashboardDir, authMode: options.authMode ?? 'required' });

  return app;
}
