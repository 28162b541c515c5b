import { z } from 'zod';
import { defineTask, type TaskDefinition } from '../define.ts';

/** Documents one task summarizes at most (one query_chatgpt child each: CHILD_TASK_MAX_FAN_OUT's default). */
export const MAX_DOCUMENTS = 100;
/** Characters of one document at most: with the instruction, it fits query_chatgpt's prompt limit (32,000). */
export const MAX_DOCUMENT_CHARS = 30_000;

/** The prompt of one document's query_chatgpt child. */
export const summaryPrompt = (document: string) =>
  `Summarize the following document in a few sentences.\n\n${document}`;

const input = z.strictObject({
  documents: z
    .array(
      z
        .string()
        .min(1, { error: 'a document is not empty' })
        .max(MAX_DOCUMENT_CHARS, { error: `a document is at most ${MAX_DOCUMENT_CHARS} characters` }),
    )
    .min(1, { error: 'give at least one document' })
    .max(MAX_DOCUMENTS, { error: `at most ${MAX_DOCUMENTS} documents` })
    .describe(
      `The documents to summarize: 1 to ${MAX_DOCUMENTS}, each 1 to ${MAX_DOCUMENT_CHARS} characters`,
    ),
});

const output = z.object({
  summaries: z.array(z.string()).describe('One summary per document, in their order'),
});

/**
 * Summarizes each document with its own `query_chatgpt` child task (`ctx.runMany`: they run at once,
 * and the parent waits without holding a worker), then joins the summaries in the documents'
 * order. A child that fails fails the task (ChildTasksError), naming which.
 */
// Typed by hand: its handler's context (ctx.runMany) is typed by the catalog, which holds this type.
export const summarizeDocuments: TaskDefinition<'summarize_documents', typeof input, typeof output> =
  defineTask({
    name: 'summarize_documents',
    description:
      'Summarizes each document with a query_chatgpt child task (run at once, the parent waiting without a worker). The result is the summaries, in the documents’ order.',
    input,
    output,
    example: { documents: ['Tasker runs long work outside the request that asked for it.'] },
    exampleOutput: { summaries: ['Tasker runs slow work in the background.'] },
    // A failed child fails it for good (ChildTasksError); another attempt is for a lost worker.
    retry: { attempts: 3, backoff: { type: 'exponential', delayMs: 2000 } },
    // Its own runs are short (submit, then join); the wait for the children holds no attempt.
    timeoutMs: 60_000,
    // Its children call a model: refused at submission (503) while the server has no key.
    unavailable: (config) =>
      config.openai.apiKey
        ? undefined
        : 'summarize_documents is not available: OPENAI_API_KEY is not set on this server',
    run: async ({ documents }, ctx) => {
      const summaries = await ctx.runMany(
        documents.map((document) => ({
          name: 'query_chatgpt' as const,
          input: { prompt: summaryPrompt(document) },
        })),
      );
      return { summaries };
    },
  });
