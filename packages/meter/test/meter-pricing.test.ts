import { readFileSync, readdirSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_PRICING,
  PRICING_TABLE_DATE,
  PRICING_TABLE_VERSION,
  createPricing,
  maxCostOf,
  parseModelPrice,
  parsePricingTable,
  priceUsage,
  type ModelPrice,
  type SseEvent,
  type TokenUsage,
} from "@allowance/meter";
import {
  DEFAULT_WEB_SEARCH_PER_CALL,
  costOf,
  outputTokensWithin,
  outputTokensWithinBound,
  unknownPriceMessage,
} from "../src/pricing.js";
import {
  anthropicMessages,
  estimateInputTokens,
  openaiChatCompletions,
  openaiResponses,
} from "../src/providers.js";
import { SseParser } from "../src/sse.js";
import { oracleMicros } from "./price-oracle.js";
import {
  AS_OF,
  PRICES_DATA_PATH,
  SOURCE_VERSION,
  TIER_OVERLAY,
  buildPrices,
  renderPricesData,
} from "../../../scripts/prices.js";

/** Our price may exceed the oracle's exact one by the separate roundings (at most one µ$ per component), never fall below it. */
function expectWithinRounding(ours: number, oracle: number, components: number): void {
  const slack = 1e-6 * Math.max(1, oracle);
  expect(ours).toBeGreaterThanOrEqual(oracle - slack);
  expect(ours).toBeLessThanOrEqual(oracle + components + slack);
}

describe("the pricing table", () => {
  it("is dated and versioned, and states every price as integers a table must have", () => {
    expect(PRICING_TABLE_DATE).toBe(AS_OF);
    expect(PRICING_TABLE_VERSION).toBe(`@pydantic/genai-prices@${SOURCE_VERSION}`);
    expect(() => parsePricingTable(DEFAULT_PRICING)).not.toThrow();
    expect(Object.isFrozen(DEFAULT_PRICING.openai?.["gpt-4o-mini"])).toBe(true);
    expect(DEFAULT_PRICING.openai?.["gpt-4o-mini"]).toEqual({
      inputPerMTok: 150_000,
      outputPerMTok: 600_000,
      cachedInputPerMTok: 75_000,
      webSearchPerCall: 10_000,
    });
  });

  it("is exactly what scripts/prices.ts generates from the pinned @pydantic/genai-prices (run scripts/generate-prices.ts after a deliberate upgrade)", () => {
    expect(readFileSync(PRICES_DATA_PATH, "utf8")).toBe(renderPricesData());
  });

  it("covers current OpenAI, Anthropic and Gemini text and embedding models", () => {
    const pricing = createPricing();
    for (const [provider, model] of [
      ["openai", "gpt-5.5"],
      ["openai", "gpt-5.4-mini-2026-03-17"],
      ["openai", "gpt-4.1-nano"],
      ["openai", "o3"],
      ["openai", "text-embedding-3-small"],
      ["anthropic", "claude-opus-4-8"],
      ["anthropic", "claude-sonnet-4-6"],
      ["anthropic", "claude-haiku-4-5-20251001"],
      ["google", "gemini-2.5-pro"],
      ["google", "gemini-3.1-pro-preview"],
      ["google", "gemini-2.0-flash-001"],
      ["google", "gemini-embedding-001"],
      ["gemini", "gemini-2.5-flash"],
    ] as const) {
      expect(pricing.lookup(provider, model), `${provider}/${model}`).toBeDefined();
    }
  });

  it("prices every listed model as @pydantic/genai-prices does, within rounding (an independent oracle)", () => {
    const usages: TokenUsage[] = [
      { inputTokens: 1_000_000, outputTokens: 1_000_000 },
      {
        inputTokens: 123_457,
        outputTokens: 7,
        cachedInputTokens: 40_001,
        cacheWriteInputTokens: 3_333,
      },
      { inputTokens: 250_000, outputTokens: 1_000, cachedInputTokens: 30_000 },
    ];
    const { from } = buildPrices();
    let checked = 0;
    for (const [provider, models] of Object.entries(DEFAULT_PRICING)) {
      for (const [model, price] of Object.entries(models)) {
        // Our own long-context tier (the overlay) is not in the package: compare below it only.
        const overlaid = TIER_OVERLAY.includes(`${provider}/${from[provider]?.[model] ?? ""}`);
        for (const usage of [
          ...usages,
          ...(price.cacheWrite1hInputPerMTok === undefined
            ? []
            : [{ inputTokens: 10, outputTokens: 10, cacheWrite1hInputTokens: 999_999 }]),
        ]) {
          const input =
            usage.inputTokens +
            (usage.cachedInputTokens ?? 0) +
            (usage.cacheWriteInputTokens ?? 0) +
            (usage.cacheWrite1hInputTokens ?? 0);
          if (overlaid && input > (price.above?.inputTokens ?? Infinity)) continue;
          const oracle = oracleMicros(provider, model, usage);
          expect(oracle, `${provider}/${model}`).toBeDefined();
          const ours = priceUsage(usage, price).usdMicros;
          const later = oracleMicros(provider, model, usage, new Date("2100-01-01T00:00:00Z"));
          // A price change scheduled after the table's date is folded in as the dearer price.
          expectWithinRounding(ours, Math.max(oracle?.micros ?? 0, later?.micros ?? 0), 5);
          checked++;
        }
        if (
          price.webSearchPerCall !== undefined &&
          oracleMicros(provider, model, { inputTokens: 0, outputTokens: 0, webSearchCalls: 1 })
            ?.pricesWebSearch === true
        ) {
          const usage = { inputTokens: 0, outputTokens: 0, webSearchCalls: 1000 };
          expectWithinRounding(
            priceUsage(usage, price).usdMicros,
            oracleMicros(provider, model, usage)?.micros ?? NaN,
            0,
          );
        }
      }
    }
    expect(checked).toBeGreaterThan(800);
  });

  it("has Anthropic cache writes at 1.25× (5 minutes) and 2× (1 hour) input, and cache reads at 0.1× for the current models", () => {
    const anthropic = DEFAULT_PRICING.anthropic ?? {};
    for (const [model, price] of Object.entries(anthropic)) {
      for (const tier of [price, ...(price.above === undefined ? [] : [price.above.price])]) {
        if (tier.cacheWrite1hInputPerMTok !== undefined)
          expect(tier.cacheWrite1hInputPerMTok, model).toBe(tier.inputPerMTok * 2);
      }
    }
    for (const model of [
      "claude-opus-4-8",
      "claude-sonnet-4-6",
      "claude-haiku-4-5",
      "claude-sonnet-4-5",
      "claude-opus-4-1",
    ]) {
      const price = anthropic[model];
      expect((price?.cacheWriteInputPerMTok ?? 0) * 4, model).toBe((price?.inputPerMTok ?? 0) * 5);
      expect((price?.cachedInputPerMTok ?? 0) * 10, model).toBe(price?.inputPerMTok);
      expect(price?.webSearchPerCall, model).toBe(10_000); // $10 per 1,000 searches
    }
  });

  it("has the long-context tiers: Gemini 2.5 Pro above 200k prompt tokens, Claude Sonnet 4 and 4.5 above 200k input", () => {
    expect(DEFAULT_PRICING.google?.["gemini-2.5-pro"]?.above).toEqual({
      inputTokens: 200_000,
      price: {
        inputPerMTok: 2_500_000,
        outputPerMTok: 15_000_000,
        cachedInputPerMTok: 250_000,
        webSearchPerCall: 35_000,
      },
    });
    for (const model of ["claude-sonnet-4-5", "claude-sonnet-4-0", "claude-sonnet-4"]) {
      expect(DEFAULT_PRICING.anthropic?.[model]?.above, model).toEqual({
        inputTokens: 200_000,
        price: {
          inputPerMTok: 6_000_000,
          outputPerMTok: 22_500_000,
          cachedInputPerMTok: 600_000,
          cacheWriteInputPerMTok: 7_500_000,
          cacheWrite1hInputPerMTok: 12_000_000,
          webSearchPerCall: 10_000,
        },
      });
    }
  });

  it("finds a model by exact id, then by a listed id followed by a snapshot suffix", () => {
    const pricing = createPricing();
    expect(pricing.lookup("openai", "gpt-4o-2024-08-06")).toEqual(
      DEFAULT_PRICING.openai?.["gpt-4o"],
    );
    expect(pricing.lookup("openai", "gpt-4o-mini-2024-07-18")).toEqual(
      DEFAULT_PRICING.openai?.["gpt-4o-mini"],
    );
    expect(pricing.lookup("anthropic", "claude-sonnet-4-5-20250929")).toEqual(
      DEFAULT_PRICING.anthropic?.["claude-sonnet-4-5"],
    );
    expect(pricing.lookup("anthropic", "claude-3-5-sonnet-latest")).toEqual(
      DEFAULT_PRICING.anthropic?.["claude-3-5-sonnet"],
    );
    expect(pricing.lookup("google", "gemini-2.0-flash-001")).toEqual(
      DEFAULT_PRICING.google?.["gemini-2.0-flash"],
    );
    // An older snapshot with its own price is listed, and wins over the suffix rule.
    expect(pricing.lookup("openai", "gpt-3.5-turbo-0613")?.inputPerMTok).toBe(1_500_000);
    expect(pricing.lookup("openai", "gpt-3.5-turbo")?.inputPerMTok).toBe(500_000);
  });

  it("never guesses a new model's price from its family, nor across providers", () => {
    const pricing = createPricing(
      { openai: { "gpt-4": { inputPerMTok: 30_000_000, outputPerMTok: 60_000_000 } } },
      { defaults: false },
    );
    expect(pricing.lookup("openai", "gpt-4o")).toBeUndefined();
    expect(pricing.lookup("openai", "gpt-4-0613")).toEqual({
      inputPerMTok: 30_000_000,
      outputPerMTok: 60_000_000,
    });
    expect(pricing.lookup("anthropic", "gpt-4")).toBeUndefined();
    expect(pricing.lookup("openai", "toString")).toBeUndefined();
    expect(pricing.lookup("__proto__", "gpt-4")).toBeUndefined();
    const defaults = createPricing();
    expect(defaults.lookup("anthropic", "claude-opus-4-9")).toBeUndefined();
    expect(defaults.lookup("openai", "gpt-5.7")).toBeUndefined();
    expect(defaults.lookup("openai", "gpt-4o-mini-realtime-preview")).toBeUndefined(); // audio prices are not in the table
    expect(defaults.lookup("google", "gemini-4-pro")).toBeUndefined();
  });

  it("takes overrides and new providers over the defaults", () => {
    const pricing = createPricing({
      openai: { "gpt-4o": { inputPerMTok: 1, outputPerMTok: 2 } },
      mistral: { "mistral-large": { inputPerMTok: 2_000_000, outputPerMTok: 6_000_000 } },
    });
    expect(pricing.lookup("openai", "gpt-4o")).toEqual({ inputPerMTok: 1, outputPerMTok: 2 });
    expect(pricing.lookup("openai", "gpt-4o-mini")).toEqual(
      DEFAULT_PRICING.openai?.["gpt-4o-mini"],
    );
    expect(pricing.lookup("mistral", "mistral-large-2411")?.outputPerMTok).toBe(6_000_000);
  });
});

describe("hostile prices", () => {
  const valid = { inputPerMTok: 3_000_000, outputPerMTok: 15_000_000 };
  const fields = [
    "inputPerMTok",
    "outputPerMTok",
    "cachedInputPerMTok",
    "cacheWriteInputPerMTok",
    "cacheWrite1hInputPerMTok",
    "webSearchPerCall",
  ] as const;
  const hostile = [
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -1,
    2.5,
    0.1,
    2 ** 53,
    "3000000",
    null,
    {},
    [],
    true,
    1e300,
  ];

  it("rejects NaN, ±Infinity, negatives, floats, strings and out-of-range values in every field with a TypeError that names it", () => {
    for (const field of fields) {
      for (const value of hostile) {
        expect(
          () => createPricing({ openai: { "gpt-x": { ...valid, [field]: value } } }),
          `${field} = ${String(value)}`,
        ).toThrow(TypeError);
        expect(
          () => parseModelPrice({ ...valid, [field]: value }),
          `${field} = ${String(value)}`,
        ).toThrow(new RegExp(field));
        expect(
          () =>
            parseModelPrice({
              ...valid,
              above: { inputTokens: 200_000, price: { ...valid, [field]: value } },
            }),
          `above.${field} = ${String(value)}`,
        ).toThrow(TypeError);
      }
    }
    for (const value of hostile)
      expect(
        () => parseModelPrice({ ...valid, above: { inputTokens: value, price: valid } }),
        `above.inputTokens = ${String(value)}`,
      ).toThrow(TypeError);
  });

  it("law: a price with any field that is not a non-negative integer in range is refused", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...fields),
        fc.oneof(fc.double(), fc.integer({ max: -1 }), fc.string(), fc.constant(undefined)),
        (field, value) => {
          fc.pre(
            !(
              typeof value === "number" &&
              Number.isInteger(value) &&
              value >= 0 &&
              value <= (field === "webSearchPerCall" ? 1e9 : 1e12)
            ),
          );
          fc.pre(!(value === undefined && field !== "inputPerMTok" && field !== "outputPerMTok"));
          expect(() => parseModelPrice({ ...valid, [field]: value })).toThrow(TypeError);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("parses by its own strict rules: a copy, an optional field given as undefined left out, a key named __proto__ kept as a key", () => {
    const input = { ...valid, cachedInputPerMTok: undefined };
    const price = parseModelPrice(input);
    expect(price).not.toBe(input);
    expect(Object.keys(price)).not.toContain("cachedInputPerMTok");
    expect(price).toEqual(parseModelPrice(valid));
    const table = parsePricingTable(
      JSON.parse(`{"openai":{"__proto__":${JSON.stringify(valid)}}}`),
    );
    expect(Object.getPrototypeOf(table.openai)).toBe(Object.prototype);
    expect(Object.hasOwn(table.openai as object, "__proto__")).toBe(true);
    expect(createPricing(table, { defaults: false }).lookup("openai", "__proto__")).toEqual(
      parseModelPrice(valid),
    );
    expect(() => parseModelPrice({ ...valid, inputPerMTok: undefined })).toThrow(
      /inputPerMTok is required/,
    );
    expect(() => parsePricingTable({ openai: { "gpt-x": { ...valid, above: 5 } } })).toThrow(
      /openai\.gpt-x\.above must be an object/,
    );
  });

  it("needs no schema library: no source file of the meter imports zod, and the package does not depend on it", () => {
    const dir = new URL("../src/", import.meta.url);
    const files = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) =>
      f.endsWith(".ts"),
    );
    expect(files.length).toBeGreaterThan(10);
    for (const file of files)
      expect(readFileSync(new URL(file, dir), "utf8"), file).not.toMatch(/from "zod"/);
    const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    expect(Object.keys(manifest.dependencies ?? {})).not.toContain("zod");
  });

  it("rejects unknown keys, bad provider names and bad tables", () => {
    expect(() => createPricing({ openai: { "gpt-x": { ...valid, discount: 5 } } })).toThrow(
      TypeError,
    );
    expect(() =>
      createPricing({
        openai: { "gpt-x": { ...valid, above: { inputTokens: 1, price: valid, extra: 1 } } },
      }),
    ).toThrow(TypeError);
    expect(() =>
      createPricing({
        openai: {
          "gpt-x": {
            ...valid,
            above: { inputTokens: 1, price: { ...valid, above: { inputTokens: 2, price: valid } } },
          },
        },
      }),
    ).toThrow(TypeError);
    expect(() => createPricing({ "bad provider": {} })).toThrow(TypeError);
    expect(() => createPricing({ openai: { "": valid } })).toThrow(TypeError);
    expect(() => createPricing([valid])).toThrow(TypeError);
    expect(() => createPricing("openai")).toThrow(TypeError);
  });

  it("refuses usage counts that are not non-negative safe integers instead of pricing them", () => {
    for (const bad of [Number.NaN, -1, 1.5, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expect(() => priceUsage({ inputTokens: bad, outputTokens: 1 }, valid)).toThrow(RangeError);
      expect(() =>
        priceUsage({ inputTokens: 1, outputTokens: 1, webSearchCalls: bad }, valid),
      ).toThrow(RangeError);
      expect(() => maxCostOf({ inputTokens: 1, outputTokens: bad }, valid)).toThrow(RangeError);
      expect(() => outputTokensWithinBound(bad, { inputTokens: 1 }, valid)).toThrow(RangeError);
    }
    expect(() =>
      priceUsage({ inputTokens: "5" as unknown as number, outputTokens: 1 }, valid),
    ).toThrow(TypeError);
    expect(() =>
      maxCostOf(null as unknown as { inputTokens: number; outputTokens: number }, valid),
    ).toThrow(TypeError);
  });
});

describe("hostile prices and usages given to the pricing functions directly", () => {
  const valid: ModelPrice = { inputPerMTok: 1_000_000, outputPerMTok: 2_000_000 };
  const usage = { inputTokens: 10, outputTokens: 10 };
  const bound = { inputTokens: 10, outputTokens: 10 };

  it("a price that parseModelPrice refuses is refused by priceUsage and maxCostOf, never a negative or NaN cost", () => {
    for (const price of [
      { inputPerMTok: -1_000_000, outputPerMTok: 0 },
      { inputPerMTok: Number.NaN, outputPerMTok: 0 },
      { inputPerMTok: "1000000", outputPerMTok: 0 },
      { inputPerMTok: 0.5, outputPerMTok: 0 },
      { inputPerMTok: 1 },
      // A NaN threshold would never reach the long-context tier: the call priced below its rate.
      {
        ...valid,
        above: { inputTokens: Number.NaN, price: { inputPerMTok: 9, outputPerMTok: 9 } },
      },
      { ...valid, Above: { inputTokens: 1, price: valid } },
      null,
    ]) {
      expect(() => parseModelPrice(price), JSON.stringify(price)).toThrow(TypeError);
      expect(() => priceUsage(usage, price as never), JSON.stringify(price)).toThrow(TypeError);
      expect(() => maxCostOf(bound, price as never), JSON.stringify(price)).toThrow(TypeError);
    }
    // A parsed price is frozen, so that it stays what was checked.
    const parsed = parseModelPrice(valid);
    expect(Object.isFrozen(parsed)).toBe(true);
    expect(priceUsage(usage, parsed)).toEqual(priceUsage(usage, valid));
  });

  it("a misspelt usage or bound field, or null for an optional count, is refused rather than left uncharged", () => {
    expect(() => priceUsage({ ...usage, cachedTokens: 1_000 } as never, valid)).toThrow(
      /cachedTokens/,
    );
    expect(() => priceUsage({ ...usage, cachedInputTokens: null } as never, valid)).toThrow(
      TypeError,
    );
    expect(() => priceUsage({ ...usage, reasoningTokens: Number.NaN }, valid)).toThrow(RangeError);
    expect(() => priceUsage(null as never, valid)).toThrow(TypeError);
    expect(() => maxCostOf({ ...bound, webSearch: 5 } as never, valid)).toThrow(/webSearch/);
  });

  it("createPricing checks its options and lookup its arguments", () => {
    for (const options of [null, { defaults: "false" }, { defaults: null }, { default: false }])
      expect(() => createPricing({}, options as never), JSON.stringify(options)).toThrow(TypeError);
    expect(Object.keys(createPricing({}, { defaults: false }).table)).toEqual([]);
    const pricing = createPricing();
    expect(() => pricing.lookup("openai", undefined as never)).toThrow(/"model"/);
    expect(() => pricing.lookup(5 as never, "gpt-4o")).toThrow(/"provider"/);
  });

  it("a Pricing's table cannot be edited after its prices were checked", () => {
    // The meter prices its calls from lookup without checking again: a negative cached rate put
    // into the table after the parse charged a call with cached input less than one without.
    const pricing = createPricing({ openai: { "gpt-x": valid } });
    expect(() => {
      (pricing.table.openai as Record<string, ModelPrice>)["gpt-x"] = {
        ...valid,
        cachedInputPerMTok: -1_500_000,
      };
    }).toThrow(TypeError);
    expect(() => {
      (pricing.table as Record<string, unknown>)["acme"] = { "m-1": valid };
    }).toThrow(TypeError);
    expect(pricing.lookup("openai", "gpt-x")).toEqual(valid);
    expect(Object.isFrozen(parsePricingTable({ openai: { "gpt-x": valid } }).openai)).toBe(true);
  });
});

describe("unknown models", () => {
  it("tells a person the table's date and source and exactly how to supply a price", () => {
    const message = unknownPriceMessage("openai", "gpt-9-turbo");
    expect(message).toContain(PRICING_TABLE_DATE);
    expect(message).toContain(PRICING_TABLE_VERSION);
    expect(message).toContain(
      `pricing: { "openai": { "gpt-9-turbo": { inputPerMTok: 3000000, outputPerMTok: 15000000 } } }`,
    );
    expect(message).toContain("unknownModel: { inputPerMTok: …, outputPerMTok: … }");
    // The example it gives is a valid override that prices exactly that model.
    const example =
      /pricing: (\{ "openai": \{ "gpt-9-turbo": \{ [^}]* \} \} \})/.exec(message)?.[1] ?? "";
    const table = JSON.parse(example.replace(/(\w+):/g, '"$1":')) as unknown;
    expect(createPricing(table).lookup("openai", "gpt-9-turbo")).toEqual({
      inputPerMTok: 3_000_000,
      outputPerMTok: 15_000_000,
    });
  });

  it("quotes names so that a hostile model id cannot break the message's example", () => {
    expect(unknownPriceMessage("openai", 'x" } } }, evil: {')).toContain(
      JSON.stringify('x" } } }, evil: {'),
    );
  });
});

describe("pricing a usage", () => {
  const anthropicPrice: ModelPrice = {
    inputPerMTok: 3_000_000,
    outputPerMTok: 15_000_000,
    cachedInputPerMTok: 300_000,
    cacheWriteInputPerMTok: 3_750_000,
    cacheWrite1hInputPerMTok: 6_000_000,
    webSearchPerCall: 10_000,
    above: {
      inputTokens: 200_000,
      price: {
        inputPerMTok: 6_000_000,
        outputPerMTok: 22_500_000,
        cachedInputPerMTok: 600_000,
        cacheWriteInputPerMTok: 7_500_000,
        cacheWrite1hInputPerMTok: 12_000_000,
        webSearchPerCall: 10_000,
      },
    },
  };

  it("prices each component on its own, rounded up", () => {
    expect(
      priceUsage(
        {
          inputTokens: 1,
          outputTokens: 1,
          cachedInputTokens: 1,
          cacheWriteInputTokens: 1,
          cacheWrite1hInputTokens: 1,
        },
        anthropicPrice,
      ),
    ).toEqual({ tokens: 5, usdMicros: 3 + 15 + 1 + 4 + 6 });
    expect(
      priceUsage(
        { inputTokens: 10, outputTokens: 0, cachedInputTokens: 10 },
        { inputPerMTok: 1_000_000, outputPerMTok: 0 },
      ),
    ).toEqual({ tokens: 20, usdMicros: 20 });
  });

  it("charges 1-hour cache writes at their own price, not the 5-minute one (the 46% under-charge)", () => {
    const fiveMinutes = priceUsage(
      { inputTokens: 0, outputTokens: 0, cacheWriteInputTokens: 100_000 },
      anthropicPrice,
    ).usdMicros;
    const oneHour = priceUsage(
      { inputTokens: 0, outputTokens: 0, cacheWrite1hInputTokens: 100_000 },
      anthropicPrice,
    ).usdMicros;
    expect([fiveMinutes, oneHour]).toEqual([375_000, 600_000]);
    // Without a 1-hour price, twice the input price (Anthropic's ratio), never the cheaper 5-minute one.
    expect(
      priceUsage(
        { inputTokens: 0, outputTokens: 0, cacheWrite1hInputTokens: 1_000_000 },
        { inputPerMTok: 3_000_000, outputPerMTok: 0, cacheWriteInputPerMTok: 3_750_000 },
      ).usdMicros,
    ).toBe(6_000_000);
  });

  it("charges web search per call, at the table's price or else the dearest default", () => {
    expect(
      priceUsage({ inputTokens: 0, outputTokens: 0, webSearchCalls: 3 }, anthropicPrice).usdMicros,
    ).toBe(30_000);
    expect(
      priceUsage(
        { inputTokens: 0, outputTokens: 0, webSearchCalls: 3 },
        { inputPerMTok: 1, outputPerMTok: 1 },
      ).usdMicros,
    ).toBe(3 * DEFAULT_WEB_SEARCH_PER_CALL);
    expect(DEFAULT_WEB_SEARCH_PER_CALL).toBe(35_000);
  });

  it("charges reasoning tokens once, as the output they are part of", () => {
    const plain = priceUsage({ inputTokens: 100, outputTokens: 1000 }, anthropicPrice);
    expect(
      priceUsage({ inputTokens: 100, outputTokens: 1000, reasoningTokens: 900 }, anthropicPrice),
    ).toEqual(plain);
  });

  it("selects the long-context tier by the whole input (uncached, cached and written), strictly above the threshold", () => {
    const at = (usage: TokenUsage): number => priceUsage(usage, anthropicPrice).usdMicros;
    expect(at({ inputTokens: 200_000, outputTokens: 1000 })).toBe(600_000 + 15_000);
    expect(at({ inputTokens: 200_001, outputTokens: 1000 })).toBe(1_200_006 + 22_500);
    expect(
      at({
        inputTokens: 100_000,
        outputTokens: 1000,
        cachedInputTokens: 50_000,
        cacheWriteInputTokens: 25_000,
        cacheWrite1hInputTokens: 25_001,
      }),
    ).toBe(600_000 + 30_000 + 187_500 + 300_012 + 22_500);
    expect(
      at({
        inputTokens: 100_000,
        outputTokens: 1000,
        cachedInputTokens: 50_000,
        cacheWriteInputTokens: 25_000,
        cacheWrite1hInputTokens: 25_000,
      }),
    ).toBe(300_000 + 15_000 + 93_750 + 150_000 + 15_000);
  });

  it("stays exact past 2^53 in intermediate products", () => {
    const price = { inputPerMTok: 1_000_000_000_000, outputPerMTok: 999_999_999_999 };
    expect(priceUsage({ inputTokens: 9_000_000, outputTokens: 1 }, price).usdMicros).toBe(
      9_000_000_000_000 + 1_000_000,
    );
    expect(() => priceUsage({ inputTokens: 9_007_199_255, outputTokens: 0 }, price)).toThrow(
      RangeError,
    );
  });
});

describe("the bound on a call's cost", () => {
  const rate = fc.oneof(
    fc.integer({ min: 0, max: 200_000_000 }),
    fc.integer({ min: 0, max: 3_000_000 }),
  );
  const search = fc.integer({ min: 0, max: 100_000 });
  const tier = fc.oneof(
    fc.record(
      {
        inputPerMTok: rate,
        outputPerMTok: rate,
        cachedInputPerMTok: rate,
        cacheWriteInputPerMTok: rate,
        cacheWrite1hInputPerMTok: rate,
        webSearchPerCall: search,
      },
      { requiredKeys: ["inputPerMTok", "outputPerMTok"] },
    ),
    // Every input kind at one rate: where the separate roundings of the components matter most.
    fc.tuple(rate, rate, search).map(([input, output, webSearchPerCall]) => ({
      inputPerMTok: input,
      outputPerMTok: output,
      cachedInputPerMTok: input,
      cacheWriteInputPerMTok: input,
      cacheWrite1hInputPerMTok: input,
      webSearchPerCall,
    })),
  );
  const price: fc.Arbitrary<ModelPrice> = fc
    .tuple(
      tier,
      fc.option(fc.record({ inputTokens: fc.integer({ min: 0, max: 400_000 }), price: tier }), {
        nil: undefined,
      }),
    )
    .map(([base, above]) => (above === undefined ? base : { ...base, above }));
  const tokens = (max: number): fc.Arbitrary<number> =>
    fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max }));
  const bound = fc.record({
    inputTokens: tokens(1_000_000),
    outputTokens: tokens(200_000),
    webSearchCalls: fc.integer({ min: 0, max: 20 }),
  });
  /** A usage within a bound: the bound's input split over the four input kinds, less or equal output and searches. */
  const within = (b: {
    inputTokens: number;
    outputTokens: number;
    webSearchCalls: number;
  }): fc.Arbitrary<TokenUsage> =>
    fc
      .tuple(
        fc.integer({ min: 0, max: b.inputTokens }),
        fc.array(fc.integer({ min: 0, max: b.inputTokens }), { minLength: 3, maxLength: 3 }),
        fc.integer({ min: 0, max: b.outputTokens }),
        fc.integer({ min: 0, max: b.webSearchCalls }),
      )
      .map(([total, cuts, output, searches]) => {
        const [a, c, d] = [...cuts.map((x) => Math.min(x, total))].sort((x, y) => x - y) as [
          number,
          number,
          number,
        ];
        return {
          inputTokens: a,
          cachedInputTokens: c - a,
          cacheWriteInputTokens: d - c,
          cacheWrite1hInputTokens: total - d,
          outputTokens: output,
          reasoningTokens: 0,
          webSearchCalls: searches,
        };
      });

  it("law: maxCostOf is never less than priceUsage of any usage within the bound", () => {
    fc.assert(
      fc.property(
        price,
        bound.chain((b) => fc.tuple(fc.constant(b), within(b))),
        (p, [b, usage]) => {
          expect(priceUsage(usage, p).usdMicros).toBeLessThanOrEqual(maxCostOf(b, p));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("law: maxCostOf is reached or nearly so (every input token at the dearest input rate of the tier, output, searches)", () => {
    const p: ModelPrice = {
      inputPerMTok: 3_000_000,
      outputPerMTok: 15_000_000,
      cacheWrite1hInputPerMTok: 6_000_000,
      above: {
        inputTokens: 200_000,
        price: { inputPerMTok: 6_000_000, outputPerMTok: 22_500_000 },
      },
    };
    expect(maxCostOf({ inputTokens: 100_000, outputTokens: 1000, webSearchCalls: 2 }, p)).toBe(
      600_000 + 3 + 15_000 + 2 * 35_000,
    );
    expect(
      priceUsage(
        { inputTokens: 0, cacheWrite1hInputTokens: 100_000, outputTokens: 1000, webSearchCalls: 2 },
        p,
      ).usdMicros,
    ).toBe(600_000 + 15_000 + 70_000);
    // Above the threshold a call may land in either tier: the dearer rate of the two, per component (tier 1h default: 2 × 6 $/MTok).
    expect(maxCostOf({ inputTokens: 300_000, outputTokens: 1000 }, p)).toBe(3_600_000 + 3 + 22_500);
    expect(maxCostOf({ inputTokens: 0, outputTokens: 0 }, p)).toBe(0);
    expect(maxCostOf({ inputTokens: 1, outputTokens: 0 }, p)).toBe(6);
    // Four input kinds, each rounded up on its own: the bound pays the 3 µ$ the separate roundings can add.
    const flat = {
      inputPerMTok: 1,
      outputPerMTok: 0,
      cachedInputPerMTok: 1,
      cacheWriteInputPerMTok: 1,
      cacheWrite1hInputPerMTok: 1,
    };
    const four = {
      inputTokens: 1,
      cachedInputTokens: 1,
      cacheWriteInputTokens: 1,
      cacheWrite1hInputTokens: 1,
      outputTokens: 0,
    };
    expect(priceUsage(four, flat).usdMicros).toBe(4);
    expect(maxCostOf({ inputTokens: 4, outputTokens: 0 }, flat)).toBe(4);
  });

  it("law: outputTokensWithinBound is the exact maximum: n fits, n + 1 does not", () => {
    fc.assert(
      fc.property(price, bound, fc.integer({ min: 0, max: 100_000_000 }), (p, b, usd) => {
        const n = outputTokensWithinBound(usd, b, p);
        const fits = (k: number): boolean => maxCostOf({ ...b, outputTokens: k }, p) <= usd;
        if (n === Number.MAX_SAFE_INTEGER) {
          expect(fits(0)).toBe(true);
        } else if (n > 0 || fits(0)) {
          expect(fits(n)).toBe(true);
          expect(fits(n + 1)).toBe(false);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("stays exact with BigInt past 2^53", () => {
    const p = { inputPerMTok: 1_000_000_000_000, outputPerMTok: 999_999_999_999 };
    const usd = 9_000_000_000_000_000;
    const n = outputTokensWithinBound(usd, { inputTokens: 1_000 }, p);
    expect(maxCostOf({ inputTokens: 1_000, outputTokens: n }, p)).toBeLessThanOrEqual(usd);
    expect(maxCostOf({ inputTokens: 1_000, outputTokens: n + 1 }, p)).toBeGreaterThan(usd);
    expect(outputTokensWithinBound(5, { inputTokens: 1, webSearchCalls: 1 }, p)).toBe(0); // the input alone does not fit
    expect(
      outputTokensWithinBound(0, { inputTokens: 0 }, { inputPerMTok: 0, outputPerMTok: 0 }),
    ).toBe(Number.MAX_SAFE_INTEGER);
  });
});

describe("integer arithmetic", () => {
  it("law: costOf is ceil(tokens × price / 1e6) exactly, even when the product passes 2^53", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 0, max: 1_000_000_000_000 }),
        (tokens, price) => {
          const exact = (BigInt(tokens) * BigInt(price) + 999_999n) / 1_000_000n;
          fc.pre(exact <= BigInt(Number.MAX_SAFE_INTEGER));
          return BigInt(costOf(tokens, price)) === exact;
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("law: outputTokensWithin gives the most tokens that fit, and one more does not", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000_000_000 }),
        fc.integer({ min: 1, max: 200_000_000 }),
        (usd, price) => {
          const n = outputTokensWithin(usd, price);
          fc.pre(n < Number.MAX_SAFE_INTEGER);
          return costOf(n, price) <= usd && costOf(n + 1, price) > usd;
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("the request estimate", () => {
  it("counts characters / 4 rounded up, 4 tokens per message and 3 to prime the reply", () => {
    expect(estimateInputTokens({ messages: [{ role: "user", content: "Say hello" }] })).toBe(
      Math.ceil(13 / 4) + 4 + 3,
    );
    expect(estimateInputTokens({ messages: [], system: "x".repeat(40) })).toBe(10 + 3);
  });

  it("counts a binary part as 1,000 tokens, not by its base64 length", () => {
    const image = {
      type: "image",
      source: { type: "base64", media_type: "image/png", data: "A".repeat(100_000) },
    };
    const url = {
      type: "image_url",
      image_url: { url: `data:image/png;base64,${"A".repeat(100_000)}` },
    };
    expect(estimateInputTokens({ messages: [{ role: "user", content: [image] }] })).toBeLessThan(
      1100,
    );
    expect(estimateInputTokens({ messages: [{ role: "user", content: [url] }] })).toBeLessThan(
      1100,
    );
  });

  it("takes the output from each API's maximum, times n choices, with the default when absent", () => {
    const options = { defaultMaxOutputTokens: 4096 };
    expect(
      openaiChatCompletions.estimate(
        { model: "m", messages: [], max_completion_tokens: 50, n: 3 },
        options,
      ).outputTokens,
    ).toBe(150);
    expect(
      openaiChatCompletions.estimate({ model: "m", messages: [], max_tokens: 70 }, options)
        .outputTokens,
    ).toBe(70);
    expect(openaiChatCompletions.estimate({ model: "m", messages: [] }, options).outputTokens).toBe(
      4096,
    );
    expect(
      openaiResponses.estimate({ model: "m", input: "hi", max_output_tokens: 33 }, options),
    ).toMatchObject({ model: "m", outputTokens: 33, stream: false });
    expect(
      anthropicMessages.estimate(
        { model: "c", messages: [], max_tokens: 9, stream: true },
        options,
      ),
    ).toMatchObject({ outputTokens: 9, stream: true });
  });

  it("lowers each API's own maximum field", () => {
    expect(
      openaiChatCompletions.limitsPatch({ max_tokens: 100, n: 2 }, { outputTokens: 50 }),
    ).toEqual({ max_tokens: 25 });
    expect(openaiChatCompletions.limitsPatch({ n: 4 }, { outputTokens: 3 })).toBeUndefined();
    expect(openaiResponses.limitsPatch({ max_output_tokens: 100 }, { outputTokens: 40 })).toEqual({
      max_output_tokens: 40,
    });
    expect(anthropicMessages.limitsPatch({ max_tokens: 100 }, { outputTokens: 140 })).toEqual({});
  });
});

describe("the SSE parser", () => {
  const stream =
    'event: message_start\ndata: {"a":1}\n\n: comment\n\nevent: ping\r\ndata: {"type": "ping"}\r\n\r\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n';
  const expected: SseEvent[] = [
    { event: "message_start", data: '{"a":1}' },
    { event: "ping", data: '{"type": "ping"}' },
    { event: "message", data: "line one\nline two" },
    { event: "message", data: "[DONE]" },
  ];

  it("law: any split of the bytes into chunks gives the same events", () => {
    const bytes = new TextEncoder().encode(`${stream}data: ✓ ünïcode\n\n`);
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 12 }),
        (cuts) => {
          const parser = new SseParser();
          const events: SseEvent[] = [];
          const bounds = [0, ...[...cuts].sort((a, b) => a - b), bytes.length];
          for (let i = 1; i < bounds.length; i++)
            parser.push(bytes.subarray(bounds[i - 1], bounds[i]), (e) => events.push(e));
          parser.end((e) => events.push(e));
          expect(events).toEqual([...expected, { event: "message", data: "✓ ünïcode" }]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("still reads an event the stream did not close with a blank line", () => {
    const parser = new SseParser();
    const events: SseEvent[] = [];
    parser.push(new TextEncoder().encode('event: message_delta\ndata: {"usage":{}}'), (e) =>
      events.push(e),
    );
    parser.end((e) => events.push(e));
    expect(events).toEqual([{ event: "message_delta", data: '{"usage":{}}' }]);
  });
});
