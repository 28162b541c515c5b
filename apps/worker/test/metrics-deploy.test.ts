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
  networks: z.array(z.string()).optional(),
  volumes: z.array(z.string()).optional(),
  environment: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  command: z.array(z.string()).optional(),
  secrets: z.array(z.string()).optional(),
});
const compose = z
  .object({
    services: z.record(z.string(), z.object({ profiles: z.array(z.string()) }).passthrough()),
    networks: z.record(z.string(), z.unknown()).optional(),
    secrets: z.record(z.string(), z.object({ environment: z.string() })).optional(),
  })
  .parse(yaml('docker-compose.yml'));
const get = (name: string) => service.parse(compose.services[name]);
const serviceNames = Object.keys(compose.services);
/** The Tasker processes: the servers and workers of both profiles. */
const taskerServices = serviceNames.filter((n) => /^(server|worker)(-pg)?$/.test(n));

/**
 * Compose's interpolation of one value: `${NAME:-default}`, and `${NAME:?message}`, which stops
 * compose when NAME is unset or empty. `vars` is the shell's environment.
 */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(
    /\$\{([A-Z_]+)(?:(:?[-?])([^}]*))?\}/g,
    (_, name: string, operator: string | undefined, rest: string) => {
      const given = vars[name];
      if (operator?.endsWith('?')) {
        if (!given) throw new Error(`required variable ${name} is missing a value: ${rest}`);
        return given;
      }
      return given || (operator ? rest : '');
    },
  );
}

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
    // The token the servers and workers check, handed to Prometheus as /run/secrets/metrics_token.
    expect(prometheus.secrets).toEqual(['metrics_token']);
    expect(compose.secrets?.metrics_token).toEqual({ environment: 'METRICS_TOKEN' });

    const scrape = z.object({
      global: z.object({ scrape_interval: z.string() }),
      scrape_configs: z.array(
        z.object({
          job_name: z.string(),
          metrics_path: z.literal('/metrics'),
          // Servers and workers need METRICS_TOKEN in production: the compose secret, as a file.
          authorization: z.object({
            type: z.literal('Bearer'),
            credentials_file: z.literal('/run/secrets/metrics_token'),
          }),
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
    expect(source?.url).toBe(`http://prometheus:${get('prometheus').ports?.[0]?.split(':').at(-1)}`);

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

describe('the compose file exposes nothing by accident', () => {
  it('publishes Prometheus and Grafana on 127.0.0.1 only; nothing but the API (keys required) on every interface', () => {
    for (const name of ['prometheus', 'grafana'])
      for (const port of get(name).ports ?? []) expect(port, name).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
    for (const name of serviceNames) {
      for (const port of get(name).ports ?? []) {
        expect(port, name).not.toMatch(/^(0\.0\.0\.0|\[?::\]?):/);
        // A port with no host address is published on every interface: only a Tasker server's,
        // which requires API keys there (compose.test.ts checks AUTH_MODE=required).
        if (!/^127\.0\.0\.1:/.test(port)) expect(name, port).toMatch(/^server(-pg)?$/);
      }
    }
  });

  it('writes no password: each comes from the environment, with no default, and compose stops without it', () => {
    const text = read('docker-compose.yml');
    expect(text).not.toMatch(/admin\/admin|:tasker@/);
    const secrets = /PASSWORD|SECRET|TOKEN/;
    const required = /^\$\{([A-Z_]+):\?[^}]+\}$/;
    const seen = new Set<string>();
    for (const name of serviceNames) {
      for (const [variable, raw] of Object.entries(get(name).environment ?? {})) {
        const value = String(raw);
        if (secrets.test(variable)) {
          expect(value, `${name} ${variable}`).toMatch(required);
          seen.add(variable);
        }
        // A password inside a URL (DATABASE_URL) too.
        const inUrl = /^[a-z]+:\/\/[^:/@]+:([^@]+)@/.exec(value)?.[1];
        if (inUrl !== undefined) expect(inUrl, `${name} ${variable}`).toMatch(required);
      }
    }
    expect([...seen].sort()).toEqual(['GF_SECURITY_ADMIN_PASSWORD', 'METRICS_TOKEN', 'POSTGRES_PASSWORD']);
    // PostgreSQL's password and the one in DATABASE_URL are the same variable.
    const postgresPassword = String(get('postgres').environment?.POSTGRES_PASSWORD);
    for (const name of taskerServices) {
      const url = String(get(name).environment?.DATABASE_URL);
      expect(url, name).toContain(`:${postgresPassword}@`);
      expect(() => interpolate(url, {}), name).toThrow(
        /required variable POSTGRES_PASSWORD is missing a value/,
      );
      expect(interpolate(url, { POSTGRES_PASSWORD: 's3cret' }), name).toBe(
        'postgres://tasker:s3cret@postgres:5432/tasker',
      );
    }
    const grafanaPassword = String(get('grafana').environment?.GF_SECURITY_ADMIN_PASSWORD);
    expect(() => interpolate(grafanaPassword, {})).toThrow(
      /required variable GRAFANA_ADMIN_PASSWORD is missing a value/,
    );
    expect(() => interpolate(grafanaPassword, { GRAFANA_ADMIN_PASSWORD: '' })).toThrow(/missing a value/);
  });

  it('keeps monitoring on a network of its own: Prometheus reaches every server and worker, never PostgreSQL or Redis', () => {
    const networksOf = (name: string) => get(name).networks ?? ['default'];
    expect(Object.keys(compose.networks ?? {}).sort()).toEqual(['backend', 'monitoring']);
    const monitoring = new Set([...networksOf('prometheus'), ...networksOf('grafana')]);
    expect([...monitoring]).toEqual(['monitoring']);
    for (const name of ['postgres', 'redis'])
      for (const network of networksOf(name))
        expect(monitoring.has(network), `${name} shares ${network} with monitoring`).toBe(false);
    // Every scrape target is on a network Prometheus is on, and reaches PostgreSQL on another.
    for (const name of taskerServices) {
      expect(
        networksOf(name).some((n) => networksOf('prometheus').includes(n)),
        name,
      ).toBe(true);
      expect(
        networksOf(name).some((n) => networksOf('postgres').includes(n)),
        name,
      ).toBe(true);
    }
    for (const name of ['redis'])
      expect(networksOf('server')).toEqual(expect.arrayContaining(networksOf(name)));
  });
});
