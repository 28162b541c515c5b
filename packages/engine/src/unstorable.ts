/**
 * PostgreSQL cannot hold every string JSON can carry: `\u0000` (NUL) is refused by `text` and
 * `jsonb`, and a lone surrogate (`"\ud800"`, half of a UTF-16 pair) is not Unicode at all. This
 * finds the first such string (or object key) in a value, so that it is refused with a 400 that says
 * where and why instead of failing inside the database.
 */
export interface Unstorable {
  /** Where in the value, e.g. `['string']` or `['list', 2]`. */
  path: (string | number)[];
  reason: string;
}

// A NUL, a high surrogate not followed by a low one, or a low surrogate not preceded by a high one.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding NUL is the point
const BAD = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function describe(text: string): string | undefined {
  const match = BAD.exec(text);
  if (!match) return undefined;
  const code = match[0].charCodeAt(0);
  return code === 0
    ? 'contains U+0000 (NUL), which PostgreSQL cannot store'
    : `contains a lone surrogate (U+${code.toString(16).toUpperCase()}), which is not valid Unicode`;
}

export function findUnstorable(
  value: unknown,
  path: (string | number)[] = [],
  depth = 0,
): Unstorable | undefined {
  if (depth > 100) return undefined;
  if (typeof value === 'string') {
    const reason = describe(value);
    return reason ? { path, reason } : undefined;
  }
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = findUnstorable(item, [...path, i], depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const reason = describe(key);
      if (reason) return { path: [...path, key], reason: `its key ${reason}` };
      const found = findUnstorable(item, [...path, key], depth + 1);
      if (found) return found;
    }
  }
  return undefined;
}
