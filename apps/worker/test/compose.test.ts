import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkServerExposure, envSchema, loadEnv } from '@tasker/engine';
import { type AppProcess, freePort, spawnApp } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { Harness } from './harness.ts';

// There is no Docker engine where the tests run: this checks docker-compose.yml against what the
// tests do start (the built apps, their configuration schema, their health endpoints).
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const healthcheck = z.object({ test: z.array(z.string()) });
const service = z.object({
  profiles: z.array(z.string()),
  image: z.string(),
  build: z.unknown().optional(),
  command: z.array(z.string()).optional(),
  environment: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  depends_on: z.record(z.string(), z.object({ condition: z.string() })).optional(),
  healthcheck: healthcheck.optional(),
});
const composeFile = z.object({ services: z.record(z.string(), service) });
type Service = z.infer<typeof service>;

const compose = composeFile.parse(
  parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true }),
);
const services = Object.entries(compose.services);
const get = (name: string): Service => {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
};
const inProfile = (profile: string) =>
  Object.fromEntries(services.filter(([, s]) => s.profiles.includes(profile)));

/** What the shell must give compose (`${NAME:?…}` in the file): a value each, for these tests. */
const REQUIRED: Record<string, string> = {
  POSTGRES_PASSWORD: 'pw-for-tests',
  GRAFANA_ADMIN_PASSWORD: 'gf',
  METRICS_TOKEN: 'metrics-token-for-tests',
};

/**
 * The environment as Compose passes it with only the required variables set in the shell:
 * `${NAME:-default}` → default, `${NAME:?message}` → REQUIRED's value (a test fails on an unknown one).
 */
function interpolated(s: Service): Record<string, string> {
  return Object.fromEntries(
    Object.entries(s.environment ?? {}).map(([name, value]) => [
      name,
      String(value).replace(
        /\$\{([A-Z_]+)(?:(:?[-?])([^}]*))?\}/g,
        (_, variable: string, operator: string | undefined, rest: string | undefined) => {
          if (operator?.endsWith('?')) {
            const given = REQUIRED[variable];
            if (given === undefined) throw new Error(`${variable} is required by docker-compose.yml`);
            return given;
          }
          return rest ?? '';
        },
      ),
    ]),
  );
}

const nodeScript = (s: Service) => {
  const test = s.healthcheck?.test ?? [];
  expect(test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
  return test[3] ?? '';
};

const runScript = (script: string) =>
  new Promise<number | null>((resolve) => {
    execFile(process.execPath, ['-e', script], { timeout: 10_000 }, (error) =>
      resolve(error ? (typeof error.code === 'number' ? error.code : null) : 0),
    );
  });

describe('docker-compose.yml', () => {
  it('has two profiles, the full stack and PostgreSQL only, the optional metrics one, and nothing outside them', () => {
    expect(services.filter(([, s]) => s.profiles.length === 0)).toEqual([]);
    expect(Object.keys(inProfile('full')).sort()).toEqual(['postgres', 'redis', 'server', 'worker']);
    expect(Object.keys(inProfile('pg')).sort()).toEqual(['postgres', 'server-pg', 'worker-pg']);
    expect(Object.keys(inProfile('metrics')).sort()).toEqual(['grafana', 'prometheus']);
    for (const profile of ['full', 'pg', 'metrics']) {
      for (const [name, s] of Object.entries(inProfile(profile))) {
        for (const dependency of Object.keys(s.depends_on ?? {})) {
          expect(inProfile(profile), `${name} depends on ${dependency}`).toHaveProperty(dependency);
        }
      }
    }
  });

  it('runs server and worker from one image, built by one service per profile', () => {
    for (const [server, worker] of [
      ['server', 'worker'],
      ['server-pg', 'worker-pg'],
    ] as const) {
      expect(get(server).build).toBeDefined();
      expect(get(worker).build).toBeUndefined();
      expect(get(worker).image).toBe(get(server).image);
    }
    for (const [name, script] of [
      ['server', 'apps/server/dist/main.js'],
      ['server-pg', 'apps/server/dist/main.js'],
      ['worker', 'apps/worker/dist/main.js'],
      ['worker-pg', 'apps/worker/dist/main.js'],
    ] as const) {
      expect(get(name).command).toEqual(['node', script]);
      expect(existsSync(path.join(root, script)), script).toBe(true);
    }
  });

  it("gives server and worker environments that Tasker's configuration schema accepts, in the right mode", () => {
    const known = Object.keys(envSchema.shape);
    for (const [name, s] of services.filter(([n]) => n.startsWith('server') || n.startsWith('worker'))) {
      const env = interpolated(s);
      expect(
        Object.keys(env).filter((v) => !known.includes(v)),
        name,
      ).toEqual([]);
      const parsed = loadEnv(env);
      expect(parsed.REDIS_URL, name).toBe(name.endsWith('-pg') ? undefined : 'redis://redis:6379/0');
      if (name.startsWith('worker')) expect(parsed.METRICS_PORT, name).toBeGreaterThan(0);
    }
  });

  it('runs in production with API keys required, as the Dockerfile does: both say NODE_ENV=production and AUTH_MODE=required', () => {
    // The runtime stage of the Dockerfile (the last FROM): its ENV lines.
    const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const image = Object.fromEntries(
      [...runtime.matchAll(/^ENV (.+)$/gm)].flatMap(([, pairs]) =>
        (pairs ?? '').split(/\s+/).map((pair) => pair.split('=') as [string, string]),
      ),
    );
    expect(image).toMatchObject({ NODE_ENV: 'production', AUTH_MODE: 'required', HOST: '0.0.0.0' });
    expect(loadEnv({ ...image, DATABASE_URL: 'postgres://h/db' }).AUTH_MODE).toBe('required');
    for (const [name, s] of services.filter(([n]) => n.startsWith('server') || n.startsWith('worker'))) {
      const env = interpolated(s);
      expect(env, name).toMatchObject({ NODE_ENV: 'production', AUTH_MODE: 'required' });
      const parsed = loadEnv(env);
      expect(parsed.RATE_LIMIT_PER_MINUTE, name).toBeGreaterThan(0);
      expect(() => checkServerExposure(parsed), name).not.toThrow();
    }
  });

  describe('health checks, run against the built apps', () => {
    let harness: Harness;
    const apps: AppProcess[] = [];
    beforeAll(async () => {
      harness = await Harness.start();
    });
    // The -pg services run in the PostgreSQL-only mode whatever TEST_MODE says.
    const modeOf = (name: string) =>
      name.endsWith('-pg')
        ? { ...harness.env.vars, REDIS_URL: '', REDIS_CLUSTER_NODES: '' }
        : harness.env.vars;
    afterAll(async () => {
      await Promise.all(apps.map((a) => a.stop('SIGKILL')));
      await harness.close();
    });

    it.each(['worker', 'worker-pg'])(
      "%s: its check passes while the worker runs and fails once it's gone",
      async (name) => {
        const s = get(name);
        const port = interpolated(s).METRICS_PORT;
        const script = nodeScript(s);
        expect(script).toContain(`http://127.0.0.1:${port}/healthz`);
        const local = await freePort();
        const worker = await spawnApp('worker', { ...modeOf(name), METRICS_PORT: String(local) });
        apps.push(worker);
        if (name.endsWith('-pg')) expect(worker.output()).toContain('queue: PostgreSQL (REDIS_URL unset)');
        const here = script.replace(`127.0.0.1:${port}`, `127.0.0.1:${local}`);
        await expect.poll(() => runScript(here), { timeout: 10_000 }).toBe(0);
        expect(await worker.stop('SIGTERM')).toBe(0);
        expect(await runScript(here)).toBe(1);
      },
    );

    it.each(['server', 'server-pg'])('%s: its check passes against a running server', async (name) => {
      const s = get(name);
      const port = interpolated(s).PORT;
      const script = nodeScript(s);
      expect(script).toContain(`http://127.0.0.1:${port}/readyz`);
      const server = await spawnApp('server', modeOf(name));
      apps.push(server);
      const here = script.replace(`http://127.0.0.1:${port}`, server.url ?? '');
      expect(await runScript(here)).toBe(0);
      expect(await server.stop('SIGTERM')).toBe(0);
      expect(await runScript(here)).toBe(1);
    });
  });
});
