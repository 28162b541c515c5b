/**
 * Bounded teardown. A test's clean-up must end within a known time whatever the machine does, and
 * say where the time went when it is slow: a hook that hangs until vitest's hookTimeout tells
 * nothing about which step it waited for.
 *
 * Each step runs with a bound. A step slower than `SLOW_MS` prints one line (`[teardown] ...`) with
 * its duration; one that passes its bound prints one line and is left to finish in the background
 * (the promise is not cancelled: a `DROP DATABASE` goes on in PostgreSQL and completes there).
 */

/** Steps slower than this are reported (one line on stderr). */
export const SLOW_MS = 2000;

/** Prints one line about teardown on stderr (visible in vitest's output and in CI logs). */
export function teardownLog(message: string): void {
  process.stderr.write(`[teardown] ${message}\n`);
}

/**
 * Awaits `step` for at most `boundMs`. Resolves `true` when it settled in time (its error, if any,
 * is printed, not thrown: a failed clean-up must not hide the test's result), `false` when the
 * bound passed first.
 */
export async function bounded(what: string, boundMs: number, step: () => Promise<unknown>): Promise<boolean> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    step().then(
      () => 'done' as const,
      (error: unknown) => {
        teardownLog(`${what} failed: ${error instanceof Error ? error.message : String(error)}`);
        return 'done' as const;
      },
    ),
    new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), boundMs);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
  const ms = Math.round(performance.now() - started);
  if (outcome === 'late') {
    teardownLog(`${what}: still not done after ${ms} ms; left to finish in the background`);
    return false;
  }
  if (ms >= SLOW_MS) teardownLog(`${what} took ${ms} ms`);
  return true;
}
