export { QueueFullError } from '@tasker/db';
export { DependencyUnavailableError } from './dependency-unavailable.ts';
export { ForbiddenError } from './forbidden.ts';
export {
  describeIssues,
  ERROR_CODE_BY_STATUS,
  ERROR_CODES,
  type ErrorBody,
  type ErrorCode,
  errorBody,
  errorCodeOf,
  INTERNAL_ERROR_MESSAGE,
  type PublicFailure,
  type PublicIssue,
  publicFailureOf,
  SPECIFIC_ERROR_CODES,
  toPublicIssues,
} from './http.ts';
export { InvalidArgumentError } from './invalid-argument.ts';
export { InvalidTaskInputError } from './invalid-task-input.ts';
export { NotFoundError } from './not-found.ts';
export { PublicFailureError } from './public-failure.ts';
export { TaskNotFoundError } from './task-not-found.ts';
export { TaskStateConflictError } from './task-state-conflict.ts';
export { UnreachableError } from './unreachable.ts';
