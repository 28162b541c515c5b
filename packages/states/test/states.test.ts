import { describe, expect, it } from 'vitest';
import {
  ACTIVE_STATUSES,
  canCancel,
  canRetry,
  GUARDS,
  isTerminal,
  listInWords,
  nextStatuses,
  RETRYABLE_STATUSES,
  STATUS_DESCRIPTIONS,
  TASK_STATUSES,
  TERMINAL_STATUSES,
  TRANSITIONS,
  type Transition,
  UNFINISHED_STATUSES,
} from '../src/index.ts';

const all = Object.entries(TRANSITIONS) as [string, Transition][];

describe('the state machine', () => {
  it('splits every status into terminal or unfinished, and describes each', () => {
    expect([...TERMINAL_STATUSES, ...UNFINISHED_STATUSES].sort()).toEqual([...TASK_STATUSES].sort());
    for (const status of TASK_STATUSES) expect(STATUS_DESCRIPTIONS[status].length).toBeGreaterThan(10);
  });

  it('leaves a terminal status only by a retry', () => {
    for (const [name, t] of all) {
      if (t.from.some(isTerminal)) expect(name).toBe('retry');
    }
  });

  it('reaches every status from PENDING', () => {
    const seen = new Set(['PENDING'] as string[]);
    const todo = ['PENDING' as const];
    for (let s = todo.pop(); s; s = todo.pop()) {
      for (const next of nextStatuses(s)) {
        if (!seen.has(next)) {
          seen.add(next);
          todo.push(next as 'PENDING');
        }
      }
    }
    expect([...seen].sort()).toEqual([...TASK_STATUSES].sort());
  });

  it('states only known guards, and never contradictory ones', () => {
    for (const [, t] of all) {
      for (const g of t.guards) expect(Object.keys(GUARDS)).toContain(g);
      expect(t.guards.includes('cancelRequested') && t.guards.includes('cancelNotRequested')).toBe(false);
      expect(t.guards.includes('expired') && t.guards.includes('notExpired')).toBe(false);
      expect(t.from.length).toBeGreaterThan(0);
    }
  });

  it('makes the three ends of a failed attempt exclusive: exactly one applies to a RUNNING task', () => {
    const ends = [TRANSITIONS.failCancelled, TRANSITIONS.failFinal, TRANSITIONS.failRetry];
    // A cancel asked for decides first (CANCELLED); without one, whether attempts are left does.
    expect(ends.map((t) => t.guards.join())).toEqual([
      'cancelRequested',
      'cancelNotRequested',
      'cancelNotRequested',
    ]);
    for (const t of ends) expect(t.from).toEqual(['RUNNING']);
    expect(TRANSITIONS.failCancelled.to).toBe('CANCELLED');
  });

  it('answers can-cancel and can-retry from the transitions', () => {
    expect(canCancel({ status: 'PENDING' })).toBe(true);
    expect(canCancel({ status: 'WAITING' })).toBe(true);
    expect(canRetry({ status: 'WAITING' })).toBe(false);
    expect(canCancel({ status: 'RUNNING', cancelRequestedAt: null })).toBe(true);
    expect(canCancel({ status: 'RUNNING', cancelRequestedAt: '2026-01-01T00:00:00Z' })).toBe(false);
    for (const s of TERMINAL_STATUSES) expect(canCancel({ status: s })).toBe(false);
    expect([...RETRYABLE_STATUSES].sort()).toEqual(['CANCELLED', 'EXPIRED', 'FAILED']);
    expect(canRetry({ status: 'EXPIRED' })).toBe(true);
    expect(canRetry({ status: 'COMPLETED' })).toBe(false);
    expect(canRetry({ status: 'RUNNING' })).toBe(false);
  });

  it('WAITING: unfinished, entered only from RUNNING (wait), left for PENDING (wake) or CANCELLED', () => {
    expect(isTerminal('WAITING')).toBe(false);
    expect(UNFINISHED_STATUSES).toContain('WAITING');
    // It holds no slot and no job: not among the statuses a handed-out task can be in.
    expect(ACTIVE_STATUSES).not.toContain('WAITING');
    const into = all.filter(([, t]) => t.to === 'WAITING').map(([name, t]) => [name, t.from]);
    expect(into).toEqual([['wait', ['RUNNING']]]);
    // WAITING itself: `waitOver` ends a wait early (run_after now) and leaves the waking to `wake`.
    expect(nextStatuses('WAITING').sort()).toEqual(['CANCELLED', 'PENDING', 'WAITING']);
    expect(TRANSITIONS.waitOver).toMatchObject({ to: 'unchanged', sets: ['runAfter'] });
    // A cancel asked for while the handler ran wins over its sleep, as over a result.
    expect(TRANSITIONS.wait.guards).toContain('cancelNotRequested');
    // Only the waking time lets it go, and what it waited for is cleared on the way out.
    expect(TRANSITIONS.wake.guards).toEqual(['due']);
    expect(TRANSITIONS.wake.sets).toContain('waitingFor');
    expect(TRANSITIONS.cancelPending.sets).toContain('waitingFor');
  });

  it('lists statuses in words', () => {
    expect(listInWords(RETRYABLE_STATUSES)).toBe('FAILED, CANCELLED or EXPIRED');
    expect(listInWords(['A'])).toBe('A');
  });
});
