export { holdsAdvisoryLock } from './advisory-lock.ts';
export {
  API_KEY_PREFIX,
  type ApiKeyInfo,
  ApiKeyStore,
  hashApiKey,
  looksLikeApiKey,
  type NewApiKey,
} from './api-keys.ts';
export { Batcher, type BatcherOptions, ItemFailure } from './batcher.ts';
export { createDb, type Database, type DbClient, type DbOptions, isPooled } from './client.ts';
export {
  isDatabaseUnavailable,
  isTransientDatabaseError,
  isUniqueViolation,
  QueueFullError,
} from './errors.ts';
export {
  DISPATCH_CHANNEL,
  listenTaskChanges,
  parseChanges,
  parseTaskChanges,
  type StepChange,
  TASK_EVENTS_CHANNEL,
  type TaskChange,
  type TaskChangeListener,
  type TruncatedTaskChange,
} from './events.ts';
export {
  type BudgetSpend,
  type BudgetValues,
  COUNT_CAP,
  type LimitChange,
  LimitStore,
  type LimitValues,
  type SpendRead,
  type StoredTenantLimits,
  type StoredTypeLimits,
  type TaskCounts,
  type TenantChange,
  type TypeLimitValues,
} from './limits.ts';
export { ensureDatabase, migrateDatabase, migrationsFolder } from './migrate.ts';
export { PausedTypeStore } from './paused-types.ts';
export { redactUrl } from './redact-url.ts';
export {
  type FiredTask,
  type FireLimits,
  type FireResult,
  type PlannedFire,
  type ScheduleChange,
  type ScheduleRun,
  ScheduleStore,
  type ScheduleValues,
} from './schedules.ts';
export * from './schema.ts';
export {
  actionStatuses,
  addUsage,
  type BatchInserted,
  type BatchLimits,
  type BulkCursor,
  BulkOperations,
  type ChildRow,
  type ChildrenSummary,
  type FailedAttempt,
  type HoldingGroup,
  type Inserted,
  LIST_HEAD_CHARS,
  type LlmCall,
  type NewBulkOperation,
  type ReadyTask,
  type StaleTask,
  type StepRecord,
  type Suspension,
  type TaskFilter,
  type TaskInsert,
  type TaskListFilter,
  type TaskListRow,
  TaskStore,
  type TaskStoreOptions,
  taskFilterConditions,
  UsageStore,
} from './store.ts';
export {
  JOBS_CHANNEL,
  type JobCounts,
  JobQueries,
  type JobState,
  type JobToQueue,
  type TakenJob,
} from './tasks/jobs.ts';
export {
  type RetentionReport,
  type TaskPartition,
  TaskPartitions,
  WEEKS_AHEAD,
  weekName,
  weekStart,
} from './tasks/partitions.ts';
export {
  hashTokenSecret,
  isTokenId,
  type NewWaitToken,
  type TokenCompletion,
  type TokenRef,
  type WaitTokenRow,
  type WaitTokenStatus,
  WaitTokens,
} from './tasks/tokens.ts';
export { type Assignments, choiceText, conditionText, whereOf } from './tasks/transition-sql.ts';
export {
  type CachedReply,
  LlmCacheStore,
  MAX_CACHED_REPLY_CHARS,
  USAGE_GROUPS,
  type UsageGroup,
  type UsageQuery,
  type UsageReportRow,
  UsageReports,
} from './tasks/usage.ts';
export { TenantWatchers } from './tenant-watchers.ts';
export { type PostgresConnection, postgresConnection, readCaFile, TlsConfigError } from './tls.ts';
export { uuidv7, uuidv7Bound, uuidv7Ms, uuidv7Time } from './uuidv7.ts';
export {
  type AttemptOutcome,
  type NewWebhook,
  newWebhookSecret,
  type TakenDelivery,
  WEBHOOK_SECRET_PREFIX,
  type WebhookInfo,
  WebhookStore,
} from './webhooks.ts';
