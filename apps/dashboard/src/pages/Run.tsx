import { useMutation, useQuery } from '@tanstack/react-query';
import type { TaskName } from '@tasker/server';
import { type FormEvent, useEffect, useState } from 'react';
import { errorText, type RouterOutputs, useTRPC } from '../api.ts';
import { Link } from '../router.tsx';

type TaskType = RouterOutputs['listTaskTypes'][number];

/** The part of JSON Schema a task's parameters use: an object of named properties. */
interface PropertySchema {
  type?: string | string[];
  description?: string;
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
}

interface FieldSpec {
  name: string;
  schema: PropertySchema;
  required: boolean;
  /** How the field is edited: a number box, a checkbox, a choice, text, or JSON for anything else. */
  kind: 'number' | 'integer' | 'boolean' | 'enum' | 'string' | 'json';
}

function fieldsOf(schema: Record<string, unknown>): FieldSpec[] {
  const properties = (schema.properties ?? {}) as Record<string, PropertySchema>;
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  return Object.entries(properties).map(([name, p]) => {
    const type = Array.isArray(p.type) ? p.type.find((t) => t !== 'null') : p.type;
    const kind: FieldSpec['kind'] = p.enum
      ? 'enum'
      : type === 'number' || type === 'integer' || type === 'boolean' || type === 'string'
        ? type
        : 'json';
    return { name, schema: p, required: required.has(name), kind };
  });
}

/** The form's text values as the task's parameters; a value that cannot be read is reported by field. */
function toParameters(fields: FieldSpec[], values: Record<string, string | boolean>) {
  const parameters: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const field of fields) {
    const raw = values[field.name];
    if (field.kind === 'boolean') {
      parameters[field.name] = Boolean(raw);
      continue;
    }
    const text = typeof raw === 'string' ? raw : '';
    if (text === '' && field.kind !== 'string') {
      if (field.required) problems.push(`${field.name}: required`);
      continue;
    }
    if (text === '' && field.kind === 'string' && !field.required) continue;
    if (field.kind === 'number' || field.kind === 'integer') {
      const n = Number(text);
      if (!Number.isFinite(n)) problems.push(`${field.name}: not a number`);
      else parameters[field.name] = n;
    } else if (field.kind === 'json') {
      try {
        parameters[field.name] = JSON.parse(text);
      } catch {
        problems.push(`${field.name}: not valid JSON`);
      }
    } else if (field.kind === 'enum') {
      const option = field.schema.enum?.find((o) => String(o) === text);
      parameters[field.name] = option ?? text;
    } else {
      parameters[field.name] = text;
    }
  }
  return { parameters, problems };
}

export function RunPage() {
  const trpc = useTRPC();
  const types = useQuery(trpc.listTaskTypes.queryOptions({}, { staleTime: 60_000 }));
  const [name, setName] = useState('');
  useEffect(() => {
    if (!name && types.data?.[0]) setName(types.data[0].name);
  }, [name, types.data]);
  const type = types.data?.find((t) => t.name === name);
  return (
    <section>
      <h1>Run a task</h1>
      {types.isError ? <p className="error">{errorText(types.error)}</p> : null}
      <div className="card">
        <label>
          Task type
          <select aria-label="Task type to run" value={name} onChange={(e) => setName(e.target.value)}>
            {types.data?.map((t) => (
              <option key={t.name} value={t.name}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        {type ? <TaskForm key={type.name} type={type} /> : null}
      </div>
    </section>
  );
}

function TaskForm({ type }: { type: TaskType }) {
  const trpc = useTRPC();
  const fields = fieldsOf(type.parameters);
  const [values, setValues] = useState<Record<string, string | boolean>>(() =>
    Object.fromEntries(
      fields.map((f) => [
        f.name,
        f.kind === 'boolean'
          ? Boolean(f.schema.default)
          : f.schema.default !== undefined
            ? String(f.schema.default)
            : '',
      ]),
    ),
  );
  const [priority, setPriority] = useState('');
  const [delay, setDelay] = useState('');
  const [problems, setProblems] = useState<string[]>([]);
  const create = useMutation(trpc.createTask.mutationOptions());

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const { parameters, problems: found } = toParameters(fields, values);
    if (found.length) {
      setProblems(found);
      return;
    }
    setProblems([]);
    create.mutate({
      name: type.name as TaskName,
      input: parameters,
      priority: priority ? Number(priority) : undefined,
      delay_ms: delay ? Number(delay) : undefined,
    });
  };

  return (
    <form onSubmit={submit} className="run-form" aria-label={`Run ${type.name}`}>
      <p className="muted">{type.description}</p>
      {fields.map((field) => {
        const id = `param-${field.name}`;
        const value = values[field.name];
        const set = (v: string | boolean) => setValues((prev) => ({ ...prev, [field.name]: v }));
        return (
          <div key={field.name} className="field">
            <label htmlFor={id}>
              {field.name}
              {field.required ? <span className="required"> *</span> : null}{' '}
              <span className="muted small">
                {field.kind}
                {field.schema.description ? ` — ${field.schema.description}` : ''}
              </span>
            </label>
            {field.kind === 'boolean' ? (
              <input
                id={id}
                type="checkbox"
                checked={Boolean(value)}
                onChange={(e) => set(e.target.checked)}
              />
            ) : field.kind === 'enum' ? (
              <select id={id} value={String(value)} onChange={(e) => set(e.target.value)}>
                <option value="" />
                {field.schema.enum?.map((o) => (
                  <option key={String(o)} value={String(o)}>
                    {String(o)}
                  </option>
                ))}
              </select>
            ) : field.kind === 'json' ? (
              <textarea id={id} rows={4} value={String(value)} onChange={(e) => set(e.target.value)} />
            ) : field.kind === 'string' &&
              (field.schema.maxLength === undefined || field.schema.maxLength > 200) ? (
              <textarea id={id} rows={3} value={String(value)} onChange={(e) => set(e.target.value)} />
            ) : (
              <input
                id={id}
                type={field.kind === 'string' ? 'text' : 'number'}
                step={field.kind === 'integer' ? 1 : 'any'}
                min={field.schema.minimum}
                max={field.schema.maximum}
                value={String(value)}
                onChange={(e) => set(e.target.value)}
              />
            )}
          </div>
        );
      })}
      <details>
        <summary>Run options</summary>
        <div className="field">
          <label htmlFor="opt-priority">priority (0–100, higher first)</label>
          <input
            id="opt-priority"
            type="number"
            min={0}
            max={100}
            value={priority}
            onChange={(e) => setPriority(e.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="opt-delay">delay_ms (start no sooner than)</label>
          <input
            id="opt-delay"
            type="number"
            min={0}
            value={delay}
            onChange={(e) => setDelay(e.target.value)}
          />
        </div>
      </details>
      <button type="submit" disabled={create.isPending}>
        Run {type.name}
      </button>
      {problems.length ? (
        <ul className="error" role="alert">
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      ) : null}
      {create.isError ? (
        <p className="error" role="alert">
          {errorText(create.error)}
        </p>
      ) : null}
      {create.data ? (
        <p className="ok" data-testid="created">
          Created <Link to={`/tasks/${create.data.id}`}>{create.data.id}</Link> ({create.data.status})
        </p>
      ) : null}
    </form>
  );
}
