import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';
import type { K8sObject } from './kustomize.ts';

/** An ajv error as kubernetes-models' validate() throws them (ValidationError.errors). */
interface SchemaError {
  instancePath: string;
  message?: string;
}

type Validator = (object: unknown) => SchemaError[];

/** Runs a model's validate(): its ajv errors, none when the object is valid. */
function validatorOf(Model: new (data: never) => { validate(): void }): Validator {
  return (object) => {
    try {
      new Model(object as never).validate();
      return [];
    } catch (error) {
      const errors = (error as { errors?: SchemaError[] }).errors;
      if (!errors) throw error;
      return errors;
    }
  };
}

/**
 * The Kubernetes API's OpenAPI schemas (kubernetes-models, generated from the API's own), by
 * `apiVersion kind`: the kinds deploy/kubernetes uses. Another kind is reported, to be added here.
 */
const VALIDATORS: Record<string, Validator> = {
  'v1 Namespace': validatorOf(Namespace),
  'v1 ConfigMap': validatorOf(ConfigMap),
  'v1 Secret': validatorOf(Secret),
  'v1 Service': validatorOf(Service),
  'apps/v1 Deployment': validatorOf(Deployment),
  'batch/v1 Job': validatorOf(Job),
  'policy/v1 PodDisruptionBudget': validatorOf(PodDisruptionBudget),
  'autoscaling/v2 HorizontalPodAutoscaler': validatorOf(HorizontalPodAutoscaler),
};

/** A value of no JSON type: every typed field of the schema refuses it. */
const NOT_JSON = Symbol('not JSON');

/** Every object key of `value` (not array indices), as a path from the root. */
function keyPaths(value: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((item, i) => keyPaths(item, [...at, i]));
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, item]) => [[...at, key], ...keyPaths(item, [...at, key])]);
}

function replaced(object: unknown, at: (string | number)[]): unknown {
  const copy = structuredClone(object) as Record<string | number, unknown>;
  let node = copy;
  for (const step of at.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
  node[at.at(-1) as string | number] = NOT_JSON;
  return copy;
}

const pointer = (at: (string | number)[]) =>
  at.map((step) => `/${String(step).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');

/**
 * What the API server would refuse in `object`: each schema error, and each field the schema does
 * not know (the API's schemas allow unknown fields, which the API server drops or refuses, as
 * kubectl's strict field validation does: a misspelt `livenesProbe` would be a probe that never
 * runs). A field is known when the schema checks it: given a value of no JSON type there, the
 * object no longer validates at that path. Empty: valid.
 */
export function schemaProblems(object: K8sObject): string[] {
  const validate = VALIDATORS[`${object.apiVersion} ${object.kind}`];
  if (!validate)
    return [`${object.apiVersion} ${object.kind}: no schema for this kind (add it to VALIDATORS)`];
  const errors = validate(object);
  if (errors.length > 0) return errors.map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
  const unknown: string[] = [];
  for (const at of keyPaths(object)) {
    const where = pointer(at);
    // Below a field already reported: not looked at again.
    if (unknown.some((parent) => where.startsWith(`${parent}/`))) continue;
    if (!validate(replaced(object, at)).some((e) => e.instancePath === where)) unknown.push(where);
  }
  return unknown.map((where) => `${where} is not a field of ${object.apiVersion} ${object.kind}`);
}
