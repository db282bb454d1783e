import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.js";
import {
  formatCount,
  formatDuration,
  formatInstant,
  formatRate,
  formatUsd,
  groupDigits,
  mergeRates,
  parseCount,
  parseDuration,
  parseEpochSeconds,
  MAX_TYPED_EPOCH_SECONDS,
  isoSeconds,
  parseInstant,
  parseProviders,
  parseRate,
  parseUsd,
} from "../src/units.js";
import { describeGrant, relative } from "../src/describe.js";
import { parseGrantInput } from "../src/grant-input.js";
import { allowance, expectFailure } from "./support.js";

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

  it.each(["", "abc", "-1", "1.2345678", "1e3", "$", "9007199254.740992"])(
    "refuses %j with a UsageError",
    (text) => {
      expect(() => parseUsd(text, "--usd")).toThrow(UsageError);
    },
  );

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
    for (const micros of [
      0,
      1,
      10,
      999_999,
      1_000_000,
      2_500_000,
      123_456_789,
      Number.MAX_SAFE_INTEGER,
    ]) {
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
    expect([
      formatCount(1_000_000),
      formatCount(100_000),
      formatCount(1_500_000),
      formatCount(1_234),
    ]).toEqual(["1M", "100k", "1.5M", "1,234"]);
    for (const n of [0, 7, 1_234, 100_000, 1_500_000, 123_456_789])
      expect(parseCount(formatCount(n))).toBe(n);
  });

  it("groups digits exactly as toLocaleString('en-US') does, without loading the locale data", () => {
    expect([0, 999, 1_000, -1_234_567, Number.MAX_SAFE_INTEGER].map(groupDigits)).toEqual([
      "0",
      "999",
      "1,000",
      "-1,234,567",
      "9,007,199,254,740,991",
    ]);
    fc.assert(
      fc.property(fc.maxSafeInteger(), (n) => groupDigits(n) === n.toLocaleString("en-US")),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 30n }), (n) => {
        return groupDigits(n) === n.toLocaleString("en-US");
      }),
      { numRuns: 500 },
    );
  });
});

describe("durations and instants", () => {
  it("reads s, m, h and d", () => {
    expect([
      parseDuration("90s"),
      parseDuration("30m"),
      parseDuration("24h"),
      parseDuration("7d"),
    ]).toEqual([90, 1800, 86_400, 604_800]);
    expect(() => parseDuration("1w")).toThrow(/expected a duration/);
    expect(() => parseDuration("0h")).toThrow(/positive/);
  });

  it("formats with the largest exact unit", () => {
    expect([formatDuration(86_400), formatDuration(5_400), formatDuration(61)]).toEqual([
      "1d",
      "90m",
      "61s",
    ]);
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

  it("reads ISO dates by the calendar, with the zone a time names", () => {
    expect(parseInstant("2030-01-01T02:00:00+02:00", NOW)).toBe(1_893_456_000);
    expect(parseInstant("2029-12-31T19:00-0500", NOW)).toBe(1_893_456_000);
    expect(parseInstant("2030-01-01 00:00:00.999Z", NOW)).toBe(1_893_456_000);
    expect(parseInstant("2028-02-29", NOW)).toBe(1_835_395_200);
    expect(isoSeconds("2030-01-01T00:00:00Z")).toBe(1_893_456_000);
    // Each of these Date.parse reads as some instant: another day, local time, or a year 1900s.
    for (const text of [
      "2030-02-31",
      "2029-02-29",
      "2030-04-31",
      "2030-00-10",
      "2030-13-01",
      "2030-01-00",
      "2030-01-01T24:00:00Z",
      "2030-01-01T12:60:00Z",
      "2030-01-01T12:00:61Z",
      "2030-01-01T12:00:00",
      "2030-01-01T12:00",
      "2030-01-01T12:00:00+24:00",
      "2030-01-01T12:00:00+02:60",
      "1969-12-31",
      "0099-01-01",
      "2030-1-1",
      " 2030-01-01",
      "2030-01-01Z",
    ]) {
      expect(isoSeconds(text), text).toBeUndefined();
      if (text.trim() === text)
        expect(() => parseInstant(text, NOW, "--expires"), text).toThrow(UsageError);
    }
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
    expect(
      mergeRates([
        parseRate("100k-tokens/1h"),
        parseRate("60-requests/1h"),
        parseRate("1M-tokens/1d"),
      ]),
    ).toEqual([
      { seconds: 3600, tokens: 100_000, requests: 60 },
      { seconds: 86_400, tokens: 1_000_000 },
    ]);
    expect(() => mergeRates([parseRate("1k-tokens/1h"), parseRate("2k-tokens/1h")])).toThrow(
      /two tokens limits/,
    );
  });

  it("formats a window as it is typed", () => {
    expect(formatRate({ seconds: 3600, tokens: 100_000, requests: 60 })).toBe(
      "100k-tokens/1h + 60-requests/1h",
    );
  });
});

describe("providers", () => {
  it("reads names with optional caps", () => {
    expect(parseProviders("openai,anthropic:usd=20:tokens=100k")).toEqual([
      { name: "openai" },
      { name: "anthropic", usdMicros: 20_000_000, tokens: 100_000 },
    ]);
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
    expect(parseGrantInput({ usd: 2.5, tokens: 50_000 }, NOW)).toEqual({
      usdMicros: 2_500_000,
      tokens: 50_000,
    });
  });

  it("names the flag in every refusal", () => {
    expect(() => parseGrantInput({ tools: "bad pattern" }, NOW)).toThrow(
      /^--tools: "bad pattern" is not a valid tool/,
    );
    expect(() => parseGrantInput({ depth: "300" }, NOW)).toThrow(/^--depth: at most 255/);
    expect(() => parseGrantInput({ expires: "1h", nbf: "2h" }, NOW)).toThrow(
      /--nbf must be before --expires/,
    );
    expect(() => parseGrantInput({ colour: "red" }, NOW)).toThrow(UsageError);
  });
});

describe("hostile numbers are usage errors, never rounded or wrapped", () => {
  it.each([
    "NaN",
    "Infinity",
    "-Infinity",
    "-1",
    "-0.01",
    "1e400",
    "1e3",
    "0x10",
    "9007199254.740992",
    "0.0000001",
    "1/2",
  ])("--usd %s", (text) => {
    expect(() => parseUsd(text, "--usd")).toThrow(UsageError);
    expect(() => parseUsd(text, "--usd")).toThrow(/^--usd: /);
  });

  it("names the largest amount in dollars, the unit that was typed", () => {
    expect(() => parseUsd("9007199254.740992", "--usd")).toThrow(
      '--usd: "9007199254.740992" is too large (the most is $9,007,199,254.740991)',
    );
  });

  it.each([
    "NaN",
    "Infinity",
    "-1",
    "1.5",
    "1e400",
    "9007199254740992",
    "9007199254.740992k",
    "99999999999999999999B",
  ])("--tokens %s", (text) => {
    expect(() => parseCount(text, "--tokens")).toThrow(/^--tokens: /);
  });

  it("accepts every amount up to 2^53 - 1 exactly, and refuses one more", () => {
    expect(parseCount("9007199254740991")).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => parseCount("9007199254740992")).toThrow(/too large/);
    expect(parseUsd("9007199254.740991")).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("refuses a duration past 2^53 - 1 seconds as too large, not as 'not positive'", () => {
    expect(() => parseDuration("9999999999999999d", "--expires")).toThrow(
      /^--expires: "9999999999999999d" is too large/,
    );
    expect(() => parseDuration("99999999999999999999999s")).toThrow(/too large/);
  });

  it("refuses an instant before the epoch or past 2^53 - 1 seconds", () => {
    expect(() => parseInstant("-9999999999d", NOW, "--expires")).toThrow(
      /^--expires: "-9999999999d" is before 1970/,
    );
    expect(() => parseInstant("+104249991374d", NOW, "--expires")).toThrow(
      /^--expires: "\+104249991374d" is too large/,
    );
    expect(() => parseInstant("99999999999999999999", NOW, "--expires")).toThrow(
      /^--expires: 99999999999999999999 looks like milliseconds or a finer unit/,
    );
    expect(parseInstant(`-${NOW}s`, NOW)).toBe(0);
  });

  it("refuses numbers from JSON clients that are not exact amounts", () => {
    for (const input of [
      { usd: -1 },
      { usd: 1e21 },
      { usd: 1e-7 },
      { tokens: 1.5 },
      { tokens: -5 },
      { tokens: 2 ** 53 },
      { tokens: Number.NaN },
      { risk: Number.POSITIVE_INFINITY },
      { depth: 0.5 },
    ]) {
      expect(() => parseGrantInput(input, NOW)).toThrow(UsageError);
    }
  });
});

describe("hostile numbers on the command line", () => {
  it.each([
    ["--usd", "NaN"],
    ["--usd", "Infinity"],
    ["--usd", "-1"],
    ["--usd", "9007199254.740992"],
    ["--tokens", "1e400"],
    ["--tokens", "NaN"],
    ["--tokens", "9007199254740992"],
    ["--risk", "-5"],
    ["--expires", "-9999999999d"],
    ["--expires", "9999999999999999d"],
  ])("mint %s %s is a usage error (exit 2) in one line naming the flag", (flag, value) => {
    // A flag is taken once: --expires under test replaces the usual one.
    const args = [
      "mint",
      "--key",
      "root.jwk",
      "--to",
      "agent.pub.jwk",
      ...(flag === "--expires" ? [] : ["--expires", "1h"]),
      flag,
      value,
    ];
    expectFailure(allowance(args), 2, new RegExp(`^allowance: ${flag}: `));
  });
});

describe("thousands separators: only between complete groups of three", () => {
  it.each([
    ["1,000", 1_000],
    ["1_000", 1_000],
    ["12_345_678", 12_345_678],
    ["999,999,999", 999_999_999],
    ["1,000.5k", 1_000_500],
    ["9,007,199,254,740,991", Number.MAX_SAFE_INTEGER],
  ])("count %s is %i", (text, count) => {
    expect(parseCount(text)).toBe(count);
  });

  it.each([
    ["1,000", 1_000_000_000],
    ["$1,000.50", 1_000_500_000],
    ["12_345.678901", 12_345_678_901],
  ])("usd %s is %i micro-dollars", (text, micros) => {
    expect(parseUsd(text)).toBe(micros);
  });

  it.each([
    ["--usd", "2,50", /^--usd: "2,50": a comma only separates thousands; write 2\.50$/],
    ["--usd", "1,5", /a comma only separates thousands; write 1\.5$/],
    ["--usd", "$0,25", /write \$0\.25$/],
    ["--tokens", "1,5M", /^--tokens: "1,5M": a comma only separates thousands; write 1\.5M$/],
    ["--tokens", "1,5", /a comma only separates thousands in complete groups of three/],
    ["--tokens", "1,2,3", /a comma only separates thousands in complete groups/],
    ["--tokens", ",100", /a comma only separates thousands/],
    ["--tokens", "100,", /a comma only separates thousands/],
    ["--tokens", "1,,000", /a comma only separates thousands/],
    ["--tokens", "1,0000", /a comma only separates thousands/],
    ["--tokens", "1000,000", /a comma only separates thousands/],
    ["--tokens", "1_0", /an underscore only separates thousands in complete groups/],
    ["--tokens", "1__000", /an underscore only separates thousands/],
    ["--tokens", "_1000", /an underscore only separates thousands/],
    ["--usd", "1_5", /^--usd: "1_5": an underscore only separates thousands/],
    ["--tokens", "1,000_000", /mixes , and _/],
    ["--usd", "1_000,000", /mixes , and _/],
  ])("%s %s is refused, saying why", (what, text, message) => {
    const parse = what === "--usd" ? parseUsd : parseCount;
    expect(() => parse(text, what)).toThrow(UsageError);
    expect(() => parse(text, what)).toThrow(message);
  });

  it.each(["0x10", "1e3", "1,000x", "1.2.3", "99999999999999999999999999,000"])(
    "refuses %j as an amount, separators or not",
    (text) => {
      expect(() => parseCount(text, "--tokens")).toThrow(/^--tokens: /);
      expect(() => parseUsd(text, "--usd")).toThrow(/^--usd: /);
    },
  );

  it("holds for every amount: a grouped amount is its digits, anything else is refused", () => {
    fc.assert(
      fc.property(fc.maxSafeInteger(), fc.constantFrom(",", "_"), (n, sep) => {
        const n0 = Math.abs(n);
        return parseCount(groupDigits(n0).replaceAll(",", sep)) === n0;
      }),
      { numRuns: 300 },
    );
    // Digits with separators put at random: accepted only when the first group is one to three
    // digits not led by 0 and every group after it has three.
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^\d{0,5}$/), { minLength: 2, maxLength: 5 }),
        fc.constantFrom(",", "_"),
        (groups, sep) => {
          const text = groups.join(sep);
          const valid =
            groups[0] !== undefined &&
            /^[1-9]\d{0,2}$/.test(groups[0]) &&
            groups.slice(1).every((g) => /^\d{3}$/.test(g));
          let parsed: number | undefined;
          try {
            parsed = parseCount(text);
          } catch (error) {
            if (!(error instanceof UsageError)) throw error;
          }
          return valid ? parsed === Number(groups.join("")) : parsed === undefined;
        },
      ),
      { numRuns: 500 },
    );
  });

  it("reads a head of 0 before a separator as a decimal comma, not thousands: 0,500 is refused", () => {
    for (const text of ["0,500", "000,500", "0_500", "00,000"])
      expect(() => parseUsd(text, "--usd"), text).toThrow(UsageError);
    expect(() => parseUsd("0,500", "--usd")).toThrow(/write 0\.500/);
    expect(() => parseCount("0,500k")).toThrow(UsageError);
    expect(parseUsd("1,000", "--usd")).toBe(1_000_000_000);
  });

  it("refuses a provider named by the rest of an amount, whatever caps follow it", () => {
    for (const text of [
      "openai:tokens=1,000:usd=5",
      "openai:usd=2,50:tokens=1M",
      "openai:usd=1,5",
      "anthropic:usd=1,000:tokens=5k,openai",
    ])
      expect(() => parseProviders(text), text).toThrow(/a comma separates providers/);
    expect(parseProviders("openai:usd=5,anthropic:tokens=1k")).toHaveLength(2);
  });

  it("refuses the same misreadings in rate windows, provider caps and grant options", () => {
    expect(() => parseRate("1,5-usd/1h")).toThrow(/^--rate: "1,5": a comma only separates/);
    expect(() => parseRate("1_0-tokens/1h")).toThrow(/an underscore only separates/);
    expect(parseRate("1,000-requests/1h")).toEqual({ seconds: 3600, requests: 1_000 });
    expect(() => parseProviders("openai:usd=1_5")).toThrow(
      /^--providers openai:usd: "1_5": an underscore only separates thousands/,
    );
    // The list splits on commas first: the rest of the amount would be a provider named "5".
    for (const text of ["openai:usd=1,5", "openai:usd=1,000", "openai:tokens=1,500k"])
      expect(() => parseProviders(text), text).toThrow(/a comma separates providers/);
    expect(parseProviders("openai:usd=1_000,anthropic")).toEqual([
      { name: "openai", usdMicros: 1_000_000_000 },
      { name: "anthropic" },
    ]);
    // A provider named by digits is still a name where it cannot be an amount's rest.
    expect(parseProviders("5,openai:usd=1")).toEqual([
      { name: "5" },
      { name: "openai", usdMicros: 1_000_000 },
    ]);
    expect(() => parseGrantInput({ usd: "2,50" }, NOW)).toThrow(/write 2\.50/);
    expect(() => parseGrantInput({ tokens: "1,5M" }, NOW)).toThrow(/write 1\.5M/);
  });
});

describe("epoch seconds: digits from 10^11 on are milliseconds typed for seconds", () => {
  it("accepts up to 10^11 - 1 and refuses 10^11, naming milliseconds and the seconds meant", () => {
    expect(parseInstant("99999999999", NOW)).toBe(99_999_999_999);
    expect(parseEpochSeconds("99999999999")).toBe(MAX_TYPED_EPOCH_SECONDS);
    expect(() => parseInstant("100000000000", NOW, "--expires")).toThrow(
      /^--expires: 100000000000 looks like milliseconds; epoch seconds are 10 digits today \(the most is 99999999999\); in seconds that is 100000000$/,
    );
    expect(() => parseInstant("1796478709955", NOW, "--at")).toThrow(
      "--at: 1796478709955 looks like milliseconds; epoch seconds are 10 digits today (the most is 99999999999); in seconds that is 1796478709",
    );
  });

  it.each([
    "100000000000",
    "1796478709955",
    "99999999999999",
    "1796478709955000",
    String(Number.MAX_SAFE_INTEGER),
    "9".repeat(400),
    "0001796478709955",
  ])("refuses %s as epoch seconds, wherever an instant is read", (text) => {
    expect(() => parseInstant(text, NOW, "--expires")).toThrow(UsageError);
    expect(() => parseInstant(text, NOW, "--expires")).toThrow(/looks like milliseconds/);
    expect(() => parseEpochSeconds(text, "--since")).toThrow(/^--since: /);
    expect(() => parseGrantInput({ expires: text }, NOW)).toThrow(/^--expires: .*milliseconds/);
    expect(() => parseGrantInput({ nbf: text }, NOW)).toThrow(/^--nbf: .*milliseconds/);
  });

  it("agrees with the bound for every value: below it the seconds typed, from it a refusal", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 100_000_000n, max: 10n ** 20n }), (value) => {
        const text = String(value);
        if (value <= BigInt(MAX_TYPED_EPOCH_SECONDS))
          return parseInstant(text, NOW) === Number(value);
        try {
          parseInstant(text, NOW);
          return false;
        } catch (error) {
          return error instanceof UsageError && /looks like milliseconds/.test(error.message);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("still reaches any instant up to 2^53 - 1 as a duration from now, which says what it means", () => {
    const days = Math.floor((Number.MAX_SAFE_INTEGER - NOW) / 86_400);
    expect(parseInstant(`+${days}d`, NOW)).toBe(NOW + days * 86_400);
    expect(() => parseEpochSeconds("12a", "--since")).toThrow(/expected epoch seconds/);
  });
});

describe("instants past what a Date holds", () => {
  it("formats every instant the format allows, as epoch seconds where a Date cannot hold it", () => {
    expect(formatInstant(0)).toBe("1970-01-01T00:00:00Z");
    expect(formatInstant(1_893_456_000)).toBe("2030-01-01T00:00:00Z");
    expect(formatInstant(8_640_000_000_000)).toBe("+275760-09-13T00:00:00Z");
    expect(formatInstant(8_640_000_000_001)).toBe("epoch 8640000000001 s");
    expect(formatInstant(Number.MAX_SAFE_INTEGER)).toBe("epoch 9007199254740991 s");
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (seconds) => {
        const text = formatInstant(seconds);
        return seconds <= 8_640_000_000_000
          ? Date.parse(text) === seconds * 1000
          : text === `epoch ${seconds} s`;
      }),
      { numRuns: 500 },
    );
  });

  it("describes a grant whose expiry is 2^53 - 1 without throwing", () => {
    const lines = describeGrant({ exp: Number.MAX_SAFE_INTEGER, nbf: 9e15 }, NOW);
    expect(lines[0]).toBe(
      `expires epoch 9007199254740991 s (in about ${Math.floor((Number.MAX_SAFE_INTEGER - NOW) / 31_557_600).toLocaleString("en-US")} years)`,
    );
    expect(lines[1]).toBe("not before epoch 9000000000000000 s");
  });
});

describe("how far away an expiry is", () => {
  it.each([
    [1, "in 1s"],
    [59, "in 59s"],
    [60, "in 1m"],
    [3600, "in 1h"],
    [3660, "in 1h 1m"],
    [47 * 3600 + 59 * 60, "in 47h 59m"],
    [48 * 3600, "in 2d"],
    [50 * 3600 + 59, "in 2d 2h"],
    [999 * 86_400 + 23 * 3600, "in 999d 23h"],
    [1000 * 86_400, "in about 2 years"],
    [31_557_600 * 1234, "in about 1,234 years"],
    [0, "expired 1s ago"],
    [-90, "expired 90s ago"],
    [-7200, "expired 2h ago"],
  ])("%d s reads %s", (seconds, text) => {
    expect(relative(seconds)).toBe(text);
  });
});

describe("provider caps: each once, as key=value", () => {
  it.each([
    ["openai:usd=5:usd=500", /^--providers: "openai:usd=5:usd=500" gives openai:usd twice/],
    ["openai:tokens=1k:tokens=1M", /gives openai:tokens twice/],
    ["openai:usd=5:tokens=1k:usd=5", /gives openai:usd twice/],
    ["anthropic,openai:usd=1:usd=1", /gives openai:usd twice/],
    ["openai:usd=5=500", /^--providers: "usd=5=500" in "openai:usd=5=500" has more than one "="/],
    ["openai:tokens==1k", /has more than one "="/],
    ["openai:usd=5:tokens=1=2", /"tokens=1=2" .* has more than one "="/],
    ["openai:=5", /expected openai:usd=<dollars>/],
    ["openai:usd", /expected openai:usd=<dollars>/],
    ["openai:", /expected openai:usd=<dollars>/],
    ["openai:usd=", /^--providers openai:usd: expected dollars/],
  ])("refuses %s", (text, message) => {
    expect(() => parseProviders(text)).toThrow(UsageError);
    expect(() => parseProviders(text)).toThrow(message);
  });

  it("still reads each cap given once, in either order", () => {
    expect(parseProviders("openai:tokens=1k:usd=5,anthropic:usd=2")).toEqual([
      { name: "openai", tokens: 1_000, usdMicros: 5_000_000 },
      { name: "anthropic", usdMicros: 2_000_000 },
    ]);
  });
});
