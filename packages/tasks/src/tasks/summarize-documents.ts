import { z } from 'zod';
import { defineTask, NonRetryableError, type TaskDefinition } from '../define.ts';

/** Documents one task summarizes at most (one query_chatgpt child each: CHILD_TASK_MAX_FAN_OUT's default). */
export const MAX_DOCUMENTS = 100;
/** Characters of one document at most: with the instruction, it fits query_chatgpt's prompt limit (32,000). */
export const MAX_DOCUMENT_CHARS = 30_000;

/** How long a summary waits for its approval (`require_approval`): then it fails (WaitTokenTimeoutError). */
export const APPROVAL_TIMEOUT_MS = 7 * 24 * 3600 * 1000;

/** What completes the approval's wait token: `POST /tokens/{token}/complete {"output": {"approved": true}}`. */
export const approvalSchema = z.object({ approved: z.boolean() });

/** The summaries were not approved (the approval token completed with `{"approved": false}`). */
export class NotApprovedError extends NonRetryableError {
  override name = 'NotApprovedError';
}

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
  require_approval: z
    .boolean()
    .default(false)
    .describe(
      'Wait for a person before answering: once summarized, the task waits (WAITING, holding no worker, waiting_for {kind: "token", token}) until the token is completed with {"approved": true}; {"approved": false} fails it (NotApprovedError), and so does no answer within 7 days',
    ),
});

const output = z.object({
  summaries: z.array(z.string()).describe('One summary per document, in their order'),
});

/**
 * Summarizes each document with its own `query_chatgpt` child task (`ctx.runMany`: they run at once,
 * and the parent waits without holding a worker), then joins the summaries in the documents'
 * order. A child that fails fails the task (ChildTasksError), naming which. With `require_approval`,
 * it then waits for a wait token (`ctx.waitForToken`) whose completion approves the summaries.
 */
// Typed by hand: its handler's context (ctx.runMany) is typed by the catalog, which holds this type.
export const summarizeDocuments: TaskDefinition<'summarize_documents', typeof input, typeof output> =
  defineTask({
    name: 'summarize_documents',
    description:
      'Summarizes each document with a query_chatgpt child task (run at once, the parent waiting without a worker). The result is the summaries, in the documents’ order; with require_approval, once a person approved them (a wait token).',
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
    run: async ({ documents, require_approval }, ctx) => {
      const summaries = await ctx.runMany(
        documents.map((document) => ({
          name: 'query_chatgpt' as const,
          input: { prompt: summaryPrompt(document) },
        })),
      );
      if (require_approval) {
        // The token's id is in the record's waiting_for while it waits (its tenant only).
        const answer = approvalSchema.safeParse(await ctx.waitForToken({ timeoutMs: APPROVAL_TIMEOUT_MS }));
        if (!answer.success)
          throw new NotApprovedError('the approval token was completed without {"approved": true|false}');
        if (!answer.data.approved) throw new NotApprovedError('the summaries were not approved');
      }
      return { summaries };
    },
  });
