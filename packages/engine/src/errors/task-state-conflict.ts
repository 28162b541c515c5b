/** The task is not in a status that allows this (cancel a finished task, retry a running one). */
export class TaskStateConflictError extends Error {
  override name = 'TaskStateConflictError';
}
