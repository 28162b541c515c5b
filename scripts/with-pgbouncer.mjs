// Runs a command with a PgBouncer in transaction mode in front of the tests' PostgreSQL: `pnpm
// test:pgbouncer` runs the engine's and the server's suites so (issue 24).
//
//   node scripts/with-pgbouncer.mjs <command> [args...]
//
// - Starts PgBouncer (Debian's `pgbouncer` package; PGBOUNCER names another binary) on a free
//   loopback port, `pool_mode = transaction`, every database passed on to TEST_DATABASE_URL's
//   PostgreSQL (default postgres://root@127.0.0.1:5432), `default_pool_size = 10`
//   (packages/testing/src/pgbouncer.ts).
// - Runs the command with TEST_PGBOUNCER_URL=postgres://<user>@127.0.0.1:<port>/ added to its
//   environment: the tests' processes then get DATABASE_URL through the pooler and
//   DATABASE_DIRECT_URL to PostgreSQL (packages/testing's createTestEnv).
// - The command stays in this process group (a terminal's Ctrl-C reaches it directly); SIGTERM and
//   SIGHUP sent to this script alone are passed on. The servers have process groups of their own
//   (the Ctrl-C does not reach them) and are stopped after the command, or at once on a second
//   signal; a SIGKILLed script's are stopped (their folders deleted) by their watchdogs. When it has exited: stops PgBouncer, exits with
//   the command's code (128 + the signal number if a signal ended it).
import { startPgBouncer } from '../packages/testing/src/pgbouncer.ts';
import { runCommand } from './run-command.mjs';

const say = (message) => process.stderr.write(`[with-pgbouncer] ${message}\n`);

const [command, ...args] = process.argv.slice(2);
if (!command) {
  say('usage: node scripts/with-pgbouncer.mjs <command> [args...]');
  process.exit(2);
}

let pooler;
try {
  pooler = await startPgBouncer();
} catch (error) {
  say(`PgBouncer could not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
say(`PgBouncer (transaction mode) at ${pooler.url}; running: ${[command, ...args].join(' ')}`);

const exitCode = await runCommand(
  [command, ...args],
  { TEST_PGBOUNCER_URL: pooler.url },
  say,
  undefined,
  () => pooler.stop(),
);
// What PgBouncer warned about, by kind with counts (CI keeps them). "got packet 'E' from server when
// not linked" is an idle server connection told its database was dropped (every test drops its
// own); another packet there would be an answer PgBouncer could not deliver.
const kinds = new Map();
for (const line of pooler.output().split('\n')) {
  if (!/\b(WARNING|ERROR|FATAL)\b/.test(line)) continue;
  const kind = line
    .replace(/^.*?\b(WARNING|ERROR|FATAL)\b/, '$1')
    .replace(/[SC]-0x[0-9a-f]+: \S+ /, '')
    .replace(/tasker_test_\w+/g, 'tasker_test_*');
  kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
}
if (kinds.size > 0)
  say(
    `PgBouncer's warnings and errors, by kind:\n${[...kinds].map(([kind, n]) => `  ${n} × ${kind}`).join('\n')}`,
  );
await pooler.stop();
process.exit(exitCode);
