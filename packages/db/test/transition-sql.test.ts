import { TRANSITIONS } from '@tasker/states';
import { describe, expect, it } from 'vitest';
import { choiceText, conditionText } from '../src/index.ts';

describe('SQL built from the state machine', () => {
  it('guards each batched statement by its transition: statuses and guards', () => {
    expect(conditionText('claim')).toBe(
      "t.status in ('PENDING', 'RUNNING') and t.cancel_requested_at is null and (t.expires_at is null or t.expires_at > now()) and (t.run_after is null or t.run_after <= now())",
    );
    expect(conditionText('complete')).toBe("t.status = 'RUNNING' and t.cancel_requested_at is null");
    expect(conditionText('expire')).toBe("t.status = 'PENDING' and t.expires_at <= now()");
  });

  it('refuses a tenant-guarded transition where no tenant can be bound', () => {
    expect(() => conditionText('retry')).toThrow(/needs a tenant/);
  });

  it('chooses among transitions in order, the last as the else', () => {
    expect(
      choiceText([{ name: 'failCancelled' }, { name: 'failFinal', when: 'v.final' }, { name: 'failRetry' }]),
    ).toBe(
      "(case when t.cancel_requested_at is not null then 'CANCELLED' when t.cancel_requested_at is null and v.final then 'FAILED' else 'PENDING' end)::task_status",
    );
  });

  it('writes every status of every transition as the enum knows it', () => {
    for (const t of Object.values(TRANSITIONS)) expect(t.from.every((s) => /^[A-Z]+$/.test(s))).toBe(true);
  });
});
