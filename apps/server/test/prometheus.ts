import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { expect } from 'vitest';

/** One sample of a counter or gauge, or one series of a histogram, as the parser gives them. */
export interface Sample {
  labels?: Record<string, string>;
  value?: string;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}
export interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Sample[];
}

const parse = parsePrometheusTextFormat as (text: string) => Family[];

/** A scrape, parsed: its families, and every sample of its histograms series by series. */
export interface Scrape {
  families: Family[];
  /** `<histogram>_bucket`, `_sum` and `_count` samples, each with its labels. */
  histogramSamples: Map<string, Sample[]>;
}

/**
 * Prometheus text → metric families, with the npm text-format parser (it throws on a malformed
 * line). That parser folds the series of a labelled histogram into one bucket map, losing their
 * labels and counts; so the text is parsed a second time with the histograms' TYPE lines made
 * `untyped`, which gives each `_bucket`, `_sum` and `_count` line as a sample with its labels.
 */
export function parseMetrics(text: string): Scrape {
  const families = parse(text);
  const histograms = new Set(families.filter((f) => f.type === 'HISTOGRAM').map((f) => f.name));
  const retyped = text.replace(/^# TYPE (\S+) histogram$/gm, (line, name: string) =>
    histograms.has(name) ? `# TYPE ${name} untyped` : line,
  );
  const histogramSamples = new Map<string, Sample[]>();
  for (const family of parse(retyped)) {
    const base = family.name.replace(/_(bucket|sum|count)$/, '');
    if (!histograms.has(base) || base === family.name) continue;
    histogramSamples.set(family.name, [...(histogramSamples.get(family.name) ?? []), ...family.metrics]);
  }
  return { families, histogramSamples };
}

export async function scrape(url: string, token?: string): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  if (res.status !== 200) throw new Error(`GET ${url}/metrics answered ${res.status}: ${await res.text()}`);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

const matches = (sample: Sample, labels: Record<string, string>) =>
  Object.entries(labels).every(([k, v]) => sample.labels?.[k] === v);

/** Sum of a counter's or gauge's samples that carry these labels (0 when there are none). */
export function sampleValue({ families }: Scrape, name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name);
  if (!family) throw new Error(`no metric ${name} in the scrape`);
  return family.metrics.filter((s) => matches(s, labels)).reduce((sum, s) => sum + Number(s.value), 0);
}

/** Sum of a histogram's observation counts over its series that carry these labels. */
export function countOf(scrape: Scrape, name: string, labels: Record<string, string> = {}): number {
  const family = scrape.families.find((f) => f.name === name);
  if (!family) throw new Error(`no metric ${name} in the scrape`);
  expect(family.type).toBe('HISTOGRAM');
  const samples = scrape.histogramSamples.get(`${name}_count`) ?? [];
  return samples.filter((s) => matches(s, labels)).reduce((sum, s) => sum + Number(s.value), 0);
}

/** Every name a query may use for these families: histograms add _bucket, _sum and _count. */
export function exposedNames({ families }: Scrape): Set<string> {
  const names = new Set<string>();
  for (const f of families) {
    names.add(f.name);
    if (f.type === 'HISTOGRAM' || f.type === 'SUMMARY')
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${f.name}${suffix}`);
  }
  return names;
}
