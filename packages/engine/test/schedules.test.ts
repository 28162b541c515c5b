/**
 * Schedules without a database: the cron parser, fire times in real zones across both
 * daylight-saving changes, the minimal interval check, and which ticks a firing pass fires
 * (catch_up none | latest | all, the grace, the bound).
 */
import type { ScheduleRow } from '@tasker/db';
import { describe, expect, it } from 'vitest';
import { CronError, checkCron, InvalidArgumentError, nextFires, parseCron, planFire } from '../src/index.ts';

const fires = (cron: string, zone: string, from: string, count: number) =>
  nextFires(parseCron(cron), zone, new Date(from), count).map((d) => d.toISOString());

describe('cron', () => {
  it('parses 5 and 6 fields, names, ranges, steps and lists', () => {
    expect(fires('*/15 9-10 * * MON-FRI', 'UTC', '2026-11-27T10:40:00Z', 3)).toEqual([
      '2026-11-27T10:45:00.000Z', // a Friday
      '2026-11-30T09:00:00.000Z', // Monday
      '2026-11-30T09:15:00.000Z',
    ]);
    expect(fires('*/20 * * * * *', 'UTC', '2026-01-01T00:00:00.500Z', 3)).toEqual([
      '2026-01-01T00:00:20.000Z',
      '2026-01-01T00:00:40.000Z',
      '2026-01-01T00:01:00.000Z',
    ]);
    expect(fires('0 0 1 jan,jul 7', 'UTC', '2026-01-01T00:00:00Z', 2)).toEqual([
      '2026-01-04T00:00:00.000Z', // a Sunday in January (day and weekday both restricted: either)
      '2026-01-11T00:00:00.000Z',
    ]);
    expect(fires('0 0 30 2 *', 'UTC', '2026-01-01T00:00:00Z', 1)).toEqual([]);
  });

  it('names what is wrong', () => {
    for (const [cron, words] of [
      ['* * * *', 'has 4 field(s)'],
      ['61 * * * *', 'minute "61" is not in 0-59'],
      ['* * * * 8', 'day of week "8" is not in 0-7 (or SUN-SAT)'],
      ['*/0 * * * *', 'not a step'],
      ['5-1 * * * *', 'backward'],
      ['* ? * * *', '"?" is only for'],
    ] as const) {
      expect(() => parseCron(cron), cron).toThrow(CronError);
      expect(() => parseCron(cron), cron).toThrow(words);
    }
  });

  // Europe/Paris, 2026: clocks go forward on March 29 at 02:00 (to 03:00, 01:00 UTC) and back on
  // October 25 at 03:00 (to 02:00, 01:00 UTC).
  it('the missing hour: a tick inside it fires once, at the first instant after the gap', () => {
    // Daily at 02:30: on March 29 at 03:00 CEST (01:00 UTC), once; the days around at 02:30.
    expect(fires('30 2 * * *', 'Europe/Paris', '2026-03-28T00:00:00Z', 3)).toEqual([
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:00:00.000Z',
      '2026-03-30T00:30:00.000Z',
    ]);
    // Every 30 minutes: 02:00 and 02:30 do not exist; they and 03:00 are one fire at 03:00.
    expect(fires('*/30 * * * *', 'Europe/Paris', '2026-03-29T00:10:00Z', 3)).toEqual([
      '2026-03-29T00:30:00.000Z', // 01:30 CET
      '2026-03-29T01:00:00.000Z', // 03:00 CEST
      '2026-03-29T01:30:00.000Z', // 03:30 CEST
    ]);
  });

  it('the repeated hour: a tick inside it fires once, at its first occurrence', () => {
    expect(fires('30 2 * * *', 'Europe/Paris', '2026-10-24T00:00:00Z', 3)).toEqual([
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z', // 02:30 CEST, the first 02:30; not 01:30 UTC (02:30 CET) as well
      '2026-10-26T01:30:00.000Z',
    ]);
    // Every 30 minutes: 02:00 and 02:30 fire in CEST; the second pass through 02:xx (CET) fires nothing.
    expect(fires('*/30 * * * *', 'Europe/Paris', '2026-10-24T23:50:00Z', 4)).toEqual([
      '2026-10-25T00:00:00.000Z', // 02:00 CEST
      '2026-10-25T00:30:00.000Z', // 02:30 CEST
      '2026-10-25T02:00:00.000Z', // 03:00 CET
      '2026-10-25T02:30:00.000Z',
    ]);
    // Asked from inside the second pass (02:15 CET): the next fire is 03:00 CET.
    expect(fires('*/30 * * * *', 'Europe/Paris', '2026-10-25T01:15:00Z', 1)).toEqual([
      '2026-10-25T02:00:00.000Z',
    ]);
  });

  it('America/New_York too (2026-03-08 02:00 → 03:00, 2026-11-01 02:00 → 01:00)', () => {
    expect(fires('30 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z', 2)).toEqual([
      '2026-03-08T07:00:00.000Z', // 03:00 EDT
      '2026-03-09T06:30:00.000Z',
    ]);
    expect(fires('30 1 * * *', 'America/New_York', '2026-10-31T12:00:00Z', 2)).toEqual([
      '2026-11-01T05:30:00.000Z', // 01:30 EDT only
      '2026-11-02T06:30:00.000Z',
    ]);
  });
});

describe('checkCron', () => {
  const bad = (cron: string, zone: string, minMs: number) => {
    try {
      checkCron(cron, zone, minMs);
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidArgumentError);
      return error as InvalidArgumentError;
    }
    throw new Error(`accepted ${cron} in ${zone}`);
  };

  it('refuses a bad zone (naming timezone), a bad cron, one that never fires, one too frequent (naming cron)', () => {
    expect(bad('* * * * *', 'Mars/Olympus', 1000).argument).toBe('timezone');
    expect(bad('* * * * *', '+02:00', 1000).argument).toBe('timezone');
    expect(bad('* * *', 'UTC', 1000).argument).toBe('cron');
    expect(bad('0 0 31 2 *', 'UTC', 1000).reason).toContain('never fires');
    expect(bad('*/5 * * * * *', 'UTC', 10_000).reason).toContain('more often than SCHEDULE_MIN_INTERVAL_MS');
    // Twice a year, one second apart: the shortest gap, not the usual one, counts.
    expect(bad('0,1 0 0 1 1 *', 'UTC', 1000 + 1).argument).toBe('cron');
  });

  it('accepts and normalises', () => {
    const checked = checkCron(' 0  12 * * * ', 'europe/paris', 1000, new Date('2026-06-01T00:00:00Z'));
    expect(checked).toEqual({
      cron: '0 12 * * *',
      timezone: 'Europe/Paris',
      nextFireAt: new Date('2026-06-01T10:00:00Z'),
    });
  });
});

describe('planFire', () => {
  const schedule = (values: Partial<ScheduleRow>): ScheduleRow => ({
    id: '00000000-0000-4000-8000-000000000001',
    tenantId: 'acme',
    key: null,
    name: 'sum_two_numbers',
    input: { a: 1, b: 2 },
    cron: '* * * * *',
    timezone: 'UTC',
    catchUp: 'latest',
    paused: false,
    priority: 0,
    maxAttempts: null,
    timeoutMs: null,
    ttlMs: null,
    concurrencyKey: null,
    nextFireAt: null,
    lastFireAt: null,
    skippedRuns: 0,
    lastSkippedFor: null,
    lastSkipReason: null,
    createdAt: new Date(0),
    updatedAt: new Date(0),
    ...values,
  });
  const now = new Date('2026-06-01T12:00:30Z');
  const options = { graceMs: 120_000, catchUpMax: 3 };
  const iso = (ds: Date[]) => ds.map((d) => d.toISOString().slice(11, 19));

  it('on time: every tick within the grace fires, and the next tick follows now', () => {
    const p = planFire(schedule({ nextFireAt: new Date('2026-06-01T11:59:00Z') }), now, options);
    expect(iso(p.ticks)).toEqual(['11:59:00', '12:00:00']);
    expect(p.nextFireAt?.toISOString()).toBe('2026-06-01T12:01:00.000Z');
    expect(p.maxAttempts).toBe(1);
  });

  it('missed ticks (older than the grace): none drops them, latest fires the latest, all at most catchUpMax', () => {
    const nextFireAt = new Date('2026-06-01T10:00:00Z'); // two hours down
    const plan = (catchUp: ScheduleRow['catchUp']) =>
      iso(planFire(schedule({ nextFireAt, catchUp }), now, options).ticks);
    const onTime = ['11:59:00', '12:00:00'];
    expect(plan('none')).toEqual(onTime);
    expect(plan('latest')).toEqual(['11:58:00', ...onTime]);
    expect(plan('all')).toEqual(['11:56:00', '11:57:00', '11:58:00', ...onTime]);
    // Down for a month, a daily cron: the latest missed day is found without walking the month.
    const daily = planFire(
      schedule({ cron: '0 3 * * *', nextFireAt: new Date('2026-05-01T03:00:00Z'), catchUp: 'latest' }),
      now,
      options,
    );
    expect(daily.ticks.map((d) => d.toISOString())).toEqual(['2026-06-01T03:00:00.000Z']);
    expect(daily.nextFireAt?.toISOString()).toBe('2026-06-02T03:00:00.000Z');
  });

  it('a task type gone from the catalog fires nothing: its ticks are skipped', () => {
    const p = planFire(
      schedule({ name: 'gone', nextFireAt: new Date('2026-06-01T12:00:00Z') }),
      now,
      options,
    );
    expect(p.skipAll).toBe('UNKNOWN_TYPE');
    expect(iso(p.ticks)).toEqual(['12:00:00']);
  });
});
