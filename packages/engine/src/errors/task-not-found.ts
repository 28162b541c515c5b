import { NotFoundError } from './not-found.ts';

/** No task has this id (or it belongs to another tenant: the answer is the same). */
export class TaskNotFoundError extends NotFoundError {
  override name = 'TaskNotFoundError';
  constructor(readonly taskId: string) {
    super('Task not found');
  }
}
