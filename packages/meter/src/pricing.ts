/**
 * Model prices for metering LLM calls (spec/usage.md §4). Every price is an integer number of
 * micro-dollars per million tokens ($2.50 / MTok = 2_500_000), or per call for server tools, so
 * every cost is exact integer arithmetic:
 *
 *   cost(tokens, price) = ceil(tokens × price / 1e6) micro-dollars, per usage component
 *
 * (uncached input, cached input, 5-minute and 1-hour cache writes and output are each rounded up
 * on their own, so a call is never charged less than its parts).
 */
import { optionsOf, shown } from "./options.js";
import { PRICES_DATA, PRICES_SOURCE } from "./prices-data.js";

/** The per-token and per-call prices of one model in one tier. */
export interface TierPrice {
  readonly inputPerMTok: number;
  /** Every output token, reasoning ("thinking") tokens included: providers bill them as output. */
  readonly outputPerMTok: number;
  /** Input tokens served from the provider's prompt cache (OpenAI cached tokens, Anthropic cache reads, Gemini cached content). Default: the input price. */
  readonly cachedInputPerMTok?: number;
  /** Input tokens written to the prompt cache with the 5-minute lifetime. Default: the input price. */
  readonly cacheWriteInputPerMTok?: number;
  /** Input tokens written to the prompt cache with the 1-hour lifetime. Default: twice the input price (Anthropic's ratio). */
  readonly cacheWrite1hInputPerMTok?: number;
  /** Micro-dollars per server-side web search call (grounded prompt, for Gemini 2.x). Default: DEFAULT_WEB_SEARCH_PER_CALL. */
  readonly webSearchPerCall?: number;
}

/** Prices of one model, micro-dollars per million tokens (and per call for web search). */
export interface ModelPrice extends TierPrice {
  /**
   * Long-context pricing: when a call's input (uncached + cached + cache writes) is above
   * `inputTokens`, every component of that call is priced at `price` (spec/usage.md §4.2).
   */
  readonly above?: { readonly inputTokens: number; readonly price: TierPrice };
}

/** Provider → model id → price. Model ids are matched exactly, then with a snapshot suffix (see `Pricing.lookup`). */
export type PricingTable = Readonly<Record<string, Readonly<Record<string, ModelPrice>>>>;

/** The list prices' "as of" date: the publication date of the price data the table was generated from. */
export const PRICING_TABLE_DATE: string = PRICES_SOURCE.asOf;
/** Where the default table comes from: `@pydantic/genai-prices@<version>` plus our overlay (scripts/prices.ts). */
export const PRICING_TABLE_VERSION: string = `${PRICES_SOURCE.package}@${PRICES_SOURCE.version}`;

/**
 * A web search call on a model whose price names none is charged this much: $35 per 1,000, the
 * dearest per-call price in the default table (Gemini 2.x grounding), so that it is not under-charged.
 */
export const DEFAULT_WEB_SEARCH_PER_CALL = 35_000;

const deepFreeze = <T>(value: T): T => {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const x of Object.values(value)) deepFreeze(x);
    Object.freeze(value);
  }
  return value;
};

/**
 * Defaults, to be overridden: public list prices (standard tier, no batch discount, no free
 * allowance) generated from `@pydantic/genai-prices` (prices-data.ts, by scripts/generate-prices.ts).
 * Providers change prices and negotiate discounts; a deployment that pays other prices passes its
 * own table (`createPricing`).
 */
export const DEFAULT_PRICING: PricingTable = deepFreeze(PRICES_DATA as PricingTable);

/** At most $1,000,000 per million tokens: bounds every product below 2^53 for up to ~9 billion tokens. */
const MAX_PER_MTOK = 1_000_000_000_000;
/** At most $1,000 per call. */
const MAX_PER_CALL = 1_000_000_000;
/** Provider names as grants and the breaker use them. */
const PROVIDER_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const MAX_MODEL_ID = 200;

const TIER_FIELDS: Readonly<Record<keyof TierPrice, { max: number; required: boolean }>> = {
  inputPerMTok: { max: MAX_PER_MTOK, required: true },
  outputPerMTok: { max: MAX_PER_MTOK, required: true },
  cachedInputPerMTok: { max: MAX_PER_MTOK, required: false },
  cacheWriteInputPerMTok: { max: MAX_PER_MTOK, required: false },
  cacheWrite1hInputPerMTok: { max: MAX_PER_MTOK, required: false },
  webSearchPerCall: { max: MAX_PER_CALL, required: false },
};

/** A price or a table that does not parse: a TypeError that names the entry and what is wrong with it. */
function invalid(what: string, path: string, problem: string): TypeError {
  return new TypeError(`invalid ${what}: ${path === "" ? what : path} ${problem}`);
}

function objectIn(value: unknown, what: string, path: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw invalid(
      what,
      path,
      `must be an object, got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}`,
    );
  return value as Record<string, unknown>;
}

/** An own property, defined rather than assigned (a key named "__proto__" stays a key). */
function put(object: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(object, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

function tierIn(
  value: unknown,
  what: string,
  path: string,
  extra?: (key: string, x: unknown, out: Record<string, unknown>) => boolean,
): Record<string, unknown> {
  const object = objectIn(value, what, path);
  const at = (key: string) => (path === "" ? key : `${path}.${key}`);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(object)) {
    const x = object[key];
    if (extra?.(key, x, out) === true) continue;
    const field = Object.hasOwn(TIER_FIELDS, key) ? TIER_FIELDS[key as keyof TierPrice] : undefined;
    if (field === undefined) throw invalid(what, at(key), "is not a price field");
    // An optional field given as undefined is absent; a required one is missing.
    if (x === undefined) {
      if (field.required) throw invalid(what, at(key), "is required");
      continue;
    }
    if (typeof x !== "number" || !Number.isInteger(x) || x < 0 || x > field.max)
      throw invalid(what, at(key), `must be an integer from 0 to ${field.max}, got ${shown(x)}`);
    put(out, key, x);
  }
  for (const [key, field] of Object.entries(TIER_FIELDS))
    if (field.required && !Object.hasOwn(out, key)) throw invalid(what, at(key), "is required");
  return out;
}

/**
 * Prices that came out of a parse, frozen: priceUsage and maxCostOf take them without checking
 * again (one lookup per call), and check any other price as parseModelPrice would.
 */
const parsedPrices = new WeakSet<ModelPrice>();

function modelPriceIn(value: unknown, what: string, path: string): ModelPrice {
  const price = tierPriceIn(value, what, path);
  if (price.above !== undefined) {
    Object.freeze(price.above.price);
    Object.freeze(price.above);
  }
  parsedPrices.add(Object.freeze(price));
  return price;
}

/** The price a pricing function was given, checked unless it came out of a parse. */
export function checkedPrice(price: ModelPrice): ModelPrice {
  return parsedPrices.has(price) ? price : modelPriceIn(price, "model price", "price");
}

function tierPriceIn(value: unknown, what: string, path: string): ModelPrice {
  const at = (key: string) => (path === "" ? key : `${path}.${key}`);
  return tierIn(value, what, path, (key, x, out) => {
    if (key !== "above") return false;
    if (x === undefined) return true;
    const above = objectIn(x, what, at("above"));
    for (const k of Object.keys(above))
      if (k !== "inputTokens" && k !== "price")
        throw invalid(what, at(`above.${k}`), "is not a field of above");
    const inputTokens = above.inputTokens;
    if (typeof inputTokens !== "number" || !Number.isSafeInteger(inputTokens) || inputTokens < 0)
      throw invalid(
        what,
        at("above.inputTokens"),
        `must be a non-negative safe integer, got ${shown(inputTokens)}`,
      );
    put(out, "above", { inputTokens, price: tierIn(above.price, what, at("above.price")) });
    return true;
  }) as unknown as ModelPrice;
}

/**
 * Parses a price (spec/usage.md §4): an object of integer micro-dollar rates, strict (an unknown
 * key, NaN, ±Infinity, a negative, a fraction, a string or a rate out of range is refused with a
 * TypeError that names the field). Returns a new object.
 */
export function parseModelPrice(input: unknown): ModelPrice {
  return modelPriceIn(input, "model price", "");
}

/** Parses a table of prices (provider → model id → price), as strictly as parseModelPrice. */
export function parsePricingTable(input: unknown): PricingTable {
  const what = "pricing table";
  const table = objectIn(input, what, "");
  const out: Record<string, Record<string, ModelPrice>> = {};
  for (const provider of Object.keys(table)) {
    if (!PROVIDER_NAME.test(provider))
      throw invalid(
        what,
        JSON.stringify(provider),
        "is not a provider name (letters, digits, _ . : -, at most 64)",
      );
    const models = objectIn(table[provider], what, provider);
    const parsed: Record<string, ModelPrice> = {};
    for (const model of Object.keys(models)) {
      if (model.length === 0 || model.length > MAX_MODEL_ID)
        throw invalid(
          what,
          `${provider}.${JSON.stringify(model)}`,
          `is not a model id (1 to ${MAX_MODEL_ID} characters)`,
        );
      put(parsed, model, modelPriceIn(models[model], what, `${provider}.${model}`));
    }
    // Frozen as the prices are: a Pricing's lookup answers from this table, and the meter charges
    // what lookup answers without checking it again.
    put(out, provider, Object.freeze(parsed));
  }
  return Object.freeze(out);
}

/** Snapshot suffixes: `-YYYYMMDD`, `-YYYY-MM-DD`, `-MMDD`, Gemini's `-001` and `-latest`. */
const SNAPSHOT_SUFFIX = /^-(?:\d{8}|\d{4}-\d{2}-\d{2}|\d{4}|\d{3}|latest)$/;

/** A validated table with lookups. Build one with `createPricing`. */
export class Pricing {
  readonly table: PricingTable;
  /** Per provider, model ids longest first, for the suffix match. */
  readonly #byLength = new Map<string, readonly string[]>();
  readonly #cache = new Map<string, ModelPrice | null>();

  constructor(table: PricingTable) {
    this.table = parsePricingTable(table);
    for (const [provider, models] of Object.entries(this.table)) {
      this.#byLength.set(
        provider,
        Object.keys(models).sort((a, b) => b.length - a.length || (a < b ? -1 : 1)),
      );
    }
  }

  /**
   * The price of `model` at `provider`: the exact id, else a listed id that `model` extends
   * only by a snapshot suffix: `-YYYYMMDD`, `-YYYY-MM-DD`, `-MMDD`, `-NNN` or `-latest`. So
   * `gpt-4o-2024-08-06` and `claude-sonnet-4-5-20250929` find their model, while `gpt-4` never
   * prices `gpt-4o` and `claude-opus-4` never prices a newer `claude-opus-4-9`: a model that is
   * really new must be priced by the user (or fall to `unknownModel`), not guessed from its family.
   * Undefined when nothing matches.
   */
  lookup(provider: string, model: string): ModelPrice | undefined {
    if (typeof provider !== "string")
      throw new TypeError(`"provider" expected a string, got ${shown(provider)}`);
    if (typeof model !== "string")
      throw new TypeError(`"model" expected a string, got ${shown(model)}`);
    const key = `${provider}\u0000${model}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached ?? undefined;
    const models = Object.hasOwn(this.table, provider) ? this.table[provider] : undefined;
    let found: ModelPrice | undefined;
    if (models !== undefined) {
      found = Object.hasOwn(models, model) ? models[model] : undefined;
      if (found === undefined) {
        const prefix = this.#byLength
          .get(provider)
          ?.find((id) => model.startsWith(id) && SNAPSHOT_SUFFIX.test(model.slice(id.length)));
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
export function createPricing(overrides: unknown = {}, options?: CreatePricingOptions): Pricing {
  const { defaults } = optionsOf(options, "options", ["defaults"]);
  if (defaults !== undefined && typeof defaults !== "boolean")
    throw new TypeError(`"defaults" expected a boolean, got ${shown(defaults)}`);
  const extra = parsePricingTable(overrides);
  const base = defaults === false ? {} : DEFAULT_PRICING;
  const merged: Record<string, Record<string, ModelPrice>> = {};
  for (const [provider, models] of [...Object.entries(base), ...Object.entries(extra)]) {
    merged[provider] = { ...merged[provider], ...models };
  }
  return new Pricing(merged);
}

/**
 * What an `UNKNOWN_MODEL_PRICE` denial tells a person: the table's date and source, and exactly
 * how to supply a price (wrapFetch's `pricing` or `unknownModel` option).
 */
export function unknownPriceMessage(provider: string, model: string): string {
  const p = JSON.stringify(provider);
  const m = JSON.stringify(model);
  return (
    `no price for ${provider} model ${m} in the default table (${PRICING_TABLE_VERSION}, list prices as of ${PRICING_TABLE_DATE}). ` +
    `Supply one in micro-dollars per million tokens: wrapFetch(fetch, { …, pricing: { ${p}: { ${m}: { inputPerMTok: 3000000, outputPerMTok: 15000000 } } } }) ` +
    `(optional: cachedInputPerMTok, cacheWriteInputPerMTok, cacheWrite1hInputPerMTok, webSearchPerCall, above), ` +
    `or price every unlisted model with unknownModel: { inputPerMTok: …, outputPerMTok: … }.`
  );
}

const MAX = BigInt(Number.MAX_SAFE_INTEGER);

function checkCount(value: unknown, name: string): number {
  if (typeof value !== "number")
    throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isSafeInteger(value) || value < 0)
    throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
  return value;
}

function toSafe(big: bigint, what: string): number {
  if (big > MAX) throw new RangeError(`${what} passes 2^53 − 1 micro-dollars`);
  return Number(big);
}

/** ceil(tokens × perMTok / 1e6), exact: BigInt when the product passes 2^53. */
export function costOf(tokens: number, perMTok: number): number {
  if (tokens === 0 || perMTok === 0) return 0;
  const product = tokens * perMTok;
  if (Number.isSafeInteger(product)) return Math.ceil(product / 1_000_000);
  return toSafe((BigInt(tokens) * BigInt(perMTok) + 999_999n) / 1_000_000n, "cost");
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

/** The fields of a TokenUsage: a misspelt one (`cachedTokens`) would go uncharged. */
const USAGE_FIELDS: ReadonlySet<string> = new Set<keyof TokenUsage>([
  "inputTokens",
  "outputTokens",
  "cachedInputTokens",
  "cacheWriteInputTokens",
  "cacheWrite1hInputTokens",
  "reasoningTokens",
  "webSearchCalls",
]);

export function checkUsage(usage: TokenUsage): void {
  if (usage === null || typeof usage !== "object")
    throw new TypeError(`"usage" expected a TokenUsage, got ${shown(usage)}`);
  for (const key in usage)
    if (!USAGE_FIELDS.has(key))
      throw new TypeError(`"usage" has no field ${JSON.stringify(key)}: it would not be charged`);
  if (usage.reasoningTokens !== undefined) checkCount(usage.reasoningTokens, "reasoningTokens");
}

/** An optional count of a usage: absent is 0, anything else is checked (null is not absent). */
function optionalCount(value: number | undefined, name: string): number {
  return value === undefined ? 0 : checkCount(value, name);
}

/** The tier a call with `inputTokens` of input (all kinds) is priced at. */
export function tierOf(price: ModelPrice, inputTokens: number): TierPrice {
  return price.above !== undefined && inputTokens > price.above.inputTokens
    ? price.above.price
    : price;
}

const cachedRate = (p: TierPrice): number => p.cachedInputPerMTok ?? p.inputPerMTok;
const write5mRate = (p: TierPrice): number => p.cacheWriteInputPerMTok ?? p.inputPerMTok;
const write1hRate = (p: TierPrice): number => p.cacheWrite1hInputPerMTok ?? 2 * p.inputPerMTok;
const searchRate = (p: TierPrice): number => p.webSearchPerCall ?? DEFAULT_WEB_SEARCH_PER_CALL;

/**
 * Total tokens and micro-dollars of a usage at a price (spec/usage.md §4): the tier is chosen by
 * the whole input (uncached + cached + cache writes); each component is rounded up on its own;
 * web search calls are priced per call. A RangeError when a count is not a non-negative safe
 * integer or the total passes 2^53 − 1.
 */
export function priceUsage(
  usage: TokenUsage,
  price: ModelPrice,
): { tokens: number; usdMicros: number } {
  checkUsage(usage);
  return chargeOf(usage, checkedPrice(price));
}

/**
 * priceUsage for the meter's own calls, whose usage an adapter built (its fields, each count
 * still checked here) and whose price came out of a parse: the same charge, without the checks
 * of a caller's hand-built objects on every call.
 */
export function chargeOf(
  usage: TokenUsage,
  price: ModelPrice,
): { tokens: number; usdMicros: number } {
  const input = checkCount(usage.inputTokens, "inputTokens");
  const output = checkCount(usage.outputTokens, "outputTokens");
  // An absent count is 0; null is not absent (checkCount refuses it).
  const cached = optionalCount(usage.cachedInputTokens, "cachedInputTokens");
  const written = optionalCount(usage.cacheWriteInputTokens, "cacheWriteInputTokens");
  const written1h = optionalCount(usage.cacheWrite1hInputTokens, "cacheWrite1hInputTokens");
  const searches = optionalCount(usage.webSearchCalls, "webSearchCalls");
  const allInput = input + cached + written + written1h;
  const tokens = allInput + output;
  if (!Number.isSafeInteger(tokens)) throw new RangeError("usage passes 2^53 − 1 tokens");
  const tier = tierOf(price, allInput);
  const tokenCosts = [
    costOf(input, tier.inputPerMTok),
    costOf(cached, cachedRate(tier)),
    costOf(written, write5mRate(tier)),
    costOf(written1h, write1hRate(tier)),
    costOf(output, tier.outputPerMTok),
  ];
  // Each token cost is exact (costOf throws past 2^53); only the search product and the sum can need BigInt.
  const usdMicros = tokenCosts.reduce((a, b) => a + b, searches * searchRate(tier));
  if (Number.isSafeInteger(usdMicros)) return { tokens, usdMicros };
  const exact = tokenCosts.reduce(
    (a, b) => a + BigInt(b),
    BigInt(searches) * BigInt(searchRate(tier)),
  );
  return { tokens, usdMicros: toSafe(exact, "usage cost") };
}

interface BoundRates {
  readonly input: number;
  readonly output: number;
  readonly search: number;
}

/** The dearest input rate of a tier: input, cached, 5-minute and 1-hour cache writes. */
const dearestInput = (t: TierPrice): number =>
  Math.max(t.inputPerMTok, cachedRate(t), write5mRate(t), write1hRate(t));

/** The rates a call within a bound of `inputTokens` may be charged at: per component, the dearest of the tiers it may fall in. */
function boundRates(inputTokens: number, price: ModelPrice): BoundRates {
  const above =
    price.above !== undefined && inputTokens > price.above.inputTokens
      ? price.above.price
      : undefined;
  if (above === undefined)
    return { input: dearestInput(price), output: price.outputPerMTok, search: searchRate(price) };
  return {
    input: Math.max(dearestInput(price), dearestInput(above)),
    output: Math.max(price.outputPerMTok, above.outputPerMTok),
    search: Math.max(searchRate(price), searchRate(above)),
  };
}

/** Four input components (uncached, cached, two cache writes), each rounded up: at most 3 µ$ more than their sum rounded up once. */
const INPUT_COMPONENTS = 4;

/** The separate roundings of the input components: at most one µ$ each beyond the first. */
const roundingsOf = (inputTokens: number, rates: BoundRates): number =>
  inputTokens > 0 && rates.input > 0 ? Math.min(inputTokens, INPUT_COMPONENTS) - 1 : 0;

/** The part of maxCostOf that does not depend on the output tokens, exact. */
function fixedBound(
  bound: { inputTokens: number; webSearchCalls?: number },
  rates: BoundRates,
): bigint {
  const input = bound.inputTokens;
  return (
    BigInt(costOf(input, rates.input)) +
    BigInt(roundingsOf(input, rates)) +
    BigInt(bound.webSearchCalls ?? 0) * BigInt(rates.search)
  );
}

function checkBound(bound: { inputTokens: number; webSearchCalls?: number }): void {
  if (bound === null || typeof bound !== "object") throw new TypeError("bound must be an object");
  checkCount(bound.inputTokens, "bound.inputTokens");
  if (bound.webSearchCalls !== undefined) checkCount(bound.webSearchCalls, "bound.webSearchCalls");
}

/**
 * An upper bound in micro-dollars on what a call with at most `bound.inputTokens` input tokens (of
 * any kind), `bound.outputTokens` output tokens and `bound.webSearchCalls` web searches can cost
 * at `price` (spec/usage.md §4.3): every input token at the dearest input rate (input, cached,
 * 5-minute and 1-hour cache write) of every tier the bound reaches, plus 3 µ$ for the separate
 * roundings, output at the output rate, web search per call. Never less than `priceUsage` of any
 * usage within the bound.
 */
export function maxCostOf(
  bound: { inputTokens: number; outputTokens: number; webSearchCalls?: number },
  price: ModelPrice,
): number {
  checkBound(bound);
  for (const key in bound)
    if (key !== "inputTokens" && key !== "outputTokens" && key !== "webSearchCalls")
      throw new TypeError(`"bound" has no field ${JSON.stringify(key)}: it would not be counted`);
  return boundCostOf(bound, checkedPrice(price));
}

/** maxCostOf for the meter's own calls: a bound it built, a price out of a parse (see chargeOf). */
export function boundCostOf(
  bound: { inputTokens: number; outputTokens: number; webSearchCalls?: number },
  price: ModelPrice,
): number {
  checkBound(bound);
  const output = checkCount(bound.outputTokens, "bound.outputTokens");
  const rates = boundRates(bound.inputTokens, price);
  // Every term is a non-negative safe integer (costOf throws past 2^53): their float sum is exact
  // while it stays safe, and not safe once it would pass 2^53 − 1; only then BigInt.
  const searches = (bound.webSearchCalls ?? 0) * rates.search;
  const sum =
    costOf(bound.inputTokens, rates.input) +
    roundingsOf(bound.inputTokens, rates) +
    searches +
    costOf(output, rates.output);
  if (Number.isSafeInteger(sum) && Number.isSafeInteger(searches)) return sum;
  return toSafe(fixedBound(bound, rates) + BigInt(costOf(output, rates.output)), "maximum cost");
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
  return big > MAX ? Number.MAX_SAFE_INTEGER : Number(big);
}

/**
 * The largest n with maxCostOf({ ...bound, outputTokens: n }, price) ≤ usdMicros (0 when none,
 * at most 2^53 − 1): the output a hold of `usdMicros` allows once the input bound is paid for.
 */
export function outputTokensWithinBound(
  usdMicros: number,
  bound: { inputTokens: number; webSearchCalls?: number },
  price: ModelPrice,
): number {
  checkCount(usdMicros, "usdMicros");
  checkBound(bound);
  const rates = boundRates(bound.inputTokens, price);
  const left = BigInt(usdMicros) - fixedBound(bound, rates);
  if (left < 0n) return 0;
  if (rates.output === 0) return Number.MAX_SAFE_INTEGER;
  const n = (left * 1_000_000n) / BigInt(rates.output);
  return n > MAX ? Number.MAX_SAFE_INTEGER : Number(n);
}
