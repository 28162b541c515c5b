import path from 'node:path';
import { runningEmbeddedUrl } from '@tasker/embedded-pg';
import { ConfigError, loadEnv } from '@tasker/engine';
import { Command, CommanderError } from 'commander';
import { keysCommand } from './keys.ts';

const program = new Command('tasker').description('Tasker from the command line').exitOverride();

/**
 * The database: DATABASE_URL, or else the embedded PostgreSQL that `pnpm start` runs now (its data
 * in TASKER_DATA_DIR, default ./.tasker, under the directory the command runs in).
 */
async function databaseUrl(): Promise<string> {
  if (process.env.DATABASE_URL) return loadEnv().DATABASE_URL;
  const dataDir = path.join(path.resolve(process.env.TASKER_DATA_DIR || '.tasker'), 'pg');
  const url = await runningEmbeddedUrl(dataDir);
  if (url) return url;
  throw new ConfigError(
    `DATABASE_URL is not set, and no embedded PostgreSQL runs in ${dataDir} (start one with \`pnpm start\`, or set DATABASE_URL)`,
  );
}

keysCommand(program, databaseUrl);

/** One line on stderr and a non-zero exit, never a stack trace. */
function fail(error: unknown): never {
  if (error instanceof CommanderError) process.exit(error.exitCode || 1);
  const message =
    error instanceof ConfigError ? error.message : error instanceof Error ? error.message : String(error);
  process.stderr.write(`tasker: ${message.split('\n').join(' ')}\n`);
  process.exit(1);
}

program.parseAsync(process.argv).catch(fail);
