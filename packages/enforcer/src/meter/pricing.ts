/**
 * Model prices for metering LLM calls. Every price is an integer number of micro-dollars per
 * million tokens ($2.50 / MTok = 2_500_000), so every cost is exact integer arithmetic:
 *
 *   cost(tokens, price) = ceil(tokens × price / 1e6) micro-dollars, per usage component
 *
 * (uncached input, cached input, cache writes and output are each rounded up on their own, so a
 * call is never charged less than its parts).
 */
import { z } from "zod";

/** Prices of one model, micro-dollars per million tokens. */
export interface ModelPrice {
  readonly inputPerMTok: number;
  readonly outputPerMTok: number;
  /** Input tokens served from the provider's prompt cache (OpenAI cached tokens, Anthropic cache reads). Default: the input price. */
  readonly cachedInputPerMTok?: number;
  /** Input tokens written to the prompt cache (Anthropic `cache_creation_input_tokens`). Default: the input price. */
  readonly cacheWriteInputPerMTok?: number;
}

/** Provider → model id → price. Model ids are matched exactly, then by longest prefix (see `Pricing.lookup`). */
export type PricingTable = Readonly<Record<string, Readonly<Record<string, ModelPrice>>>>;

/** When the default prices below were last checked against the providers' public list prices. */
export const PRICING_TABLE_DATE = "2025-11-01";

const usd = (dollarsPerMTok: number): number => Math.round(dollarsPerMTok * 1_000_000);
const price = (input: number, output: number, cachedInput?: number, cacheWrite?: number): ModelPrice => ({
  inputPerMTok: usd(input),
  outputPerMTok: usd(output),
  ...(cachedInput === undefined ? {} : { cachedInputPerMTok: usd(cachedInput) }),
  ...(cacheWrite === undefined ? {} : { cacheWriteInputPerMTok: usd(cacheWrite) }),
});

/**
 * Defaults, to be overridden: public list prices (standard tier, no batch discount) as of
 * PRICING_TABLE_DATE. Providers change prices and negotiate discounts; a deployment that pays
 * other prices passes its own table (`createPricing`). Anthropic cache writes are the 5-minute
 * TTL price (1.25× input); cache reads 0.1× input.
 */
export const DEFAULT_PRICING: PricingTable = Object.freeze({
  openai: Object.freeze({
    "gpt-5": price(1.25, 10, 0.125),
    "gpt-5-mini": price(0.25, 2, 0.025),
    "gpt-5-nano": price(0.05, 0.4, 0.005),
    "gpt-4.1": price(2, 8, 0.5),
    "gpt-4.1-mini": price(0.4, 1.6, 0.1),
    "gpt-4.1-nano": price(0.1, 0.4, 0.025),
    "gpt-4o": price(2.5, 10, 1.25),
    "gpt-4o-mini": price(0.15, 0.6, 0.075),
    "gpt-4-turbo": price(10, 30),
    "gpt-3.5-turbo": price(0.5, 1.5),
    o1: price(15, 60, 7.5),
    "o1-mini": price(1.1, 4.4, 0.55),
    o3: price(2, 8, 0.5),
    "o3-mini": price(1.1, 4.4, 0.55),
    "o4-mini": price(1.1, 4.4, 0.275),
  }),
  anthropic: Object.freeze({
    "claude-opus-4-5": price(5, 25, 0.5, 6.25),
    "claude-opus-4-1": price(15, 75, 1.5, 18.75),
    "claude-opus-4": price(15, 75, 1.5, 18.75),
    "claude-sonnet-4-5": price(3, 15, 0.3, 3.75),
    "claude-sonnet-4": price(3, 15, 0.3, 3.75),
    "claude-haiku-4-5": price(1, 5, 0.1, 1.25),
    "claude-3-7-sonnet": price(3, 15, 0.3, 3.75),
    "claude-3-5-sonnet": price(3, 15, 0.3, 3.75),
    "claude-3-5-haiku": price(0.8, 4, 0.08, 1),
    "claude-3-opus": price(15, 75, 1.5, 18.75),
    "claude-3-haiku": price(0.25, 1.25, 0.03, 0.3),
  }),
});

/** At most $1,000,000 per million tokens: bounds every product below 2^53 for up to ~9 billion tokens. */
const perMTok = z.number().int().min(0).max(1_000_000_000_000);

export const modelPriceSchema = z.strictObject({
  inputPerMTok: perMTok,
  outputPerMTok: perMTok,
  cachedInputPerMTok: perMTok.optional(),
  cacheWriteInputPerMTok: perMTok.optional(),
});

export const pricingTableSchema = z.record(
  z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, "is not a provider name"),
  z.record(z.string().min(1).max(200), modelPriceSchema),
);

/** Parses a price or a table from JSON or an object, throwing a TypeError that names the bad entry. */
export function parseModelPrice(input: unknown): ModelPrice {
  return parsed(modelPriceSchema, input, "model price") as ModelPrice;
}

export function parsePricingTable(input: unknown): PricingTable {
  return parsed(pricingTableSchema, input, "pricing table") as PricingTable;
}

function parsed<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new TypeError(`invalid ${what}: ${issue?.path.join(".") || what} ${issue?.message ?? ""}`.trim());
  }
  return result.data;
}

const SNAPSHOT_SUFFIX = /^-(?:\d{8}|\d{4}-\d{2}-\d{2}|\d{4}|latest)$/;

/** A validated table with lookups. Build one with `createPricing`. */
export class Pricing {
  readonly table: PricingTable;
  /** Per provider, model ids longest first, for the prefix match. */
  readonly #byLength = new Map<string, readonly string[]>();
  readonly #cache = new Map<string, ModelPrice | null>();

  constructor(table: PricingTable) {
    this.table = parsePricingTable(table);
    for (const [provider, models] of Object.entries(this.table)) {
      this.#byLength.set(provider, Object.keys(models).sort((a, b) => b.length - a.length || (a < b ? -1 : 1)));
    }
  }

  /**
   * The price of `model` at `provider`: the exact id, else a listed id that `model` extends
   * only by a snapshot suffix: `-YYYYMMDD`, `-YYYY-MM-DD`, `-MMDD` or `-latest`. So
   * `gpt-4o-2024-08-06` and `claude-sonnet-4-5-20250929` find their model, while `gpt-4` never
   * prices `gpt-4o` and `claude-opus-4` never prices a newer `claude-opus-4-6`: a model that is
   * really new must be priced by the user (or fall to `unknownModel`), not guessed from its family.
   * Undefined when nothing matches.
   */
  lookup(provider: string, model: string): ModelPrice | undefined {
    const key = `${provider}\u0000${model}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached ?? undefined;
    const models = this.table[provider];
    let found: ModelPrice | undefined;
    if (models !== undefined) {
      found = Object.hasOwn(models, model) ? models[model] : undefined;
      if (found === undefined) {
        const prefix = this.#byLength.get(provider)?.find((id) => model.startsWith(id) && SNAPSHOT_SUFFIX.test(model.slice(id.length)));
        if (prefix !== undefined) found = models[prefix];
      }
    }
    if (this.#cache.size >= 4096) this.#cache.clear();
    this.#cache.set(key, found ?? null);
    return found;
  }
}

export interface CreatePricingOptions {
  /** Start from DEFAULT_PRICING (default true); false uses `overrides` alone. */
  readonly defaults?: boolean;
}

/** The default table with `overrides` merged in per provider and model (an override replaces that model's whole entry). */
export function createPricing(overrides: unknown = {}, options: CreatePricingOptions = {}): Pricing {
  const extra = parsePricingTable(overrides);
  const base = options.defaults === false ? {} : DEFAULT_PRICING;
  const merged: Record<string, Record<string, ModelPrice>> = {};
  for (const [provider, models] of [...Object.entries(base), ...Object.entries(extra)]) {
    merged[provider] = { ...merged[provider], ...models };
  }
  return new Pricing(merged);
}

/** ceil(tokens × perMTok / 1e6), exact: BigInt when the product passes 2^53. */
export function costOf(tokens: number, perMTok: number): number {
  if (tokens === 0 || perMTok === 0) return 0;
  const product = tokens * perMTok;
  if (Number.isSafeInteger(product)) return Math.ceil(product / 1_000_000);
  const big = BigInt(tokens) * BigInt(perMTok);
  return Number((big + 999_999n) / 1_000_000n);
}

/**
 * Usage as a provider reports it, normalised (spec/usage.md): the input kinds never overlap, and
 * `outputTokens` counts every output token billed, reasoning included.
 */
export interface TokenUsage {
  /** Input tokens at the full input price (OpenAI: prompt tokens minus cached tokens). */
  readonly inputTokens: number;
  /** Every billed output token, reasoning ("thinking") tokens included. */
  readonly outputTokens: number;
  /** Input tokens read from the prompt cache. */
  readonly cachedInputTokens?: number;
  /** Input tokens written to the prompt cache with the 5-minute lifetime (Anthropic's default). */
  readonly cacheWriteInputTokens?: number;
  /** Input tokens written to the prompt cache with the 1-hour lifetime. */
  readonly cacheWrite1hInputTokens?: number;
  /** The part of `outputTokens` that was reasoning; informational, already inside `outputTokens`. */
  readonly reasoningTokens?: number;
  /** Server-side web search calls the provider ran for this request, priced per call. */
  readonly webSearchCalls?: number;
}

/** Total tokens and micro-dollars of a usage at a price (each component rounded up on its own). */
export function priceUsage(usage: TokenUsage, price: ModelPrice): { tokens: number; usdMicros: number } {
  const cached = usage.cachedInputTokens ?? 0;
  const written = usage.cacheWriteInputTokens ?? 0;
  return {
    tokens: usage.inputTokens + cached + written + usage.outputTokens,
    usdMicros:
      costOf(usage.inputTokens, price.inputPerMTok) +
      costOf(cached, price.cachedInputPerMTok ?? price.inputPerMTok) +
      costOf(written, price.cacheWriteInputPerMTok ?? price.inputPerMTok) +
      costOf(usage.outputTokens, price.outputPerMTok),
  };
}

/**
 * The most output tokens whose cost fits in `usdMicros`: the largest n with
 * ceil(n × perMTok / 1e6) ≤ usdMicros, which is floor(usdMicros × 1e6 / perMTok), at most 2^53 − 1.
 */
export function outputTokensWithin(usdMicros: number, perMTok: number): number {
  if (usdMicros < 0) return 0;
  if (perMTok === 0) return Number.MAX_SAFE_INTEGER;
  const product = usdMicros * 1_000_000;
  if (Number.isSafeInteger(product)) return Math.floor(product / perMTok);
  const big = (BigInt(usdMicros) * 1_000_000n) / BigInt(perMTok);
  return big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(big);
}
