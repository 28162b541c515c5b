/**
 * deploy/kubernetes, linted here without a cluster: every object against the Kubernetes API's
 * schemas (unknown fields refused, as kubectl's strict validation does), then against the code:
 * variables, probes and ports, the Service, the PodDisruptionBudgets, the autoscaler's target and
 * metric, the image and its commands, the shutdown's timing, Prometheus' scrape jobs. The last
 * block breaks the manifests one way at a time and expects each to be reported.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger, TaskerMetrics } from '@tasker/engine';
import { envSchema, loadEnv } from '@tasker/engine/config';
import { openApiDocument } from '@tasker/server';
import { freePort } from '@tasker/testing';
import { startHealthServer } from '@tasker/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CodeFacts, crossCheck, type Manifests } from '../src/checks.ts';
import {
  type K8sObject,
  parseYamlDocuments,
  podSpecOf,
  readObjects,
  readYamlDocuments,
  render,
  rewriteImage,
  splitImage,
} from '../src/kustomize.ts';
import { schemaProblems } from '../src/schemas.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const DIR = path.join(ROOT, 'deploy/kubernetes');
const at = (...parts: string[]) => path.join(ROOT, ...parts);

/** The numeric id of the official Node images' `node` user (USER node in the Dockerfile). */
const NODE_IMAGE_USERS: Record<string, number> = { node: 1000, root: 0 };

/** The Dockerfile's runtime stage: its CMD, its USER, and where it puts `tasker`. */
function dockerfile() {
  const text = readFileSync(at('Dockerfile'), 'utf8');
  const runtime = text.slice(text.lastIndexOf('\nFROM '));
  const cmd = /^CMD (\[.*\])$/m.exec(runtime)?.[1];
  const user = [...runtime.matchAll(/^USER (\S+)$/gm)].at(-1)?.[1] ?? 'root';
  const workdir = /^WORKDIR (\S+)$/m.exec(runtime)?.[1];
  const link = /ln -s (\S+) \/usr\/local\/bin\/tasker/.exec(runtime)?.[1];
  if (!cmd || !workdir || !link)
    throw new Error('Dockerfile: no CMD, WORKDIR or tasker link in its last stage');
  const uid = /^\d+$/.test(user) ? Number(user) : NODE_IMAGE_USERS[user];
  if (uid === undefined) throw new Error(`Dockerfile: USER ${user}, whose id this test does not know`);
  return { cmd: JSON.parse(cmd) as string[], uid, workdir, link };
}

/** The series and label values a process's /metrics shows, with a queue of known depth behind it. */
async function metricsSeries() {
  const metrics = new TaskerMetrics();
  metrics.watchQueue(async () => ({ paused: false, waiting: 3, delayed: 1, active: 5, failed: 0 }));
  const series = new Map<string, Map<string, Set<string>>>();
  for (const line of (await metrics.registry.metrics()).split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? /.exec(line);
    if (!match?.[1]) continue;
    const labels = series.get(match[1]) ?? new Map<string, Set<string>>();
    series.set(match[1], labels);
    for (const [, name, value] of (match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) {
      if (!name || value === undefined) continue;
      labels.set(name, (labels.get(name) ?? new Set()).add(value));
    }
  }
  return series;
}

let facts: CodeFacts;
let rendered: ReturnType<typeof render>;
let manifests: Manifests;
let worker: Awaited<ReturnType<typeof startHealthServer>>;
const monitoring = (file: string) => readYamlDocuments(path.join(DIR, 'monitoring', file))[0];

beforeAll(async () => {
  const image = dockerfile();
  const compose = readYamlDocuments(at('docker-compose.yml'))[0] as {
    services: Record<string, { image?: string; build?: unknown; command?: string[] }>;
  };
  const built = Object.values(compose.services).find((s) => s.build !== undefined && s.image);
  if (!built?.image || !compose.services.worker?.command)
    throw new Error('docker-compose.yml: no built image or worker');
  // The worker's probe: a worker's own health listener, asked on a free port.
  worker = await startHealthServer(
    await freePort(),
    '127.0.0.1',
    createLogger({ LOG_LEVEL: 'silent' }, 'deploy-test'),
  );
  worker.set('ok');
  const paths = Object.keys((openApiDocument() as { paths: Record<string, { get?: unknown }> }).paths);
  facts = {
    variables: new Set(Object.keys(envSchema.shape)),
    loadEnv: (env) => loadEnv(env),
    image: { name: built.image, uid: image.uid },
    server: { command: image.cmd, paths: new Set(paths), liveness: '/healthz', readiness: '/readyz' },
    worker: { command: compose.services.worker.command, health: '/healthz' },
    migrate: { command: ['tasker', 'migrate'] },
    metrics: await metricsSeries(),
  };
  rendered = render(DIR);
  manifests = {
    objects: rendered.objects.map((o) => o.object),
    namespace: rendered.kustomization.namespace,
    secret: readObjects(path.join(DIR, 'secret.example.yaml'))[0]?.object as K8sObject,
    scrape: monitoring('prometheus-scrape.yaml'),
    adapter: monitoring('prometheus-adapter-values.yaml'),
  };
});

afterAll(async () => {
  await worker?.close();
});

describe('deploy/kubernetes against the Kubernetes API', () => {
  it('every manifest file is in the kustomization (but the Secret, made by hand)', () => {
    const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));
    const left = files.filter(
      (f) =>
        f !== 'kustomization.yaml' &&
        f !== 'secret.example.yaml' &&
        !rendered.kustomization.resources.includes(f),
    );
    expect(left).toEqual([]);
    expect(rendered.objects.map((o) => `${o.object.kind} ${o.object.metadata.name}`).sort()).toEqual([
      'ConfigMap tasker-config',
      'Deployment tasker-server',
      'Deployment tasker-worker',
      'HorizontalPodAutoscaler tasker-worker',
      'Job tasker-migrate',
      'Namespace tasker',
      'PodDisruptionBudget tasker-server',
      'PodDisruptionBudget tasker-worker',
      'Service tasker-server',
    ]);
  });

  it('every object, the example Secret too, is valid against its schema, with no unknown field', () => {
    const objects = [...rendered.objects, ...readObjects(path.join(DIR, 'secret.example.yaml'))];
    const problems = objects.flatMap(({ file, object }) =>
      schemaProblems(object).map(
        (p) => `${path.relative(DIR, file)}: ${object.kind} ${object.metadata.name}: ${p}`,
      ),
    );
    expect(problems).toEqual([]);
  });

  // kubectl is not on every machine (nor in CI's image): where it is, its kustomize must agree.
  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!kubectl)(
    'render() builds what `kubectl kustomize` builds (the ConfigMap without its hash)',
    () => {
      const output = execFileSync('kubectl', ['kustomize', DIR], { encoding: 'utf8' });
      const unhash = (text: string) => text.replaceAll(/tasker-config-[a-z0-9]{10}/g, 'tasker-config');
      const theirs = parseYamlDocuments(unhash(output), 'kubectl kustomize') as K8sObject[];
      const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
      const sorted = (list: K8sObject[]) => [...list].sort((a, b) => key(a).localeCompare(key(b)));
      expect(sorted(manifests.objects)).toEqual(sorted(theirs));
    },
  );
});

describe('deploy/kubernetes against the code', () => {
  it('the commands exist: the built server, worker and CLI; `tasker migrate` is a command of the CLI', () => {
    const { workdir, link } = dockerfile();
    expect(workdir).toBe('/app'); // the repository's root: COPY . . in the build stage
    for (const command of [facts.server.command, facts.worker.command]) {
      expect(command[0]).toBe('node');
      expect(existsSync(at(command[1] ?? '')), `${command[1]} is built`).toBe(true);
    }
    const cli = at(path.relative(workdir, link));
    expect(existsSync(cli), `${cli} is built`).toBe(true);
    const help = spawnSync(process.execPath, [cli, ...facts.migrate.command.slice(1), '--help'], {
      encoding: 'utf8',
    });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: tasker migrate/);
  });

  it("the worker's health listener answers the probes' path", async () => {
    const answer = await fetch(`${worker.url}${facts.worker.health}`);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ status: 'ok' });
  });

  it('the queue metric behind the autoscaler is on /metrics, by state', () => {
    expect([...(facts.metrics.get('tasker_queue_jobs')?.get('state') ?? [])].sort()).toEqual([
      'active',
      'delayed',
      'failed',
      'waiting',
    ]);
  });

  it('variables, probes, ports, selectors, autoscaler, image, commands, shutdown and scraping agree', () => {
    expect(crossCheck(manifests, facts)).toEqual([]);
  });
});

describe("kustomize's images", () => {
  it.each([
    ['tasker', { name: 'tasker' }],
    ['tasker:local', { name: 'tasker', tag: 'local' }],
    ['registry.local:5000/tasker/server', { name: 'registry.local:5000/tasker/server' }],
    ['registry.local:5000/tasker/server:1.2', { name: 'registry.local:5000/tasker/server', tag: '1.2' }],
    ['tasker@sha256:abc123', { name: 'tasker', digest: 'sha256:abc123' }],
    [
      'registry.local:5000/tasker/server:1.2@sha256:abc123',
      { name: 'registry.local:5000/tasker/server', tag: '1.2', digest: 'sha256:abc123' },
    ],
    [
      'registry.local:5000/tasker/server@sha256:abc123',
      { name: 'registry.local:5000/tasker/server', digest: 'sha256:abc123' },
    ],
  ])('splits %s', (reference, parts) => {
    expect(splitImage(reference)).toEqual(parts);
  });

  const server = 'registry.local:5000/tasker/server';
  it.each([
    ['a tag replaced', `${server}:1.2`, { name: server, newTag: '1.3' }, `${server}:1.3`],
    ['the name replaced, the tag kept', `${server}:1.2`, { name: server, newName: 'r.io/t' }, 'r.io/t:1.2'],
    ['a digest replaced by a tag', `${server}@sha256:aaa`, { name: server, newTag: '1.3' }, `${server}:1.3`],
    [
      'a tag and digest replaced by a digest',
      `${server}:1.2@sha256:aaa`,
      { name: server, digest: 'sha256:bbb' },
      `${server}@sha256:bbb`,
    ],
    [
      'the name replaced, the digest kept',
      `${server}@sha256:aaa`,
      { name: server, newName: 'tasker' },
      'tasker@sha256:aaa',
    ],
    ['another image left alone', `${server}:1.2`, { name: 'registry.local', newTag: 'x' }, `${server}:1.2`],
    [
      'a name without its port: no match',
      `${server}:1.2`,
      { name: 'tasker/server', newTag: 'x' },
      `${server}:1.2`,
    ],
  ])('%s', (_name, reference, image, expected) => {
    expect(rewriteImage(reference, [image])).toBe(expected);
  });

  it('render() rewrites containers and init containers whose image has a port or a digest', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tasker-kustomize-'));
    try {
      writeFileSync(
        path.join(dir, 'kustomization.yaml'),
        [
          'apiVersion: kustomize.config.k8s.io/v1beta1',
          'kind: Kustomization',
          'namespace: t',
          'resources: [app.yaml]',
          'images:',
          `  - { name: '${server}', newTag: '2.0' }`,
          "  - { name: 'tasker', newName: 'registry.local:5000/tasker' }",
        ].join('\n'),
      );
      writeFileSync(
        path.join(dir, 'app.yaml'),
        [
          'apiVersion: apps/v1',
          'kind: Deployment',
          'metadata: { name: app }',
          'spec:',
          '  template:',
          '    spec:',
          `      initContainers: [{ name: init, image: '${server}@sha256:aaa' }]`,
          "      containers: [{ name: main, image: 'tasker@sha256:bbb' }]",
        ].join('\n'),
      );
      const [loaded] = render(dir).objects;
      const pod = loaded && podSpecOf(loaded.object);
      expect(pod?.initContainers?.[0]?.image).toBe(`${server}:2.0`);
      expect(pod?.containers[0]?.image).toBe('registry.local:5000/tasker@sha256:bbb');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a broken manifest is reported', () => {
  /** The manifests with one change made by `breakIt` on a copy. */
  function broken(
    breakIt: (m: Manifests, find: (kind: string, name: string) => K8sObject) => void,
  ): string[] {
    const copy = structuredClone(manifests);
    const find = (kind: string, name: string) => {
      const found = copy.objects.find((o) => o.kind === kind && o.metadata.name === name);
      if (!found) throw new Error(`${kind} ${name} is not there`);
      return found;
    };
    breakIt(copy, find);
    return [...crossCheck(copy, facts), ...copy.objects.flatMap(schemaProblems)];
  }
  const container = (object: K8sObject) => {
    const first = podSpecOf(object)?.containers[0];
    if (!first) throw new Error('no container');
    return first as Record<string, unknown> & {
      env?: { name: string; value?: string }[];
      command?: string[];
    };
  };
  const probe = (object: K8sObject, kind: string) =>
    container(object)[`${kind}Probe`] as {
      httpGet: { path: string; port: string | number };
    };

  it.each([
    [
      'a misspelt field',
      (_: Manifests, find: (k: string, n: string) => K8sObject) => {
        const server = container(find('Deployment', 'tasker-server'));
        server.livenesProbe = server.livenessProbe;
        delete server.livenessProbe;
      },
      '/spec/template/spec/containers/0/livenesProbe is not a field of apps/v1 Deployment',
    ],
    [
      'a probe on a path the server does not serve',
      (_: Manifests, find: (k: string, n: string) => K8sObject) => {
        probe(find('Deployment', 'tasker-server'), 'readiness').httpGet.path = '/ready';
      },
      "tasker-server's readiness probe: GET /ready, but the process answers /readyz",
    ],
    [
      "a worker probe on a port the worker's METRICS_PORT is not",
      (_: Manifests, find: (k: string, n: string) => K8sObject) => {
        probe(find('Deployment', 'tasker-worker'), 'liveness').httpGet.port = 9465;
      },
      "tasker-worker's liveness probe: port 9465 (no such port), but it listens on 9464",
    ],
    [
      'a variable Tasker does not read',
      (_: Manifests, find: (k: string, n: string) => K8sObject) => {
        (find('ConfigMap', 'tasker-config').data as Record<string, string>).WORKER_CONCURENCY = '10';
      },
      'ConfigMap tasker-config: WORKER_CONCURENCY is not a variable Tasker reads',
    ],
    [
      'a value Tasker refuses',
      (_: Manifests, find: (k: string, n: string) => K8sObject) => {
        container(find('Deployment', 'tasker-worker')).env?.push({ name: 'AUTH_MODE', value: 'maybe' });
      },
      'Deployment tasker-worker: Tasker refuses its environment: Invalid configuration:   AUTH_MODE:',
    ],
    [
      "a Service that selects the workers' pods",
      (_: Manifests, find: (k: string, n: string) => K8sObject) => {
        const spec = find('Service', 'tasker-server').spec as { selector: Record<string, string> };
        spec.selector['app.kubernetes.io/component'] = 'worker';
      },
      "Service tasker-server does not select the server's pods",
    ],
    [
      'an autoscaler whose target is not there',
      (_: Manifests, find: (k: string, n: string) => K8sObject) => {
        const spec = find('HorizontalPodAutoscaler', 'tasker-worker').spec as {
          scaleTargetRef: { name: string };
        };
        spec.scaleTargetRef.name = 'tasker-workers';
      },
      'HorizontalPodAutoscaler tasker-worker: its scaleTargetRef is not the worker Deployment',
    ],
    [
      'an adapter rule on a state the queue metric does not have',
      (m: Manifests) => {
        const rule = (m.adapter as { rules: { external: { metricsQuery: string }[] } }).rules.external[0];
        if (rule) rule.metricsQuery = rule.metricsQuery.replace('waiting|active', 'queued|active');
      },
      'prometheus-adapter-values.yaml: tasker_queue_jobs has no state="queued" on /metrics',
    ],
    [
      'a migration Job that runs something else',
      (_: Manifests, find: (k: string, n: string) => K8sObject) => {
        container(find('Job', 'tasker-migrate')).command = ['tasker', 'migrations'];
      },
      'the migration Job runs "tasker migrations", not "tasker migrate"',
    ],
    [
      'an image the Dockerfile does not build',
      (_: Manifests, find: (k: string, n: string) => K8sObject) => {
        container(find('Deployment', 'tasker-server')).image = 'tasker:latest';
      },
      'Deployment tasker-server: image tasker:latest, not tasker:local',
    ],
    [
      'a grace period shorter than the shutdown',
      (_: Manifests, find: (k: string, n: string) => K8sObject) => {
        const pod = podSpecOf(find('Deployment', 'tasker-worker'));
        if (pod) pod.terminationGracePeriodSeconds = 15;
      },
      'tasker-worker: terminationGracePeriodSeconds 15 s < preStop 0 s + SHUTDOWN_TIMEOUT_MS 10 s + 10 s to close',
    ],
    [
      'a scrape job that keeps no worker port',
      (m: Manifests) => {
        const jobs = (
          m.scrape as { scrape_configs: { job_name: string; relabel_configs: { regex?: string }[] }[] }
        ).scrape_configs;
        const rule = jobs
          .find((j) => j.job_name === 'tasker-worker')
          ?.relabel_configs.find((r) => r.regex === 'metrics');
        if (rule) rule.regex = 'http';
      },
      'prometheus-scrape.yaml: job tasker-worker keeps __meta_kubernetes_pod_container_port_name =~ http',
    ],
  ] as const)('%s', (_name, breakIt, expected) => {
    const problems = broken(breakIt);
    expect(
      problems.some((p) => p.startsWith(expected)),
      problems.join('\n'),
    ).toBe(true);
  });
});
