/** A request argument that is well-formed JSON but not usable (e.g. a cursor this API never issued). */
export class InvalidArgumentError extends Error {
  override name = 'InvalidArgumentError';
  constructor(
    /** The argument, e.g. `cursor`. */
    readonly argument: string,
    /** What is wrong with it, in words that stand alone (the 400's issue for `argument`). */
    readonly reason: string,
  ) {
    super(`${argument}: ${reason}`);
  }
}
