/**
 * A configured PostgreSQL or Redis could not be reached at start-up for as long as
 * STARTUP_TIMEOUT_MS. Its message is one line naming the variable and the address; the process
 * prints it, without a stack trace, and exits.
 */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
}
