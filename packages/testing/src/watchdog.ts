// A server process (redis-server, PgBouncer) that the tests start and that must never outlive them:
// it runs under a shell that stops it, and deletes its folder, as soon as the pipe from this process
// to the shell closes, whether by stop() or because this process is gone without calling it (a test
// runner's worker killed, a wrapper script SIGKILLed: the kernel closes the pipe then).
//
// The shell is its own process group (`detached`), so a terminal's Ctrl-C, which goes to the
// foreground group, reaches the test command and its wrapper but not the servers: the wrapper stops
// them once the command has ended (scripts/run-command.mjs).
//
// scripts/with-*.mjs import this file through redis-cluster.ts and pgbouncer.ts as it is (node
// strips the types): no syntax that type stripping cannot erase, and relative imports with .ts.
import { type ChildProcess, spawn } from 'node:child_process';

/**
 * The shell. $1: the signal that stops the process when the pipe closes; $2: a folder to delete
 * then ('' for none); the rest: the command. A reader of the pipe (fd 3), in a subshell, tells the
 * shell (USR1) when it closed; `wait` returns at once on a trapped signal. When the process ends by
 * itself, or by a signal sent to it alone (a test killing a Redis to restart it), its folder stays.
 * With a stop signal other than KILL, KILL follows after 5 s (it is still running while its /proc
 * entry is not a zombie's: a timer process of its own would outlive the shell). The first line on
 * stderr is its pid. Once the pipe has closed, the shell's stdout and stderr go to /dev/null: their
 * reader may be gone, and a write (dash's "Killed" for the process it waited for) would end the
 * shell by SIGPIPE before it deleted the folder.
 */
const WATCHDOG = `
sig=$1 dir=$2
shift 2
exec 3<&0 0</dev/null
orphan=
trap 'orphan=1' USR1
"$@" &
pid=$!
echo "watched pid $pid" >&2
(while read -r _ <&3; do :; done; kill -USR1 $$ 2>/dev/null) &
w=$!
exec 3<&-
wait $pid
code=$?
if [ -z "$orphan" ]; then
  kill $w 2>/dev/null
  exit $code
fi
exec >/dev/null 2>&1
kill -$sig $pid
if [ "$sig" != KILL ]; then
  i=0
  while [ $i -lt 50 ] && read -r st </proc/$pid/stat; do
    case $st in *") Z "*) break ;; esac
    sleep 0.1
    i=$((i + 1))
  done
  kill -KILL $pid
fi
wait $pid
code=$?
if [ -n "$dir" ]; then rm -rf -- "$dir" || { sleep 1; rm -rf -- "$dir"; }; fi
exit $code
`;

export interface WatchedOptions {
  /** How the shell stops it when the pipe closes. SIGKILL for a Redis (its AOF has every write), SIGTERM for PgBouncer. */
  signal: 'SIGKILL' | 'SIGTERM';
  /** A folder the shell deletes once the process is gone after the pipe closed. */
  removes?: string;
  /** Each chunk of its stdout and stderr (the shell's pid line left out). */
  onOutput?: (text: string) => void;
}

export interface Watched {
  /** The shell (its exit is the process's: same code). */
  shell: ChildProcess;
  /** The process's own pid, once the shell has said it. */
  pid(): number | undefined;
  /** Resolves with the shell's exit code once it has ended (the process before it). */
  exited: Promise<number | null>;
  /** Whether the shell (so the process) still runs. */
  running(): boolean;
  /** Sends `signal` to the process alone; its folder stays. */
  kill(signal: NodeJS.Signals): void;
  /**
   * Closes the pipe: the shell stops the process with its signal and deletes its folder. Past
   * `boundMs` (default 10 s) both are SIGKILLed. Resolves once the shell has exited.
   */
  stop(boundMs?: number): Promise<void>;
}

/** Starts `command args` under the watchdog shell, in a process group of its own. */
export function spawnWatched(command: string, args: string[], options: WatchedOptions): Watched {
  const shell = spawn(
    '/bin/sh',
    ['-c', WATCHDOG, 'sh', options.signal.slice(3), options.removes ?? '', command, ...args],
    { stdio: ['pipe', 'pipe', 'pipe'], detached: true },
  );
  // An EPIPE when the shell is gone is nothing to report: the pipe is only ever closed.
  shell.stdin?.on('error', () => {});
  let pid: number | undefined;
  let head = '';
  const onData = (chunk: Buffer) => {
    let text = chunk.toString();
    if (pid === undefined) {
      head += text;
      // The process may write before the shell has said its pid.
      const said = /watched pid (\d+)\n/.exec(head);
      if (!said) return;
      pid = Number(said[1]);
      text = head.slice(0, said.index) + head.slice(said.index + said[0].length);
      head = '';
    }
    if (text) options.onOutput?.(text);
  };
  // stderr carries the pid line first; stdout is passed on as it comes.
  shell.stdout?.on('data', (chunk: Buffer) => options.onOutput?.(chunk.toString()));
  shell.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => shell.once('exit', (code) => resolve(code)));
  const running = () => shell.exitCode === null && shell.signalCode === null;
  return {
    shell,
    pid: () => pid,
    exited,
    running,
    kill: (signal) => {
      if (pid === undefined || !running()) return;
      try {
        process.kill(pid, signal);
      } catch {
        // gone already
      }
    },
    stop: async (boundMs = 10_000) => {
      if (!running()) return;
      shell.stdin?.end();
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), boundMs);
        }),
      ]);
      clearTimeout(timer);
      if (inTime) return;
      for (const target of [pid, shell.pid]) {
        try {
          if (target) process.kill(target, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await exited;
    },
  };
}
