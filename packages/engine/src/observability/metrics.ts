import { taskNames } from '@tasker/tasks';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { QueueState } from '../queue.ts';
import type { LifecycleEvent } from './events.ts';

/** Seconds: from a sum (milliseconds) to an LLM call that streams for minutes. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Seconds, fine below 25 ms: whether live events keep under 10 ms is read from these buckets. */
const LIVE_BUCKETS = [0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1, 5];

export type StreamKind = 'sse' | 'subscription';

const seconds = (ms: number) => Math.max(0, ms) / 1000;

/**
 * One process's Prometheus metrics (prefix `tasker_`), in a registry of its own (several servers or
 * workers may share a test process), with Node's default process metrics (`process_*`, `nodejs_*`).
 * The lifecycle feeds the task metrics through `observe`; the server feeds the HTTP ones; the queue
 * depth is read from the queue at each scrape.
 */
/** A tenant's unfinished tasks by state, as `tasker_tenant_tasks` reports them. */
export interface TenantCounts {
  tenantId: string;
  running: number;
  queued: number;
  /** WAITING: a sleep, child tasks or a wait token; holding no slot. */
  waiting: number;
}
const TENANT_STATES = ['running', 'queued', 'waiting'] as const;

export class TaskerMetrics {
  readonly registry = new Registry();
  private readonly created: Counter<'task_type'>;
  private readonly completed: Counter<'task_type'>;
  private readonly failed: Counter<'task_type'>;
  private readonly cancelled: Counter<'task_type'>;
  private readonly expired: Counter<'task_type'>;
  private readonly debounced: Counter<'task_type'>;
  private readonly deduplicated: Counter<'task_type' | 'reason'>;
  private readonly refused: Counter<'reason'>;
  private readonly runDuration: Histogram<'task_type' | 'outcome'>;
  private readonly queueWait: Histogram<'task_type'>;
  private readonly httpRequests: Counter<'method' | 'route' | 'status_code'>;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  private readonly openStreams: Gauge<'kind'>;
  private readonly liveDelay: Histogram<'event'>;
  private readonly llmCalls: Counter<'task_type' | 'model'>;
  private readonly llmTokens: Counter<'task_type' | 'model' | 'kind'>;
  private readonly llmCost: Counter<'task_type' | 'model'>;
  private queueState: (() => Promise<QueueState>) | undefined;
  private tenantCounts: { read: () => Promise<TenantCounts[]>; top: number } | undefined;

  constructor() {
    const registers = [this.registry];
    const byType = (name: string, help: string) =>
      new Counter({ name, help, labelNames: ['task_type'] as const, registers });
    this.created = byType(
      'tasker_tasks_created_total',
      'Tasks submitted (new rows; idempotent replays not counted)',
    );
    this.completed = byType('tasker_tasks_completed_total', 'Tasks that ended COMPLETED');
    this.failed = byType(
      'tasker_tasks_failed_total',
      'Tasks that ended FAILED (once per task, not per attempt)',
    );
    this.cancelled = byType('tasker_tasks_cancelled_total', 'Tasks that ended CANCELLED');
    this.expired = byType(
      'tasker_tasks_expired_total',
      'Tasks that ended EXPIRED: not started within their ttl_ms',
    );
    this.debounced = byType(
      'tasker_tasks_debounced_total',
      'Submissions collapsed into the PENDING task holding their debounce key (it took their input and start)',
    );
    this.deduplicated = new Counter({
      name: 'tasker_tasks_deduplicated_total',
      help: 'Submissions answered with an existing task, unchanged: reason singleton (its singleton key is held by an unfinished task) or idempotency (a replay)',
      labelNames: ['task_type', 'reason'] as const,
      registers,
    });
    this.refused = new Counter({
      name: 'tasker_tasks_refused_total',
      help: "Submissions refused with nothing stored, by reason (QUEUE_FULL: the max_queued of the tenant or the task type; UNKNOWN_TYPE: a schedule's tick, its task type gone from the catalog; BUDGET_EXCEEDED: an LLM task type, its tenant over an LLM budget)",
      labelNames: ['reason'] as const,
      registers,
    });
    for (const reason of ['QUEUE_FULL', 'UNKNOWN_TYPE', 'BUDGET_EXCEEDED'] as const)
      this.refused.inc({ reason }, 0);
    this.runDuration = new Histogram({
      name: 'tasker_task_run_duration_seconds',
      help: 'How long each attempt ran, from its claim to its recorded end, by outcome (completed, failed, retrying, cancelled, suspended: the handler slept, held: a model call found its tenant over an LLM budget)',
      labelNames: ['task_type', 'outcome'] as const,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.queueWait = new Histogram({
      name: 'tasker_task_queue_wait_seconds',
      help: 'How long a task waited from when it was due (created, or its run_after) to the start of its first attempt',
      labelNames: ['task_type'] as const,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.httpRequests = new Counter({
      name: 'tasker_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status',
      labelNames: ['method', 'route', 'status_code'] as const,
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'tasker_http_request_duration_seconds',
      help: 'HTTP request latency, by method, route pattern and status',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: HTTP_BUCKETS,
      registers,
    });
    // Model usage (ctx.llm), by task type and model: no tenant label (GET /usage will answer per tenant).
    this.llmCalls = new Counter({
      name: 'tasker_llm_calls_total',
      help: 'Model calls that reported their usage (ctx.llm), by task type and model asked for',
      labelNames: ['task_type', 'model'] as const,
      registers,
    });
    this.llmTokens = new Counter({
      name: 'tasker_llm_tokens_total',
      help: 'Tokens used by model calls (ctx.llm), by task type, model, and kind (prompt, completion)',
      labelNames: ['task_type', 'model', 'kind'] as const,
      registers,
    });
    this.llmCost = new Counter({
      name: 'tasker_llm_cost_usd_total',
      help: "What model calls cost in US dollars (ctx.llm; the price table's), by task type and model; calls of a model without a price add nothing",
      labelNames: ['task_type', 'model'] as const,
      registers,
    });
    this.openStreams = new Gauge({
      name: 'tasker_open_streams',
      help: 'Open live streams: sse (GET /tasks/{id}/events) and subscription (tRPC over SSE)',
      labelNames: ['kind'] as const,
      registers,
    });
    this.liveDelay = new Histogram({
      name: 'tasker_live_event_delay_seconds',
      help: "From a task change's commit (its updated_at, PostgreSQL's clock) to its event going out on a live stream of this server (SSE or tRPC subscription), per stream; a stream's first event (the state it starts from) is not counted. event: finished (the task's end: COMPLETED, FAILED, CANCELLED, EXPIRED) or change (any other)",
      buckets: LIVE_BUCKETS,
      labelNames: ['event'] as const,
      registers,
    });
    const metrics = this;
    new Gauge({
      name: 'tasker_queue_jobs',
      help: "Jobs in the queue by state (read from the queue at each scrape: BullMQ's counts, or the handouts without Redis)",
      labelNames: ['state'] as const,
      registers,
      async collect() {
        const read = metrics.queueState;
        if (!read) return;
        try {
          const state = await read();
          for (const name of ['waiting', 'delayed', 'active', 'failed'] as const)
            this.set({ state: name }, state[name]);
        } catch {
          this.reset(); // the queue is unreachable: no value rather than a stale one
        }
      },
    });
    new Gauge({
      name: 'tasker_queue_paused',
      help: '1 while the whole queue is paused, else 0',
      registers,
      async collect() {
        const read = metrics.queueState;
        if (!read) return;
        try {
          this.set((await read()).paused ? 1 : 0);
        } catch {
          this.reset();
        }
      },
    });
    new Gauge({
      name: 'tasker_tenant_tasks',
      help: 'Unfinished tasks per tenant, by state (running, queued, waiting: WAITING, holding no slot): the METRICS_TOP_TENANTS tenants with the most, the rest summed under tenant="(other)"',
      labelNames: ['tenant', 'state'] as const,
      registers,
      async collect() {
        const source = metrics.tenantCounts;
        if (!source) return;
        this.reset();
        try {
          const total = (r: TenantCounts) => r.running + r.queued + r.waiting;
          const rows = (await source.read()).sort(
            (a, b) => total(b) - total(a) || (a.tenantId < b.tenantId ? -1 : 1),
          );
          const other = { running: 0, queued: 0, waiting: 0 };
          rows.forEach((row, i) => {
            if (i < source.top) {
              for (const state of TENANT_STATES) this.set({ tenant: row.tenantId, state }, row[state]);
            } else {
              for (const state of TENANT_STATES) other[state] += row[state];
            }
          });
          if (rows.length > source.top) {
            for (const state of TENANT_STATES) this.set({ tenant: '(other)', state }, other[state]);
          }
        } catch {
          // PostgreSQL is unreachable: no value rather than a stale one
        }
      },
    });
    collectDefaultMetrics({ register: this.registry });
    // Every series exists from the start at zero, so rates and dashboards work before the first task.
    for (const name of taskNames) {
      for (const counter of [
        this.created,
        this.completed,
        this.failed,
        this.cancelled,
        this.expired,
        this.debounced,
      ])
        counter.inc({ task_type: name }, 0);
      for (const reason of ['singleton', 'idempotency'] as const)
        this.deduplicated.inc({ task_type: name, reason }, 0);
      this.queueWait.zero({ task_type: name });
    }
    for (const kind of ['sse', 'subscription'] as const) this.openStreams.set({ kind }, 0);
  }

  /** The queue whose depth each scrape reports. */
  watchQueue(read: () => Promise<QueueState>): void {
    this.queueState = read;
  }
  /** Reads each tenant's running and queued counts at each scrape: the `top` tenants with the most by name, the rest summed. */
  watchTenants(read: () => Promise<TenantCounts[]>, top: number): void {
    this.tenantCounts = { read, top };
  }

  /** The lifecycle's observer (see LifecycleEvent). */
  readonly observe = (event: LifecycleEvent): void => {
    if (event.kind === 'refused') {
      this.refused.inc({ reason: event.reason });
      return;
    }
    const task_type = event.row.name;
    switch (event.kind) {
      case 'created':
        this.created.inc({ task_type });
        return;
      case 'deduplicated':
        this.deduplicated.inc({ task_type, reason: event.reason });
        return;
      case 'debounced':
        this.debounced.inc({ task_type });
        return;
      case 'started': {
        const { row } = event;
        if (row.attempts === 1 && row.startedAt) {
          const due = Math.max(row.createdAt.getTime(), row.runAfter?.getTime() ?? 0);
          this.queueWait.observe({ task_type }, seconds(row.startedAt.getTime() - due));
        }
        return;
      }
      case 'attempt-ended':
        if (event.row.startedAt)
          this.runDuration.observe(
            { task_type, outcome: event.outcome },
            seconds(Date.now() - event.row.startedAt.getTime()),
          );
        return;
      case 'llm-call': {
        const { model, promptTokens, completionTokens, costUsd } = event.usage;
        this.llmCalls.inc({ task_type, model });
        this.llmTokens.inc({ task_type, model, kind: 'prompt' }, promptTokens);
        this.llmTokens.inc({ task_type, model, kind: 'completion' }, completionTokens);
        if (costUsd !== null) this.llmCost.inc({ task_type, model }, costUsd);
        return;
      }
      case 'finished': {
        const { row } = event;
        if (row.status === 'COMPLETED') this.completed.inc({ task_type });
        else if (row.status === 'FAILED') this.failed.inc({ task_type });
        else if (row.status === 'CANCELLED') this.cancelled.inc({ task_type });
        else if (row.status === 'EXPIRED') this.expired.inc({ task_type });
        return;
      }
    }
  };

  /** One answered HTTP request; `route` is the route's pattern (`/tasks/:id`), never the raw URL. */
  httpRequest(method: string, route: string, statusCode: number, seconds: number): void {
    const labels = { method, route, status_code: String(statusCode) };
    this.httpRequests.inc(labels);
    this.httpDuration.observe(labels, seconds);
  }

  streamOpened(kind: StreamKind): void {
    this.openStreams.inc({ kind });
  }

  streamClosed(kind: StreamKind): void {
    this.openStreams.dec({ kind });
  }

  /** A task change going out on a live stream: `updatedAt` (ISO), its commit time. */
  liveEvent(updatedAt: string, finished: boolean): void {
    this.liveDelay.observe(
      { event: finished ? 'finished' : 'change' },
      seconds(Date.now() - Date.parse(updatedAt)),
    );
  }

  /** The Prometheus text exposition. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
