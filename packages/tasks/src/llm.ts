import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import { NonRetryableError, type TaskConfig, type TaskProgress } from './define.ts';
import { costOf, DEFAULT_LLM_PRICES } from './llm-prices.ts';
import { retryAfterFromHeaders } from './retry-after.ts';

/**
 * A task type's bounds on its model calls (`defineTask({ llm })`). Setting `llm` at all says the
 * type calls a model: it is refused at submission (503) while `OPENAI_API_KEY` is unset.
 */
export interface LlmBounds {
  /**
   * The most characters a prompt may have. A submission whose `promptField` is longer is refused
   * (400 naming it, nothing stored), and a call whose messages hold more fails for good.
   */
  maxPromptChars?: number;
  /** The string field of the input that holds the prompt (default `prompt`). */
  promptField?: string;
  /** `max_tokens` sent to the provider when a call does not give its own. */
  maxTokens?: number;
  /**
   * Opts the type into the identical-prompt cache: a call with the same model, messages and
   * parameters as one of the same tenant's within this many ms is answered with the stored reply
   * (`cached: true`, no provider call, no cost). A submission's `cache_ttl_ms` overrides it (0: off).
   */
  cacheTtlMs?: number;
}

/** What one model call used, as it is recorded (`task_llm_calls`, the task's `usage`). */
export interface LlmCallUsage {
  /** The provider's base URL. */
  baseURL: string;
  /** The model asked for (the price table's key). */
  model: string;
  promptTokens: number;
  completionTokens: number;
  /** From the price table; null when the model has none. */
  costUsd: number | null;
  /** Answered from the identical-prompt cache: no provider call (tokens and cost 0). */
  cached?: boolean;
}

/**
 * One message of a conversation, as the chat completions API takes it (text only). Stated here,
 * not taken from the `openai` package, so that task types (and the SDK's types, which include
 * them) do not depend on that package's types.
 */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** One call of `ctx.llm.chat`: a prompt (and an optional system message), or the messages themselves. */
export type ChatRequest = ({ prompt: string; system?: string } | { messages: ChatMessage[] }) & {
  /** Default: `OPENAI_MODEL`. */
  model?: string;
  /** Default: the task type's `llm.maxTokens`, else the provider's own. */
  maxTokens?: number;
  temperature?: number;
  /** `false`: one answer, no progress; default true: the reply grows in `progress.partial` as it streams. */
  stream?: boolean;
};

export interface ChatReply {
  text: string;
  /** The model that answered (the fallback's when the first failed). */
  model: string;
  baseURL: string;
  /** What the call used, as recorded; undefined when the provider reported no usage. */
  usage: LlmCallUsage | undefined;
  /** True when the fallback answered. */
  fallback: boolean;
  /** True when the identical-prompt cache answered: no provider call was made. */
  cached: boolean;
}

/** A stored reply of the identical-prompt cache: the model that gave it, and its text. */
export interface CachedChat {
  model: string;
  reply: string;
}

/** The identical-prompt cache of one tenant (the worker binds the tenant): by a hash of the call. */
export interface LlmCache {
  get(key: string): Promise<CachedChat | undefined>;
  put(key: string, entry: CachedChat, ttlMs: number): Promise<void>;
}

/** The cache key of a call: a SHA-256 of the model, the messages and the parameters that shape the reply. */
export function chatCacheKey(call: {
  model: string;
  messages: readonly ChatMessage[];
  maxTokens: number | undefined;
  temperature: number | undefined;
}): string {
  const canonical = JSON.stringify([
    call.model,
    call.messages.map((m) => [m.role, m.content]),
    call.maxTokens ?? null,
    call.temperature ?? null,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** `ctx.llm`: model calls with usage recorded, bounds applied and provider errors sorted out. */
export interface LlmClient {
  chat(request: ChatRequest): Promise<ChatReply>;
}

/** What `createLlm` needs of the attempt it serves. */
export interface LlmContext {
  config: TaskConfig;
  signal: AbortSignal;
  progress(update: TaskProgress): void;
  /** The task type's bounds (its definition's `llm`). */
  bounds?: LlmBounds | undefined;
  /** Records one call's usage durably; the call's reply waits for it. */
  record(usage: LlmCallUsage): Promise<void>;
  /**
   * Checks the tenant's LLM budgets right before each provider call (the first, and the
   * fallback): throws BudgetExceededError when one is reached, and the call does not start.
   */
  checkBudget?: (() => Promise<void>) | undefined;
  /** The tenant's identical-prompt cache, used when `cacheTtlMs` is above 0. */
  cache?: LlmCache | undefined;
  /** How long a reply is cached and reused (the submission's cache_ttl_ms, else the type's llm.cacheTtlMs); 0 or unset: no cache. */
  cacheTtlMs?: number | undefined;
}

/**
 * A tenant's LLM budget is reached (`llm_tokens_per_day`, `llm_cost_per_month_usd`): a submission
 * of an LLM task type is refused (429, code BUDGET_EXCEEDED, Retry-After to `until`), and a model
 * call does not start: its attempt is handed back uncounted, and the task waits (PENDING, held by
 * the dispatcher) until the window turns or the budget is raised.
 */
export class BudgetExceededError extends Error {
  override name = 'BudgetExceededError';
  readonly code = 'BUDGET_EXCEEDED';
  constructor(
    message: string,
    /** The budget reached. */
    readonly budget: 'llm_tokens_per_day' | 'llm_cost_per_month_usd',
    /** When its window turns (UTC midnight, or the first of the next month). */
    readonly until: Date,
  ) {
    super(message);
  }
}

/**
 * A provider's failure for which another attempt may do better (429, 408, 409, 5xx, a connection
 * lost): the task is retried, no sooner than `retryAfterMs` when the provider said so. The message
 * names each provider tried and what it said.
 */
export class LlmProviderError extends Error {
  override name = 'LlmProviderError';
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message);
  }
}

interface Provider {
  baseURL: string | undefined;
  apiKey: string | undefined;
  model: string;
}

interface Failure {
  retryable: boolean;
  retryAfterMs: number | undefined;
  text: string;
}

const clients = new Map<string, OpenAI>();

/** One OpenAI client per process and provider (it keeps its HTTP connections alive). */
function client({ baseURL, apiKey }: Provider): OpenAI {
  const key = `${baseURL ?? ''}\u0000${apiKey ?? ''}`;
  let found = clients.get(key);
  if (!found) {
    // Retries belong to the queue (attempts, and the provider's retry-after as the backoff), not
    // to a second layer inside the handler that would hold the worker's slot while it waits.
    found = new OpenAI({ apiKey, baseURL, maxRetries: 0 });
    clients.set(key, found);
  }
  return found;
}

/** The `openai` package's base URL when none is configured (OPENAI_BASE_URL unset). */
const DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/** A provider in words, for the attempt's error: `gpt-4o-mini at https://api.openai.com/v1`. */
const where = (provider: Provider) => `${provider.model} at ${provider.baseURL ?? DEFAULT_BASE_URL}`;

/** Characters of text in the messages (what `maxPromptChars` bounds). */
const promptChars = (messages: readonly ChatMessage[]): number =>
  messages.reduce((chars, message) => chars + message.content.length, 0);

function classify(error: unknown, provider: Provider): Failure {
  if (error instanceof OpenAI.APIError && error.status !== undefined) {
    const { status } = error;
    const retryable = status === 408 || status === 409 || status === 429 || status >= 500;
    const retryAfterMs = retryable ? retryAfterFromHeaders(error.headers) : undefined;
    const after = retryAfterMs === undefined ? '' : ` (retry-after ${Math.round(retryAfterMs)} ms)`;
    return {
      retryable,
      retryAfterMs,
      text: `${where(provider)} answered ${status}${after}: ${error.message}`,
    };
  }
  // No answer, or a stream cut short: a connection lost, a timeout, a broken stream.
  const message = error instanceof Error ? error.message : String(error);
  return { retryable: true, retryAfterMs: undefined, text: `${where(provider)} failed: ${message}` };
}

/**
 * `ctx.llm` of one attempt. `chat` sends the messages to the configured model (streamed, asking
 * for usage: `stream_options.include_usage`), reports the reply as it grows in `progress.partial`,
 * records what the call used (tokens, and cost from the price table) before it returns, and sorts
 * the provider's failures: a 429 or 5xx (or no answer) tries the fallback (`OPENAI_FALLBACK_MODEL`,
 * `OPENAI_FALLBACK_BASE_URL`) when there is one, then fails retryably (`LlmProviderError`, with
 * the first provider's retry-after); any other 4xx (a bad request, a content policy) fails for
 * good (`NonRetryableError`).
 */
export function createLlm(ctx: LlmContext): LlmClient {
  const { config, signal, bounds } = ctx;
  const prices = config.llmPrices ?? DEFAULT_LLM_PRICES;

  async function call(provider: Provider, request: ChatRequest, messages: ChatMessage[]) {
    const maxTokens = request.maxTokens ?? bounds?.maxTokens;
    const base = {
      model: provider.model,
      messages,
      ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
      ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    };
    const openai = client(provider);
    let text = '';
    let reported: { prompt_tokens: number; completion_tokens: number } | undefined;
    if (request.stream === false) {
      const answer = await openai.chat.completions.create({ ...base, stream: false }, { signal });
      text = answer.choices[0]?.message?.content ?? '';
      reported = answer.usage ?? undefined;
    } else {
      const stream = await openai.chat.completions.create(
        { ...base, stream: true, stream_options: { include_usage: true } },
        { signal },
      );
      for await (const chunk of stream) {
        const delta = chunk.choices[0]?.delta?.content;
        if (delta) {
          text += delta;
          ctx.progress({ partial: text });
        }
        if (chunk.usage) reported = chunk.usage;
      }
    }
    // An aborted stream ends quietly: do not mistake that for a complete (possibly empty) reply.
    signal.throwIfAborted();
    const usage: LlmCallUsage | undefined = reported && {
      baseURL: openai.baseURL,
      model: provider.model,
      promptTokens: reported.prompt_tokens,
      completionTokens: reported.completion_tokens,
      costUsd: costOf(prices, provider.model, reported.prompt_tokens, reported.completion_tokens),
    };
    return { text, model: provider.model, baseURL: openai.baseURL, usage, cached: false };
  }

  async function answer(
    first: Provider,
    fallback: Provider | undefined,
    request: ChatRequest,
    messages: ChatMessage[],
  ): Promise<ChatReply> {
    let failed: Failure;
    // No call starts past a budget: checked right before each, outside the provider's try (what
    // the check throws, a BudgetExceededError or a database error, is no provider's failure).
    await ctx.checkBudget?.();
    try {
      return { ...(await call(first, request, messages)), fallback: false };
    } catch (error) {
      if (signal.aborted) throw error;
      failed = classify(error, first);
    }
    if (!failed.retryable) throw new NonRetryableError(failed.text);
    if (!fallback) throw new LlmProviderError(failed.text, failed.retryAfterMs);
    await ctx.checkBudget?.();
    try {
      return { ...(await call(fallback, request, messages)), fallback: true };
    } catch (error) {
      if (signal.aborted) throw error;
      // The next attempt starts with the first provider again, after its retry-after.
      const second = classify(error, fallback);
      throw new LlmProviderError(`${failed.text}; fallback ${second.text}`, failed.retryAfterMs);
    }
  }

  return {
    async chat(request) {
      const messages: ChatMessage[] =
        'messages' in request
          ? request.messages
          : [
              ...(request.system ? [{ role: 'system' as const, content: request.system }] : []),
              { role: 'user' as const, content: request.prompt },
            ];
      const chars = promptChars(messages);
      if (bounds?.maxPromptChars !== undefined && chars > bounds.maxPromptChars) {
        throw new NonRetryableError(
          `the prompt has ${chars} characters, more than the task type's maxPromptChars (${bounds.maxPromptChars})`,
        );
      }
      const { openai } = config;
      const first: Provider = {
        baseURL: openai.baseURL,
        apiKey: openai.apiKey,
        model: request.model ?? openai.model,
      };
      const fallback: Provider | undefined =
        openai.fallbackModel !== undefined || openai.fallbackBaseURL !== undefined
          ? {
              baseURL: openai.fallbackBaseURL ?? openai.baseURL,
              apiKey: openai.fallbackApiKey ?? openai.apiKey,
              model: openai.fallbackModel ?? first.model,
            }
          : undefined;
      const ttlMs = ctx.cacheTtlMs ?? 0;
      const cache = ttlMs > 0 ? ctx.cache : undefined;
      const key =
        cache &&
        chatCacheKey({
          model: first.model,
          messages,
          maxTokens: request.maxTokens ?? bounds?.maxTokens,
          temperature: request.temperature,
        });
      if (cache && key) {
        // Best effort: a cache that cannot be read is a miss.
        const hit = await cache.get(key).catch(() => undefined);
        if (hit) {
          signal.throwIfAborted();
          if (request.stream !== false) ctx.progress({ partial: hit.reply });
          // Recorded as a call of no tokens and no cost, marked cached: it counts in no budget.
          const usage: LlmCallUsage = {
            baseURL: first.baseURL ?? DEFAULT_BASE_URL,
            model: hit.model,
            promptTokens: 0,
            completionTokens: 0,
            costUsd: 0,
            cached: true,
          };
          await ctx.record(usage);
          return {
            text: hit.reply,
            model: hit.model,
            baseURL: usage.baseURL,
            usage,
            fallback: false,
            cached: true,
          };
        }
      }
      const reply = await answer(first, fallback, request, messages);
      // Recorded before the reply is handed back (outside the provider's failures: a record that
      // fails is not the provider's fault, and must not send the call to the fallback).
      if (reply.usage) await ctx.record(reply.usage);
      // Only the model asked for answers a later identical call (not the fallback's).
      if (cache && key && !reply.fallback)
        await cache.put(key, { model: reply.model, reply: reply.text }, ttlMs).catch(() => {}); // best effort: the reply stands without its copy
      return reply;
    },
  };
}
