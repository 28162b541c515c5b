import type { PublicFailure } from './http.ts';

/**
 * A failure already in public words (its status, message, issues and code), thrown by code that
 * knows what a client must be told (e.g. a PUT naming a tenant nothing belongs to: a 400 naming
 * `tenant`). `publicFailureOf` passes its failure through as it is, so every door answers it with
 * its own status: REST, tRPC, Fastify's error handler and the worker's probe listener.
 */
export class PublicFailureError extends Error {
  override name = 'PublicFailureError';
  constructor(
    readonly failure: PublicFailure,
    options?: { cause?: unknown },
  ) {
    super(failure.message, options);
  }
}
