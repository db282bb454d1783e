import { describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.js";
import {
  formatCount,
  formatDuration,
  formatRate,
  formatUsd,
  mergeRates,
  parseCount,
  parseDuration,
  parseGrantInput,
  parseInstant,
  parseProviders,
  parseRate,
  parseUsd,
} from "../src/units.js";

const NOW = 1_800_000_000;

describe("money", () => {
  it.each([
    ["50", 50_000_000],
    ["$50", 50_000_000],
    ["0.1", 100_000],
    ["19.99", 19_990_000],
    ["0.000001", 1],
    ["1_000.5", 1_000_500_000],
    ["9007199254.740991", Number.MAX_SAFE_INTEGER],
  ])("%s dollars is %i micro-dollars, exactly", (text, micros) => {
    expect(parseUsd(text)).toBe(micros);
  });

  it("parses as decimal strings, so amounts that floats round stay exact", () => {
    // 0.29 * 1e6 is 290000.00000000006 in floating point.
    expect(parseUsd("0.29")).toBe(290_000);
    expect(parseUsd("4295.000001")).toBe(4_295_000_001);
  });

  it.each(["", "abc", "-1", "1.2345678", "1e3", "$", "9007199254.740992"])("refuses %j with a UsageError", (text) => {
    expect(() => parseUsd(text, "--usd")).toThrow(UsageError);
  });

  it.each([
    [50_000_000, "$50"],
    [2_500_000, "$2.50"],
    [1, "$0.000001"],
    [1_234_567_890, "$1,234.56789"],
    [0, "$0"],
  ])("formats %i micro-dollars as %s", (micros, text) => {
    expect(formatUsd(micros)).toBe(text);
  });

  it("formats what it parses back to the same amount", () => {
    for (const micros of [0, 1, 10, 999_999, 1_000_000, 2_500_000, 123_456_789, Number.MAX_SAFE_INTEGER]) {
      expect(parseUsd(formatUsd(micros))).toBe(micros);
    }
  });
});

describe("counts", () => {
  it.each([
    ["1M", 1_000_000],
    ["1.5M", 1_500_000],
    ["100k", 100_000],
    ["250", 250],
    ["1_000", 1_000],
    ["1,000,000", 1_000_000],
    ["2B", 2_000_000_000],
  ])("%s is %i", (text, count) => {
    expect(parseCount(text)).toBe(count);
  });

  it.each(["1.5", "1.0001k", "-5", "ten", "1e6", "", "1MM"])("refuses %j", (text) => {
    expect(() => parseCount(text)).toThrow(UsageError);
  });

  it("formats round numbers with k and M, others with separators, and parses them back", () => {
    expect([formatCount(1_000_000), formatCount(100_000), formatCount(1_500_000), formatCount(1_234)]).toEqual(["1M", "100k", "1.5M", "1,234"]);
    for (const n of [0, 7, 1_234, 100_000, 1_500_000, 123_456_789]) expect(parseCount(formatCount(n))).toBe(n);
  });
});

describe("durations and instants", () => {
  it("reads s, m, h and d", () => {
    expect([parseDuration("90s"), parseDuration("30m"), parseDuration("24h"), parseDuration("7d")]).toEqual([90, 1800, 86_400, 604_800]);
    expect(() => parseDuration("1w")).toThrow(/expected a duration/);
    expect(() => parseDuration("0h")).toThrow(/positive/);
  });

  it("formats with the largest exact unit", () => {
    expect([formatDuration(86_400), formatDuration(5_400), formatDuration(61)]).toEqual(["1d", "90m", "61s"]);
  });

  it("reads now, durations from now, ISO dates and epoch seconds", () => {
    expect(parseInstant("now", NOW)).toBe(NOW);
    expect(parseInstant("24h", NOW)).toBe(NOW + 86_400);
    expect(parseInstant("+1h", NOW)).toBe(NOW + 3600);
    expect(parseInstant("-1h", NOW)).toBe(NOW - 3600);
    expect(parseInstant("2030-01-01T00:00:00Z", NOW)).toBe(1_893_456_000);
    expect(parseInstant("2030-01-01", NOW)).toBe(1_893_456_000);
    expect(parseInstant("1893456000", NOW)).toBe(1_893_456_000);
    expect(() => parseInstant("tomorrow", NOW, "--expires")).toThrow(/--expires: expected "now"/);
  });
});

describe("rate windows", () => {
  it("reads <amount>-<unit>/<period>", () => {
    expect(parseRate("100k-tokens/1h")).toEqual({ seconds: 3600, tokens: 100_000 });
    expect(parseRate("60-requests/m")).toEqual({ seconds: 60, requests: 60 });
    expect(parseRate("$5-usd/1d")).toEqual({ seconds: 86_400, usdMicros: 5_000_000 });
    expect(() => parseRate("100k tokens per hour")).toThrow(/--rate: expected/);
    expect(() => parseRate("1-tokens/400d")).toThrow(/at most 366d/);
  });

  it("merges windows of the same period and refuses the same amount twice", () => {
    expect(mergeRates([parseRate("100k-tokens/1h"), parseRate("60-requests/1h"), parseRate("1M-tokens/1d")])).toEqual([
      { seconds: 3600, tokens: 100_000, requests: 60 },
      { seconds: 86_400, tokens: 1_000_000 },
    ]);
    expect(() => mergeRates([parseRate("1k-tokens/1h"), parseRate("2k-tokens/1h")])).toThrow(/two tokens limits/);
  });

  it("formats a window as it is typed", () => {
    expect(formatRate({ seconds: 3600, tokens: 100_000, requests: 60 })).toBe("100k-tokens/1h + 60-requests/1h");
  });
});

describe("providers", () => {
  it("reads names with optional caps", () => {
    expect(parseProviders("openai,anthropic:usd=20:tokens=100k")).toEqual([{ name: "openai" }, { name: "anthropic", usdMicros: 20_000_000, tokens: 100_000 }]);
  });

  it("refuses bad names, unknown caps and duplicates", () => {
    expect(() => parseProviders("OpenAI")).toThrow(/not a provider name/);
    expect(() => parseProviders("openai:cost=3")).toThrow(/expected openai:usd=/);
    expect(() => parseProviders("openai,openai")).toThrow(/listed twice/);
    expect(() => parseProviders("openai,,x")).toThrow(/without empty entries/);
  });
});

describe("grant options", () => {
  it("turns every human-unit option into the exact grant fields", () => {
    expect(
      parseGrantInput(
        {
          tokens: "1M",
          usd: "50",
          providers: "openai,anthropic:usd=20",
          models: "gpt-4o-mini",
          tools: "search.*,send_email",
          risk: "100",
          depth: "3",
          expires: "24h",
          nbf: "now",
          rate: ["100k-tokens/1h"],
          aud: "https://tools.example",
          label: "run-42",
        },
        NOW,
      ),
    ).toEqual({
      exp: NOW + 86_400,
      nbf: NOW,
      depth: 3,
      tokens: 1_000_000,
      usdMicros: 50_000_000,
      providers: [{ name: "openai" }, { name: "anthropic", usdMicros: 20_000_000 }],
      models: ["gpt-4o-mini"],
      tools: ["search.*", "send_email"],
      risk: 100,
      rate: [{ seconds: 3600, tokens: 100_000 }],
      aud: ["https://tools.example"],
      label: "run-42",
    });
  });

  it("leaves absent options absent and accepts numbers from JSON clients", () => {
    expect(parseGrantInput({}, NOW)).toEqual({});
    expect(parseGrantInput({ usd: 2.5, tokens: 50_000 }, NOW)).toEqual({ usdMicros: 2_500_000, tokens: 50_000 });
  });

  it("names the flag in every refusal", () => {
    expect(() => parseGrantInput({ tools: "bad pattern" }, NOW)).toThrow(/^--tools: "bad pattern" is not a valid tool/);
    expect(() => parseGrantInput({ depth: "300" }, NOW)).toThrow(/^--depth: at most 255/);
    expect(() => parseGrantInput({ expires: "1h", nbf: "2h" }, NOW)).toThrow(/--nbf must be before --expires/);
    expect(() => parseGrantInput({ colour: "red" }, NOW)).toThrow(UsageError);
  });
});
