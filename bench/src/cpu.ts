import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/**
 * CPU time spent by each part of the system during a measured window, read from /proc (Linux only;
 * elsewhere every figure is empty). Helps to see what dominates a run on a small machine.
 */

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process, in seconds; undefined when it is gone. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

function readProc(pid: string, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return '';
  }
}

/** A named group of processes to measure. */
export interface CpuGroup {
  label: string;
  /** The pids of this group, found again at each sample (processes may come and go). */
  pids(): number[];
}

export function fixedGroup(label: string, pids: readonly (number | undefined)[]): CpuGroup {
  const known = pids.filter((pid): pid is number => pid !== undefined);
  return { label, pids: () => known };
}

function processesWhere(match: (comm: string, cmdline: string) => boolean): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = readProc(entry, 'comm').trim();
    if (!comm) continue;
    if (match(comm, readProc(entry, 'cmdline').replaceAll('\0', ' '))) found.push(Number(entry));
  }
  return found;
}

/**
 * PostgreSQL backends serving `database` (their title reads `postgres: <cluster>: <user> <db> <host>`).
 */
export function postgresBackends(label: string, database: string): CpuGroup {
  return {
    label,
    pids: () => processesWhere((comm, cmdline) => comm === 'postgres' && cmdline.includes(` ${database} `)),
  };
}

/**
 * Every redis-server process (shared with anything else using it), or only the one listening on
 * `port` (its title reads `redis-server <host>:<port>`).
 */
export function redisServers(label: string, port?: number): CpuGroup {
  return {
    label,
    pids: () =>
      processesWhere(
        (comm, cmdline) =>
          comm === 'redis-server' && (port === undefined || new RegExp(`:${port}(\\s|$)`).test(cmdline)),
      ),
  };
}

export interface CpuFigure {
  label: string;
  seconds: number;
}

export interface CpuWindow {
  /** Ends the window: CPU seconds per group, plus the whole machine's busy time. */
  stop(): { groups: CpuFigure[]; machineBusy: number | undefined; wallSeconds: number };
}

/** Busy (non-idle) CPU seconds of the whole machine so far, from /proc/stat. */
function machineBusySeconds(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    const total = values.slice(0, 8).reduce((sum, v) => sum + v, 0);
    return (total - idle) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

export function startCpuWindow(groups: readonly CpuGroup[]): CpuWindow {
  const sample = () =>
    groups.map((group) => {
      const byPid = new Map<number, number>();
      for (const pid of group.pids()) {
        const seconds = cpuSeconds(pid);
        if (seconds !== undefined) byPid.set(pid, seconds);
      }
      return byPid;
    });
  const startedAt = performance.now();
  const machineStart = machineBusySeconds();
  const before = sample();
  return {
    stop: () => {
      const after = sample();
      const machineEnd = machineBusySeconds();
      const figures = groups.map((group, i) => {
        let seconds = 0;
        for (const [pid, end] of after[i] ?? new Map<number, number>()) {
          // A process that started inside the window spent all its time inside it.
          seconds += end - (before[i]?.get(pid) ?? 0);
        }
        return { label: group.label, seconds };
      });
      return {
        groups: figures,
        machineBusy:
          machineStart !== undefined && machineEnd !== undefined ? machineEnd - machineStart : undefined,
        wallSeconds: (performance.now() - startedAt) / 1000,
      };
    },
  };
}

/** Share of the machine's CPU (0..1, all cores) that was busy during the next `ms` milliseconds. */
export async function machineBusyShare(ms: number): Promise<number | undefined> {
  const start = machineBusySeconds();
  const startedAt = performance.now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const end = machineBusySeconds();
  if (start === undefined || end === undefined) return undefined;
  return (end - start) / (((performance.now() - startedAt) / 1000) * cpus().length);
}
