export { DependencyUnavailableError } from './dependency-unavailable.ts';
export { ForbiddenError } from './forbidden.ts';
export { InvalidArgumentError } from './invalid-argument.ts';
export { InvalidTaskInputError } from './invalid-task-input.ts';
export { NotFoundError } from './not-found.ts';
export { TaskNotFoundError } from './task-not-found.ts';
export { TaskStateConflictError } from './task-state-conflict.ts';
export { UnreachableError } from './unreachable.ts';
