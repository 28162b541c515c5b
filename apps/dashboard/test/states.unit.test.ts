import { readFileSync } from 'node:fs';
import { canCancel, canRetry, TASK_STATUSES } from '@tasker/states';
import { describe, expect, it } from 'vitest';
import { STATUSES } from '../src/api.ts';

// No browser, no server: the statuses the dashboard shows and filters by, and their colours.

const css = readFileSync(new URL('../src/style.css', import.meta.url), 'utf8');

/** The declarations of `.badge.<status>` in style.css (StatusBadge's class), or undefined. */
function badgeRule(status: string): string | undefined {
  return css
    .match(new RegExp(`\\.badge\\.${status.toLowerCase()}\\s*\\{([^}]*)\\}`))?.[1]
    ?.replace(/\s+/g, ' ');
}

describe('statuses in the dashboard', () => {
  it('the filter offers every status of @tasker/states, EXPIRED too', () => {
    expect(STATUSES).toEqual(TASK_STATUSES);
    expect(STATUSES).toContain('EXPIRED');
  });

  it('each status badge has its own colours', () => {
    const rules = TASK_STATUSES.map((status) => [status, badgeRule(status)] as const);
    for (const [status, rule] of rules) expect(rule, `.badge.${status.toLowerCase()}`).toMatch(/color/);
    expect(new Set(rules.map(([, rule]) => rule)).size).toBe(TASK_STATUSES.length);
  });

  it('retry shows for EXPIRED, cancel does not', () => {
    expect(canRetry({ status: 'EXPIRED' })).toBe(true);
    expect(canCancel({ status: 'EXPIRED', cancelRequestedAt: null })).toBe(false);
  });
});
