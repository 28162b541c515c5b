import { DEFAULT_RATE_LIMIT_PER_MINUTE, ERROR_CODES, QueueFullError } from '@tasker/engine';
import { taskDefinitions } from '@tasker/tasks';
import { generateOpenApiDocument } from 'trpc-to-openapi';
import { createSchema } from 'zod-openapi';
import { lacksScope } from './auth.ts';
import { errorBody } from './errors.ts';
import { OPERATION_EXAMPLES, taskEventExample } from './openapi-examples.ts';
import { rateLimitMessage } from './rate-limits.ts';
import { appRouter } from './root.ts';
import { REST_ROUTES } from './routes.ts';
import type { RestMeta } from './trpc.ts';

export type OpenApiDocument = ReturnType<typeof openApiDocument>;

const ERROR_REF = { $ref: '#/components/schemas/Error' } as const;
const BODY_METHODS = new Set(['post', 'put', 'patch', 'delete']);

type Json = Record<string, unknown>;
interface Operation {
  operationId?: string;
  description?: string;
  parameters?: {
    name: string;
    description?: string;
    example?: unknown;
    schema?: { description?: string };
  }[];
  requestBody?: { content?: Record<string, Json> };
  responses?: Record<string, Json>;
  security?: Json[];
}

/** What a bad body is on this method: DELETE ignores a body it can parse. */
const badBody = (method: string) =>
  method === 'delete'
    ? 'a body that is not valid JSON'
    : 'a body that is not valid JSON, or not a JSON object';

function errorResponse(description: string, example: object, extra: Json = {}): Json {
  return { description, ...extra, content: { 'application/json': { schema: ERROR_REF, example } } };
}

const rateLimitedExample = errorBody(429, rateLimitMessage(DEFAULT_RATE_LIMIT_PER_MINUTE, '12 seconds'));
const rateLimited = errorResponse(
  'More than RATE_LIMIT_PER_MINUTE requests in a minute from this API key (or, without a valid one, this client IP, whose spent budget also stops the lookup of a new key); retry after Retry-After seconds',
  rateLimitedExample,
  {
    headers: {
      'retry-after': {
        description: 'Seconds until the budget is renewed',
        schema: { type: 'integer' },
      },
    },
  },
);

/**
 * The 429 of a submission: the rate limit's, or a full queue (code QUEUE_FULL: the tenant's or the
 * task type's max_queued PENDING tasks; nothing was stored, and retrying at once will not help).
 */
const rateLimitedOrQueueFull: Json = {
  ...rateLimited,
  description: `${String(rateLimited.description)}; or, with code QUEUE_FULL (no Retry-After), the tenant or the task type already has its max_queued tasks PENDING: nothing was stored, retry once some have started; or, with code BUDGET_EXCEEDED (a task type that calls a model), the tenant reached an LLM budget (llm_tokens_per_day, llm_cost_per_month_usd): nothing was stored, Retry-After is the seconds until the budget's window turns (00:00 UTC, or the 1st of next month)`,
  content: {
    'application/json': {
      schema: ERROR_REF,
      examples: {
        rateLimited: { summary: 'Over the rate limit', value: rateLimitedExample },
        queueFull: {
          summary: "Over the tenant's max_queued",
          value: errorBody(429, new QueueFullError('tenant', 'acme', 1000).message, undefined, 'QUEUE_FULL'),
        },
        budgetExceeded: {
          summary: "Over the tenant's LLM budget (an LLM task type)",
          value: errorBody(
            429,
            'LLM budget reached: tenant "acme" has 1000412 tokens used today of its llm_tokens_per_day 1000000 (until 2026-11-29T00:00:00.000Z, UTC); its LLM tasks wait until then or until the budget is raised',
            undefined,
            'BUDGET_EXCEEDED',
          ),
        },
      },
    },
  },
};

/** What every route that needs a key answers without a good one. */
const unauthorized = errorResponse(
  'No API key, or a malformed, unknown, revoked or expired one (when AUTH_MODE=required); answered with WWW-Authenticate: Bearer',
  errorBody(401, 'No API key: send Authorization: Bearer <key>'),
);

/** A 400 for parameters of the wrong type, where the request carries them (`task_parameters` or `input`). */
const parametersError = (field: string) =>
  errorBody(400, `${field}.a: Invalid input: expected number, received string`, [
    { path: `${field}.a`, message: 'Invalid input: expected number, received string', expected: 'number' },
  ]);
const taskParametersError = parametersError('task_parameters');

/**
 * The OpenAPI 3.1 document of the REST routes: generated from the router's procedures and their zod
 * schemas, then completed here with what every route shares (the one error shape, the statuses of
 * authentication, rate limits, bodies and dependencies), the hand-written routes (the event stream
 * and the health routes) and the README's examples.
 */
export function openApiDocument(version = '0.1.0') {
  /**
   * Each procedure's meta, by "METHOD path" (read as the generator walks them): its scope, its own
   * error words (trpc-to-openapi caches one response object per status, so the words it writes are
   * those of the first procedure with that status), its success status and where its task input is.
   */
  const metas = new Map<string, RestMeta>();
  const doc = generateOpenApiDocument<RestMeta>(appRouter, {
    title: 'Tasker',
    description:
      'Runs long work in the background. Submit with POST /run-task, follow with GET /get-task-output or GET /tasks/{id}. ' +
      'The same procedures are served over tRPC at /trpc. Every error is a JSON object: {"error", "code", "status", "issues"?}. ' +
      'A method a path does not take answers 405 with an Allow header; an unknown path answers 404.',
    version,
    baseUrl: '/',
    license: { name: 'MIT', identifier: 'MIT' },
    contact: { name: 'Tasker maintainers' },
    filter: ({ metadata }) => {
      metas.set(`${metadata.openapi.method} ${metadata.openapi.path}`, metadata);
      return true;
    },
  });

  // trpc-to-openapi's own error schemas are not what the server sends: one Error shape for every route.
  type Schema = NonNullable<NonNullable<typeof doc.components>['schemas']>[string];
  const schemas: Record<string, Schema> = Object.fromEntries(
    Object.entries(doc.components?.schemas ?? {}).filter(([name]) => !name.startsWith('error.')),
  );
  schemas.Error = {
    type: 'object',
    description: 'The one JSON body of every 4xx and 5xx answer',
    required: ['error', 'code', 'status'],
    properties: {
      error: { type: 'string', description: 'What was wrong, in words' },
      code: {
        type: 'string',
        enum: ERROR_CODES,
        description:
          'The status as a word; QUEUE_FULL: a 429 of a full queue (max_queued), not of the rate limit',
      },
      status: { type: 'integer', description: 'The HTTP status, again' },
      issues: {
        type: 'array',
        description: 'When the input was refused: each problem, where it is',
        items: {
          type: 'object',
          required: ['path', 'message'],
          properties: {
            path: {
              type: 'string',
              description:
                'Dotted path of the offending field, e.g. task_parameters.a; empty for the whole body',
            },
            message: { type: 'string', description: 'What is wrong with it' },
            expected: {
              type: 'string',
              description: 'What was expected, when known (a type, or the allowed values)',
            },
          },
        },
      },
    },
    example: taskParametersError,
  };
  schemas.NotReady = {
    description:
      'The Error shape, with the state of each dependency, or draining: true (the server shuts down; its dependencies are not checked then)',
    allOf: [
      ERROR_REF,
      {
        type: 'object',
        properties: {
          dependencies: {
            type: 'object',
            description: 'Each dependency: ok or unavailable (absent while draining)',
            additionalProperties: { type: 'string', enum: ['ok', 'unavailable'] },
          },
          draining: {
            type: 'boolean',
            enum: [true],
            description:
              'Present while the server shuts down (from SIGTERM until it stops accepting connections, SHUTDOWN_DELAY_MS): take it out of rotation',
          },
        },
      },
    ],
  };

  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, operation] of Object.entries(item as Record<string, Operation>)) {
      const key = `${method.toUpperCase()} ${path}`;
      const meta = metas.get(key);
      if (!meta?.scope) throw new Error(`${key}: a REST procedure must be scoped`);
      completeProcedureOperation(operation, method, meta);
      // A creation's body {name, input, ...} (POST /tasks, POST /schedules), typed per task type.
      if (meta.taskParameters === 'input' && method === 'post')
        typeTaskBody(operation, schemas, operation.operationId === 'createSchedule' ? 'Schedule' : 'Task');
    }
  }

  typeBatchBody(doc.paths?.['/tasks/batch']?.post as Operation | undefined);
  typeTaskRecords(doc.paths as Record<string, Record<string, Operation>>, schemas);
  doc.components = {
    ...doc.components,
    schemas,
    securitySchemes: {
      ...doc.components?.securitySchemes,
      metricsToken: {
        type: 'http',
        scheme: 'bearer',
        description: 'METRICS_TOKEN, for /metrics (not an API key)',
      },
    },
  };
  doc.tags = [
    {
      name: 'tasks',
      description: 'Submit tasks, follow them, cancel and retry them (the tasks:write and tasks:read scopes)',
    },
    {
      name: 'queue',
      description: 'Pause and resume processing; queue depths: shared by every tenant (the operator scope)',
    },
    {
      name: 'keys',
      description:
        "API keys: of the caller's own tenant (the admin scope), or of any tenant (the operator scope); who am I",
    },
    {
      name: 'limits',
      description:
        "Limits set at runtime: a tenant's (its admin key, or an operator key), a task type's and the list of tenants (the operator scope)",
    },
    {
      name: 'usage',
      description:
        "What the model calls of a tenant's tasks used: tokens, cost, calls and tasks, by day, task type, model or tenant (tasks:read; every tenant's with the operator scope)",
    },
    {
      name: 'webhooks',
      description:
        "Completion webhooks: signed POSTs when a tenant's tasks finish, their deliveries and redelivery (the admin scope, or operator)",
    },
    {
      name: 'schedules',
      description:
        'Schedules: a task type run at each tick of a cron in a time zone, one task per tick (tasks:write to change, tasks:read to read)',
    },
    {
      name: 'health',
      description:
        'Liveness, readiness, metrics and this document: open to anyone (metrics: only with AUTH_MODE=disabled and no METRICS_TOKEN)',
    },
  ];
  // The hand-written routes: their words from here, their path, method and what routes.ts says of
  // them (open: no key, else a 401; rate-limited: a 429) from there.
  const handWritten = handWrittenOperations(version, schemas);
  const paths = doc.paths as Record<string, Record<string, Json>>;
  for (const route of REST_ROUTES.filter((r) => r.handWritten)) {
    const documented = handWritten[route.operationId];
    if (!documented) throw new Error(`OpenAPI: ${route.method} ${route.path} is not documented`);
    const responses = { ...(documented.responses as Record<string, Json>) };
    if (!route.open) responses[401] = unauthorized;
    // A route with more reasons for a 429 (the event stream's cap) says so itself.
    if (route.rateLimited && !responses[429]) responses[429] = rateLimited;
    paths[route.path] = {
      ...paths[route.path],
      [route.method.toLowerCase()]: {
        operationId: route.operationId,
        security: route.open ? [] : [{ Authorization: [] }],
        ...documented,
        responses,
      },
    };
  }
  addExamples(doc.paths as Record<string, Record<string, Operation>>);
  return doc;
}

/** `sum_two_numbers` → `SumTwoNumbers`: a task name as part of a component name. */
export function pascalCase(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');
}

/** Adds a component; the same name twice must be the same schema (two task types cannot share a name). */
function addComponent(schemas: Record<string, unknown>, name: string, schema: unknown): void {
  if (name in schemas && JSON.stringify(schemas[name]) !== JSON.stringify(schema)) {
    throw new Error(`OpenAPI: two different schemas are named ${name}`);
  }
  schemas[name] = schema;
}

const ref = (name: string) => `#/components/schemas/${name}`;

/**
 * The catalog's schemas as components: `<Type>Input` (the parameters a caller sends) for every task
 * type, and the components their zod schemas name (`.meta({ id })`). A new `defineTask` appears here,
 * and in every body below, with nothing else to write.
 */
function addTaskTypeSchemas(schemas: Record<string, unknown>): void {
  for (const d of taskDefinitions) {
    const { schema, components } = createSchema(d.input, { io: 'input', openapiVersion: '3.1.0' });
    for (const [name, component] of Object.entries(components)) addComponent(schemas, name, component);
    addComponent(schemas, `${pascalCase(d.name)}Input`, {
      description: `The parameters of a ${d.name} task`,
      ...(schema as Json),
    });
  }
}

/**
 * A body `{name, input, ...}` (POST /tasks, meta `taskParameters: 'input'`): the procedure's zod
 * input takes any task type's parameters (the engine checks them against the named type's schema),
 * which trpc-to-openapi can only write as a loose record. The document says more: a `oneOf` with one
 * member per task type, each with its own input schema, discriminated by `name` with an explicit
 * mapping (without one, openapi-typescript would take the component names for the values of `name`).
 */
function typeTaskBody(
  create: Operation,
  schemas: Record<string, unknown>,
  what: 'Task' | 'Schedule' = 'Task',
): void {
  const body = create.requestBody?.content?.['application/json'];
  const generated = body?.schema as
    | { properties?: Record<string, Json>; required?: string[]; description?: string }
    | undefined;
  if (!body || !generated?.properties) throw new Error(`OpenAPI: ${create.operationId} has no body to type`);
  addTaskTypeSchemas(schemas);
  const mapping: Record<string, string> = {};
  for (const d of taskDefinitions) {
    const name = `New${pascalCase(d.name)}${what}`;
    addComponent(schemas, name, {
      type: 'object',
      description: `A new ${d.name} ${what.toLowerCase()}. ${d.description}`,
      required: generated.required ?? ['name', 'input'],
      additionalProperties: false,
      properties: {
        ...generated.properties,
        name: { type: 'string', enum: [d.name], description: 'The task type' },
        input: { $ref: ref(`${pascalCase(d.name)}Input`) },
      },
    });
    mapping[d.name] = ref(name);
  }
  addComponent(schemas, `New${what}`, {
    description:
      what === 'Task'
        ? 'A task to create: its type (name), its parameters (input, of that type) and how to run it'
        : 'A schedule to create: the type of its tasks (name), their parameters (input, of that type), when (cron, timezone) and how to run them',
    oneOf: Object.values(mapping).map(($ref) => ({ $ref })),
    discriminator: { propertyName: 'name', mapping },
  });
  body.schema = { $ref: ref(`New${what}`) };
}

/**
 * The task record, typed per task type: `TypedTask` is a `oneOf` by `name` whose members are the
 * `Task` record with that type's `input` and `output` (null until COMPLETED). Every success answer
 * that carries a record (GET /tasks/{id}, the items of GET /tasks, create, cancel, retry) refers to it.
 */
function typeTaskRecords(
  paths: Record<string, Record<string, Operation>>,
  schemas: Record<string, unknown>,
): void {
  const mapping: Record<string, string> = {};
  for (const d of taskDefinitions) {
    const type = pascalCase(d.name);
    const { schema, components } = createSchema(d.output, { io: 'output', openapiVersion: '3.1.0' });
    for (const [name, component] of Object.entries(components)) addComponent(schemas, name, component);
    addComponent(schemas, `${type}Output`, {
      description: `The result of a ${d.name} task`,
      ...(schema as Json),
    });
    addComponent(schemas, `${type}Task`, {
      description: `A ${d.name} task. ${d.description}`,
      allOf: [
        { $ref: ref('Task') },
        {
          type: 'object',
          required: ['name', 'input', 'output'],
          properties: {
            name: { type: 'string', enum: [d.name], description: 'The task type' },
            input: { $ref: ref(`${type}Input`) },
            output: {
              description: 'The result, once COMPLETED; null before',
              oneOf: [{ $ref: ref(`${type}Output`) }, { type: 'null' }],
            },
          },
        },
      ],
    });
    mapping[d.name] = ref(`${type}Task`);
  }
  addComponent(schemas, 'TypedTask', {
    description: 'A task record, with the input and output of its type (name)',
    oneOf: Object.values(mapping).map(($ref) => ({ $ref })),
    discriminator: { propertyName: 'name', mapping },
  });
  addTaskEventSchemas(schemas);
  const retype = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(retype);
    if (typeof value !== 'object' || value === null) return value;
    if ((value as Json).$ref === ref('Task')) return { ...value, $ref: ref('TypedTask') };
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, retype(v)]));
  };
  for (const item of Object.values(paths)) {
    for (const operation of Object.values(item)) {
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        if (status.startsWith('2'))
          operation.responses = { ...operation.responses, [status]: retype(response) as Json };
      }
    }
  }
}

/**
 * What GET /tasks/{id}/events sends in each event's `data:`: the task record without its input
 * (`TaskEvent`), typed per task type like TypedTask: `TypedTaskEvent`, a `oneOf` by `name` whose
 * members carry that type's `output`.
 */
function addTaskEventSchemas(schemas: Record<string, unknown>): void {
  const task = schemas.Task as { properties: Json; required: string[] } & Json;
  const { input: _input, ...properties } = task.properties;
  addComponent(schemas, 'TaskEvent', {
    ...task,
    description: 'A state of a task, as the event stream sends it: the task record without its input',
    properties,
    required: task.required.filter((name) => name !== 'input'),
  });
  const mapping: Record<string, string> = {};
  for (const d of taskDefinitions) {
    const type = pascalCase(d.name);
    addComponent(schemas, `${type}TaskEvent`, {
      description: `A state of a ${d.name} task`,
      allOf: [
        { $ref: ref('TaskEvent') },
        {
          type: 'object',
          required: ['name', 'output'],
          properties: {
            name: { type: 'string', enum: [d.name], description: 'The task type' },
            output: {
              description: 'The result, once COMPLETED; null before',
              oneOf: [{ $ref: ref(`${type}Output`) }, { type: 'null' }],
            },
          },
        },
      ],
    });
    mapping[d.name] = ref(`${type}TaskEvent`);
  }
  addComponent(schemas, 'TypedTaskEvent', {
    description: 'A state of a task, with the output of its type (name)',
    oneOf: Object.values(mapping).map(($ref) => ({ $ref })),
    discriminator: { propertyName: 'name', mapping },
  });
}

/**
 * POST /tasks/batch: its items are POST /tasks's bodies (NewTask, typed per task type by
 * `typeTaskBody`), which trpc-to-openapi can only write as loose records.
 */
function typeBatchBody(batch: Operation | undefined): void {
  const body = batch?.requestBody?.content?.['application/json'];
  const tasks = (body?.schema as { properties?: Record<string, Json> } | undefined)?.properties?.tasks;
  if (!tasks) throw new Error('OpenAPI: POST /tasks/batch has no tasks to type');
  tasks.items = { $ref: ref('NewTask') };
}

/** Completes what trpc-to-openapi generated for one procedure: error shapes, shared statuses, examples, words. */
function completeProcedureOperation(operation: Operation, method: string, meta: RestMeta): void {
  const { scope, taskParameters: field } = meta;
  const words = meta.openapi?.errorResponses ?? {};
  const own = operation.responses ?? {};
  const responses: Record<string, Json> = {};
  for (const [status, response] of Object.entries(own)) {
    const code = Number(status);
    if (code < 400) {
      // trpc-to-openapi writes every success as a 200; one that creates is a 201.
      responses[code === 200 ? String(meta.openapi?.successStatus ?? 200) : status] = response;
      // The same body under the route's other success status, in its own words (and examples).
      const other = meta.openapi?.otherSuccess;
      if (code === 200 && other)
        responses[String(other.status)] = { ...structuredClone(response), description: other.description };
      continue;
    }
    let description = words[code] ?? String(response.description);
    if (code === 400 && BODY_METHODS.has(method)) description += `; or ${badBody(method)}`;
    const example = field && code === 400 ? parametersError(field) : errorBody(code, description);
    responses[status] = errorResponse(description, example);
  }
  if (BODY_METHODS.has(method) && !responses['400']) {
    const description = `A body that is ${badBody(method).replace(/^a body that is /, '')}`;
    responses['400'] = errorResponse(description, errorBody(400, description));
  }
  // A procedure that needs no key (scope none: a wait token's callback URL) has no 401 or 403.
  if (scope === 'none') operation.security = [];
  else responses['401'] = unauthorized;
  if (scope !== undefined && scope !== 'any' && scope !== 'none') {
    // The route's own words when it has more reasons for a 403 (another tenant, the operator scope).
    responses['403'] = errorResponse(
      words[403] ?? `The API key lacks the ${scope} scope this operation needs (when AUTH_MODE=required)`,
      errorBody(403, lacksScope(scope)),
    );
  }
  if (BODY_METHODS.has(method)) {
    // A route with a bound of its own (a wait token's output) says so in its words.
    responses['413'] = errorResponse(
      words[413] ?? 'The body is larger than BODY_LIMIT_BYTES',
      errorBody(413, 'Request body is too large'),
    );
  }
  if (method !== 'get' && method !== 'delete') {
    responses['415'] = errorResponse(
      'A body was sent with a Content-Type other than application/json',
      errorBody(415, 'Content-Type must be application/json (got "text/plain")'),
    );
  }
  // A submission (its task parameters are in the body) may also find its queue full.
  responses['429'] = field ? rateLimitedOrQueueFull : rateLimited;
  if (!responses['503']) {
    const description = meta.openapi?.unavailable ?? 'PostgreSQL (or Redis, in that mode) is unavailable';
    responses['503'] = errorResponse(description, errorBody(503, 'PostgreSQL is unavailable'));
  }
  operation.responses = Object.fromEntries(
    Object.entries(responses).sort(([a], [b]) => Number(a) - Number(b)),
  );

  for (const parameter of operation.parameters ?? []) {
    parameter.description ??= parameter.schema?.description;
    if (!parameter.description)
      throw new Error(`${operation.operationId}: parameter ${parameter.name} has no description`);
  }
}

/**
 * The examples of openapi-examples.ts, on each operation: its request body, its success answer and
 * its parameters. An operation without its examples there (a new route) fails here, at start, and
 * in openapi.test.ts.
 */
function addExamples(paths: Record<string, Record<string, Operation>>): void {
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(item)) {
      const examples = operation.operationId ? OPERATION_EXAMPLES[operation.operationId] : undefined;
      const body = operation.requestBody?.content?.['application/json'];
      if (body && examples?.request) body.examples = examples.request;
      // The route's success status takes `response`; another success status, `otherResponse`.
      const primary = String(REST_ROUTES.find((r) => r.operationId === operation.operationId)?.successStatus);
      for (const [status, ok] of Object.entries(operation.responses ?? {})) {
        if (!status.startsWith('2')) continue;
        const json = (ok?.content as Record<string, Json> | undefined)?.['application/json'];
        const own = status === primary ? examples?.response : examples?.otherResponse;
        if (json && own) json.examples = own;
        else if (json && status !== primary)
          throw new Error(`${method.toUpperCase()} ${path}: no example for its ${status} answer`);
      }
      for (const parameter of operation.parameters ?? []) {
        const value = examples?.parameters?.[parameter.name];
        if (value !== undefined) parameter.example = value;
        else throw new Error(`${method.toUpperCase()} ${path}: no example for parameter ${parameter.name}`);
      }
    }
  }
}

/**
 * The event stream's media type. OpenAPI 3.1 has no schema for the events of a stream (3.2's
 * `itemSchema`): the body is a string whose `contentSchema` is one event, `TaskStreamEvent` (id,
 * event, data), whose `data` is JSON (contentMediaType) of a TypedTaskEvent (contentSchema), as
 * OpenAPI 3.2's own Server-Sent Events example writes it.
 */
function taskEventStream(schemas: Record<string, unknown>): Json {
  addComponent(schemas, 'TaskStepEvent', {
    description:
      "A durable step of the task, written (it completed, failed, or a wait began): the step as the task record shows it, with its task's id. A later event for the same step id replaces the earlier one",
    allOf: [
      { $ref: ref('TaskStep') },
      {
        type: 'object',
        required: ['taskId'],
        properties: {
          taskId: { type: 'string', format: 'uuid', description: 'The task the step belongs to' },
        },
      },
    ],
  });
  addComponent(schemas, 'TaskStreamEvent', {
    type: 'object',
    description: 'One event of GET /tasks/{id}/events',
    required: ['data'],
    properties: {
      id: {
        type: 'string',
        description: 'The task version, on a state: send it back as Last-Event-ID to resume',
      },
      event: {
        type: 'string',
        enum: ['step', 'error'],
        description:
          'Absent for a state; step for a durable step written (data: a TaskStepEvent); error when the stream broke on the server side (data: an Error)',
      },
      data: {
        type: 'string',
        description:
          'A TypedTaskEvent as JSON (a TaskStepEvent after event: step, an Error after event: error)',
        contentMediaType: 'application/json',
        contentSchema: {
          oneOf: [{ $ref: ref('TypedTaskEvent') }, { $ref: ref('TaskStepEvent') }, ERROR_REF],
        },
      },
    },
  });
  const sum = taskDefinitions[0];
  const events = sum
    ? [
        { id: 1, data: taskEventExample(sum, 'PENDING') },
        { id: 3, data: taskEventExample(sum, 'COMPLETED') },
      ]
    : [];
  const text = events.map((e) => `id: ${e.id}\ndata: ${JSON.stringify(e.data)}\n\n`).join('');
  return {
    schema: {
      type: 'string',
      description:
        'Server-Sent Events: `id: <version>` and `data: <TypedTaskEvent as JSON>`, separated by blank lines; comment lines start with `:`',
      contentMediaType: 'text/event-stream',
      contentSchema: { $ref: ref('TaskStreamEvent') },
    },
    examples: {
      [sum?.name ?? 'task']: {
        summary: `A ${sum?.name ?? 'task'} task, from PENDING to COMPLETED`,
        value: `retry: 1200\n: tasker task events\n\n${text}`,
      },
    },
  };
}

/**
 * The words of the Fastify routes that are not procedures (the event stream, the health routes and
 * this document), by operationId; routes.ts has their paths and methods.
 */
function handWrittenOperations(version: string, schemas: Record<string, unknown>): Record<string, Json> {
  return {
    taskEvents: {
      summary: "A task's states as Server-Sent Events",
      description:
        "text/event-stream (`curl -N`, or a browser's EventSource). Each event is `id:` the task version and " +
        '`data:` one TypedTaskEvent as JSON: the task record without its input, typed by `name` (its `output` ' +
        "is that type's result, null until COMPLETED). The current state comes first, then every change, in " +
        "version order; the stream ends after COMPLETED, FAILED, CANCELLED or EXPIRED. A durable task's steps (`ctx.step`, " +
        'sleeps, child tasks, wait tokens) come as named events, `event: step` with `data:` a TaskStepEvent and no id: ' +
        'those recorded so far before the current state, then each as it is written, in commit order with the states ' +
        "(EventSource's onmessage does not see them: addEventListener('step', …)). " +
        'It starts with `retry:` (the delay EventSource waits before it reconnects, 500 to 2000 ms). A comment line (`: keep-alive`) ' +
        'comes every 15 s. A server that shuts down (a rolling deploy) ends the stream with `retry:` and the comment ' +
        '`: server shutting down; reconnect with Last-Event-ID`: reconnect (through the load balancer, to another server). ' +
        'To resume after a broken connection, send the last id received as `Last-Event-ID` ' +
        '(EventSource does so itself) or `?lastEventId=`: the stream resumes with the states after that ' +
        'version (the current state, if newer). If the stream breaks on the server side, an `event: error` ' +
        'carries an Error body; reconnect. A key holds at most MAX_STREAMS_PER_KEY open streams (these and tRPC ' +
        'subscriptions together, per server; per client IP with AUTH_MODE=disabled): past it, 429. When the key is ' +
        'revoked or expires, the stream ends within 5 s with an `event: error` carrying a 401. A client that stops ' +
        'reading is dropped once 1 MiB of events waits for it.',
      tags: ['tasks'],
      parameters: [
        {
          name: 'id',
          in: 'path',
          required: true,
          description: 'The id returned by run-task',
          schema: { type: 'string', format: 'uuid' },
        },
        {
          name: 'Last-Event-ID',
          in: 'header',
          required: false,
          description: 'The id of the last event received: the stream resumes after that version',
          schema: { type: 'string' },
        },
        {
          name: 'lastEventId',
          in: 'query',
          required: false,
          description: 'The same as Last-Event-ID, for clients that cannot set headers',
          schema: { type: 'string' },
        },
      ],
      responses: {
        200: {
          description: "The task's states, as they change, until its final state",
          content: { 'text/event-stream': taskEventStream(schemas) },
        },
        400: errorResponse('Malformed id (not a UUID)', errorBody(400, 'id: Invalid UUID')),
        403: errorResponse(
          'The API key lacks the tasks:read scope (when AUTH_MODE=required)',
          errorBody(403, 'This API key lacks the "tasks:read" scope'),
        ),
        404: errorResponse('No task of this tenant has this id', errorBody(404, 'Task not found')),
        503: errorResponse(
          'PostgreSQL is unavailable (the task cannot be read)',
          errorBody(503, 'PostgreSQL is unavailable'),
        ),
      },
    },
    healthz: {
      summary: 'Liveness',
      description:
        'Answers 200 while the process serves requests, whatever its dependencies. Open, and not rate-limited.',
      tags: ['health'],
      responses: {
        200: {
          description: 'The process is alive',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['status'],
                properties: { status: { type: 'string', enum: ['ok'], description: 'Always ok' } },
              },
              example: { status: 'ok' },
            },
          },
        },
      },
    },
    readyz: {
      summary: 'Readiness: whether PostgreSQL (and Redis, in that mode) answer',
      description:
        'Each dependency is checked, each within 2 s. A server that received SIGTERM answers 503 with draining: true at once (it serves on for SHUTDOWN_DELAY_MS, then stops accepting connections). Open, and not rate-limited: for load balancers and orchestrators.',
      tags: ['health'],
      responses: {
        200: {
          description: 'Every dependency answers',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['status', 'dependencies'],
                properties: {
                  status: { type: 'string', enum: ['ok'], description: 'Always ok' },
                  dependencies: {
                    type: 'object',
                    description: 'Each dependency: ok',
                    additionalProperties: { type: 'string', enum: ['ok'] },
                  },
                },
              },
              example: { status: 'ok', dependencies: { postgres: 'ok', redis: 'ok' } },
            },
          },
        },
        503: {
          description: 'A dependency does not answer, or the server shuts down: do not send traffic here',
          content: {
            'application/json': {
              schema: { $ref: '#/components/schemas/NotReady' },
              example: {
                ...errorBody(503, 'Redis is unavailable'),
                dependencies: { postgres: 'ok', redis: 'unavailable' },
              },
            },
          },
        },
      },
    },
    metrics: {
      summary: 'Prometheus metrics',
      description:
        "This server's metrics in the Prometheus text format: tasks created and cancelled here, by task type; HTTP requests " +
        'and their latency by route and status; open SSE streams and subscriptions; queue depth by state; process metrics. ' +
        'Workers serve theirs on METRICS_PORT. Not rate-limited. With METRICS_TOKEN set, it needs ' +
        '`Authorization: Bearer <METRICS_TOKEN>` (not an API key); without it, it is open with AUTH_MODE=disabled ' +
        "and closed (401) with AUTH_MODE=required, since it shows every tenant's queue.",
      tags: ['health'],
      security: [{ metricsToken: [] }, {}],
      responses: {
        200: {
          description: 'The metrics, in the Prometheus text exposition format 0.0.4',
          content: {
            'text/plain': {
              schema: { type: 'string' },
              example:
                '# HELP tasker_tasks_created_total Tasks created (submitted), by task type\n' +
                '# TYPE tasker_tasks_created_total counter\n' +
                'tasker_tasks_created_total{task_type="sum_two_numbers"} 42\n',
            },
          },
        },
        401: errorResponse(
          'METRICS_TOKEN is set and the request has no bearer token, or another one; or AUTH_MODE=required and METRICS_TOKEN is unset (closed)',
          errorBody(401, 'Invalid metrics token'),
        ),
      },
    },
    openApiDocument: {
      summary: 'This OpenAPI document',
      description:
        'The OpenAPI 3.1 description of every REST route, to generate clients from. Open to anyone.',
      tags: ['health'],
      responses: {
        200: {
          description: 'The OpenAPI document',
          content: {
            'application/json': {
              schema: { type: 'object' },
              examples: {
                excerpt: {
                  summary: 'The beginning of this document',
                  value: { openapi: '3.1.0', info: { title: 'Tasker', version }, servers: [{ url: '/' }] },
                },
              },
            },
          },
        },
      },
    },
  };
}
