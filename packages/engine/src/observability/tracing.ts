import {
  type Attributes,
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace';

/**
 * OpenTelemetry tracing, off unless started (OTEL_EXPORTER_OTLP_ENDPOINT, or a test's exporter).
 * While off, nothing here loads the SDK and every helper returns at its first line, so the hot path
 * pays one boolean test. Spans: one per HTTP request (server), one per task attempt (worker), the
 * second a child of the first: the submitting request's context travels in the job's data as a W3C
 * `traceparent` (see `TaskQueue.enqueue`).
 */
let enabled = false;

/** The W3C trace context a job carries from the submitting request to the worker. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

export interface TracingOptions {
  serviceName: string;
  /** OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT): spans go to `<endpoint>/v1/traces`. */
  endpoint?: string;
  /** Extra headers for the exporter (OTEL_EXPORTER_OTLP_HEADERS). */
  headers?: Record<string, string>;
  /** Instead of OTLP: spans go here, each as it ends (tests: an InMemorySpanExporter). */
  exporter?: SpanExporter;
}

export interface Tracing {
  /** Sends what is buffered. */
  flush(): Promise<void>;
  /** Flushes, then stops; tracing is off afterwards. */
  shutdown(): Promise<void>;
}

export function tracingEnabled(): boolean {
  return enabled;
}

/**
 * Starts tracing for this process: a tracer provider with the W3C propagator and an
 * AsyncLocalStorage context manager, registered globally. Undefined (and nothing loaded) when
 * neither an endpoint nor an exporter is given. One per process.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing | undefined> {
  if (!options.endpoint && !options.exporter) return undefined;
  if (enabled) throw new Error('tracing is already started in this process');
  const [
    { TracerProvider, BatchSpanProcessor, SimpleSpanProcessor },
    { AsyncLocalStorageContextManager },
    core,
    resources,
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/core'),
    import('@opentelemetry/resources'),
  ]);
  let processor: InstanceType<typeof BatchSpanProcessor> | InstanceType<typeof SimpleSpanProcessor>;
  if (options.exporter) processor = new SimpleSpanProcessor({ exporter: options.exporter });
  else {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    const base = (options.endpoint ?? '').replace(/\/+$/, '');
    processor = new BatchSpanProcessor({
      exporter: new OTLPTraceExporter({ url: `${base}/v1/traces`, headers: options.headers }),
    });
  }
  const provider = new TracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': options.serviceName }),
    spanProcessors: [processor],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new core.W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  enabled = true;
  return {
    flush: () => provider.forceFlush(),
    shutdown: async () => {
      enabled = false;
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}

const tracer = () => trace.getTracer('tasker');

/** The active context as a W3C carrier, for a job's data; undefined when tracing is off or no span is active. */
export function currentTraceCarrier(): TraceCarrier | undefined {
  if (!enabled) return undefined;
  const carrier: TraceCarrier = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ? carrier : undefined;
}

/**
 * Runs `fn` in a new active span (a child of `parent`, or of the active context), ending it when
 * `fn` settles (ERROR status when it throws). With tracing off, runs `fn(undefined)` and nothing else.
 */
export async function inSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parent?: TraceCarrier },
  fn: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (!enabled) return fn(undefined);
  const parent = options.parent ? propagation.extract(ROOT_CONTEXT, options.parent) : context.active();
  return tracer().startActiveSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes },
    parent,
    async (span) => {
      try {
        return await fn(span);
      } catch (error) {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({
          code: SpanStatusCode.ERROR,
          message: error instanceof Error ? error.message : String(error),
        });
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

/**
 * A server span for one HTTP request, its parent read from the request's `traceparent` header when
 * it has one; `run` continues the request inside it. Undefined when tracing is off.
 */
export function startRequestSpan(
  name: string,
  headers: Record<string, string | string[] | undefined>,
  attributes: Attributes,
): { span: Span; run: (fn: () => void) => void } | undefined {
  if (!enabled) return undefined;
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  const span = tracer().startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  const active: Context = trace.setSpan(parent, span);
  return { span, run: (fn) => context.with(active, fn) };
}

/** Ends a request span with its status code (ERROR for a 5xx). */
export function endRequestSpan(span: Span, statusCode: number): void {
  span.setAttribute('http.response.status_code', statusCode);
  if (statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/** Marks the active span (if any) with an attribute; a no-op when tracing is off. */
export function setSpanAttribute(key: string, value: string | number | boolean): void {
  if (!enabled) return;
  trace.getActiveSpan()?.setAttribute(key, value);
}

export { SpanKind };
