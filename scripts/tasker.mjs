// `pnpm tasker …`: the CLI as the Docker image runs it (packages/cli/dist/main.js, one bundle that
// starts in a fraction of a second), built first by turbo when a source it bundles has changed
// (a cache hit when none did: a quarter of a second). turbo's own output is shown only if the build
// fails, so that stdout is the CLI's alone (`ID=$(pnpm tasker run …)`).
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const turbo = fileURLToPath(new URL('../node_modules/.bin/turbo', import.meta.url));
const child = spawn(turbo, ['run', 'build', '--filter=@tasker/cli', '--output-logs=errors-only'], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'pipe'],
});
let output = '';
child.stdout.on('data', (chunk) => (output += chunk));
child.stderr.on('data', (chunk) => (output += chunk));
// A build that is not a cache hit (a first run, a changed source) says so, on stderr.
const slow = setTimeout(
  () => process.stderr.write('tasker: building the CLI (packages/cli/dist) first…\n'),
  1500,
);
const result = await new Promise((resolve) => {
  child.on('error', (error) => resolve(error.message));
  child.on('close', (code) => resolve(code === 0 ? null : `exit ${code}`));
});
clearTimeout(slow);
if (result !== null) {
  process.stderr.write(`${output}tasker: the CLI's build failed (${result})\n`);
  process.exit(1);
}
// The same process runs it: process.argv is [node, this file, ...the CLI's arguments], as for the bin.
await import(pathToFileURL(`${root}packages/cli/dist/main.js`).href);
