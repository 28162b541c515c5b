/** The caller may not do this, whoever it is or whatever its key (a 403 that says why). */
export class ForbiddenError extends Error {
  override name = 'ForbiddenError';
}
