import type { $ZodIssue } from 'zod/v4/core';

/** A submission the catalog refuses: an unknown task type, or parameters its schema rejects. */
export class InvalidTaskInputError extends Error {
  override name = 'InvalidTaskInputError';
  constructor(
    message: string,
    /** What was wrong, field by field; paths start inside the task's input (`['a']`). */
    readonly issues: readonly $ZodIssue[],
  ) {
    super(message);
  }
}
