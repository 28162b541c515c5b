export { getTaskDefinition, type TaskName, type TaskTypes, taskDefinitions, taskNames } from './catalog.ts';
export {
  DEFAULT_RETRY,
  DEFAULT_TIMEOUT_MS,
  defineTask,
  MAX_LIMIT,
  NonRetryableError,
  type RetryPolicy,
  type TaskConfig,
  type TaskContext,
  type TaskDefinition,
  type TaskLimits,
  type TaskOptions,
  type TaskProgress,
} from './define.ts';
export { InvalidStepError, MAX_SLEEP_MS, MAX_STEP_ID_LENGTH, NonDeterminismError } from './steps.ts';
export { longestRun } from './tasks/find-longest-consecutive-letters.ts';
