import { type ChildProcess, spawn } from 'node:child_process';
import type { Socket } from 'node:net';

/**
 * A tiny `sh` process that stops PostgreSQL (fast shutdown, SIGINT) when the process that started
 * it dies without stopping it: killed with SIGKILL, alone or with its whole process group.
 *
 * - It runs in a process group of its own (`detached`), so a SIGKILL sent to the starter's group
 *   does not reach it, and ignores SIGHUP and SIGINT (a closing or interrupted terminal).
 * - It reads its stdin, a pipe from the starter, until EOF, which comes when the starter is gone.
 *   Each line is the pid of a client process (e.g. a server or worker that stops by itself when
 *   its parent dies): those get up to `graceMs` to exit first, so that they finish with the
 *   database still up. The line `disarm` means "stopped properly": it exits doing nothing.
 * - PostgreSQL itself is detached too, so that a terminal's Ctrl-C reaches only the supervisor,
 *   which stops PostgreSQL after its clients; hence this watchdog.
 */
const script = `
trap '' HUP INT
pg=$1
tenths=$2
pids=
while IFS= read -r line; do
  case $line in
    disarm) exit 0 ;;
    *[!0-9]*|'') ;;
    *) pids="$pids $line" ;;
  esac
done
i=0
while [ "$i" -lt "$tenths" ]; do
  alive=
  for p in $pids; do
    kill -0 "$p" 2>/dev/null || continue
    # Exited but not yet reaped by init (a zombie, state Z) counts as gone. Linux only.
    if [ -r "/proc/$p/stat" ] && read -r stat < "/proc/$p/stat"; then
      state=\${stat##*) }
      [ "\${state%% *}" = Z ] && continue
    fi
    alive=1
  done
  [ -z "$alive" ] && break
  sleep 0.1
  i=$((i + 1))
done
kill -INT "$pg" 2>/dev/null
exit 0
`;

export interface Watchdog {
  /** Lets this client process exit before PostgreSQL is stopped (see above). */
  addClient(pid: number): void;
  /** PostgreSQL is being stopped properly: the watchdog exits without doing anything. */
  disarm(): void;
}

export function startWatchdog(postmasterPid: number, graceMs: number): Watchdog {
  const child: ChildProcess = spawn(
    'sh',
    ['-c', script, 'tasker-pg-watchdog', String(postmasterPid), String(Math.ceil(graceMs / 100))],
    {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    },
  );
  child.on('error', () => {}); // no sh: nothing to watch with; stop() still works
  child.stdin?.on('error', () => {}); // EPIPE if it died
  // Neither the process nor its pipe keeps the starter's event loop alive.
  child.unref();
  (child.stdin as Socket | null)?.unref();
  let disarmed = false;
  return {
    addClient: (pid) => {
      if (!disarmed) child.stdin?.write(`${pid}\n`);
    },
    disarm: () => {
      if (disarmed) return;
      disarmed = true;
      child.stdin?.end('disarm\n');
    },
  };
}
