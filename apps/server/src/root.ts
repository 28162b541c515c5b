import { bulkRouter } from './router/bulk.ts';
import { insightsRouter } from './router/insights.ts';
import { keysRouter } from './router/keys.ts';
import { legacyRouter } from './router/legacy.ts';
import { limitsRouter } from './router/limits.ts';
import { liveRouter } from './router/live.ts';
import { queueRouter } from './router/queue.ts';
import { schedulesRouter } from './router/schedules.ts';
import { tasksRouter } from './router/tasks.ts';
import { tokensRouter } from './router/tokens.ts';
import { usageRouter } from './router/usage.ts';
import { webhooksRouter } from './router/webhooks.ts';
import { mergeRouters } from './trpc.ts';

/**
 * The whole API: one router per domain, merged flat so that procedure names stay what clients call
 * (`runTask`, `getTask`, `onTaskUpdate`, ...). Procedures with `openapi` meta are also REST routes.
 */
export const appRouter = mergeRouters(
  legacyRouter,
  tasksRouter,
  queueRouter,
  bulkRouter,
  liveRouter,
  keysRouter,
  insightsRouter,
  limitsRouter,
  schedulesRouter,
  webhooksRouter,
  tokensRouter,
  usageRouter,
);

export type AppRouter = typeof appRouter;
