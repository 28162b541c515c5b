import type { Container, K8sObject, PodSpec } from './kustomize.ts';
import { podSpecOf } from './kustomize.ts';

/** What the code says, gathered by the test from the code itself (see test/kubernetes.test.ts). */
export interface CodeFacts {
  /** Every environment variable Tasker reads (envSchema's keys). */
  variables: ReadonlySet<string>;
  /** Tasker's own parse of an environment (loadEnv): throws, naming each bad variable. */
  loadEnv(env: Record<string, string>): TaskerEnv;
  /** The image the Dockerfile builds, as docker compose tags it, and the numeric id of its USER. */
  image: { name: string; uid: number };
  server: {
    command: readonly string[];
    /** The server's routes (its OpenAPI document's paths). */
    paths: ReadonlySet<string>;
    /** Answers while the process runs, without asking PostgreSQL or Redis. */
    liveness: string;
    /** 503 while a dependency does not answer. */
    readiness: string;
  };
  worker: { command: readonly string[]; health: string };
  migrate: { command: readonly string[] };
  /** The label values each metric shows on /metrics, by metric name (`state` for tasker_queue_jobs). */
  metrics: ReadonlyMap<string, ReadonlyMap<string, ReadonlySet<string>>>;
}

/** The fields of loadEnv's result that the checks read. */
export interface TaskerEnv {
  HOST: string;
  PORT: number;
  METRICS_PORT: number;
  PUBLIC_URL: string;
  SHUTDOWN_TIMEOUT_MS: number;
  WORKER_CONCURRENCY: number;
}

export interface Manifests {
  /** kustomize's output (render()). */
  objects: K8sObject[];
  namespace: string;
  /** secret.example.yaml: the keys of the Secret the pods read. */
  secret: K8sObject;
  /** monitoring/prometheus-scrape.yaml and monitoring/prometheus-adapter-values.yaml, parsed. */
  scrape: unknown;
  adapter: unknown;
}

/**
 * After SIGTERM and the wait it allows (SHUTDOWN_TIMEOUT_MS), a process closes its queue, Redis and
 * PostgreSQL (engine.close: up to 2 s for the queue, 2 s for Redis's QUIT, then the pools) and its
 * listeners: the grace period leaves this much more.
 */
export const CLOSE_MARGIN_MS = 10_000;

type Labels = Record<string, string>;

const selects = (selector: Labels | undefined, labels: Labels | undefined) =>
  !!selector &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([key, value]) => labels?.[key] === value);

interface Probe {
  httpGet?: { path?: string; port: string | number };
}

interface Workload {
  object: K8sObject;
  pod: PodSpec;
  labels: Labels | undefined;
  container: Container;
}

function templateLabels(object: K8sObject): Labels | undefined {
  return (object.spec as { template?: { metadata?: { labels?: Labels } } }).template?.metadata?.labels;
}

/** The port a probe or a Service names (by name or number), as the container declares it. */
function containerPort(container: Container, port: string | number | undefined): number | undefined {
  const found = container.ports?.find((p) => p.name === port || p.containerPort === port);
  return found?.containerPort;
}

/** Every way the manifests disagree with the code or with each other; empty: none. */
export function crossCheck(manifests: Manifests, facts: CodeFacts): string[] {
  const problems: string[] = [];
  const { objects } = manifests;
  const find = (kind: string, name?: string) =>
    objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));

  const namespaces = find('Namespace');
  if (namespaces.length !== 1 || namespaces[0]?.metadata.name !== manifests.namespace)
    problems.push(`one Namespace named ${manifests.namespace} (the kustomization's namespace) is expected`);

  // The three workloads, by their component label.
  const workload = (kind: string, component: string): Workload | undefined => {
    const found = find(kind).filter((o) => templateLabels(o)?.['app.kubernetes.io/component'] === component);
    const object = found[0];
    const pod = object && podSpecOf(object);
    const container = pod?.containers[0];
    if (found.length !== 1 || !object || !pod || !container || pod.containers.length !== 1) {
      problems.push(`one ${kind} of component ${component}, with one container, is expected`);
      return undefined;
    }
    return { object, pod, labels: templateLabels(object), container };
  };
  const server = workload('Deployment', 'server');
  const worker = workload('Deployment', 'worker');
  const migrate = workload('Job', 'migrate');
  const workloads = [server, worker, migrate].filter((w): w is Workload => w !== undefined);

  // Variables: names Tasker reads, values its own parse takes.
  const secretData = {
    ...((manifests.secret.stringData as Labels | undefined) ?? {}),
    ...Object.fromEntries(
      Object.entries((manifests.secret.data as Labels | undefined) ?? {}).map(([k, v]) => [
        k,
        Buffer.from(v, 'base64').toString(),
      ]),
    ),
  };
  for (const key of Object.keys(secretData))
    if (!facts.variables.has(key))
      problems.push(
        `secret.example.yaml: ${key} is not a variable Tasker reads (packages/engine/src/config.ts)`,
      );
  const envs = new Map<Workload, TaskerEnv>();
  for (const w of workloads) {
    const where = `${w.object.kind} ${w.object.metadata.name}`;
    const env: Record<string, string> = {};
    for (const source of w.container.envFrom ?? []) {
      if (source.configMapRef) {
        const map = find('ConfigMap', source.configMapRef.name)[0];
        if (!map)
          problems.push(`${where}: envFrom names ConfigMap ${source.configMapRef.name}, which is not there`);
        for (const [key, value] of Object.entries((map?.data as Labels | undefined) ?? {})) {
          if (!facts.variables.has(key))
            problems.push(`ConfigMap ${source.configMapRef.name}: ${key} is not a variable Tasker reads`);
          env[key] = value;
        }
      } else if (source.secretRef) {
        if (source.secretRef.name !== manifests.secret.metadata.name)
          problems.push(
            `${where}: envFrom names Secret ${source.secretRef.name}; secret.example.yaml shows another`,
          );
        Object.assign(env, secretData);
      } else {
        problems.push(`${where}: an envFrom of neither a ConfigMap nor a Secret`);
      }
    }
    for (const { name, value } of w.container.env ?? []) {
      if (!facts.variables.has(name)) problems.push(`${where}: env ${name} is not a variable Tasker reads`);
      if (value === undefined) problems.push(`${where}: env ${name} has no value`);
      else env[name] = value;
    }
    try {
      envs.set(w, facts.loadEnv(env));
    } catch (error) {
      problems.push(
        `${where}: Tasker refuses its environment: ${(error as Error).message.replaceAll('\n', ' ')}`,
      );
    }

    // The image, its user, and what a container may do.
    if (w.container.image !== facts.image.name)
      problems.push(`${where}: image ${w.container.image}, not ${facts.image.name} (the Dockerfile's build)`);
    const podSecurity = (w.pod.securityContext ?? {}) as { runAsNonRoot?: boolean; runAsUser?: number };
    if (podSecurity.runAsNonRoot !== true || podSecurity.runAsUser !== facts.image.uid)
      problems.push(
        `${where}: runAsNonRoot with runAsUser ${facts.image.uid} (the image's USER) is expected`,
      );
    const security = (w.container.securityContext ?? {}) as {
      readOnlyRootFilesystem?: boolean;
      allowPrivilegeEscalation?: boolean;
      capabilities?: { drop?: string[] };
    };
    if (
      security.readOnlyRootFilesystem !== true ||
      security.allowPrivilegeEscalation !== false ||
      !security.capabilities?.drop?.includes('ALL')
    )
      problems.push(`${where}: read-only root filesystem, no privilege escalation, every capability dropped`);
    const resources = (w.container.resources ?? {}) as {
      requests?: { cpu?: string; memory?: string };
      limits?: { memory?: string };
    };
    if (!resources.requests?.cpu || !resources.requests.memory || !resources.limits?.memory)
      problems.push(`${where}: CPU and memory requests and a memory limit are expected`);
    if (w.pod.automountServiceAccountToken !== false)
      problems.push(`${where}: automountServiceAccountToken: false (Tasker never calls the Kubernetes API)`);
  }

  // Commands: what the image runs.
  const command = (w: Workload | undefined, expected: readonly string[], what: string) => {
    const actual = [...(w?.container.command ?? []), ...(w?.container.args ?? [])];
    if (w && actual.join(' ') !== expected.join(' '))
      problems.push(`${what} runs "${actual.join(' ')}", not "${expected.join(' ')}"`);
  };
  command(server, facts.server.command, 'the server');
  command(worker, facts.worker.command, 'the worker');
  command(migrate, facts.migrate.command, 'the migration Job');

  // Probes: paths the process serves, on the port it listens on.
  const probes = (
    w: Workload,
    expected: { startup: string; liveness: string; readiness: string },
    port: number,
  ) => {
    for (const kind of ['startup', 'liveness', 'readiness'] as const) {
      const probe = w.container[`${kind}Probe`] as Probe | undefined;
      const where = `${w.object.metadata.name}'s ${kind} probe`;
      if (!probe?.httpGet) {
        problems.push(`${where}: an HTTP probe is expected`);
        continue;
      }
      if (probe.httpGet.path !== expected[kind])
        problems.push(`${where}: GET ${probe.httpGet.path}, but the process answers ${expected[kind]}`);
      const probed = containerPort(w.container, probe.httpGet.port);
      if (probed !== port)
        problems.push(
          `${where}: port ${probe.httpGet.port} (${probed ?? 'no such port'}), but it listens on ${port}`,
        );
    }
  };
  const serverEnv = server && envs.get(server);
  const workerEnv = worker && envs.get(worker);
  if (server && serverEnv) {
    for (const path of [facts.server.liveness, facts.server.readiness])
      if (!facts.server.paths.has(path)) problems.push(`the server serves no ${path}`);
    const { liveness, readiness } = facts.server;
    probes(server, { startup: liveness, liveness, readiness }, serverEnv.PORT);
  }
  if (worker && workerEnv) {
    if (workerEnv.METRICS_PORT === 0) problems.push('the worker has no METRICS_PORT: no /healthz to probe');
    const health = facts.worker.health;
    probes(worker, { startup: health, liveness: health, readiness: health }, workerEnv.METRICS_PORT);
  }
  for (const [w, env] of envs)
    if (w !== migrate && ['127.0.0.1', '::1', 'localhost'].includes(env.HOST))
      problems.push(
        `${w.object.metadata.name}: HOST=${env.HOST} is loopback: the kubelet could not probe it`,
      );

  // The Service: the server's pods, on their port; PUBLIC_URL names it.
  const services = find('Service');
  for (const service of services) {
    const spec = service.spec as {
      selector?: Labels;
      ports?: { port: number; targetPort?: string | number }[];
    };
    const where = `Service ${service.metadata.name}`;
    if (!server || !selects(spec.selector, server.labels))
      problems.push(`${where} does not select the server's pods`);
    for (const other of [worker, migrate])
      if (other && selects(spec.selector, other.labels))
        problems.push(`${where} selects ${other.object.metadata.name}'s pods too`);
    for (const port of spec.ports ?? [])
      if (
        server &&
        serverEnv &&
        containerPort(server.container, port.targetPort ?? port.port) !== serverEnv.PORT
      )
        problems.push(`${where}: port ${port.port} goes to ${port.targetPort}, not the server's PORT`);
  }
  if (services.length !== 1) problems.push("one Service (the server's) is expected");
  const publicUrls = new Set([serverEnv?.PUBLIC_URL, workerEnv?.PUBLIC_URL]);
  if (publicUrls.size !== 1) problems.push('the server and the worker must have the same PUBLIC_URL');
  const publicUrl = new URL(serverEnv?.PUBLIC_URL ?? 'http://unset');
  if (publicUrl.hostname.endsWith('.svc.cluster.local')) {
    const [name, namespace] = publicUrl.hostname.split('.');
    const service = services.find((s) => s.metadata.name === name);
    const ports = (service?.spec as { ports?: { port: number }[] } | undefined)?.ports ?? [];
    if (
      !service ||
      namespace !== manifests.namespace ||
      !ports.some((p) => String(p.port) === publicUrl.port)
    )
      problems.push(
        `PUBLIC_URL ${publicUrl.origin} is not the server's Service in namespace ${manifests.namespace}`,
      );
  }

  // Every Deployment's selector takes its own pods, and a PodDisruptionBudget takes them too.
  const deployments = find('Deployment');
  for (const deployment of deployments) {
    const selector = (deployment.spec as { selector?: { matchLabels?: Labels } }).selector?.matchLabels;
    if (!selects(selector, templateLabels(deployment)))
      problems.push(`Deployment ${deployment.metadata.name}: its selector does not match its pods' labels`);
    const budgets = find('PodDisruptionBudget').filter((pdb) =>
      selects(
        (pdb.spec as { selector?: { matchLabels?: Labels } }).selector?.matchLabels,
        templateLabels(deployment),
      ),
    );
    if (budgets.length !== 1)
      problems.push(
        `Deployment ${deployment.metadata.name}: ${budgets.length} PodDisruptionBudgets select its pods, not 1`,
      );
  }
  for (const pdb of find('PodDisruptionBudget')) {
    const selector = (pdb.spec as { selector?: { matchLabels?: Labels } }).selector?.matchLabels;
    if (!deployments.some((d) => selects(selector, templateLabels(d))))
      problems.push(`PodDisruptionBudget ${pdb.metadata.name} selects no Deployment's pods`);
  }

  // The worker's autoscaler: its target, its metric, the rule that serves it, the series behind.
  const autoscalers = find('HorizontalPodAutoscaler');
  if (autoscalers.length !== 1) problems.push("one HorizontalPodAutoscaler (the workers') is expected");
  for (const hpa of autoscalers) {
    const spec = hpa.spec as {
      scaleTargetRef: { apiVersion: string; kind: string; name: string };
      minReplicas?: number;
      maxReplicas: number;
      metrics?: {
        type: string;
        external?: { metric: { name: string }; target: { averageValue?: string } };
      }[];
    };
    const where = `HorizontalPodAutoscaler ${hpa.metadata.name}`;
    const target = objects.find(
      (o) =>
        o.apiVersion === spec.scaleTargetRef.apiVersion &&
        o.kind === spec.scaleTargetRef.kind &&
        o.metadata.name === spec.scaleTargetRef.name,
    );
    if (!target || target !== worker?.object)
      problems.push(`${where}: its scaleTargetRef is not the worker Deployment`);
    if (target && (target.spec as { replicas?: number }).replicas !== undefined)
      problems.push(`${where}: ${target.metadata.name} sets replicas, which every apply would reset`);
    if ((spec.minReplicas ?? 1) < 1 || (spec.minReplicas ?? 1) > spec.maxReplicas)
      problems.push(`${where}: 1 <= minReplicas <= maxReplicas`);
    const external = spec.metrics?.find((m) => m.type === 'External')?.external;
    if (!external) {
      problems.push(`${where}: an External metric (the queue's depth) is expected`);
      continue;
    }
    const average = Number(external.target.averageValue);
    if (!(average > 0) || (workerEnv && average > workerEnv.WORKER_CONCURRENCY))
      problems.push(
        `${where}: averageValue ${external.target.averageValue} must be between 1 and WORKER_CONCURRENCY`,
      );
    problems.push(...adapterProblems(manifests.adapter, external.metric.name, facts));
  }

  // Shutdown: the grace period covers the preStop wait, SHUTDOWN_TIMEOUT_MS and the closing.
  for (const w of [server, worker]) {
    const env = w && envs.get(w);
    if (!w || !env) continue;
    const grace = ((w.pod.terminationGracePeriodSeconds as number | undefined) ?? 30) * 1000;
    const preStop = (w.container.lifecycle as { preStop?: { exec?: { command?: string[] } } } | undefined)
      ?.preStop?.exec?.command;
    const sleepMs = preStop?.[0] === 'sleep' ? Number(preStop[1]) * 1000 : 0;
    if (w === server && !(sleepMs > 0))
      problems.push('the server needs a preStop sleep: its endpoints are removed while it still answers');
    if (grace < sleepMs + env.SHUTDOWN_TIMEOUT_MS + CLOSE_MARGIN_MS)
      problems.push(
        `${w.object.metadata.name}: terminationGracePeriodSeconds ${grace / 1000} s < preStop ${sleepMs / 1000} s + SHUTDOWN_TIMEOUT_MS ${env.SHUTDOWN_TIMEOUT_MS / 1000} s + ${CLOSE_MARGIN_MS / 1000} s to close`,
      );
  }

  problems.push(...scrapeProblems(manifests.scrape, { server, worker }, Object.keys(secretData)));
  return problems;
}

interface AdapterRule {
  seriesQuery: string;
  resources?: { overrides?: Record<string, { resource: string }> };
  name: { matches: string; as: string };
  metricsQuery: string;
}

/** The prometheus-adapter rule that serves `metric`: a series /metrics shows, with label values it shows. */
function adapterProblems(adapter: unknown, metric: string, facts: CodeFacts): string[] {
  const rules = (adapter as { rules?: { external?: AdapterRule[] } }).rules?.external ?? [];
  const rule = rules.find((r) => r.name.as === metric);
  if (!rule) return [`prometheus-adapter-values.yaml: no external rule serves ${metric}`];
  const problems: string[] = [];
  const series = /^\{?([a-zA-Z_:][\w:]*)/.exec(rule.seriesQuery)?.[1] ?? '';
  const labels = facts.metrics.get(series);
  if (!labels) return [`prometheus-adapter-values.yaml: ${series} is not a metric Tasker serves`];
  if (!new RegExp(rule.name.matches).test(series))
    problems.push(
      `prometheus-adapter-values.yaml: name.matches ${rule.name.matches} does not match ${series}`,
    );
  if (rule.resources?.overrides?.namespace?.resource !== 'namespace')
    problems.push("prometheus-adapter-values.yaml: the namespace label must map to the HPA's namespace");
  for (const [, label, values] of rule.metricsQuery.matchAll(/(\w+)=~?"([^"]*)"/g)) {
    for (const value of (values ?? '').split('|')) {
      if (!label || !labels.get(label)?.has(value))
        problems.push(`prometheus-adapter-values.yaml: ${series} has no ${label}="${value}" on /metrics`);
    }
  }
  if (!rule.metricsQuery.includes('<<.LabelMatchers>>'))
    problems.push('prometheus-adapter-values.yaml: the query must keep <<.LabelMatchers>> (the namespace)');
  return problems;
}

interface ScrapeJob {
  job_name: string;
  authorization?: { credentials_file?: string };
  relabel_configs?: { source_labels?: string[]; regex?: string; action?: string; target_label?: string }[];
}

/** Prometheus keeps the server's and the workers' metrics ports, by their pods' labels, with the token. */
function scrapeProblems(
  scrape: unknown,
  pods: { server: Workload | undefined; worker: Workload | undefined },
  secretKeys: string[],
): string[] {
  const problems: string[] = [];
  const jobs = (scrape as { scrape_configs?: ScrapeJob[] }).scrape_configs ?? [];
  for (const [name, w] of [
    ['tasker-server', pods.server],
    ['tasker-worker', pods.worker],
  ] as const) {
    const job = jobs.find((j) => j.job_name === name);
    if (!job || !w) {
      problems.push(`prometheus-scrape.yaml: no job ${name}`);
      continue;
    }
    // Prometheus' pod meta labels: a label's name with every other character than [a-zA-Z0-9_] as _.
    const meta = (source: string) =>
      source === '__meta_kubernetes_pod_container_port_name'
        ? (w.container.ports ?? []).map((p) => p.name ?? '')
        : Object.entries(w.labels ?? {})
            .filter(([key]) => `__meta_kubernetes_pod_label_${key.replace(/[^a-zA-Z0-9_]/g, '_')}` === source)
            .map(([, value]) => value);
    for (const rule of job.relabel_configs ?? []) {
      if (rule.action !== 'keep') continue;
      const source = rule.source_labels?.[0] ?? '';
      if (!meta(source).some((value) => new RegExp(`^(?:${rule.regex})$`).test(value)))
        problems.push(
          `prometheus-scrape.yaml: job ${name} keeps ${source} =~ ${rule.regex}, which ${w.object.metadata.name} does not have`,
        );
    }
    if (!job.relabel_configs?.some((r) => r.target_label === 'namespace'))
      problems.push(`prometheus-scrape.yaml: job ${name} must label its series with the pod's namespace`);
    const token = job.authorization?.credentials_file?.split('/').at(-1);
    if (!token || !secretKeys.includes(token) || token !== 'METRICS_TOKEN')
      problems.push(`prometheus-scrape.yaml: job ${name} must send METRICS_TOKEN (a key of the Secret)`);
  }
  return problems;
}
