const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** `90s`, `15m`, `12h`, `30d`, `2w` → seconds. Throws on anything else. */
export function parseDuration(text: string): number {
  const match = /^(\d+)\s*([smhdw])$/.exec(text.trim());
  const unit = match?.[2];
  if (!match || !unit)
    throw new Error(`"${text}" is not a duration: use a number and s, m, h, d or w (e.g. 30d)`);
  const seconds = Number(match[1]) * (UNITS[unit] ?? 0);
  if (seconds <= 0) throw new Error(`"${text}" must be longer than 0`);
  return seconds;
}

const MS_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** `500ms`, `30s`, `15m`, `12h`, `30d`, `2w` → milliseconds. Throws on anything else. */
export function parseDurationMs(text: string): number {
  const match = /^(\d+)\s*(ms|[smhdw])$/.exec(text.trim());
  const unit = match?.[2];
  if (!match || !unit)
    throw new Error(`"${text}" is not a duration: use a number and ms, s, m, h, d or w (e.g. 30s)`);
  const ms = Number(match[1]) * (MS_UNITS[unit] ?? 0);
  if (ms <= 0) throw new Error(`"${text}" must be longer than 0`);
  return ms;
}
