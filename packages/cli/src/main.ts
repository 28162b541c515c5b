import { ConfigError, loadEnv } from '@tasker/engine';
import { Command, CommanderError } from 'commander';
import { keysCommand } from './keys.ts';

const program = new Command('tasker').description('Tasker from the command line').exitOverride();

keysCommand(program, () => loadEnv().DATABASE_URL);

/** One line on stderr and a non-zero exit, never a stack trace. */
function fail(error: unknown): never {
  if (error instanceof CommanderError) process.exit(error.exitCode || 1);
  const message =
    error instanceof ConfigError ? error.message : error instanceof Error ? error.message : String(error);
  process.stderr.write(`tasker: ${message.split('\n').join(' ')}\n`);
  process.exit(1);
}

program.parseAsync(process.argv).catch(fail);
