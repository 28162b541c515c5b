import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';

/** A Kubernetes object as read from YAML: its type and name checked, the rest left to the schemas. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** An object and the file it came from (generated ones: the kustomization's). */
export interface Loaded {
  file: string;
  object: K8sObject;
}

const objectHead = z.looseObject({
  apiVersion: z.string().min(1),
  kind: z.string().min(1),
  metadata: z.looseObject({ name: z.string().min(1) }),
});

/**
 * Every document of a YAML file as plain data. A syntax error, a duplicate key or a warning (an
 * unresolved tag, say) throws, naming the file; empty documents (a trailing `---`) are skipped.
 * Merge keys (`<<:`) are resolved, as docker compose does.
 */
export function readYamlDocuments(file: string): unknown[] {
  return parseYamlDocuments(readFileSync(file, 'utf8'), file);
}

/** readYamlDocuments for a text; `name` says where it came from in errors. */
export function parseYamlDocuments(text: string, name: string): unknown[] {
  const documents = parseAllDocuments(text, { uniqueKeys: true, merge: true });
  const values: unknown[] = [];
  for (const document of documents) {
    const problems = [...document.errors, ...document.warnings];
    if (problems.length > 0) throw new Error(`${name}: ${problems.map((p) => p.message).join('; ')}`);
    const value: unknown = document.toJS();
    if (value !== null && value !== undefined) values.push(value);
  }
  return values;
}

/** The Kubernetes objects of a manifest file, each with apiVersion, kind and metadata.name. */
export function readObjects(file: string): Loaded[] {
  return readYamlDocuments(file).map((value, i) => {
    const head = objectHead.safeParse(value);
    if (!head.success) {
      throw new Error(
        `${file}, document ${i + 1}: not a Kubernetes object (${head.error.issues[0]?.message})`,
      );
    }
    return { file, object: value as K8sObject };
  });
}

/**
 * The part of kustomize's kustomization.yaml that render() carries out: anything else is refused,
 * so that a field added there is not silently left out of the checks.
 */
export const kustomizationSchema = z.strictObject({
  apiVersion: z.literal('kustomize.config.k8s.io/v1beta1'),
  kind: z.literal('Kustomization'),
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/),
  resources: z
    .array(z.string().regex(/^[\w.-]+\.ya?ml$/, 'a manifest file beside kustomization.yaml'))
    .min(1),
  configMapGenerator: z
    .array(z.strictObject({ name: z.string().min(1), envs: z.array(z.string()).min(1) }))
    .default([]),
  generatorOptions: z.strictObject({ labels: z.record(z.string(), z.string()) }).optional(),
  images: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        newName: z.string().optional(),
        newTag: z.string().optional(),
        digest: z.string().optional(),
      }),
    )
    .default([]),
});
export type Kustomization = z.output<typeof kustomizationSchema>;

/**
 * A kustomize env file: `KEY=VALUE` lines, `#` comments and blank lines skipped; the value is taken
 * as written (kustomize keeps quotes). A line without `=` or a key that is not a variable name throws.
 */
export function readEnvFile(file: string): Record<string, string> {
  const vars: Record<string, string> = {};
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const text = line.trim();
      if (text === '' || text.startsWith('#')) return;
      const at = text.indexOf('=');
      const key = at > 0 ? text.slice(0, at) : '';
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`${file}:${i + 1}: not KEY=VALUE: ${text}`);
      if (key in vars) throw new Error(`${file}:${i + 1}: ${key} is set twice`);
      vars[key] = text.slice(at + 1);
    });
  return vars;
}

/** Kinds that live in no namespace (kustomize's namespace leaves them alone). */
const CLUSTER_SCOPED = new Set(['Namespace']);

/** The pod template of a workload (Deployment, Job), if it has one. */
export function podSpecOf(object: K8sObject): PodSpec | undefined {
  const spec = object.spec as { template?: { spec?: PodSpec } } | undefined;
  return spec?.template?.spec;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  [field: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  [field: string]: unknown;
}

/** What `kubectl kustomize dir` outputs, as render() computes it. */
export interface Rendered {
  kustomization: Kustomization;
  objects: Loaded[];
}

/**
 * kustomize's build of `dir`, for the fields kustomizationSchema takes: the resources' objects,
 * each ConfigMap of configMapGenerator with generatorOptions' labels (under its plain name:
 * kustomize adds a hash of its content and renames the references to it alike), the namespace set on every namespaced object, and the
 * images replaced by name in every container.
 */
export function render(dir: string): Rendered {
  const [raw] = readYamlDocuments(path.join(dir, 'kustomization.yaml'));
  const kustomization = kustomizationSchema.parse(raw);
  const objects = kustomization.resources.flatMap((file) => readObjects(path.join(dir, file)));
  for (const generator of kustomization.configMapGenerator) {
    const data = Object.assign({}, ...generator.envs.map((file) => readEnvFile(path.join(dir, file))));
    objects.push({
      file: path.join(dir, 'kustomization.yaml'),
      object: {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: generator.name, ...kustomization.generatorOptions },
        data,
      },
    });
  }
  for (const { object } of objects) {
    if (!CLUSTER_SCOPED.has(object.kind)) object.metadata.namespace = kustomization.namespace;
    const pod = podSpecOf(object);
    for (const container of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])]) {
      if (container.image) container.image = rewriteImage(container.image, kustomization.images);
    }
  }
  return { kustomization, objects };
}

/** An image reference's parts: `[host[:port]/]path[:tag][@digest]`. */
export interface ImageReference {
  name: string;
  tag?: string;
  digest?: string;
}

/**
 * Splits an image reference as kustomize does (its `image.Split`): the tag's `:` and the digest's
 * `@` are looked for only after the first `/`, so a registry's port (`registry.local:5000/tasker`)
 * stays in the name, and a digest (`@sha256:...`) is not taken for a tag.
 */
export function splitImage(reference: string): ImageReference {
  const slash = Math.max(reference.indexOf('/'), 0);
  const at = reference.indexOf('@', slash);
  const head = at >= 0 ? reference.slice(0, at) : reference;
  const colon = head.indexOf(':', slash);
  return {
    name: colon >= 0 ? head.slice(0, colon) : head,
    ...(colon >= 0 ? { tag: head.slice(colon + 1) } : {}),
    ...(at >= 0 ? { digest: reference.slice(at + 1) } : {}),
  };
}

/**
 * `reference` with the first of kustomize's `images` whose name is its name applied, as kustomize
 * applies it: newName replaces the name; newTag or digest replaces both the tag and the digest (an
 * old digest would otherwise pin the old image); neither keeps them. No match: unchanged.
 */
export function rewriteImage(reference: string, images: Kustomization['images']): string {
  const { name, tag, digest } = splitImage(reference);
  const image = images.find((i) => i.name === name);
  if (!image) return reference;
  const replaced = image.newTag !== undefined || image.digest !== undefined;
  const newTag = replaced ? image.newTag : tag;
  const newDigest = replaced ? image.digest : digest;
  return `${image.newName ?? name}${newTag ? `:${newTag}` : ''}${newDigest ? `@${newDigest}` : ''}`;
}
