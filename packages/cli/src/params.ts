import { InvalidArgumentError } from 'commander';
import { z } from 'zod';
import { CliError, EXIT } from './errors.ts';

/** `parse` as a commander option parser: what it throws becomes commander's InvalidArgumentError (exit 2, one line). */
export function asOption<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

/**
 * A commander option parser: a whole number (digits only) from `min` to `max`, else commander's
 * InvalidArgumentError (a usage error: exit 2, one line) saying so, and `note` after it if given.
 */
export function wholeNumber(min: number, max: number, note?: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max)
      throw new InvalidArgumentError(`a whole number from ${min} to ${max}${note ? ` (${note})` : ''}`);
    return n;
  };
}

/** The part of a JSON Schema that says what a parameter is. */
const propertySchema = z.looseObject({
  type: z.union([z.string(), z.array(z.string())]).optional(),
  anyOf: z.array(z.looseObject({ type: z.string().optional() })).optional(),
});
const parametersSchema = z.looseObject({ properties: z.record(z.string(), propertySchema).optional() });

/** The JSON types a parameter may take, from its schema (empty when the schema does not say). */
function jsonTypes(schema: unknown): Set<string> {
  const parsed = propertySchema.safeParse(schema);
  if (!parsed.success) return new Set();
  const { type, anyOf } = parsed.data;
  const types = typeof type === 'string' ? [type] : (type ?? []);
  for (const member of anyOf ?? []) if (member.type) types.push(member.type);
  return new Set(types);
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/**
 * One `--param key=value`, its value read by the type the task type's JSON Schema gives the key:
 * `number`/`integer` → a number, `boolean` → true/false, `string` → the text as it is. A value that
 * does not read as that type is sent as the text, so that the server's own message says what is
 * wrong. A key the schema does not type (or no schema): JSON if it parses (`3`, `true`, `[1,2]`,
 * `{"x":1}`, `null`), else the text.
 */
export function coerceParam(raw: string, schema: unknown): [string, unknown] {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new CliError(`--param ${raw}: expected key=value`, EXIT.usage);
  const key = raw.slice(0, eq);
  const text = raw.slice(eq + 1);
  const properties = parametersSchema.safeParse(schema);
  const types = jsonTypes(properties.success ? properties.data.properties?.[key] : undefined);
  if ((types.has('number') || types.has('integer')) && NUMBER.test(text.trim())) return [key, Number(text)];
  if (types.has('boolean') && (text === 'true' || text === 'false')) return [key, text === 'true'];
  if (types.has('null') && text === 'null') return [key, null];
  if (types.has('string')) return [key, text];
  if (types.size > 0 && !types.has('object') && !types.has('array')) return [key, text];
  const json = parseJson(text);
  return [key, json.ok ? json.value : text];
}

const inputSchema = z.record(z.string(), z.unknown());

/** `--input '{...}'` (a JSON object), then each `--param` over it. */
export function buildParameters(
  input: string | undefined,
  params: string[],
  schema: unknown,
): Record<string, unknown> {
  let base: Record<string, unknown> = {};
  if (input !== undefined) {
    const json = parseJson(input);
    const object = json.ok ? inputSchema.safeParse(json.value) : undefined;
    if (!object?.success) throw new CliError(`--input: expected a JSON object, got ${input}`, EXIT.usage);
    base = object.data;
  }
  for (const raw of params) {
    const [key, value] = coerceParam(raw, schema);
    base[key] = value;
  }
  return base;
}
