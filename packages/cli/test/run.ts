import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

/** The built CLI, as `docker compose exec server tasker` and `npx tasker` run it. */
export const MAIN = new URL('../dist/main.js', import.meta.url).pathname;

/** A process run to its end. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Each piece of stdout as it arrived, with the milliseconds since the start. */
  chunks: { at: number; text: string }[];
}

/**
 * Runs `command args` to its end (stdin closed): its exit code and output. `env` is the whole
 * environment (default: this process's); `live` sees the output as it comes.
 */
export function runProcess(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; live?: (run: Run) => void } = {},
): Promise<Run> {
  const started = Date.now();
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: Run = { code: null, stdout: '', stderr: '', chunks: [] };
  options.live?.(run);
  child.stdout.on('data', (chunk: Buffer) => {
    run.stdout += chunk.toString();
    run.chunks.push({ at: Date.now() - started, text: chunk.toString() });
  });
  child.stderr.on('data', (chunk: Buffer) => {
    run.stderr += chunk.toString();
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ ...run, code })));
}

/** Runs the built CLI (`tasker args`) with this process's environment and `vars` over it. */
export function tasker(
  args: string[],
  vars: Record<string, string> = {},
  live?: (run: Run) => void,
): Promise<Run> {
  return runProcess(process.execPath, [MAIN, ...args], { env: { ...process.env, ...vars }, live });
}

/** Throws unless the CLI is built (its tests run dist/main.js). */
export function assertBuilt(): void {
  if (!existsSync(MAIN))
    throw new Error(`${MAIN} is missing: build the CLI first (pnpm --filter @tasker/cli build)`);
}
