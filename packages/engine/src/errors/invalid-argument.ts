/** A request argument that is well-formed JSON but not usable (e.g. a cursor this API never issued). */
export class InvalidArgumentError extends Error {
  override name = 'InvalidArgumentError';
  constructor(
    /** The argument, e.g. `cursor`. */
    readonly argument: string,
    message: string,
  ) {
    super(`${argument}: ${message}`);
  }
}
