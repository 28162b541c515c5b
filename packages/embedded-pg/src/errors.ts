/** What went wrong, for callers that add advice of their own (e.g. which variable picks the directory). */
export type EmbeddedPostgresFailure =
  /** No binaries for this platform, or some missing. */
  | 'binaries'
  /** As root: the OS user `postgres` is missing and could not be created. */
  | 'os-user'
  /** The data directory can't be used: unreachable for PostgreSQL, not a cluster, another major version. */
  | 'data-dir'
  /** A PostgreSQL already runs on the data directory. */
  | 'in-use'
  | 'initdb'
  /** The superuser's password could not be set, or read (see auth.ts). */
  | 'password'
  /** The server did not start, or not in time. */
  | 'start';

/** Why the embedded PostgreSQL could not start, in one line meant for a person (print `message`, no stack). */
export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
  constructor(
    message: string,
    readonly failure: EmbeddedPostgresFailure,
  ) {
    super(message);
  }
}
