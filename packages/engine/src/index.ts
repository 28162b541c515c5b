export {
  createTaskApi,
  type LegacyTaskOutput,
  type ListFilter,
  type ProcessingState,
  type SubmitResult,
  type TaskApi,
  type TaskPage,
} from './api.ts';
export { CancelSignals } from './cancel-signals.ts';
export {
  ConfigError,
  DEFAULT_RATE_LIMIT_PER_MINUTE,
  type Env,
  envSchema,
  loadEnv,
  taskConfig,
} from './config.ts';
export { createEngine, type Engine, type EngineRole } from './engine.ts';
export * from './errors/index.ts';
export { QUEUE_NAME, type RedisKeys, redisKeys } from './keys.ts';
export { LeaderLock } from './leader-lock.ts';
export {
  bestEffort,
  cancelledError,
  DEFAULT_TENANT,
  type LifecycleResources,
  type ProgressReporter,
  type RecoveryReport,
  type SubmitRequest,
  type Submitted,
  TaskLifecycle,
  withTimeout,
} from './lifecycle/index.ts';
export { createLogger, type Logger, requestScope } from './logger.ts';
export { PausedTypes } from './paused-types.ts';
export {
  type JobData,
  jobDataSchema,
  jobOptions,
  MAX_PRIORITY,
  type QueueState,
  TaskQueue,
} from './queue.ts';
export { createRedis, isRedisUnavailable } from './redis.ts';
export { ResultCache } from './result-cache.ts';
export { findUnstorable, type Unstorable } from './unstorable.ts';
export {
  iso,
  isoDate,
  isTerminal,
  type TaskEvent,
  type TaskView,
  taskErrorSchema,
  taskEventSchema,
  taskStatusSchema,
  taskViewSchema,
  toTaskEvent,
  toTaskView,
} from './view.ts';
