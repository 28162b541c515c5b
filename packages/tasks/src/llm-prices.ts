import { z } from 'zod';

/** What one model costs, in US dollars per million tokens: the prompt's and the reply's. */
export interface ModelPrice {
  input_per_1m: number;
  output_per_1m: number;
}

/** Prices by model name, as the provider is asked for it (`gpt-4o-mini`, not a dated snapshot). */
export type LlmPrices = Readonly<Record<string, ModelPrice>>;

/** One price table as `LLM_PRICES` (JSON) or the file `LLM_PRICES_FILE` gives it; checked at start. */
export const llmPricesSchema = z.record(
  z.string().min(1),
  z.strictObject({
    input_per_1m: z.number().finite().min(0),
    output_per_1m: z.number().finite().min(0),
  }),
);

/**
 * OpenAI's list prices of its chat models (USD per 1M tokens, standard tier, uncached input), as
 * published when this table was written. `LLM_PRICES` and `LLM_PRICES_FILE` add models or replace
 * these, model by model. A model missing here costs `null`: its tokens are still recorded.
 */
export const DEFAULT_LLM_PRICES: LlmPrices = {
  'gpt-4o': { input_per_1m: 2.5, output_per_1m: 10 },
  'gpt-4o-mini': { input_per_1m: 0.15, output_per_1m: 0.6 },
  'gpt-4.1': { input_per_1m: 2, output_per_1m: 8 },
  'gpt-4.1-mini': { input_per_1m: 0.4, output_per_1m: 1.6 },
  'gpt-4.1-nano': { input_per_1m: 0.1, output_per_1m: 0.4 },
  'gpt-4-turbo': { input_per_1m: 10, output_per_1m: 30 },
  'gpt-3.5-turbo': { input_per_1m: 0.5, output_per_1m: 1.5 },
  'o3-mini': { input_per_1m: 1.1, output_per_1m: 4.4 },
  'o4-mini': { input_per_1m: 1.1, output_per_1m: 4.4 },
};

/**
 * The cost of one call in US dollars, rounded to 10 decimals (a token of a cheap model is
 * 1e-7 dollars); null when the model has no price.
 */
export function costOf(
  prices: LlmPrices,
  model: string,
  promptTokens: number,
  completionTokens: number,
): number | null {
  const price = Object.hasOwn(prices, model) ? prices[model] : undefined;
  if (!price) return null;
  const dollars = (promptTokens * price.input_per_1m + completionTokens * price.output_per_1m) / 1_000_000;
  return Math.round(dollars * 1e10) / 1e10;
}
