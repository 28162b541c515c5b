export {
  createTaskerClient,
  type TaskerClient,
  type TaskerClientOptions,
  type TaskHandle,
} from './client.ts';
export {
  TaskerError,
  TaskerNotFoundError,
  TaskerUnavailableError,
  TaskerValidationError,
  TaskFailedError,
  type ValidationIssue,
} from './errors.ts';
export type {
  AppRouter,
  DeepPartial,
  ListOptions,
  ListResult,
  Preview,
  QueueOptions,
  QueueState,
  RetryOptions,
  RunOptions,
  Task,
  TaskError,
  TaskInput,
  TaskName,
  TaskOutput,
  TaskStatus,
  TaskSummary,
  TaskType,
  TaskUpdate,
} from './types.ts';
