export {
  type BatchItemResult,
  createTaskApi,
  type LegacyTaskOutput,
  type ListFilter,
  type MinuteCounts,
  type ProcessingState,
  type SubmitResult,
  type TaskApi,
  type TaskFilter,
  type TaskPage,
} from './api.ts';
export {
  type BudgetName,
  type BudgetState,
  Budgets,
  budgetWindows,
  type Exceeded,
  isLlmType,
  llmTypeNames,
} from './budgets.ts';
export {
  type BulkApi,
  type BulkCountView,
  type BulkOperationView,
  bulkCountSchema,
  bulkOperationSchema,
  createBulkApi,
  EMPTY_FILTER,
  toBulkOperationView,
} from './bulk-api.ts';
export { type CancelSignals, PostgresCancelSignals, RedisCancelSignals } from './cancel-signals.ts';
export {
  authModeOf,
  ConfigError,
  checkServerExposure,
  DEFAULT_RATE_LIMIT_PER_MINUTE,
  describeExposure,
  type Env,
  envSchema,
  isLoopbackHost,
  loadEnv,
  taskConfig,
} from './config.ts';
export { Dispatcher, type DispatcherOptions, type LimitsSource, NO_LIMITS } from './dispatch/dispatcher.ts';
export {
  type HolderLimits,
  Pace,
  type Pick,
  type PlanInput,
  plan,
  type TypeLimits,
} from './dispatch/plan.ts';
export { createEngine, type Engine, type EngineMode, type EngineRole } from './engine.ts';
export * from './errors/index.ts';
export { postgresNames, QUEUE_NAME, type RedisKeys, redisKeyPrefix, redisKeys } from './keys.ts';
export { createLockSession, type LeaderLock, PostgresLeaderLock, RedisLeaderLock } from './leader-lock.ts';
export {
  type BatchItem,
  type BulkRunEnd,
  type BulkRunOptions,
  bestEffort,
  type Claim,
  cancelledError,
  DEFAULT_TENANT,
  filterOf,
  IN_PROCESS_SLEEP_MS,
  isEmptyFilter,
  type LifecycleResources,
  MAX_BATCH_SIZE,
  type ProgressReporter,
  type RecoveryReport,
  type StepContext,
  StepRunner,
  type SubmitRequest,
  type Submitted,
  TaskLifecycle,
  withTimeout,
} from './lifecycle/index.ts';
export {
  effectiveLimits,
  Limits,
  type LimitValues,
  type TypeLimitValues,
  tenantLimitDefaults,
  typeLimitDefaults,
} from './limits.ts';
export { createLogger, type Logger, requestScope } from './logger.ts';
export * from './observability/index.ts';
export { type PausedSet, PausedTypes, postgresPausedSet, redisPausedSet } from './paused-types.ts';
export { type PostgresQueueConnection, PostgresTaskQueue, PostgresTaskWorker } from './postgres-queue.ts';
export {
  BullmqTaskQueue,
  backoffStrategy,
  bullmqConnection,
  createTaskQueue,
  createTaskWorker,
  type Deliverable,
  type JobData,
  jobDataSchema,
  jobOptions,
  jobPriority,
  MAX_PRIORITY,
  type QueueConnection,
  type QueueJob,
  type QueueState,
  retryDelay,
  type TaskProcessor,
  type TaskQueue,
  type TaskWorker,
  type TaskWorkerOptions,
} from './queue.ts';
export {
  createRedis,
  describeRedisTarget,
  isRedisUnavailable,
  probeClusterNodes,
  type RedisClient,
  type RedisTarget,
  redisMasters,
  redisTarget,
} from './redis.ts';
export { parseClusterNodes, type RedisClusterNodes, RedisClusterNodesError } from './redis-nodes.ts';
export { noResultCache, RedisResultCache, type ResultCache } from './result-cache.ts';
export * from './schedules/index.ts';
export {
  createTokensApi,
  MAX_TOKEN_OUTPUT_BYTES,
  type TokensApi,
  toWaitTokenView,
  type WaitTokenView,
  waitTokenSchema,
} from './tokens-api.ts';
export { findUnstorable, type Unstorable } from './unstorable.ts';
export {
  cutUtf8,
  iso,
  isoDate,
  isTerminal,
  MAX_LIST_ROW_BYTES,
  PREVIEW_BYTES,
  type Preview,
  previewSchema,
  type TaskActivity,
  type TaskEvent,
  type TaskStepEvent,
  type TaskSummary,
  type TaskUsageView,
  type TaskView,
  taskErrorSchema,
  taskEventSchema,
  taskStatusSchema,
  taskStepEventSchema,
  taskSummarySchema,
  taskUsageSchema,
  taskViewSchema,
  toTaskEvent,
  toTaskStepEvent,
  toTaskSummary,
  toTaskView,
} from './view.ts';
export {
  checkUrlShape,
  checkWebhookUrl,
  ForbiddenAddressError,
  guardedLookup,
  isForbiddenAddress,
  type Resolve,
} from './webhooks/address-guard.ts';
export {
  type DelivererOptions,
  type PostOptions,
  postWebhook,
  signWebhook,
  WebhookDeliverer,
  type WebhookPayload,
  webhookHeaders,
} from './webhooks/deliver.ts';
