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
  RetryOptions,
  RunOptions,
  Task,
  TaskError,
  TaskInput,
  TaskName,
  TaskOutput,
  TaskStatus,
  TaskUpdate,
} from './types.ts';
