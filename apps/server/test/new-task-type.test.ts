/**
 * A new task type reaches POST /tasks and its document with nothing but its `defineTask` in the
 * catalog: here the catalog gains one (`reverse_text`) and nothing else in the server changes.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { postJson, type Stack, startStack } from './helpers.ts';

vi.mock(import('../../../packages/tasks/src/catalog.ts'), async (importOriginal) => {
  const original = await importOriginal();
  const { defineTask } = await import('../../../packages/tasks/src/define.ts');
  const { z } = await import('zod');
  const reverseText = defineTask({
    name: 'reverse_text',
    description: 'Reverses a text.',
    input: z.strictObject({ text: z.string().describe('The text to reverse') }),
    output: z.string(),
    example: { text: 'abc' },
    run: ({ text }) => [...text].reverse().join(''),
  });
  const taskDefinitions = [
    ...original.taskDefinitions,
    reverseText,
  ] as unknown as typeof original.taskDefinitions;
  return {
    ...original,
    taskDefinitions,
    taskNames: taskDefinitions.map((d) => d.name) as typeof original.taskNames,
    getTaskDefinition: (name: string) => taskDefinitions.find((d) => d.name === name) as never,
  };
});

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({}, { worker: false });
});
afterAll(async () => {
  await stack?.close();
});

describe('a task type added to the catalog', () => {
  it('has its member in the oneOf of POST /tasks, mapped by its name, with its input schema', async () => {
    const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as {
      components: {
        schemas: Record<
          string,
          { discriminator?: { mapping: Record<string, string> } } & Record<string, unknown>
        >;
      };
    };
    const schemas = doc.components.schemas;
    expect(schemas.NewTask?.discriminator?.mapping.reverse_text).toBe(
      '#/components/schemas/NewReverseTextTask',
    );
    expect(schemas.NewReverseTextTask?.properties).toMatchObject({
      name: { enum: ['reverse_text'] },
      input: { $ref: '#/components/schemas/ReverseTextInput' },
    });
    expect(schemas.ReverseTextInput).toMatchObject({
      type: 'object',
      properties: { text: { type: 'string', description: 'The text to reverse' } },
      required: ['text'],
      additionalProperties: false,
    });
  });

  it('is accepted by POST /tasks, and its parameters checked against its schema', async () => {
    const ok = await postJson(`${stack.url}/tasks`, { name: 'reverse_text', input: { text: 'abc' } });
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({ name: 'reverse_text', input: { text: 'abc' }, status: 'PENDING' });
    const bad = await postJson(`${stack.url}/tasks`, { name: 'reverse_text', input: { text: 5 } });
    expect(bad.status).toBe(400);
    expect(bad.body.issues).toEqual([expect.objectContaining({ path: 'input.text', expected: 'string' })]);
  });
});
