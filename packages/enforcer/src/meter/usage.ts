/**
 * Provider usage objects → normalised `TokenUsage` (spec/usage.md). Pure functions over the usage
 * JSON a provider reports; where that object sits in a response or a stream is the adapters' job
 * (providers.ts).
 */
import type { TokenUsage } from "./pricing.js";

type JsonObject = Record<string, unknown>;

const count = (value: unknown): number | undefined => (typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined);
const objectAt = (value: unknown, key: string): JsonObject | undefined => {
  if (value === null || typeof value !== "object") return undefined;
  const x = (value as JsonObject)[key];
  return x !== null && typeof x === "object" && !Array.isArray(x) ? (x as JsonObject) : undefined;
};

export /** OpenAI usage: `prompt_tokens` includes the cached tokens, which are priced apart. */
function openaiUsage(usage: JsonObject | undefined, input: string, output: string): TokenUsage | undefined {
  if (usage === undefined) return undefined;
  const prompt = count(usage[input]);
  const completion = count(usage[output]);
  if (prompt === undefined || completion === undefined) return undefined;
  const details = objectAt(usage, input === "prompt_tokens" ? "prompt_tokens_details" : "input_tokens_details");
  const cached = Math.min(prompt, count(details?.cached_tokens) ?? 0);
  return { inputTokens: prompt - cached, outputTokens: completion, ...(cached > 0 ? { cachedInputTokens: cached } : {}) };
}

export /** Anthropic usage: input, cache writes and cache reads are separate counts. */
function anthropicUsage(usage: JsonObject | undefined, seen: TokenUsage | undefined): TokenUsage | undefined {
  if (usage === undefined) return seen;
  const input = count(usage.input_tokens) ?? seen?.inputTokens;
  const output = count(usage.output_tokens) ?? seen?.outputTokens;
  if (input === undefined || output === undefined) return seen;
  const written = count(usage.cache_creation_input_tokens) ?? seen?.cacheWriteInputTokens ?? 0;
  const read = count(usage.cache_read_input_tokens) ?? seen?.cachedInputTokens ?? 0;
  return { inputTokens: input, outputTokens: output, ...(read > 0 ? { cachedInputTokens: read } : {}), ...(written > 0 ? { cacheWriteInputTokens: written } : {}) };
}
