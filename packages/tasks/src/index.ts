export { getTaskDefinition, type TaskName, type TaskTypes, taskDefinitions, taskNames } from './catalog.ts';
export {
  type ChildTaskOptions,
  type ChildTaskRequest,
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
  type WaitToken,
  type WaitTokenOptions,
} from './define.ts';
export {
  BudgetExceededError,
  type CachedChat,
  type ChatMessage,
  type ChatReply,
  type ChatRequest,
  chatCacheKey,
  createLlm,
  type LlmBounds,
  type LlmCache,
  type LlmCallUsage,
  type LlmClient,
  type LlmContext,
  LlmProviderError,
} from './llm.ts';
export {
  costOf,
  DEFAULT_LLM_PRICES,
  type LlmPrices,
  llmPricesSchema,
  type ModelPrice,
} from './llm-prices.ts';
export {
  MAX_RETRY_AFTER_MS,
  RetryAfterError,
  retryAfterFromHeaders,
  retryAfterOf,
} from './retry-after.ts';
export {
  type ChildFailureStatus,
  ChildTaskError,
  type ChildTaskFailure,
  ChildTaskLimitError,
  ChildTasksError,
  InvalidStepError,
  MAX_SLEEP_MS,
  MAX_STEP_ID_LENGTH,
  MAX_TOKEN_TIMEOUT_MS,
  MIN_TOKEN_TIMEOUT_MS,
  NonDeterminismError,
  WaitTokenTimeoutError,
} from './steps.ts';
export { longestRun } from './tasks/find-longest-consecutive-letters.ts';
