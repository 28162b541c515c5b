import { TaskFailedError } from '@tasker/sdk';
import { RETRYABLE_STATUSES, TASK_STATUSES, TERMINAL_STATUSES } from '@tasker/states';
import { Command, InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { describeError, EXIT, EXIT_CODES_HELP, exitCodeOf } from '../src/errors.ts';
import { STATUS_STYLE } from '../src/output.ts';
import { statusOption, taskCommands } from '../src/tasks.ts';

// No server: the statuses the CLI reads from @tasker/states, and what it does with each.

const ID = '0b5f0c1e-2a3b-4c5d-8e9f-0a1b2c3d4e5f';

describe('how a followed task ends (run --wait/--watch, watch)', () => {
  it('each terminal status has its exit code; EXPIRED its own', () => {
    expect(Object.fromEntries(TERMINAL_STATUSES.map((s) => [s, exitCodeOf(s)]))).toEqual({
      COMPLETED: 0,
      FAILED: 1,
      CANCELLED: 1,
      EXPIRED: 6,
    });
    expect(EXIT.expired).toBe(6);
    // No other exit code means it.
    expect(Object.values(EXIT).filter((code) => code === EXIT.expired)).toHaveLength(1);
  });

  it('a task that ended EXPIRED is one line and exit 6; FAILED and CANCELLED stay exit 1', () => {
    const expired = describeError(new TaskFailedError(ID, 'EXPIRED', null), 'http://x');
    expect(expired).toMatchObject({
      exitCode: 6,
      message: `task ${ID} expired: not started within its ttl`,
    });
    expect(describeError(new TaskFailedError(ID, 'FAILED', null), 'http://x').exitCode).toBe(1);
    expect(describeError(new TaskFailedError(ID, 'CANCELLED', null), 'http://x').exitCode).toBe(1);
  });

  it('the help lists exit code 6 for EXPIRED', () => {
    expect(EXIT_CODES_HELP).toMatch(/^ {2}6 {2}the task ended EXPIRED/m);
  });
});

describe('statuses', () => {
  it('each has its own colour', () => {
    expect(Object.keys(STATUS_STYLE).sort()).toEqual([...TASK_STATUSES].sort());
    expect(new Set(Object.values(STATUS_STYLE)).size).toBe(TASK_STATUSES.length);
  });

  it('--status takes every status, EXPIRED too, in any case; refuses others, naming them all', () => {
    expect(statusOption('expired')).toEqual(['EXPIRED']);
    expect(statusOption('failed, Expired', ['PENDING'])).toEqual(['PENDING', 'FAILED', 'EXPIRED']);
    expect(() => statusOption('DONE')).toThrow(InvalidArgumentError);
    expect(() => statusOption('DONE')).toThrow(TASK_STATUSES.join(', '));
  });

  it('retry says which statuses it runs again', () => {
    const program = new Command('tasker');
    taskCommands(program);
    const retry = program.commands.find((c) => c.name() === 'retry');
    expect(RETRYABLE_STATUSES).toContain('EXPIRED');
    expect(retry?.description()).toBe('Run a FAILED, CANCELLED or EXPIRED task again, under the same id');
  });
});
