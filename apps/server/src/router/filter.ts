import { findUnstorable, type TaskFilter, taskStatusSchema } from '@tasker/engine';
import { z } from 'zod';
import { isoDateTime, MAX_TAGS, tagSchema } from './schemas.ts';

/** Query-string lists: `status=PENDING&status=RUNNING` or `status=PENDING,RUNNING`. */
const list = <T extends z.ZodType>(item: T, max = 20) =>
  z.preprocess(
    (value) => (typeof value === 'string' ? value.split(',') : value),
    z.array(item).max(max).optional(),
  );

const SEARCH_MAX_DEPTH = 32;

/** Why a parsed search value cannot be searched for, or undefined. */
function searchProblem(value: unknown): string | undefined {
  let leaves = 0;
  let problem: string | undefined;
  const visit = (item: unknown, depth: number): void => {
    if (problem) return;
    if (depth > SEARCH_MAX_DEPTH) problem = `is nested deeper than ${SEARCH_MAX_DEPTH} levels`;
    else if (Array.isArray(item)) for (const element of item) visit(element, depth + 1);
    else if (item !== null && typeof item === 'object')
      for (const child of Object.values(item)) visit(child, depth + 1);
    else if (typeof item === 'number' && !Number.isFinite(item)) problem = 'holds a number out of range';
    else leaves++;
  };
  visit(value, 0);
  if (problem) return problem;
  // The GIN indexes (jsonb_path_ops) hold the values in a document, not empty objects or arrays: a
  // search with no value in it would read every row.
  if (leaves === 0)
    return 'must hold at least one value to look for (a string, number, boolean or null), not only empty objects or arrays';
  const unstorable = findUnstorable(value);
  return unstorable ? `at ${JSON.stringify(unstorable.path)} ${unstorable.reason}` : undefined;
}

/** A JSON text searched for: parsed, with a problem (bad JSON, nothing to look for) added to `ctx`. */
function parseSearch(param: string, text: string, ctx: z.RefinementCtx): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    ctx.addIssue({
      code: 'custom',
      message: `${param} is not valid JSON (${error instanceof Error ? error.message : String(error)})`,
    });
    return z.NEVER;
  }
  const problem = searchProblem(value);
  if (problem) {
    ctx.addIssue({ code: 'custom', message: `${param} ${problem}` });
    return z.NEVER;
  }
  return value;
}

const containmentRule =
  'URL-encode it. At most 4000 characters, with at least one value in it (not only empty objects or arrays).';

/**
 * A query parameter holding a JSON text (`{"a":1}`, `[2]`, `"abc"`, `42`), searched for by JSONB
 * containment. Parsed here, so that bad JSON is a 400 naming the parameter.
 */
const containment = (param: string, column: string) => {
  const description =
    `Only tasks whose ${column} contains this JSON value (JSONB containment, ${column} @> value): ` +
    `an object matches a ${column} holding at least its keys with those values, at any depth ` +
    `({"a":1} matches {"a":1,"b":2}); an array one holding its elements ([2] matches [1,2,3]); ` +
    `a string, number, boolean or null only itself. ${containmentRule}`;
  // The description on the string too: the document describes the parameter from the pipe's input.
  return z
    .string()
    .max(4000)
    .describe(description)
    .transform((text, ctx) => parseSearch(param, text, ctx))
    .optional()
    .describe(description);
};

/** `metadata_contains`: a JSON object (metadata is one), searched for by containment. */
const metadataContainment = () => {
  const description =
    'Only tasks whose metadata contains this JSON object (JSONB containment, metadata @> value): ' +
    'a task whose metadata holds at least its keys with those values, at any depth ' +
    `({"team":"a"} matches {"team":"a","run":7}); never a task without metadata. ${containmentRule}`;
  return z
    .string()
    .max(4000)
    .describe(description)
    .transform((text, ctx): Record<string, unknown> => {
      const value = parseSearch('metadata_contains', text, ctx);
      if (value === z.NEVER) return z.NEVER;
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        ctx.addIssue({ code: 'custom', message: 'metadata_contains must be a JSON object' });
        return z.NEVER;
      }
      return value as Record<string, unknown>;
    })
    .optional()
    .describe(description);
};

/**
 * The filter of GET /tasks, in one place: the query parameters (snake_case, as the REST route and
 * tRPC take them) that choose which of the caller's tasks, every one optional, all combined with
 * AND. A route that acts on "the tasks that match" spreads this shape into its input and passes
 * `toTaskFilter(input)` on.
 */
export const taskFilterShape = {
  status: list(taskStatusSchema).describe(
    'Only these statuses (repeat the parameter or separate with commas)',
  ),
  name: list(z.string().min(1)).describe('Only these task types'),
  created_after: isoDateTime()
    .describe('Only tasks created at or after this time (ISO 8601, with an offset)')
    .optional(),
  created_before: isoDateTime()
    .describe('Only tasks created before this time (ISO 8601, with an offset)')
    .optional(),
  input_contains: containment('input_contains', 'input'),
  output_contains: containment('output_contains', 'output'),
  tag: list(tagSchema, MAX_TAGS).describe(
    `Only tasks carrying every one of these tags (repeat the parameter or separate with commas; at most ${MAX_TAGS})`,
  ),
  metadata_contains: metadataContainment(),
  parent_id: z
    .uuid()
    .describe('Only the child tasks of this task (those its handler submitted with ctx.run or ctx.runMany)')
    .optional(),
};

const taskFilterInput = z.object(taskFilterShape);

/** The filter as the engine takes it (camelCase, dates). */
export function toTaskFilter(input: z.output<typeof taskFilterInput>): TaskFilter {
  return {
    statuses: input.status,
    names: input.name,
    createdAfter: input.created_after ? new Date(input.created_after) : undefined,
    createdBefore: input.created_before ? new Date(input.created_before) : undefined,
    inputContains: input.input_contains,
    outputContains: input.output_contains,
    tags: input.tag,
    metadataContains: input.metadata_contains,
    parentId: input.parent_id,
  };
}
