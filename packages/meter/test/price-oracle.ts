/** @pydantic/genai-prices' own calcPrice as an oracle independent of pricing.ts, for the pricing tests. */
import { calcPrice } from "@pydantic/genai-prices";
import type { TokenUsage } from "@allowance/meter";
import { PRICING_TABLE_DATE } from "../src/pricing.js";

/** The package's provider id for each of ours. */
const SOURCE_PROVIDER: Record<string, string> = {
  openai: "openai",
  anthropic: "anthropic",
  google: "google",
  gemini: "google",
};
const TABLE_DATE = new Date(`${PRICING_TABLE_DATE}T00:00:00Z`);

/** What the package charges for a usage, in (fractional) micro-dollars, and whether it prices web search itself. */
export function oracleMicros(
  provider: string,
  model: string,
  usage: TokenUsage,
  at: Date = TABLE_DATE,
): { micros: number; pricesWebSearch: boolean } | undefined {
  const writes = (usage.cacheWriteInputTokens ?? 0) + (usage.cacheWrite1hInputTokens ?? 0);
  const result = calcPrice(
    {
      input_tokens: usage.inputTokens + (usage.cachedInputTokens ?? 0) + writes,
      output_tokens: usage.outputTokens,
      ...(usage.cachedInputTokens === undefined
        ? {}
        : { cache_read_tokens: usage.cachedInputTokens }),
      ...(writes === 0 ? {} : { cache_write_tokens: writes }),
      ...(usage.cacheWrite1hInputTokens === undefined
        ? {}
        : { cache_write_1h_tokens: usage.cacheWrite1hInputTokens }),
      ...(usage.webSearchCalls === undefined ? {} : { web_searches: usage.webSearchCalls }),
    },
    model,
    { providerId: SOURCE_PROVIDER[provider] ?? provider, timestamp: at },
  );
  return result === null
    ? undefined
    : {
        micros: result.total_price * 1_000_000,
        pricesWebSearch: result.model_price.web_searches_kcount !== undefined,
      };
}
