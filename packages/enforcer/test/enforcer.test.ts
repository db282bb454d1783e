import { describe, expect, it } from "vitest";
import { Enforcer, MAX_TTL_SECONDS, MemoryLedger } from "@allowance/enforcer";
// The denial sentences are the enforcer's own wording, tested here without being public API.
import { describeBudgetDenial, formatUsdMicros } from "../src/enforcer.js";
import { family } from "../../../test/support/ledger-suite.js";

describe("the enforcer's own arguments", () => {
  it("regression: a misspelt request key held nothing, a misspelt idempotency key held twice; both are refused", async () => {
    const { children } = await family({ usdMicros: 1_000_000 }, [{}]);
    const chain = children[0]!;
    const enforcer = new Enforcer();
    const misspelt = [
      { chain, usd: 5_000_000 },
      { chain, usdMicro: 5_000_000 },
      { chain, Tool: "x" },
    ];
    for (const request of misspelt) {
      const name = JSON.stringify(Object.keys(request).slice(1));
      await expect(enforcer.reserve(request as never), name).rejects.toThrow(/"request" takes/);
      expect(() => enforcer.reserveSync(request as never), name).toThrow(TypeError);
      await expect(enforcer.check(request as never), name).rejects.toThrow(TypeError);
      expect(() => enforcer.checkSync(request as never), name).toThrow(TypeError);
    }
    for (const options of [{ idempotencykey: "k1" }, { TTL: 60 }, { ttl: 60, key: "k" }])
      await expect(
        enforcer.reserve({ chain, usdMicros: 600_000 }, options as never),
        JSON.stringify(options),
      ).rejects.toThrow(/"options" takes ttl, idempotencyKey/);
    // Nothing was held by any of them.
    expect(
      (await enforcer.remaining(chain)).links[0]?.limits.find((l) => l.field === "usdMicros"),
    ).toMatchObject({ held: 0, spent: 0 });
  });

  it("regression: a TTL of 1e9, 1e20 or 1e300 seconds was accepted; at most 7 days now", async () => {
    const { children } = await family({ usdMicros: 100 }, [{}]);
    const chain = children[0]!;
    const enforcer = new Enforcer();
    for (const ttl of [
      1e9,
      1e20,
      1e300,
      MAX_TTL_SECONDS + 1,
      0,
      -1,
      Number.NaN,
      Number.POSITIVE_INFINITY,
    ]) {
      await expect(enforcer.reserve({ chain, usdMicros: 1 }, { ttl }), String(ttl)).rejects.toThrow(
        RangeError,
      );
    }
    await expect(
      enforcer.reserve({ chain, usdMicros: 1 }, { ttl: "60" as unknown as number }),
    ).rejects.toThrow(TypeError);
    await expect(
      enforcer.reserve({ chain, usdMicros: 1 }, { ttl: null as unknown as number }),
    ).rejects.toThrow(TypeError);
    const longest = await enforcer.reserve({ chain, usdMicros: 1 }, { ttl: MAX_TTL_SECONDS });
    expect(longest).toMatchObject({ decision: "ALLOW" });
    expect(
      (await enforcer.remaining(chain)).links[0]?.limits.find((l) => l.field === "usdMicros"),
    ).toMatchObject({ held: 1 });
  });

  it("regression: minTokens -5, model {} and tool 42 were accepted; each is refused, naming the argument", async () => {
    const { children } = await family({ usdMicros: 100, tokens: 100 }, [{}]);
    const chain = children[0]!;
    const enforcer = new Enforcer();
    await expect(
      enforcer.reserve({ chain, tokens: 500, acceptCaps: { minTokens: -5 } }),
    ).rejects.toThrow(/"acceptCaps.minTokens".*-5/);
    await expect(
      enforcer.reserve({ chain, usdMicros: 500, acceptCaps: { minUsdMicros: 0.5 } }),
    ).rejects.toThrow(RangeError);
    await expect(
      enforcer.reserve({ chain, tokens: 5, acceptCaps: { minimum: 1 } as never }),
    ).rejects.toThrow(/"acceptCaps" takes minTokens and minUsdMicros/);
    await expect(
      enforcer.reserve({ chain, tokens: 5, model: {} as unknown as string }),
    ).rejects.toThrow(/"model" expected a string/);
    await expect(
      enforcer.reserve({ chain, tokens: 5, tool: 42 as unknown as string }),
    ).rejects.toThrow(/"tool" expected a string, got 42/);
    await expect(enforcer.reserve({ chain, tokens: 5, provider: "" })).rejects.toThrow(RangeError);
    await expect(enforcer.reserve({ chain, tokens: "5" as unknown as number })).rejects.toThrow(
      /"tokens" expected an integer amount, got "5"/,
    );
    await expect(enforcer.reserve({ chain, risk: 1.5 })).rejects.toThrow(/"risk"/);
    expect((await enforcer.remaining(chain)).links[0]?.limits.every((l) => l.held === 0)).toBe(
      true,
    );
  });

  it("refuses a clock that returns NaN, and options that are not an Enforcer's", async () => {
    const { children } = await family({ usdMicros: 100 }, [{}]);
    const enforcer = new Enforcer({ now: () => Number.NaN });
    await expect(enforcer.reserve({ chain: children[0]!, usdMicros: 1 })).rejects.toThrow(
      /"now\(\)"/,
    );
    expect(() => new Enforcer({ ledger: {} as never })).toThrow(TypeError);
    expect(() => new Enforcer({ now: 5 as never })).toThrow(TypeError);
    expect(() => new Enforcer({ policy: { tools: null } as never })).toThrow(TypeError);
    expect(() => new Enforcer({ policy: { tools: { send_email: Number.NaN } } })).toThrow(
      /invalid risk policy: tools.send_email/,
    );
    expect(() => new Enforcer({ policy: { tools: {}, default: -1 } })).toThrow(TypeError);
    expect(() => new Enforcer({ ledger: new MemoryLedger() })).not.toThrow();
    expect(() => new Enforcer().reportProviderStatus({} as never)).toThrow(TypeError);
    // A misspelt ledger left the enforcer on a fresh memory ledger of its own, silently.
    expect(() => new Enforcer({ ledgr: new MemoryLedger() } as never)).toThrow(
      /unknown option "ledgr"/,
    );
    expect(() => new Enforcer({ overages: "block" } as never)).toThrow(TypeError);
  });
});

describe("denials a person can read", () => {
  it("formats money with two decimals from $0.01 on, and more digits only when needed", () => {
    const vectors: [number, string][] = [
      [0, "$0.00"],
      [1, "$0.000001"],
      [10_000, "$0.01"],
      [10_001, "$0.010001"],
      [1_500_000, "$1.50"],
      [1_234_567, "$1.234567"],
      [1_000_000_000, "$1,000.00"],
      [Number.MAX_SAFE_INTEGER, "$9,007,199,254.740991"],
    ];
    for (const [micros, text] of vectors) expect(formatUsdMicros(micros)).toBe(text);
  });

  it("names the provider of a provider cap, and the window and wait of a rate limit", () => {
    expect(
      describeBudgetDenial({
        kind: "usdMicros",
        field: "providers.openai.usdMicros",
        linkIndex: 1,
        leafIndex: 1,
        requested: 500_000,
        available: 200_000,
        limit: 1_000_000,
      }),
    ).toBe(
      "this request needs $0.50, but this agent has $0.20 left of the $1.00 its grant allows for provider openai (link 1, providers.openai.usdMicros)",
    );
    expect(
      describeBudgetDenial({
        kind: "tokens",
        field: "rate.60s.tokens",
        linkIndex: 0,
        leafIndex: 2,
        requested: 900,
        available: 0,
        limit: 5_000,
        retryAfter: 12,
      }),
    ).toBe(
      "this request needs 900 tokens, but this agent has 0 tokens left of the 5,000 per 60s window link 0's grant allows it and every other agent under link 0 (link 0, rate.60s.tokens); retry in 12s",
    );
  });

  it("quotes a name that is not plain, so a hostile tool name cannot forge a log line", async () => {
    const { children } = await family({ usdMicros: 100, tools: ["search.*"] }, [{}]);
    const denial = await new Enforcer().reserve({
      chain: children[0]!,
      tool: "evil\nALLOW everything",
    });
    expect(denial).toMatchObject({
      decision: "DENY",
      reason: "TOOL_NOT_ALLOWED",
      linkIndex: 0,
      field: "tools",
    });
    const detail = (denial as { detail: string }).detail;
    expect(detail).toBe(
      'tool "evil\\nALLOW everything" is not allowed by link 0\'s grant (tools: search.*)',
    );
    expect(detail).not.toContain("\n");
  });

  it("says when an expired grant ended, in UTC", async () => {
    const { children } = await family({ usdMicros: 100 }, [{}]);
    const chain = children[0]!;
    const exp = chain.links[0]!.grant.exp as number;
    const denial = await new Enforcer({ now: () => exp * 1000 }).reserve({ chain, usdMicros: 1 });
    expect(denial).toMatchObject({
      reason: "EXPIRED",
      linkIndex: 0,
      field: "exp",
      detail: `link 0's grant expired at ${new Date(exp * 1000).toISOString().replace(".000Z", "Z")} (link 0, exp)`,
    });
  });
});
