// Runs a command against a throwaway embedded PostgreSQL: `pnpm test` runs the test suite so (`pnpm test:redis` runs it on the system PostgreSQL and Redis).
//
//   node scripts/with-embedded-pg.mjs <command> [args...]
//
// - Starts PostgreSQL 18 (packages/embedded-pg, built first) in a new temporary directory on a free
//   port, with durability off (fsync, synchronous_commit, full_page_writes: test data only).
// - Runs the command with TEST_DATABASE_URL=postgres://<user>:<password>@127.0.0.1:<port>/postgres
//   (the cluster's generated password: it trusts nobody) and TEST_MODE=postgres added to its
//   environment (the tests create their tasker_test_* databases there).
// - The command stays in this process group, so a terminal's Ctrl-C reaches it directly; this script
//   waits for it to end. SIGTERM and SIGHUP sent to this script alone are passed on to it.
// - When the command has exited: stops PostgreSQL, deletes the directory, exits with the
//   command's code (128 + the signal number if a signal ended it). If this script is SIGKILLed,
//   the embedded PostgreSQL's watchdog stops PostgreSQL once the command is gone (the directory
//   stays behind in the temporary folder).
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runCommand } from './run-command.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (message) => process.stderr.write(`[with-embedded-pg] ${message}\n`);

const [command, ...args] = process.argv.slice(2);
if (!command) {
  say('usage: node scripts/with-embedded-pg.mjs <command> [args...]');
  process.exit(2);
}
const entry = path.join(root, 'packages/embedded-pg/dist/index.js');
if (!existsSync(entry)) {
  say(
    'packages/embedded-pg/dist/index.js is missing: build first (turbo run build --filter=@tasker/embedded-pg)',
  );
  process.exit(1);
}
const { startEmbeddedPostgres } = await import(pathToFileURL(entry).href);

const dir = await mkdtemp(path.join(tmpdir(), 'tasker-pg-'));
// As root, PostgreSQL runs as the OS user postgres, which must be able to enter this folder.
await chmod(dir, 0o755);

const started = performance.now();
let pg;
try {
  pg = await startEmbeddedPostgres({
    dataDir: path.join(dir, 'pg'),
    port: 0,
    database: 'postgres',
    settings: {
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      // Test files run in parallel, each with a server, workers and their pools.
      max_connections: '300',
    },
  });
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  say(`embedded PostgreSQL could not start: ${message.split('\n')[0]}`);
  await rm(dir, { recursive: true, force: true });
  process.exit(1);
}
say(
  `PostgreSQL ${pg.version} on 127.0.0.1:${pg.port} in ${dir} (initdb ${pg.initdbMs} ms, start ${pg.startMs} ms, ${Math.round(performance.now() - started)} ms in all); running: ${[command, ...args].join(' ')}`,
);

let stopping = false;
void pg.exited.then(({ code, signal }) => {
  if (!stopping)
    say(
      `PostgreSQL ${signal ? `was killed by ${signal}` : `exited with code ${code}`}; its log: ${pg.logFile}`,
    );
});

const exitCode = await runCommand(
  [command, ...args],
  { TEST_DATABASE_URL: pg.urlFor('postgres'), TEST_MODE: 'postgres' },
  say,
  (pid) => pg.addClientProcess(pid),
);
stopping = true;
await pg.stop();
await rm(dir, { recursive: true, force: true });
process.exit(exitCode);
