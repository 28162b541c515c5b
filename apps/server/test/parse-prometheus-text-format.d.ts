declare module 'parse-prometheus-text-format' {
  /** Prometheus text exposition → metric families (shape in test/prometheus.ts). */
  export default function parsePrometheusTextFormat(text: string): unknown[];
}
