import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_PRICING,
  PRICING_TABLE_DATE,
  SseParser,
  anthropicMessages,
  costOf,
  createPricing,
  estimateInputTokens,
  openaiChatCompletions,
  openaiResponses,
  outputTokensWithin,
  parsePricingTable,
  priceUsage,
  type SseEvent,
} from "@allowance/enforcer/meter";

describe("the pricing table", () => {
  it("is dated, and states every price as integer micro-dollars per million tokens", () => {
    expect(PRICING_TABLE_DATE).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(() => parsePricingTable(DEFAULT_PRICING)).not.toThrow();
    expect(DEFAULT_PRICING.openai?.["gpt-4o-mini"]).toEqual({ inputPerMTok: 150_000, outputPerMTok: 600_000, cachedInputPerMTok: 75_000 });
  });

  it("finds a model by exact id, then by a listed id followed by a snapshot date or -latest", () => {
    const pricing = createPricing();
    expect(pricing.lookup("openai", "gpt-4o")).toEqual(DEFAULT_PRICING.openai?.["gpt-4o"]);
    expect(pricing.lookup("openai", "gpt-4o-2024-08-06")).toEqual(DEFAULT_PRICING.openai?.["gpt-4o"]);
    expect(pricing.lookup("openai", "gpt-4o-mini-2024-07-18")).toEqual(DEFAULT_PRICING.openai?.["gpt-4o-mini"]);
    expect(pricing.lookup("anthropic", "claude-sonnet-4-5-20250929")).toEqual(DEFAULT_PRICING.anthropic?.["claude-sonnet-4-5"]);
    expect(pricing.lookup("anthropic", "claude-opus-4-1-20250805")).toEqual(DEFAULT_PRICING.anthropic?.["claude-opus-4-1"]);
    expect(pricing.lookup("anthropic", "claude-3-5-sonnet-latest")).toEqual(DEFAULT_PRICING.anthropic?.["claude-3-5-sonnet"]);
    expect(pricing.lookup("openai", "gpt-3.5-turbo-0125")).toEqual(DEFAULT_PRICING.openai?.["gpt-3.5-turbo"]);
  });

  it("never guesses a new model's price from its family, nor across providers", () => {
    const pricing = createPricing({ openai: { "gpt-4": { inputPerMTok: 30_000_000, outputPerMTok: 60_000_000 } } }, { defaults: false });
    expect(pricing.lookup("openai", "gpt-4o")).toBeUndefined();
    expect(pricing.lookup("openai", "gpt-4-0613")).toEqual({ inputPerMTok: 30_000_000, outputPerMTok: 60_000_000 });
    expect(pricing.lookup("anthropic", "gpt-4")).toBeUndefined();
    expect(pricing.lookup("openai", "toString")).toBeUndefined();
    const defaults = createPricing();
    expect(defaults.lookup("anthropic", "claude-opus-4-6")).toBeUndefined();
    expect(defaults.lookup("openai", "gpt-5.1")).toBeUndefined();
    expect(defaults.lookup("openai", "gpt-4o-mini-realtime-preview")).toBeUndefined();
  });

  it("takes overrides and new providers over the defaults", () => {
    const pricing = createPricing({ openai: { "gpt-4o": { inputPerMTok: 1, outputPerMTok: 2 } }, mistral: { "mistral-large": { inputPerMTok: 2_000_000, outputPerMTok: 6_000_000 } } });
    expect(pricing.lookup("openai", "gpt-4o")).toEqual({ inputPerMTok: 1, outputPerMTok: 2 });
    expect(pricing.lookup("openai", "gpt-4o-mini")).toEqual(DEFAULT_PRICING.openai?.["gpt-4o-mini"]);
    expect(pricing.lookup("mistral", "mistral-large-2411")?.outputPerMTok).toBe(6_000_000);
  });

  it("rejects a malformed table with a TypeError that names the entry", () => {
    expect(() => createPricing({ openai: { "gpt-x": { inputPerMTok: 2.5, outputPerMTok: 10 } } })).toThrow(/openai\.gpt-x\.inputPerMTok/);
    expect(() => createPricing({ openai: { "gpt-x": { inputPerMTok: -1, outputPerMTok: 10 } } })).toThrow(TypeError);
    expect(() => createPricing({ openai: { "gpt-x": { inputPerMTok: 1, outputPerMTok: 1, discount: 5 } } })).toThrow(TypeError);
    expect(() => createPricing({ "bad provider": {} })).toThrow(TypeError);
  });

  it("law: costOf is ceil(tokens × price / 1e6) exactly, even when the product passes 2^53", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: 1_000_000_000_000 }), (tokens, price) => {
        const exact = (BigInt(tokens) * BigInt(price) + 999_999n) / 1_000_000n;
        fc.pre(exact <= BigInt(Number.MAX_SAFE_INTEGER));
        return BigInt(costOf(tokens, price)) === exact;
      }),
      { numRuns: 1000 },
    );
  });

  it("law: outputTokensWithin gives the most tokens that fit, and one more does not", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000_000 }), fc.integer({ min: 1, max: 200_000_000 }), (usd, price) => {
        const n = outputTokensWithin(usd, price);
        fc.pre(n < Number.MAX_SAFE_INTEGER);
        return costOf(n, price) <= usd && costOf(n + 1, price) > usd;
      }),
      { numRuns: 1000 },
    );
  });

  it("prices each usage component on its own, rounded up", () => {
    const price = { inputPerMTok: 3_000_000, outputPerMTok: 15_000_000, cachedInputPerMTok: 300_000, cacheWriteInputPerMTok: 3_750_000 };
    expect(priceUsage({ inputTokens: 1, outputTokens: 1, cachedInputTokens: 1, cacheWriteInputTokens: 1 }, price)).toEqual({ tokens: 4, usdMicros: 3 + 15 + 1 + 4 });
    expect(priceUsage({ inputTokens: 10, outputTokens: 0, cachedInputTokens: 10 }, { inputPerMTok: 1_000_000, outputPerMTok: 0 })).toEqual({ tokens: 20, usdMicros: 20 });
  });
});

describe("the request estimate", () => {
  it("counts characters / 4 rounded up, 4 tokens per message and 3 to prime the reply", () => {
    expect(estimateInputTokens({ messages: [{ role: "user", content: "Say hello" }] })).toBe(Math.ceil(13 / 4) + 4 + 3);
    expect(estimateInputTokens({ messages: [], system: "x".repeat(40) })).toBe(10 + 3);
  });

  it("counts a binary part as 1,000 tokens, not by its base64 length", () => {
    const image = { type: "image", source: { type: "base64", media_type: "image/png", data: "A".repeat(100_000) } };
    const url = { type: "image_url", image_url: { url: `data:image/png;base64,${"A".repeat(100_000)}` } };
    expect(estimateInputTokens({ messages: [{ role: "user", content: [image] }] })).toBeLessThan(1100);
    expect(estimateInputTokens({ messages: [{ role: "user", content: [url] }] })).toBeLessThan(1100);
  });

  it("takes the output from each API's maximum, times n choices, with the default when absent", () => {
    const options = { defaultMaxOutputTokens: 4096 };
    expect(openaiChatCompletions.estimate({ model: "m", messages: [], max_completion_tokens: 50, n: 3 }, options).outputTokens).toBe(150);
    expect(openaiChatCompletions.estimate({ model: "m", messages: [], max_tokens: 70 }, options).outputTokens).toBe(70);
    expect(openaiChatCompletions.estimate({ model: "m", messages: [] }, options).outputTokens).toBe(4096);
    expect(openaiResponses.estimate({ model: "m", input: "hi", max_output_tokens: 33 }, options)).toMatchObject({ model: "m", outputTokens: 33, stream: false });
    expect(anthropicMessages.estimate({ model: "c", messages: [], max_tokens: 9, stream: true }, options)).toMatchObject({ outputTokens: 9, stream: true });
  });

  it("lowers each API's own maximum field", () => {
    expect(openaiChatCompletions.withMaxOutput({ max_tokens: 100, n: 2 }, 50)).toEqual({ max_tokens: 25, n: 2 });
    expect(openaiChatCompletions.withMaxOutput({ n: 4 }, 3)).toBeUndefined();
    expect(openaiResponses.withMaxOutput({ max_output_tokens: 100 }, 40)).toEqual({ max_output_tokens: 40 });
    expect(anthropicMessages.withMaxOutput({ max_tokens: 100 }, 140)).toEqual({ max_tokens: 100 });
  });
});

describe("the SSE parser", () => {
  const stream = 'event: message_start\ndata: {"a":1}\n\n: comment\n\nevent: ping\r\ndata: {"type": "ping"}\r\n\r\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n';
  const expected: SseEvent[] = [
    { event: "message_start", data: '{"a":1}' },
    { event: "ping", data: '{"type": "ping"}' },
    { event: "message", data: "line one\nline two" },
    { event: "message", data: "[DONE]" },
  ];

  it("law: any split of the bytes into chunks gives the same events", () => {
    const bytes = new TextEncoder().encode(`${stream}data: ✓ ünïcode\n\n`);
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 12 }), (cuts) => {
        const parser = new SseParser();
        const events: SseEvent[] = [];
        const bounds = [0, ...[...cuts].sort((a, b) => a - b), bytes.length];
        for (let i = 1; i < bounds.length; i++) parser.push(bytes.subarray(bounds[i - 1], bounds[i]), (e) => events.push(e));
        parser.end((e) => events.push(e));
        expect(events).toEqual([...expected, { event: "message", data: "✓ ünïcode" }]);
      }),
      { numRuns: 300 },
    );
  });

  it("still reads an event the stream did not close with a blank line", () => {
    const parser = new SseParser();
    const events: SseEvent[] = [];
    parser.push(new TextEncoder().encode('event: message_delta\ndata: {"usage":{}}'), (e) => events.push(e));
    parser.end((e) => events.push(e));
    expect(events).toEqual([{ event: "message_delta", data: '{"usage":{}}' }]);
  });
});
