/**
 * Clean-up on Ctrl-C / SIGTERM: stops the processes the benchmark started and drops its databases
 * and Redis keys, newest first, then exits.
 */
const cleanups: (() => Promise<unknown>)[] = [];
let interrupted = false;

async function onSignal(signal: NodeJS.Signals) {
  if (interrupted) process.exit(130);
  interrupted = true;
  console.error(`\n${signal}: cleaning up (press Ctrl-C again to skip)...`);
  for (const cleanup of [...cleanups].reverse()) {
    await cleanup().catch((error: unknown) => console.error('clean-up failed:', error));
  }
  process.exit(130);
}

let installed = false;

/** Registers a clean-up to run on interruption; returns its removal. */
export function onInterrupt(cleanup: () => Promise<unknown>): () => void {
  if (!installed) {
    installed = true;
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  cleanups.push(cleanup);
  return () => {
    const index = cleanups.indexOf(cleanup);
    if (index >= 0) cleanups.splice(index, 1);
  };
}
