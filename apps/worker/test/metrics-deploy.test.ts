/**
 * The compose `metrics` profile, checked without Docker (none where the tests run): its Prometheus
 * and Grafana files parse, Prometheus scrapes the servers and workers of both profiles on the ports
 * they serve `/metrics` on, and Grafana is provisioned with a Prometheus data source whose uid the
 * dashboard's queries name, and with the dashboard file itself. That the dashboard's metrics exist in
 * a real scrape is checked in apps/server/test/metrics.test.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEnv } from '@tasker/engine';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');
const yaml = (file: string) => parse(read(file), { merge: true }) as unknown;

const service = z.object({
  profiles: z.array(z.string()),
  image: z.string(),
  ports: z.array(z.string()).optional(),
  volumes: z.array(z.string()).optional(),
  environment: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  command: z.array(z.string()).optional(),
});
const compose = z
  .object({ services: z.record(z.string(), z.object({ profiles: z.array(z.string()) }).passthrough()) })
  .parse(yaml('docker-compose.yml'));
const get = (name: string) => service.parse(compose.services[name]);

/** `./host/path:/container/path[:ro]` → [host path from the repo root, container path]. */
const mounts = (volumes: string[] = []) =>
  volumes.filter((v) => v.startsWith('./')).map((v) => v.split(':').slice(0, 2) as [string, string]);

describe('the compose metrics profile', () => {
  it('runs Prometheus with deploy/prometheus/prometheus.yml, which scrapes every server and worker on their /metrics ports', () => {
    const prometheus = get('prometheus');
    expect(prometheus.profiles).toEqual(['metrics']);
    const [config] = mounts(prometheus.volumes).filter(
      ([, inside]) => inside === '/etc/prometheus/prometheus.yml',
    );
    expect(config?.[0]).toBe('./deploy/prometheus/prometheus.yml');
    expect(prometheus.command).toContain('--config.file=/etc/prometheus/prometheus.yml');

    const scrape = z.object({
      global: z.object({ scrape_interval: z.string() }),
      scrape_configs: z.array(
        z.object({
          job_name: z.string(),
          metrics_path: z.literal('/metrics'),
          dns_sd_configs: z.array(
            z.object({ names: z.array(z.string()), type: z.literal('A'), port: z.number() }),
          ),
        }),
      ),
    });
    const jobs = scrape.parse(yaml('deploy/prometheus/prometheus.yml')).scrape_configs;
    const targets = Object.fromEntries(
      jobs.flatMap((job) => job.dns_sd_configs.flatMap((sd) => sd.names.map((name) => [name, sd.port]))),
    );
    // Each Tasker service of the compose file is a target, on the port it really serves /metrics on.
    const envOf = (name: string) => {
      const env = z
        .record(z.string(), z.union([z.string(), z.number()]))
        .parse(compose.services[name]?.environment);
      return loadEnv(
        Object.fromEntries(
          Object.entries(env).map(([k, v]) => [k, String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')]),
        ),
      );
    };
    for (const name of ['server', 'server-pg']) expect(targets[name], name).toBe(envOf(name).PORT);
    for (const name of ['worker', 'worker-pg']) expect(targets[name], name).toBe(envOf(name).METRICS_PORT);
    expect(Object.keys(targets).sort()).toEqual(['server', 'server-pg', 'worker', 'worker-pg']);
  });

  it('runs Grafana provisioned with that Prometheus and the Tasker dashboard', () => {
    const grafana = get('grafana');
    expect(grafana.profiles).toEqual(['metrics']);
    const mounted = Object.fromEntries(mounts(grafana.volumes).map(([host, inside]) => [inside, host]));
    for (const host of Object.values(mounted)) expect(existsSync(path.join(root, host)), host).toBe(true);
    expect(mounted['/etc/grafana/provisioning']).toBe('./deploy/grafana/provisioning');

    const datasources = z
      .object({ datasources: z.array(z.object({ uid: z.string(), type: z.string(), url: z.string() })) })
      .parse(yaml('deploy/grafana/provisioning/datasources/prometheus.yml')).datasources;
    expect(datasources).toHaveLength(1);
    const [source] = datasources;
    expect(source?.type).toBe('prometheus');
    expect(source?.url).toBe(`http://prometheus:${get('prometheus').ports?.[0]?.split(':')[1]}`);

    const providers = z
      .object({
        providers: z.array(z.object({ type: z.literal('file'), options: z.object({ path: z.string() }) })),
      })
      .parse(yaml('deploy/grafana/provisioning/dashboards/tasker.yml')).providers;
    const folder = providers[0]?.options.path ?? '';
    const dashboardInside = Object.keys(mounted).find((inside) => inside.startsWith(`${folder}/`));
    expect(dashboardInside && mounted[dashboardInside]).toBe('./deploy/grafana/tasker.json');

    const dashboard = z
      .object({
        uid: z.string(),
        panels: z.array(
          z.object({
            type: z.string(),
            datasource: z.object({ uid: z.string() }).optional(),
            targets: z
              .array(z.object({ expr: z.string(), datasource: z.object({ uid: z.string() }) }))
              .optional(),
          }),
        ),
      })
      .parse(JSON.parse(read('deploy/grafana/tasker.json')));
    const uids = new Set(
      dashboard.panels.flatMap((p) => [p.datasource?.uid, ...(p.targets ?? []).map((t) => t.datasource.uid)]),
    );
    uids.delete(undefined);
    expect([...uids]).toEqual([source?.uid]);
  });
});
