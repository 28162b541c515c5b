/** Why the embedded PostgreSQL could not start, in one line meant for a person (print `message`, no stack). */
export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
}
