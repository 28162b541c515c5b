import { ApiKeyStore, ScheduleStore, UsageReports, WebhookStore } from '@tasker/db';
import {
  checkServerExposure,
  createBulkApi,
  createEngine,
  metricsAccess as createMetricsAccess,
  createScheduleApi,
  createTaskApi,
  createTokensApi,
  describeExposure,
  type Env,
  type Logger,
  METRICS_CLOSED,
  redisKeyPrefix,
  redisKeys,
} from '@tasker/engine';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.ts';
import { Authenticator } from './auth.ts';
import { Drain } from './drain.ts';
import { createKeysApi } from './keys-api.ts';
import { createLimitsApi } from './limits-api.ts';
import { TaskFeed } from './live.ts';
import { OpenStreams } from './streams.ts';
import { createUsageApi } from './usage-api.ts';
import { createWebhooksApi } from './webhooks-api.ts';

export interface TaskerServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:5000 */
  url: string;
  close(): Promise<void>;
}

/** Migrates, connects and listens. One PostgreSQL pool, one queue connection (Redis; without it, the pool itself) and one listening connection per process. */
export async function startServer(
  env: Env,
  log: Logger,
  { dashboardDir }: { dashboardDir?: string } = {},
): Promise<TaskerServer> {
  // Auth off on an address other machines reach: refused before anything starts (one line, main.ts).
  checkServerExposure(env);
  const engine = await createEngine(env, log, 'server');
  const { store } = engine.lifecycle.resources;
  const live = new TaskFeed(
    engine.db.sql,
    store,
    {
      resyncMs: 10_000,
      listenOn: engine.db.direct,
      // A task has finished exactly when its finishedAt is set (the tasks_finished_check).
      onLiveEvent: (event) => engine.metrics.liveEvent(event.updatedAt, event.finishedAt !== null),
    },
    log,
  );
  await live.start();

  const keys = new ApiKeyStore(engine.db.db);
  const streams = new OpenStreams(keys, { maxPerCaller: env.MAX_STREAMS_PER_KEY }, log);
  const authenticator = new Authenticator(keys, env.AUTH_MODE, log);
  const metricsAccess = createMetricsAccess(env);
  if (metricsAccess.closed) log.warn(METRICS_CLOSED);
  const drain = new Drain();
  const app = await buildApp({
    log,
    bodyLimit: env.BODY_LIMIT_BYTES,
    timeouts: {
      request: env.HTTP_REQUEST_TIMEOUT_MS,
      headers: env.HTTP_HEADERS_TIMEOUT_MS,
      keepAlive: env.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      idle: env.HTTP_IDLE_TIMEOUT_MS,
      sseKeepAlive: env.SSE_KEEP_ALIVE_MS,
    },
    services: {
      tasks: createTaskApi(engine.lifecycle),
      tokens: createTokensApi(engine.lifecycle),
      live,
      bulk: createBulkApi(engine.lifecycle),
      keys: createKeysApi(keys, env.AUTH_MODE),
      limits: createLimitsApi(engine.limits),
      usage: createUsageApi(new UsageReports(engine.db.db), engine.limits.budgets),
      schedules: createScheduleApi(new ScheduleStore(engine.db.db, engine.db.sql), {
        minIntervalMs: env.SCHEDULE_MIN_INTERVAL_MS,
      }),
      streams,
      webhooks: createWebhooksApi(new WebhookStore(engine.db.db), {
        allowPrivate: env.WEBHOOK_ALLOW_PRIVATE,
        timeoutMs: env.WEBHOOK_TIMEOUT_MS,
      }),
    },
    authenticator,
    rateLimitPerMinute: env.RATE_LIMIT_PER_MINUTE,
    trpcMaxBatch: env.TRPC_MAX_BATCH,
    rateLimitRedis: engine.mode.kind === 'redis' ? engine.mode.redis : undefined,
    rateLimitNamespace: redisKeys(redisKeyPrefix(env)).rateLimitNamespace,
    corsOrigins: env.CORS_ORIGINS,
    readiness: engine.readiness,
    dashboardDir,
    authMode: env.AUTH_MODE,
    metrics: engine.metrics,
    metricsAccess,
    drain,
  });
  // What is still being answered, so that a shutdown that has to cut requests can say which.
  const open = new Map<string, string>();
  app.addHook('onRequest', async (request, reply) => {
    open.set(request.id, `${request.method} ${request.url.split('?')[0]}`);
    // 'close' comes once the answer is sent, or the connection went away first.
    reply.raw.once('close', () => open.delete(request.id));
  });
  const address = await app.listen({ host: env.HOST, port: env.PORT });
  const url = address.replace('[::]', '127.0.0.1').replace('0.0.0.0', '127.0.0.1');
  log.info({ url }, 'server listening');
  // Which auth mode runs, on which address, in words: a warning when nothing is asked of callers.
  const bound = app.server.address();
  const where =
    typeof bound === 'object' && bound
      ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`
      : address;
  const exposure = describeExposure(env, where);
  if (env.AUTH_MODE === 'disabled') log.warn(exposure);
  else log.info(exposure);
  log.info(engine.describe);

  let closing: Promise<void> | undefined;
  return {
    app,
    url,
    close: () => {
      closing ??= (async () => {
        // Draining (drain.ts): /readyz answers 503 and every answer closes its connection, for
        // SHUTDOWN_DELAY_MS (time for a load balancer to see it), while everything is served.
        drain.start();
        if (env.SHUTDOWN_DELAY_MS > 0) {
          log.info(
            `draining: /readyz answers 503; serving ${env.SHUTDOWN_DELAY_MS} ms more (SHUTDOWN_DELAY_MS) before closing`,
          );
          await new Promise((resolve) => setTimeout(resolve, env.SHUTDOWN_DELAY_MS));
        }
        // Closing: live streams end with a reconnect hint (app.ts's preClose, the listener still
        // open meanwhile), then no new connections, and requests in flight may finish, for at most
        // SHUTDOWN_TIMEOUT_MS in all: then their connections are closed, so that a shutdown always
        // ends.
        const closed = app.close();
        let timer: NodeJS.Timeout | undefined;
        const late = await Promise.race([
          closed.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), env.SHUTDOWN_TIMEOUT_MS);
          }),
        ]);
        clearTimeout(timer);
        if (late) {
          log.warn(
            { open: [...open.values()].slice(0, 20), count: open.size },
            `requests still open ${env.SHUTDOWN_TIMEOUT_MS} ms after shutdown began (SHUTDOWN_TIMEOUT_MS); closing their connections`,
          );
          app.server.closeAllConnections();
          await closed;
        }
        streams.close();
        await live.close();
        await authenticator.close();
        await engine.close();
      })();
      return closing;
    },
  };
}
