// Tasker's statuses, stated once in the workspace's @tasker/states and bundled into this package
// (tsup's noExternal): the published SDK depends on no @tasker/* package.
export { canCancel, canRetry, TASK_STATUSES, TERMINAL_STATUSES } from '@tasker/states';
export type { BulkApi, BulkCount, BulkOperation, BulkWaitOptions, TaskFilter } from './bulk.ts';
export {
  createTaskerClient,
  type RunManyHandle,
  type TaskerClient,
  type TaskerClientOptions,
  type TaskHandle,
} from './client.ts';
export {
  TaskerBudgetExceededError,
  TaskerError,
  TaskerNotFoundError,
  TaskerQueueFullError,
  TaskerUnavailableError,
  TaskerValidationError,
  TaskFailedError,
  toTaskerError,
  type UnsuccessfulStatus,
  type ValidationIssue,
} from './errors.ts';
export type {
  LimitsApi,
  LimitsInput,
  TaskTypeLimits,
  TenantLimits,
  TenantLimitsApi,
  TenantLimitsInput,
  TenantListOptions,
  TenantPage,
  TenantsApi,
  TypeLimitsApi,
  TypeLimitsInput,
  TypesApi,
} from './limits.ts';
export type {
  CatchUp,
  NewSchedule,
  Schedule,
  ScheduleChange,
  ScheduleDetail,
  ScheduleListOptions,
  ScheduleOptions,
  SchedulePage,
  SchedulesApi,
} from './schedules.ts';
export type { TokensApi, WaitToken } from './tokens.ts';
export type {
  AppRouter,
  ChildrenSummary,
  ChildTask,
  DebounceOptions,
  DeepPartial,
  ListOptions,
  ListResult,
  Preview,
  QueueOptions,
  QueueState,
  RetryOptions,
  RunManyItem,
  RunOptions,
  Task,
  TaskActivity,
  TaskError,
  TaskInput,
  TaskName,
  TaskOutput,
  TaskStatus,
  TaskStep,
  TaskStepEvent,
  TaskSummary,
  TaskType,
  TaskUpdate,
  TaskUsage,
  WaitingFor,
} from './types.ts';
export type { UsageGroup, UsageOptions, UsageReport, UsageRow } from './usage.ts';
export type {
  NewWebhook,
  TaskWebhookSecret,
  Webhook,
  WebhookDelivery,
  WebhookEvent,
  WebhooksApi,
  WebhookTest,
} from './webhooks.ts';
