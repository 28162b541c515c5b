/**
 * Cron expressions in an IANA time zone, without a library: 5 fields (minute hour day month
 * weekday), or 6 with seconds first. Each field takes `*`, `?` (day and weekday), numbers, ranges
 * `a-b`, steps `*\/n`, `a/n`, `a-b/n`, lists `a,b`, and the names JAN..DEC, SUN..SAT (weekday 7 is
 * Sunday too). As in Vixie cron, when both the day and the weekday are restricted (neither starts
 * with `*` or `?`), a day matching either fires.
 *
 * A tick is a wall-clock time of the zone that matches the cron. Daylight-saving changes neither
 * skip nor double one (`resolve`):
 * - the repeated hour (clocks go back): a wall-clock time that happens twice fires once, at its
 *   first occurrence; the second pass through that hour fires nothing;
 * - the missing hour (clocks go forward): a wall-clock time that never happens fires once, at the
 *   first instant after the gap (e.g. 03:00:00 for a 02:30 tick when 02:00 jumps to 03:00); the
 *   ticks of the gap and a tick at that very instant are one fire.
 */

/** A malformed cron or zone: the reason, in words that stand alone. */
export class CronError extends Error {
  override name = 'CronError';
}

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const SECOND: FieldSpec = { name: 'second', min: 0, max: 59 };
const MINUTE: FieldSpec = { name: 'minute', min: 0, max: 59 };
const HOUR: FieldSpec = { name: 'hour', min: 0, max: 23 };
const DAY: FieldSpec = { name: 'day of month', min: 1, max: 31 };
const MONTH: FieldSpec = {
  name: 'month',
  min: 1,
  max: 12,
  names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'],
};
const WEEKDAY: FieldSpec = {
  name: 'day of week',
  min: 0,
  max: 7,
  names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'],
};

/** A parsed cron: for each field, which values match. */
export interface Cron {
  readonly source: string;
  readonly second: readonly boolean[];
  readonly minute: readonly boolean[];
  readonly hour: readonly boolean[];
  readonly day: readonly boolean[];
  readonly month: readonly boolean[];
  /** 0 (Sunday) to 6. */
  readonly weekday: readonly boolean[];
  /** The day field starts with `*` or `?` (unrestricted, for the day/weekday rule). */
  readonly dayStar: boolean;
  readonly weekdayStar: boolean;
}

function fieldValue(text: string, spec: FieldSpec): number {
  const named = spec.names?.indexOf(text.toUpperCase()) ?? -1;
  const value = named >= 0 ? named + (spec === MONTH ? 1 : 0) : /^\d{1,2}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(value) || value < spec.min || value > spec.max)
    throw new CronError(
      `${spec.name} "${text}" is not in ${spec.min}-${spec.max}${spec.names ? ` (or ${spec.names[0]}-${spec.names.at(-1)})` : ''}`,
    );
  return value;
}

function parseField(text: string, spec: FieldSpec): boolean[] {
  const set = new Array<boolean>(spec.max + 1).fill(false);
  for (const part of text.split(',')) {
    const [range = '', stepText, extra] = part.split('/');
    if (extra !== undefined || range === '') throw new CronError(`"${part}" is not a ${spec.name} item`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d{1,2}$/.test(stepText) || Number(stepText) < 1)
        throw new CronError(`"${stepText}" is not a step (1 or more) in the ${spec.name} field`);
      step = Number(stepText);
    }
    let from: number;
    let to: number;
    if (range === '*' || range === '?') {
      if (range === '?' && spec !== DAY && spec !== WEEKDAY)
        throw new CronError(`"?" is only for the day of month and day of week fields`);
      from = spec.min;
      to = spec === WEEKDAY ? 6 : spec.max;
    } else {
      const [a = '', b, more] = range.split('-');
      if (more !== undefined) throw new CronError(`"${range}" is not a ${spec.name} range`);
      from = fieldValue(a, spec);
      to = b === undefined ? (stepText === undefined ? from : spec.max) : fieldValue(b, spec);
      if (to < from) throw new CronError(`"${range}" is a backward ${spec.name} range`);
    }
    for (let v = from; v <= to; v += step) set[v] = true;
  }
  return set;
}

/** Parses a cron of 5 or 6 fields; a CronError says what is wrong. */
export function parseCron(source: string): Cron {
  const fields = source.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6)
    throw new CronError(
      `has ${fields.length} field(s): give 5 (minute hour day month weekday) or 6 (second first)`,
    );
  const [second, minute, hour, day, month, weekday] = fields.length === 6 ? fields : ['0', ...fields];
  // In the fields' order, so that the first bad field is the one named.
  const parsed = {
    second: parseField(second as string, SECOND),
    minute: parseField(minute as string, MINUTE),
    hour: parseField(hour as string, HOUR),
    day: parseField(day as string, DAY),
    month: parseField(month as string, MONTH),
  };
  const weekdays = parseField(weekday as string, WEEKDAY);
  if (weekdays[7]) weekdays[0] = true;
  return {
    source: fields.join(' '),
    ...parsed,
    weekday: weekdays.slice(0, 7),
    dayStar: /^[*?]/.test(day as string),
    weekdayStar: /^[*?]/.test(weekday as string),
  };
}

// Wall-clock times are kept as "naive" milliseconds: the zone's local date and time read as if UTC.

function dayMatches(cron: Cron, d: Date): boolean {
  const byDay = cron.day[d.getUTCDate()] === true;
  const byWeekday = cron.weekday[d.getUTCDay()] === true;
  if (cron.dayStar && cron.weekdayStar) return true;
  if (cron.dayStar) return byWeekday;
  if (cron.weekdayStar) return byDay;
  return byDay || byWeekday;
}

const YEAR_MS = 366 * 24 * 3600 * 1000;

/** The first wall-clock time after `after` (exclusive) matching the cron, within `until`; undefined if none. */
function nextNaive(cron: Cron, after: number, until: number): number | undefined {
  let t = Math.floor(after / 1000) * 1000 + 1000;
  while (t <= until) {
    const d = new Date(t);
    const [y, mo, day, h, mi] = [
      d.getUTCFullYear(),
      d.getUTCMonth(),
      d.getUTCDate(),
      d.getUTCHours(),
      d.getUTCMinutes(),
    ];
    if (!cron.month[mo + 1]) t = Date.UTC(y, mo + 1, 1);
    else if (!dayMatches(cron, d)) t = Date.UTC(y, mo, day + 1);
    else if (!cron.hour[h]) t = Date.UTC(y, mo, day, h + 1);
    else if (!cron.minute[mi]) t = Date.UTC(y, mo, day, h, mi + 1);
    else if (!cron.second[d.getUTCSeconds()]) t += 1000;
    else return t;
  }
  return undefined;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

/**
 * The zone's canonical name when `zone` is an IANA time zone name (`Europe/Paris`, `UTC`), else a
 * CronError. Offsets (`+02:00`) are refused: they have no daylight-saving rules to follow.
 */
export function checkTimeZone(zone: string): string {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(zone) || zone.length > 64)
    throw new CronError(`"${zone}" is not an IANA time zone name (e.g. Europe/Paris, UTC)`);
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    throw new CronError(`"${zone}" is not an IANA time zone name (e.g. Europe/Paris, UTC)`);
  }
}

/** The wall-clock time of `instant` (whole seconds) in the zone. */
function naiveOf(instant: number, zone: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(zone).formatToParts(new Date(instant))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return Date.UTC(
    parts.year ?? 1970,
    (parts.month ?? 1) - 1,
    parts.day ?? 1,
    parts.hour ?? 0,
    parts.minute ?? 0,
    parts.second ?? 0,
  );
}

const offsetAt = (instant: number, zone: string) => naiveOf(instant, zone) - instant;

/**
 * The instant of a wall-clock time, by the rule above: its first occurrence when it happens twice;
 * the first instant after the gap when it never happens.
 */
export function resolve(naive: number, zone: string): number {
  const offsets = new Set([naive - 86_400_000, naive, naive + 86_400_000].map((t) => offsetAt(t, zone)));
  const candidates = [...offsets].map((o) => naive - o).sort((a, b) => a - b);
  const found = candidates.find((t) => naiveOf(t, zone) === naive);
  if (found !== undefined) return found;
  // In a gap: the first whole second whose wall-clock time is past `naive` (the transition).
  let lo = candidates[0] as number; // its wall clock is before naive
  let hi = candidates[candidates.length - 1] as number; // ... and this one's after
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (naiveOf(mid, zone) > naive) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** The first fire strictly after `after`, or undefined when the cron never fires again (Feb 30). */
export function nextFire(cron: Cron, zone: string, after: Date): Date | undefined {
  const start = Math.floor(after.getTime() / 1000) * 1000;
  let naive = naiveOf(start, zone);
  const until = naive + 8 * YEAR_MS; // Feb 29 on a weekday comes back within 8 years... or never
  for (;;) {
    const next = nextNaive(cron, naive, until);
    if (next === undefined) return undefined;
    const instant = resolve(next, zone);
    if (instant > after.getTime()) return new Date(instant);
    naive = next; // a repeated hour's second pass, or a gap's tick already fired
  }
}

/** The next `count` fires after `after` (fewer when the cron stops firing). */
export function nextFires(cron: Cron, zone: string, after: Date, count: number): Date[] {
  const fires: Date[] = [];
  let at: Date | undefined = after;
  while (fires.length < count) {
    at = nextFire(cron, zone, at);
    if (!at) break;
    fires.push(at);
  }
  return fires;
}

/** How many fires the minimal interval check looks at. */
export const GAP_WINDOW = 1000;

/**
 * The shortest time between two consecutive fires among the next GAP_WINDOW after `after`
 * (undefined with fewer than two). Fires repeat with the cron's fields, so a window this long
 * shows the shortest gap of any cron that fires often; a rare one shows it in its first fires.
 */
export function shortestGap(cron: Cron, zone: string, after: Date): number | undefined {
  const fires = nextFires(cron, zone, after, GAP_WINDOW);
  let shortest: number | undefined;
  for (let i = 1; i < fires.length; i++) {
    const gap = (fires[i] as Date).getTime() - (fires[i - 1] as Date).getTime();
    if (shortest === undefined || gap < shortest) shortest = gap;
  }
  return shortest;
}
