/**
 * Builds packages/meter/src/prices-data.ts, the default price table, from the pinned
 * `@pydantic/genai-prices` package (MIT) plus a short, sourced overlay of our own
 * (spec/usage.md §4.1). Runtime never depends on the package: the table is committed, in integer
 * micro-dollars, and a test fails when it differs from what this script generates.
 *
 * Conversion: $ per MTok → µ$ per MTok (× 1e6), $ per 1,000 searches → µ$ per search (× 1e3), in
 * exact decimal arithmetic, rounded up when a price is not a whole number of µ$ (we never
 * under-charge; the generated file lists every price that was rounded). Prices with a start date
 * are taken as of AS_OF; a price change the data schedules after AS_OF is folded in by taking,
 * per component, the higher of the two prices, so the table does not under-charge after the date.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import {
  calcPrice,
  findProvider,
  type ConditionalPrice,
  type MatchLogic,
  type ModelInfo,
  type ModelPrice as SourcePrice,
} from "@pydantic/genai-prices";

export const SOURCE_PACKAGE = "@pydantic/genai-prices";
/** The version root package.json pins; the generated table says which version it came from. */
export const SOURCE_VERSION = "0.1.8";
/** The npm publication date of SOURCE_VERSION: the table's "as of" date. */
export const AS_OF = "2026-09-23";

/** Our provider name (grants, adapters) → the package's provider id. */
const PROVIDERS = { openai: "openai", anthropic: "anthropic", google: "google" } as const;
/** Other names our table answers to: "gemini" for Google's Gemini API. */
const ALIASES = { gemini: "google" } as const;

/** The price keys we price; other keys of a text model are listed in the generated notes. */
const PRICED = new Set([
  "input_mtok",
  "output_mtok",
  "cache_read_mtok",
  "cache_write_mtok",
  "cache_write_1h_mtok",
  "web_searches_kcount",
]);
/** Not text or embedding models: their audio / image / realtime tokens have prices we do not meter. */
const NOT_TEXT = /audio|realtime|tts|transcribe|image|live|omni|computer-use|^ft:|\.ft-/;

interface Tier {
  inputPerMTok: number;
  outputPerMTok: number;
  cachedInputPerMTok?: number;
  cacheWriteInputPerMTok?: number;
  cacheWrite1hInputPerMTok?: number;
  webSearchPerCall?: number;
}
interface Price extends Tier {
  above?: { inputTokens: number; price: Tier };
}

/**
 * Our own additions, each with its source. Gemini grounding with Google Search is billed per
 * grounded prompt on Gemini 2.x and 1.5 ($35 / 1,000) and per search query on Gemini 3 ($14 /
 * 1,000; other and later lines get the dearer $35), https://ai.google.dev/gemini-api/docs/pricing; the meter counts search queries, which
 * is never fewer than grounded prompts. Claude Sonnet 4 has the same long-context prices as Sonnet
 * 4.5 above 200k input tokens (1M-context window), https://docs.claude.com/en/docs/about-claude/pricing#long-context-pricing.
 */
/** Models whose long-context tier comes from the overlay, not the package ("provider/package model id"). */
export const TIER_OVERLAY: readonly string[] = ["anthropic/claude-sonnet-4-0"];

function overlay(provider: string, id: string, price: Price): Price {
  if (provider === "google" && !id.includes("embedding")) {
    const perCall = /^gemini-3/.test(id) ? 14_000 : 35_000;
    return withSearch(price, perCall);
  }
  if (TIER_OVERLAY.includes(`${provider}/${id}`) && price.above === undefined) {
    return {
      ...price,
      above: {
        inputTokens: 200_000,
        price: {
          inputPerMTok: 6_000_000,
          outputPerMTok: 22_500_000,
          cachedInputPerMTok: 600_000,
          cacheWriteInputPerMTok: 7_500_000,
          cacheWrite1hInputPerMTok: 12_000_000,
          webSearchPerCall: price.webSearchPerCall ?? 10_000,
        },
      },
    };
  }
  return price;
}

const withSearch = (price: Price, perCall: number): Price => ({
  ...price,
  webSearchPerCall: perCall,
  ...(price.above === undefined
    ? {}
    : { above: { ...price.above, price: { ...price.above.price, webSearchPerCall: perCall } } }),
});

/** Exact decimal → integer, × 10^scale, rounded up; `rounded` says whether it had to be. */
export function scaledUp(value: number, scale: number): { value: number; rounded: boolean } {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`bad price ${value}`);
  const m = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(value));
  if (m === null) throw new RangeError(`bad price ${value}`);
  const digits = BigInt(`${m[1]}${m[2] ?? ""}`);
  const exponent = scale + Number(m[3] ?? 0) - (m[2]?.length ?? 0);
  if (exponent >= 0) return { value: Number(digits * 10n ** BigInt(exponent)), rounded: false };
  const divisor = 10n ** BigInt(-exponent);
  return { value: Number((digits + divisor - 1n) / divisor), rounded: digits % divisor !== 0n };
}

const FIELDS: Record<string, { key: keyof Tier; scale: number }> = {
  input_mtok: { key: "inputPerMTok", scale: 6 },
  output_mtok: { key: "outputPerMTok", scale: 6 },
  cache_read_mtok: { key: "cachedInputPerMTok", scale: 6 },
  cache_write_mtok: { key: "cacheWriteInputPerMTok", scale: 6 },
  cache_write_1h_mtok: { key: "cacheWrite1hInputPerMTok", scale: 6 },
  web_searches_kcount: { key: "webSearchPerCall", scale: 3 },
};

interface Notes {
  rounded: string[];
  ignoredKeys: string[];
  scheduled: string[];
}

/** One source price (a number or a one-tier price per key) → our price with an `above` tier. */
function convert(source: SourcePrice, where: string, notes: Notes, embedding: boolean): Price {
  const base: Record<string, number> = {};
  const tier: Record<string, number> = {};
  let start: number | undefined;
  const ignored: string[] = [];
  for (const [key, raw] of Object.entries(source)) {
    if (raw === undefined) continue;
    const field = FIELDS[key];
    if (field === undefined || !PRICED.has(key)) {
      ignored.push(key);
      continue;
    }
    const put = (target: Record<string, number>, value: number, label: string): void => {
      const scaled = scaledUp(value, field.scale);
      if (scaled.rounded) notes.rounded.push(`${where} ${label}${key} ${value} → ${scaled.value}`);
      target[field.key] = scaled.value;
    };
    if (typeof raw === "number") {
      put(base, raw, "");
      put(tier, raw, "");
    } else {
      if (raw.tiers.length !== 1)
        throw new Error(`${where}: ${key} has ${raw.tiers.length} tiers; the table holds one`);
      const [only] = raw.tiers;
      if (only === undefined) throw new Error(`${where}: ${key} has no tier`);
      if (start !== undefined && start !== only.start)
        throw new Error(`${where}: tiers start at ${start} and ${only.start}`);
      start = only.start;
      put(base, raw.base, "");
      put(tier, only.price, "above-tier ");
    }
  }
  if (ignored.length > 0) notes.ignoredKeys.push(`${where}: ${ignored.sort().join(", ")}`);
  if (embedding && base.outputPerMTok === undefined) {
    base.outputPerMTok = 0;
    tier.outputPerMTok = 0;
  }
  const price = base as unknown as Tier;
  if (base.inputPerMTok === undefined || base.outputPerMTok === undefined)
    throw new Error(`${where}: no input or output price`);
  return start === undefined
    ? { ...price }
    : { ...price, above: { inputTokens: start, price: { ...(tier as unknown as Tier) } } };
}

/** Per component the higher of two prices (same tier threshold, or none). */
function dearer(a: Price, b: Price, where: string): Price {
  if ((a.above?.inputTokens ?? -1) !== (b.above?.inputTokens ?? -1)) {
    if (a.above !== undefined && b.above !== undefined)
      throw new Error(`${where}: scheduled change moves the tier`);
  }
  const maxTier = (x: Tier, y: Tier): Tier => {
    const out: Record<string, number> = {};
    for (const { key } of Object.values(FIELDS)) {
      const u = x[key];
      const v = y[key];
      if (u !== undefined || v !== undefined) out[key] = Math.max(u ?? 0, v ?? 0);
    }
    return out as unknown as Tier;
  };
  const above = a.above ?? b.above;
  const base = maxTier(a, b);
  if (above === undefined) return base;
  return {
    ...base,
    above: {
      inputTokens: above.inputTokens,
      price: maxTier(a.above?.price ?? a, b.above?.price ?? b),
    },
  };
}

/** The price in force at AS_OF, folded with any change scheduled after it. */
function priceAsOf(model: ModelInfo, where: string, notes: Notes, embedding: boolean): Price {
  if (!Array.isArray(model.prices)) return convert(model.prices, where, notes, embedding);
  const conditions: ConditionalPrice[] = model.prices;
  let current: SourcePrice | undefined;
  const later: ConditionalPrice[] = [];
  for (const c of conditions) {
    if (c.constraint === undefined) current = c.prices;
    else if (c.constraint.type === "start_date") {
      if (c.constraint.start_date <= AS_OF) current = c.prices;
      else later.push(c);
    } else
      throw new Error(`${where}: unsupported price constraint ${JSON.stringify(c.constraint)}`);
  }
  if (current === undefined) throw new Error(`${where}: no price in force at ${AS_OF}`);
  let price = convert(current, where, notes, embedding);
  for (const c of later) {
    price = dearer(
      price,
      convert(
        c.prices,
        `${where} (from ${c.constraint?.type === "start_date" ? c.constraint.start_date : "?"})`,
        notes,
        embedding,
      ),
      where,
    );
    notes.scheduled.push(
      `${where}: change on ${c.constraint?.type === "start_date" ? c.constraint.start_date : "?"} folded in as the dearer price per component`,
    );
  }
  return price;
}

/** Candidate ids from a match rule: `equals`, clean `starts_with` prefixes and dated-snapshot regexes. */
function idsOf(match: MatchLogic): string[] {
  if ("or" in match || "and" in match) return ("or" in match ? match.or : match.and).flatMap(idsOf);
  if ("equals" in match) return match.equals.startsWith("ft:") ? [] : [match.equals];
  if ("starts_with" in match)
    return /^[a-z0-9][a-z0-9.-]*[a-z0-9]$/i.test(match.starts_with) &&
      !/-\d{4}$/.test(match.starts_with)
      ? [match.starts_with]
      : [];
  if ("regex" in match) {
    const dated = /^\^([a-z0-9.\\-]+)-\\d\{(?:8|4)\}(?:-\\d\{2\}-\\d\{2\})?\$$/i.exec(match.regex);
    return dated?.[1] === undefined ? [] : [dated[1].replaceAll("\\.", ".")];
  }
  return [];
}

export interface GeneratedTable {
  readonly table: Record<string, Record<string, Price>>;
  /** Our provider → model id → the package's model id it came from. */
  readonly from: Record<string, Record<string, string>>;
  readonly notes: Notes;
}

/** The table, from the installed package. Throws when the installed version is not SOURCE_VERSION. */
export function buildPrices(): GeneratedTable {
  const installed = installedVersion();
  if (installed !== SOURCE_VERSION)
    throw new Error(
      `${SOURCE_PACKAGE} ${installed} is installed; the table is pinned to ${SOURCE_VERSION}`,
    );
  const notes: Notes = { rounded: [], ignoredKeys: [], scheduled: [] };
  const table: Record<string, Record<string, Price>> = {};
  const from: Record<string, Record<string, string>> = {};
  for (const [ours, theirs] of Object.entries(PROVIDERS)) {
    const provider = findProvider({ providerId: theirs });
    if (provider === undefined) throw new Error(`${SOURCE_PACKAGE} has no provider ${theirs}`);
    const models: Record<string, Price> = {};
    const origin: Record<string, string> = {};
    for (const model of provider.models) {
      if (ours === "google" && !model.id.startsWith("gemini")) continue; // Claude on Vertex, free Gemma
      if (NOT_TEXT.test(model.id)) continue;
      const embedding = model.id.includes("embedding");
      const sources = Array.isArray(model.prices)
        ? model.prices.map((c) => c.prices)
        : [model.prices];
      if (
        sources.some(
          (p) => p.input_mtok === undefined || (!embedding && p.output_mtok === undefined),
        )
      )
        continue;
      const price = overlay(
        ours,
        model.id,
        priceAsOf(model, `${ours}/${model.id}`, notes, embedding),
      );
      for (const id of new Set([model.id, ...idsOf(model.match)])) {
        // Only ids the package itself resolves to this model (its first match wins).
        if (
          calcPrice({ input_tokens: 1 }, id, {
            providerId: theirs,
            timestamp: new Date(`${AS_OF}T00:00:00Z`),
          })?.model.id !== model.id
        )
          continue;
        if (Object.hasOwn(models, id)) throw new Error(`${ours}/${id} is listed twice`);
        models[id] = price;
        origin[id] = model.id;
      }
    }
    table[ours] = models;
    from[ours] = origin;
  }
  return { table, from, notes };
}

function installedVersion(): string {
  const entry = createRequire(import.meta.url).resolve(SOURCE_PACKAGE);
  let dir = dirname(entry);
  for (let i = 0; i < 4; i++, dir = dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (manifest.name === SOURCE_PACKAGE && typeof manifest.version === "string")
        return manifest.version;
    } catch {
      // not here; look one level up
    }
  }
  throw new Error(`cannot find ${SOURCE_PACKAGE}'s package.json`);
}

const num = (n: number): string =>
  n >= 10_000 ? String(n).replace(/\B(?=(\d{3})+(?!\d))/g, "_") : String(n);
const tierText = (t: Tier): string =>
  `{ ${Object.values(FIELDS)
    .filter(({ key }) => t[key] !== undefined)
    .map(({ key }) => `${key}: ${num(t[key] as number)}`)
    .join(", ")} }`;
const priceText = (p: Price): string => {
  const flat = tierText(p);
  return p.above === undefined
    ? flat
    : `${flat.slice(0, -2)}, above: { inputTokens: ${num(p.above.inputTokens)}, price: ${tierText(p.above.price)} } }`;
};

/** The text of prices-data.ts. */
export function renderPricesData(): string {
  const { table, from, notes } = buildPrices();
  const lines: string[] = [
    `/**`,
    ` * GENERATED by scripts/generate-prices.ts from ${SOURCE_PACKAGE}@${SOURCE_VERSION} (MIT, Pydantic`,
    ` * Services Inc.) and the overlay in scripts/prices.ts; do not edit. List prices as of ${AS_OF}.`,
    ` * Units: micro-dollars per million tokens; webSearchPerCall in micro-dollars per call.`,
    ` *`,
    ` * Prices rounded up to a whole micro-dollar: ${notes.rounded.length === 0 ? "none." : ""}`,
    ...notes.rounded.map((n) => ` *   ${n}`),
    ` * Changes scheduled after ${AS_OF}, folded in as the dearer price per component:${notes.scheduled.length === 0 ? " none." : ""}`,
    ...notes.scheduled.map((n) => ` *   ${n}`),
    ` * Prices in the source that this table does not meter (audio, image, video tokens; file search`,
    ` * calls; spec/usage.md §4.4):`,
    ...notes.ignoredKeys.map((n) => ` *   ${n}`),
    ` */`,
    `import type { ModelPrice, PricingTable } from "./pricing.js";`,
    ``,
    `export const PRICES_SOURCE = { package: "${SOURCE_PACKAGE}", version: "${SOURCE_VERSION}", asOf: "${AS_OF}" } as const;`,
    ``,
  ];
  const constName = (provider: string, model: string): string =>
    `${provider}_${model}`.replace(/[^A-Za-z0-9]+/g, "_");
  for (const [provider, models] of Object.entries(table)) {
    const seen = new Set<string>();
    for (const [id, price] of Object.entries(models)) {
      const origin = from[provider]?.[id] ?? id;
      if (seen.has(origin)) continue;
      seen.add(origin);
      lines.push(`const ${constName(provider, origin)}: ModelPrice = ${priceText(price)};`);
    }
    lines.push(``);
  }
  for (const [provider, models] of Object.entries(table)) {
    lines.push(`const ${provider}: Readonly<Record<string, ModelPrice>> = {`);
    for (const id of Object.keys(models).sort())
      lines.push(`  ${JSON.stringify(id)}: ${constName(provider, from[provider]?.[id] ?? id)},`);
    lines.push(`};`, ``);
  }
  const aliases = Object.entries(ALIASES).map(([alias, of]) => `${alias}: ${of}`);
  lines.push(
    `export const PRICES_DATA: PricingTable = { ${[...Object.keys(table), ...aliases].join(", ")} };`,
    ``,
  );
  return lines.join("\n");
}

export const PRICES_DATA_PATH = join(
  import.meta.dirname,
  "..",
  "packages",
  "meter",
  "src",
  "prices-data.ts",
);
