/** Something Tasker needs does not answer (PostgreSQL, Redis) or is not configured (an API key). */
export class DependencyUnavailableError extends Error {
  override name = 'DependencyUnavailableError';
  constructor(
    readonly dependency: string,
    message = `${dependency} is unavailable`,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
