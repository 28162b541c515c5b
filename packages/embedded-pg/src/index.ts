export {
  DEFAULT_PORT,
  type EmbeddedPostgres,
  type EmbeddedPostgresOptions,
  POSTGRES_MAJOR,
  startEmbeddedPostgres,
} from './embedded.ts';
export { EmbeddedPostgresError } from './errors.ts';
