import { createEngine, createTaskApi, type Env, type Logger } from '@tasker/engine';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.ts';
import { TaskFeed } from './live.ts';

export interface TaskerServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:5000 */
  url: string;
  close(): Promise<void>;
}

/** Migrates, connects and listens. One PostgreSQL pool, one Redis connection and one listening connection per process. */
export async function startServer(env: Env, log: Logger): Promise<TaskerServer> {
  const engine = await createEngine(env, log, 'server');
  const { store } = engine.lifecycle.resources;
  const live = new TaskFeed(engine.db.sql, store, { resyncMs: 10_000 }, log);
  await live.start();

  const app = await buildApp({
    log,
    bodyLimit: env.BODY_LIMIT_BYTES,
    services: { tasks: createTaskApi(engine.lifecycle), live },
    readiness: { postgres: () => engine.db.sql`select 1`, redis: () => engine.redis.ping() },
  });
  const address = await app.listen({ host: env.HOST, port: env.PORT });
  const url = address.replace('[::]', '127.0.0.1').replace('0.0.0.0', '127.0.0.1');
  log.info({ url }, 'server listening');

  let closing: Promise<void> | undefined;
  return {
    app,
    url,
    close: () => {
      closing ??= (async () => {
        await app.close();
        await live.close();
        await engine.close();
      })();
      return closing;
    },
  };
}
