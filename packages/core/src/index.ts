export { ConfigError, type Env, envSchema, loadEnv, taskConfig } from './config.ts';
export { createLogger, type Logger } from './logger.ts';
export { PausedTypes } from './paused-types.ts';
export {
  type JobData,
  jobDataSchema,
  jobOptions,
  MAX_PRIORITY,
  QUEUE_NAME,
  type QueueState,
  TaskQueue,
} from './queue.ts';
export { createRedis } from './redis.ts';
export { StatusBus } from './status-bus.ts';
export {
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
