export { PASSWORD_FILE } from './auth.ts';
export {
  DEFAULT_PORT,
  type EmbeddedPostgres,
  type EmbeddedPostgresOptions,
  POSTGRES_MAJOR,
  startEmbeddedPostgres,
} from './embedded.ts';
export { EmbeddedPostgresError, type EmbeddedPostgresFailure } from './errors.ts';
export { chooseDataDir, type DataDirChoice, STATE_DIR } from './locations.ts';
export { runningEmbeddedUrl } from './running.ts';
