import { chooseDataDir, runningEmbeddedUrl } from '@tasker/embedded-pg';
import { ConfigError, loadEnv } from '@tasker/engine/config';
import { Command, CommanderError, Option } from 'commander';
import { bulkCommands } from './bulk.ts';
import { DEFAULT_URL } from './connect.ts';
import { CliError, EXIT, EXIT_CODES_HELP } from './errors.ts';
import { keysCommand } from './keys.ts';
import { tenantsCommand } from './limits.ts';
import { migrateCommand } from './migrate.ts';
import { queueCommand } from './queue.ts';
import { schedulesCommand } from './schedules.ts';
import { taskCommands } from './tasks.ts';
import { tokensCommand } from './tokens.ts';
import { usageCommand } from './usage.ts';
import { webhooksCommand } from './webhooks.ts';

const program = new Command('tasker')
  .description('Tasker from the command line: run and follow tasks, the queue, limits, API keys')
  .addOption(new Option('--url <url>', `the Tasker server (default ${DEFAULT_URL})`).env('TASKER_URL'))
  .addOption(new Option('--api-key <key>', 'an API key, sent as Authorization: Bearer').env('TASKER_API_KEY'))
  .addHelpText(
    'after',
    `${EXIT_CODES_HELP}

Output: colours and a spinner on a terminal; plain text when piped; --json always JSON on stdout.`,
  )
  .exitOverride();

/**
 * The database: PostgreSQL itself, DATABASE_DIRECT_URL (DATABASE_URL unless a pooler is in front:
 * the CLI migrates, which takes a session's advisory lock), or else the embedded PostgreSQL that
 * `pnpm start` runs now, found where `pnpm start` puts it for the directory the command runs in
 * (TASKER_DATA_DIR, default ./.tasker; see chooseDataDir).
 */
async function databaseUrl(): Promise<string> {
  if (process.env.DATABASE_URL) return loadEnv().DATABASE_DIRECT_URL;
  const { dataDir } = await chooseDataDir(process.cwd());
  const url = await runningEmbeddedUrl(dataDir);
  if (url) return url;
  throw new ConfigError(
    `DATABASE_URL is not set, and no embedded PostgreSQL runs in ${dataDir} (start one with \`pnpm start\`, or set DATABASE_URL)`,
  );
}

taskCommands(program);
bulkCommands(program);
queueCommand(program);
tenantsCommand(program);
schedulesCommand(program);
webhooksCommand(program);
tokensCommand(program);
usageCommand(program);
keysCommand(program, databaseUrl);
migrateCommand(program, databaseUrl);
// Every command: commander's own usage errors become exit 2 (its message is already on stderr).
for (const command of program.commands) {
  command.exitOverride();
  for (const sub of command.commands) sub.exitOverride();
}

/** One line on stderr and a non-zero exit, never a stack trace. */
function fail(error: unknown): never {
  if (error instanceof CommanderError) {
    process.exit(error.exitCode === 0 ? EXIT.ok : EXIT.usage);
  }
  const code = error instanceof CliError ? error.exitCode : EXIT.failed;
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`tasker: ${message.split('\n').join(' ')}\n`);
  process.exit(code);
}

program.parseAsync(process.argv).then(() => process.exit(EXIT.ok), fail);
