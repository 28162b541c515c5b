import { listInWords } from '@tasker/states';

/** Each unit of a duration, in milliseconds. */
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
type Unit = keyof typeof UNIT_MS;
const DURATION = /^(\d+)\s*([a-z]+)$/;

/**
 * `500ms`, `30s`, `15m`, `12h`, `30d`, `2w` → milliseconds, in the `units` given (default: all).
 * Throws on anything else, and on a duration of 0.
 */
export function parseDurationMs(
  text: string,
  units: readonly Unit[] = ['ms', 's', 'm', 'h', 'd', 'w'],
): number {
  const match = DURATION.exec(text.trim());
  const unit = units.find((u) => u === match?.[2]);
  if (!match || !unit)
    throw new Error(
      `"${text}" is not a duration: use a number and ${listInWords(units)} (e.g. ${units.includes('ms') ? '30s' : '30d'})`,
    );
  const ms = Number(match[1]) * UNIT_MS[unit];
  if (ms <= 0) throw new Error(`"${text}" must be longer than 0`);
  return ms;
}

/** `90s`, `15m`, `12h`, `30d`, `2w` → seconds (no `ms`). Throws on anything else. */
export function parseDuration(text: string): number {
  return parseDurationMs(text, ['s', 'm', 'h', 'd', 'w']) / 1000;
}
