// Runs a command with a Redis Cluster of three masters on loopback: `pnpm test:cluster` runs the
// engine's, the server's and the worker's suites so, in the Redis mode (issue 24).
//
//   node scripts/with-redis-cluster.mjs <command> [args...]
//
// - Starts three redis-servers (Debian's `redis-server` package) with `cluster-enabled yes` on free
//   loopback ports, joined by `redis-cli --cluster create` (no replicas), and waits for
//   `cluster_state:ok` (packages/testing/src/redis-cluster.ts).
// - Runs the command with TEST_REDIS_CLUSTER_NODES=127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3 added to
//   its environment: in the Redis mode, the tests' processes then get REDIS_CLUSTER_NODES instead
//   of REDIS_URL, and their keys are under the hash tag {REDIS_PREFIX} (packages/testing's
//   createTestEnv, which deletes them on every master afterwards).
// - The command stays in this process group (a terminal's Ctrl-C reaches it directly); SIGTERM and
//   SIGHUP sent to this script alone are passed on. The servers have process groups of their own
//   (the Ctrl-C does not reach them) and are stopped after the command, or at once on a second
//   signal; a SIGKILLed script's are stopped (their folders deleted) by their watchdogs. When it has exited: stops the cluster (its
//   folders deleted), exits with the command's code (128 + the signal number if a signal ended it).
import { startRedisCluster } from '../packages/testing/src/redis-cluster.ts';
import { runCommand } from './run-command.mjs';

const say = (message) => process.stderr.write(`[with-redis-cluster] ${message}\n`);

const [command, ...args] = process.argv.slice(2);
if (!command) {
  say('usage: node scripts/with-redis-cluster.mjs <command> [args...]');
  process.exit(2);
}

let cluster;
try {
  cluster = await startRedisCluster();
} catch (error) {
  say(`the Redis Cluster could not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
say(`Redis Cluster (3 masters) at ${cluster.nodes}; running: ${[command, ...args].join(' ')}`);

const exitCode = await runCommand(
  [command, ...args],
  { TEST_REDIS_CLUSTER_NODES: cluster.nodes },
  say,
  undefined,
  () => cluster.stop(),
);
await cluster.stop();
process.exit(exitCode);
