import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { postgresConnection, readCaFile } from '@tasker/db';
import { DEFAULT_LLM_PRICES, llmPricesSchema, type TaskConfig } from '@tasker/tasks';
import { z } from 'zod';
import { parseClusterNodes } from './redis-nodes.ts';

const int = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === '' ? undefined : v));

/** An optional limit (0 to 1,000,000); unset or empty: none. */
const limit = optionalText.pipe(z.coerce.number<string | undefined>().int().min(0).max(1_000_000).optional());

/** Unset or empty: PostgreSQL-only mode (the queue: the handouts table). */
const redisUrl = optionalText.pipe(
  z
    .string()
    .refine((v) => /^rediss?:\/\//.test(v), 'must be a redis:// or rediss:// URL (a DB index may follow: /1)')
    .optional(),
);

/** A postgres:// URL naming a database, its TLS parameters as Tasker reads them (postgresConnection). */
const postgresUrl = (text: z.ZodString) =>
  text
    .refine((v) => /^postgres(ql)?:\/\/[^/]*\/[^/?]+/.test(v), 'must be a postgres:// URL naming a database')
    .superRefine((url, ctx) => {
      try {
        postgresConnection(url);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    });

/** One step of WEBHOOK_RETRY_SCHEDULE: `500ms`, `1s`, `2m`, `1h`, optionally repeated (`1h*24`). */
const RETRY_STEP = /^(\d+)(ms|s|m|h)(?:\*(\d+))?$/;
const RETRY_UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/**
 * The waits between a webhook delivery's attempts: about 1 s, 5 s, 30 s, 2 min, 10 min, 1 h, then
 * hourly for a day; after the last one fails, the delivery is kept as failed.
 */
export const DEFAULT_WEBHOOK_RETRY_SCHEDULE = '1s,5s,30s,2m,10m,1h*24';

/** `1s,5s,1h*24` → the waits in ms (a step `*n` repeated n times); at most 100 steps of at most 1 day. */
const retrySchedule = z
  .string()
  .default(DEFAULT_WEBHOOK_RETRY_SCHEDULE)
  .transform((text, ctx) => {
    const waits: number[] = [];
    for (const step of text.split(',').map((s) => s.trim())) {
      const match = RETRY_STEP.exec(step);
      if (!match) {
        ctx.addIssue({
          code: 'custom',
          message: `"${step}": each step is a number and a unit (ms, s, m, h), optionally *n, e.g. 1s,5s,1h*24`,
        });
        return z.NEVER;
      }
      const ms = Number(match[1]) * RETRY_UNIT_MS[match[2] as keyof typeof RETRY_UNIT_MS];
      const times = match[3] === undefined ? 1 : Number(match[3]);
      if (ms > 86_400_000 || times < 1 || waits.length + times > 100) {
        ctx.addIssue({ code: 'custom', message: `"${step}": at most 100 steps, each at most 24h` });
        return z.NEVER;
      }
      for (let i = 0; i < times; i++) waits.push(ms);
    }
    return waits;
  });

/** A price table as JSON text (LLM_PRICES, LLM_PRICES_FILE): each issue names the model and the field. */
const pricesJson = () =>
  z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `not JSON (${(error as Error).message})` });
        return z.NEVER;
      }
    })
    .pipe(llmPricesSchema);

/** Every environment variable Tasker reads, with its default. `.env.example` lists the same. */
export const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Unset: 127.0.0.1 when AUTH_MODE=disabled, 0.0.0.0 when required (see loadEnv and checkServerExposure). */
  HOST: optionalText,
  PORT: z.coerce.number().int().min(0).max(65535).default(5000),
  /**
   * Where clients reach the server (scheme, host, port, an optional path prefix): the origin of wait
   * tokens' callback URLs. Unset: http://HOST:PORT (127.0.0.1 for a HOST of every interface). Give
   * the worker the same value as the server.
   */
  PUBLIC_URL: optionalText.pipe(
    z
      .url()
      .refine(
        (v) => /^https?:\/\//.test(v) && !/[?#]/.test(v),
        'must be an http:// or https:// URL without a query',
      )
      .transform((v) => v.replace(/\/+$/, ''))
      .optional(),
  ),
  /** The worker's probe and metrics listener (GET /healthz, GET /metrics), on HOST; 0: off. */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  /**
   * TLS as libpq writes it: `?sslmode=verify-full&sslrootcert=/path/ca.pem` (see postgresConnection
   * in @tasker/db); a mode Tasker does not take or a CA file it cannot read stops the start here.
   */
  DATABASE_URL: postgresUrl(
    z.string({ error: 'required (`pnpm start` runs an embedded PostgreSQL when it is unset)' }),
  ),
  /**
   * PostgreSQL itself, when DATABASE_URL is a connection pooler in transaction mode (PgBouncer's
   * `pool_mode = transaction`): migrations, LISTEN and advisory locks take it; every other query goes through the pooler, unprepared. Unset or empty: DATABASE_URL
   * (no pooler); the same URL: no pooler either.
   */
  DATABASE_DIRECT_URL: optionalText.pipe(postgresUrl(z.string()).optional()),
  DATABASE_POOL_SIZE: int(10, 1),
  REDIS_URL: redisUrl,
  /**
   * A Redis Cluster instead of REDIS_URL (not both): `host:port,host:port,...`, or the same as
   * redis:// or rediss:// URLs with `user:password@` (see parseClusterNodes). Keys are hash-tagged.
   */
  REDIS_CLUSTER_NODES: optionalText.pipe(
    z
      .string()
      .transform((text, ctx) => {
        try {
          return parseClusterNodes(text);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: (error as Error).message });
          return z.NEVER;
        }
      })
      .optional(),
  ),
  /**
   * With a rediss:// REDIS_URL (or rediss:// REDIS_CLUSTER_NODES): the PEM file of the CA that
   * signed Redis's certificate (read at start; this holds its text). Unset: the CAs this machine
   * trusts.
   */
  REDIS_CA_FILE: optionalText.pipe(
    z
      .string()
      .transform((path, ctx) => {
        try {
          return readCaFile(path, 'REDIS_CA_FILE');
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: (error as Error).message.replace(/^REDIS_CA_FILE=/, '') });
          return z.NEVER;
        }
      })
      .optional(),
  ),
  REDIS_PREFIX: z
    .string()
    .regex(/^[\w.-]+$/, 'letters, digits, "_", "." or "-" only')
    .default('tasker'),
  WORKER_CONCURRENCY: int(50, 1),
  WORKER_LOCK_MS: int(30_000, 1000),
  WORKER_CANCEL_CHECK_MS: int(1000, 50),
  SHUTDOWN_TIMEOUT_MS: int(10_000),
  /**
   * The server, on SIGTERM: how long it goes on serving, with /readyz answering 503 and every
   * answer closing its connection, before it stops accepting connections (time for a load
   * balancer to take it out of rotation). 0: it stops accepting at once.
   */
  SHUTDOWN_DELAY_MS: int(0, 0),
  STARTUP_TIMEOUT_MS: int(30_000),
  SWEEP_INTERVAL_MS: int(5_000, 100),
  SWEEP_GRACE_MS: int(10_000, 0),
  /** How often each worker ends EXPIRED the queued tasks past their ttl (a task expires within ttl_ms + this + a query). */
  EXPIRE_INTERVAL_MS: int(1_000, 50),
  /** How often the leading dispatcher's worker moves back to PENDING the WAITING tasks whose wait is over (a sleep ends within this + a dispatch). */
  WAKE_INTERVAL_MS: int(1_000, 50),
  /** Child tasks (ctx.run) at most this many levels below a top-level task; deeper: the parent fails (ChildTaskLimitError). */
  CHILD_TASK_MAX_DEPTH: int(5, 1).pipe(z.number().max(100)),
  /** Child tasks one ctx.run / ctx.runMany call submits at most; more: the parent fails (ChildTaskLimitError). */
  CHILD_TASK_MAX_FAN_OUT: int(100, 1).pipe(z.number().max(1000)),
  /** How often each worker fires the due schedules (a tick's task is created within about this much after it). */
  SCHEDULE_INTERVAL_MS: int(500, 20),
  /** A schedule whose cron fires more often than this (two fires closer than this) is refused: 400 naming cron. */
  SCHEDULE_MIN_INTERVAL_MS: int(1_000, 1),
  /** A tick fired later than this after its time was missed (every worker down): its schedule's catch_up decides. */
  SCHEDULE_GRACE_MS: int(60_000, 0),
  /** With catch_up all, at most this many missed ticks (the latest) fire per schedule. */
  SCHEDULE_CATCH_UP_MAX: int(100, 1),
  /** Tasks a bulk cancel or retry changes per chunk (one page, one UPDATE, one transaction with its progress). */
  BULK_CHUNK_SIZE: int(500, 1).pipe(z.number().max(5000)),
  /** How long a worker holds a bulk operation without finishing a chunk; then another worker takes it over. */
  BULK_LEASE_MS: int(30_000, 1000),
  /** How often each worker looks for a bulk operation to run (a new one, or one whose runner died). */
  BULK_POLL_MS: int(1_000, 50),
  /** Jobs the queue holds waiting for a worker at most; the rest of every backlog waits in PostgreSQL for its turn. */
  DISPATCH_BUFFER: int(200, 1),
  /** The dispatcher passes at least this often (due delays, start pacing, limits changed). */
  DISPATCH_TICK_MS: int(250, 10),
  /** Task changes within this many ms of each other share one dispatch pass. */
  DISPATCH_COALESCE_MS: int(20, 0),
  /** /metrics shows the unfinished tasks of this many tenants by name (those with the most), the rest summed. */
  METRICS_TOP_TENANTS: int(20, 0),
  RESULT_CACHE_TTL_SECONDS: int(24 * 3600, 1),
  IDEMPOTENCY_WINDOW_SECONDS: int(24 * 3600, 1),
  RETENTION_DAYS: z.coerce.number().min(0).default(30),
  BODY_LIMIT_BYTES: int(1024 * 1024, 1024),
  /** The whole request (headers and body) must arrive within this; 0: no limit. Streams are answers, not requests: not cut. */
  HTTP_REQUEST_TIMEOUT_MS: int(30_000),
  /** The headers must arrive within this (at most HTTP_REQUEST_TIMEOUT_MS). */
  HTTP_HEADERS_TIMEOUT_MS: int(10_000, 1),
  /** An idle keep-alive connection is closed after this. */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(72_000, 1),
  /** A connection with no traffic either way for this long is closed (streams are exempt); 0: never. */
  HTTP_IDLE_TIMEOUT_MS: int(120_000),
  /**
   * A quiet SSE stream (`/tasks/{id}/events`) gets a comment line this often, so that proxies and
   * load balancers (idle timeouts of 60 s are common) keep it open; each stream from a random
   * point of the first interval.
   */
  SSE_KEEP_ALIVE_MS: int(15_000, 10),
  OPENAI_API_KEY: optionalText,
  OPENAI_BASE_URL: optionalText.pipe(z.url().optional()),
  OPENAI_MODEL: z.string().default('gpt-4o-mini'),
  /** Tried when the first model fails for a retryable reason (429, 5xx, no answer); unset: OPENAI_MODEL. */
  OPENAI_FALLBACK_MODEL: optionalText,
  /** Where the fallback is asked (an OpenAI-compatible endpoint); unset: OPENAI_BASE_URL. */
  OPENAI_FALLBACK_BASE_URL: optionalText.pipe(z.url().optional()),
  /** The fallback's key; unset: OPENAI_API_KEY. */
  OPENAI_FALLBACK_API_KEY: optionalText,
  /**
   * Model prices over the repository's table, as JSON: `{"gpt-4o-mini": {"input_per_1m": 0.15,
   * "output_per_1m": 0.6}}` (US dollars per million tokens). A model given replaces its row.
   */
  LLM_PRICES: optionalText.pipe(pricesJson().optional()),
  /** A JSON file of model prices in the same form, read at start (LLM_PRICES wins over it, model by model). */
  LLM_PRICES_FILE: optionalText.pipe(
    z
      .string()
      .transform((path, ctx) => {
        try {
          return readFileSync(path, 'utf8');
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: `cannot read ${path}: ${(error as Error).message}` });
          return z.NEVER;
        }
      })
      .pipe(pricesJson())
      .optional(),
  ),
  AUTH_MODE: optionalText.pipe(z.enum(['required', 'disabled']).optional()),
  RATE_LIMIT_PER_MINUTE: optionalText.pipe(z.coerce.number<string | undefined>().int().min(0).optional()),
  /** The most calls one tRPC batch request (`/trpc/a,b,c?batch=1`) may carry; each counts against the rate limit. */
  TRPC_MAX_BATCH: int(20, 1),
  /**
   * Open streams (SSE and tRPC subscriptions together) one API key may hold on one server; without a
   * key (AUTH_MODE=disabled), one client IP. Past it: 429.
   */
  MAX_STREAMS_PER_KEY: int(100, 1),
  /**
   * The limits of a tenant without limits of its own (`PUT /tenants/{tenant}/limits` sets those):
   * tasks RUNNING at once, tasks PENDING (a submission beyond is refused, 429 QUEUE_FULL), and task
   * starts per minute. Unset: unlimited.
   */
  TENANT_MAX_RUNNING: limit,
  TENANT_MAX_QUEUED: limit,
  TENANT_STARTS_PER_MINUTE: limit,
  /** When set, `/metrics` (server, and worker on METRICS_PORT) needs `Authorization: Bearer <token>`. */
  METRICS_TOKEN: optionalText,
  /** OTLP/HTTP endpoint (e.g. http://127.0.0.1:4318): tracing is on when set, off otherwise. */
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalText.pipe(z.url().optional()),
  /** Headers for the OTLP exporter, `key=value` pairs separated by commas (W3C baggage style). */
  OTEL_EXPORTER_OTLP_HEADERS: optionalText.pipe(
    z
      .string()
      .regex(/^\s*[^=,\s]+\s*=[^,]*(,\s*[^=,\s]+\s*=[^,]*)*$/, 'must be key=value pairs separated by commas')
      .transform((v) =>
        Object.fromEntries(
          v.split(',').map((pair) => {
            const at = pair.indexOf('=');
            return [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
          }),
        ),
      )
      .optional(),
  ),
  /** The service name on this process's spans; default tasker-server / tasker-worker. */
  OTEL_SERVICE_NAME: optionalText,
  CORS_ORIGINS: optionalText.transform((v) =>
    (v ?? '')
      .split(',')
      .map((origin) => origin.trim())
      .filter(Boolean),
  ),
  /**
   * The waits between a webhook delivery's attempts, e.g. `1s,5s,30s,2m,10m,1h*24` (the default):
   * after the last one fails, the delivery is kept as failed (redelivered by hand).
   */
  WEBHOOK_RETRY_SCHEDULE: retrySchedule,
  /** A webhook's receiver must answer within this, or the attempt counts as failed. */
  WEBHOOK_TIMEOUT_MS: int(10_000, 100),
  /** How often each worker looks for due webhook deliveries. */
  WEBHOOK_INTERVAL_MS: int(250, 10),
  /**
   * `1`: webhooks may call loopback, private, link-local and unique-local addresses (tests, a
   * receiver on the same network). Unset or `0`: refused, at creation and at every delivery.
   */
  WEBHOOK_ALLOW_PRIVATE: z
    .enum(['0', '1', ''])
    .default('0')
    .transform((v) => v === '1'),
});

/** Requests per minute per API key (or client IP) in `required` mode, unless RATE_LIMIT_PER_MINUTE says otherwise. */
export const DEFAULT_RATE_LIMIT_PER_MINUTE = 1200;

/** The configuration, with the defaults that depend on other variables filled in. */
export type Env = Omit<
  z.output<typeof envSchema>,
  'AUTH_MODE' | 'RATE_LIMIT_PER_MINUTE' | 'HOST' | 'PUBLIC_URL' | 'DATABASE_DIRECT_URL'
> & {
  /** Default: http://HOST:PORT (127.0.0.1 when HOST is every interface). */
  PUBLIC_URL: string;
  /** `required` by default when NODE_ENV=production, `disabled` otherwise. */
  AUTH_MODE: 'required' | 'disabled';
  /** Default: 127.0.0.1 (loopback only) when AUTH_MODE=disabled, 0.0.0.0 (every interface) when required. */
  HOST: string;
  /** Default: DATABASE_URL (no pooler). */
  DATABASE_DIRECT_URL: string;
  /** 0 = off: the default in `disabled` mode. */
  RATE_LIMIT_PER_MINUTE: number;
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment once. A bad value throws a ConfigError naming each bad variable. */
export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const env = parsed.data;
  if (env.HTTP_REQUEST_TIMEOUT_MS > 0 && env.HTTP_HEADERS_TIMEOUT_MS > env.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError(
      `Invalid configuration:\n  HTTP_HEADERS_TIMEOUT_MS: must be at most HTTP_REQUEST_TIMEOUT_MS (${env.HTTP_REQUEST_TIMEOUT_MS})`,
    );
  }
  if (env.REDIS_URL !== undefined && env.REDIS_CLUSTER_NODES !== undefined) {
    throw new ConfigError(
      'Invalid configuration:\n  REDIS_CLUSTER_NODES: set together with REDIS_URL: set one of them (REDIS_URL for one Redis, REDIS_CLUSTER_NODES for a Redis Cluster)',
    );
  }
  if (
    env.REDIS_CA_FILE !== undefined &&
    !env.REDIS_URL?.startsWith('rediss://') &&
    !env.REDIS_CLUSTER_NODES?.tls
  ) {
    throw new ConfigError(
      'Invalid configuration:\n  REDIS_CA_FILE: set, but REDIS_URL is not a rediss:// URL (TLS) nor REDIS_CLUSTER_NODES rediss:// nodes: the CA would not be used',
    );
  }
  const authMode = authModeOf(env);
  const host = env.HOST ?? (authMode === 'disabled' ? LOOPBACK : '0.0.0.0');
  return {
    ...env,
    DATABASE_DIRECT_URL: env.DATABASE_DIRECT_URL ?? env.DATABASE_URL,
    AUTH_MODE: authMode,
    HOST: host,
    PUBLIC_URL: env.PUBLIC_URL ?? defaultPublicUrl(host, env.PORT),
    RATE_LIMIT_PER_MINUTE:
      env.RATE_LIMIT_PER_MINUTE ?? (authMode === 'required' ? DEFAULT_RATE_LIMIT_PER_MINUTE : 0),
  };
}

/** http://HOST:PORT, as this machine reaches it: a HOST of every interface is reached on loopback. */
function defaultPublicUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '::' || host === '' ? LOOPBACK : host;
  return `http://${isIP(reachable) === 6 ? `[${reachable}]` : reachable}:${port}`;
}

/** Where a server with auth disabled listens unless HOST says otherwise. */
const LOOPBACK = '127.0.0.1';

/**
 * AUTH_MODE as NODE_ENV and AUTH_MODE decide it: `required` when set so or when NODE_ENV=production,
 * else `disabled`. The one rule, for the server and for the CLI's `keys` commands (which refuse to
 * make keys that a server in this environment would not ask for).
 */
export function authModeOf(source: { NODE_ENV?: string; AUTH_MODE?: string }): 'required' | 'disabled' {
  const explicit = source.AUTH_MODE === '' ? undefined : source.AUTH_MODE;
  if (explicit === 'required' || explicit === 'disabled') return explicit;
  return source.NODE_ENV === 'production' ? 'required' : 'disabled';
}

/** Whether `host` names this machine's loopback interface only (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare);
  return false;
}

/**
 * A server with auth disabled on an address other machines reach is refused: a ConfigError, one
 * line saying what to set. Nobody is open by accident.
 */
export function checkServerExposure(env: Pick<Env, 'AUTH_MODE' | 'HOST'>): void {
  if (env.AUTH_MODE === 'disabled' && !isLoopbackHost(env.HOST)) {
    throw new ConfigError(
      `HOST=${env.HOST} with AUTH_MODE=disabled would let anyone who can reach this machine run, read and cancel every task: ` +
        'set AUTH_MODE=required (and make API keys with `tasker keys create`), or HOST=127.0.0.1 (this machine only)',
    );
  }
}

/** The server's start line: which auth mode runs, on which address, and what that means, in words. */
export function describeExposure(env: Pick<Env, 'AUTH_MODE' | 'HOST'>, address: string): string {
  if (env.AUTH_MODE === 'disabled') {
    return `auth OFF (AUTH_MODE=disabled): anyone who can reach ${address} may do anything (run, read and cancel every task, pause the queue); listening on loopback only (HOST=${env.HOST}): only this machine can`;
  }
  const where = isLoopbackHost(env.HOST)
    ? `loopback only (HOST=${env.HOST})`
    : env.HOST === '0.0.0.0' || env.HOST === '::'
      ? `every interface (HOST=${env.HOST})`
      : `HOST=${env.HOST}`;
  return `auth ON (AUTH_MODE=required): every API call needs an API key (health, metrics, docs, the dashboard's files and wait tokens' callback URLs stay open); listening on ${address}, ${where}`;
}

export function taskConfig(env: Env): TaskConfig {
  return {
    openai: {
      apiKey: env.OPENAI_API_KEY,
      baseURL: env.OPENAI_BASE_URL,
      model: env.OPENAI_MODEL,
      fallbackModel: env.OPENAI_FALLBACK_MODEL,
      fallbackBaseURL: env.OPENAI_FALLBACK_BASE_URL,
      fallbackApiKey: env.OPENAI_FALLBACK_API_KEY,
    },
    // The repository's table, then the file's models, then LLM_PRICES's: the last one given wins.
    llmPrices: { ...DEFAULT_LLM_PRICES, ...env.LLM_PRICES_FILE, ...env.LLM_PRICES },
    publicUrl: env.PUBLIC_URL,
  };
}
