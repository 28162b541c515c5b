export type { LifecycleEvent, LifecycleObserver } from './events.ts';
export { type StreamKind, TaskerMetrics } from './metrics.ts';
export { METRICS_CLOSED, type MetricsAccess, metricsAccess, metricsRefusal } from './token.ts';
export {
  currentTraceCarrier,
  endRequestSpan,
  inSpan,
  SpanKind,
  setSpanAttribute,
  startRequestSpan,
  startTracing,
  type TraceCarrier,
  type Tracing,
  type TracingOptions,
  tracingEnabled,
} from './tracing.ts';
