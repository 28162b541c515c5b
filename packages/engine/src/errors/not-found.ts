/** The thing asked for does not exist (or is not the caller's: the answer is the same). */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
}
