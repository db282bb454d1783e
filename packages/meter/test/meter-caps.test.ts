/**
 * Hard caps: the meter reserves an upper bound and writes the output maximum on the request, so a
 * provider that bills within the documented bounds never takes a link past its cap, and no commit
 * is an overrun.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_PRICING, Pricing, type ModelPrice, type ProviderAdapter } from "@allowance/meter";
import { BUILTIN_ADAPTERS } from "@allowance/meter/adapters";
import { MockLlm, metered, mockLlmPerTest, post, type MockUsage } from "./meter-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

/** A one-message chat call to the mock: gpt-4o-mini, "Say hello", and any other fields given. */
const hello = (fetch: typeof globalThis.fetch, fields: Record<string, unknown> = {}) =>
  post(fetch, `${mock.url}/v1/chat/completions`, {
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "Say hello" }],
    ...fields,
  });

/** Worst case within the stated bounds: every prompt byte a token, framing at OpenAI's 4 per message + 3, and the whole output maximum. */
function worstCase(path: string, body: Record<string, unknown>): MockUsage {
  const messages = Array.isArray(body.messages)
    ? (body.messages as { role: string; content: string }[])
    : [];
  const bytes =
    messages.reduce((sum, m) => sum + Buffer.byteLength(m.role) + Buffer.byteLength(m.content), 0) +
    Buffer.byteLength(typeof body.system === "string" ? body.system : "");
  const output = path.endsWith("/v1/messages")
    ? (body.max_tokens as number)
    : ((body.max_completion_tokens ?? body.max_tokens) as number);
  return { input: bytes + 4 * messages.length + 3, output, cached: 0, cacheWrite: 0 };
}

const message = fc.record({
  role: fc.constantFrom("user", "assistant"),
  content: fc.string({ unit: "grapheme", maxLength: 200 }),
});
const call = fc.record({
  anthropic: fc.boolean(),
  messages: fc.array(message, { minLength: 1, maxLength: 5 }),
  maxTokens: fc.option(fc.integer({ min: 1, max: 8000 }), { nil: undefined }),
});

describe("hard caps", () => {
  it("law: a provider billing the worst case within the bounds never takes the agent past its cap, and no commit is an overrun", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1_000, max: 200_000 }),
        fc.array(call, { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        async (capUsdMicros, calls, acceptCaps) => {
          mock.received.length = 0;
          mock.usageFor = worstCase;
          const m = await metered(
            { child: { usdMicros: capUsdMicros, tokens: 40_000 } },
            { acceptCaps, loop: false },
          );
          const overruns: unknown[] = [];
          m.enforcer.on("overrun", (o) => overruns.push(o));
          for (const c of calls) {
            const body = c.anthropic
              ? {
                  model: "claude-haiku-4-5",
                  messages: c.messages,
                  ...(c.maxTokens === undefined ? {} : { max_tokens: c.maxTokens }),
                }
              : {
                  model: "gpt-4o-mini",
                  messages: c.messages,
                  ...(c.maxTokens === undefined ? {} : { max_tokens: c.maxTokens }),
                };
            const response = await post(
              m.fetch,
              `${mock.url}${c.anthropic ? "/v1/messages" : "/v1/chat/completions"}`,
              body,
            );
            await response.arrayBuffer();
            expect([200, 402]).toContain(response.status);
          }
          const spent = await m.ledger();
          expect(overruns).toEqual([]);
          expect(spent.usdMicros).toBeLessThanOrEqual(capUsdMicros);
          expect(spent.tokens).toBeLessThanOrEqual(40_000);
          expect(spent.heldUsdMicros).toBe(0);
          // Every request that reached the provider carried an output maximum.
          for (const r of mock.received)
            expect(r.body.max_tokens ?? r.body.max_completion_tokens).toEqual(expect.any(Number));
        },
      ),
      { numRuns: 25 },
    );
  });

  it("writes the default maximum (4096) on a request that sets none, and reserves it", async () => {
    const m = await metered();
    let held = 0;
    m.enforcer.on("reserved", ({ amounts }) => (held = amounts.tokens));
    await (await hello(m.fetch)).arrayBuffer();
    expect(mock.received[0]?.body.max_completion_tokens).toBe(4096);
    expect(held).toBe(37 + 4096);
  });

  it("charges the hold when a caller's adapter reads usage with a field the meter does not know", async () => {
    const chat = BUILTIN_ADAPTERS.find(
      (a) => a.endpoint === "openai.chat.completions",
    ) as ProviderAdapter;
    // Asked before the built-in adapters, reading the cached tokens under a misspelt name: priced
    // as read, the 1,000 cached tokens would go uncharged.
    const gateway: ProviderAdapter = {
      ...chat,
      match: (url) => url.pathname === "/v1/chat/completions",
      usageFromJson: () => ({ inputTokens: 10, outputTokens: 5, cachedTokens: 1000 }) as never,
    };
    const m = await metered({}, { providers: [gateway] });
    let held = 0;
    m.enforcer.on("reserved", ({ amounts }) => (held = amounts.tokens));
    await (
      await hello(m.fetch, {
        max_tokens: 10,
      })
    ).arrayBuffer();
    expect(held).toBeGreaterThan(15);
    expect((await m.ledger()).tokens).toBe(held);
  });

  it("checks a price a Pricing subclass makes up, as it checks a caller's: a negative rate is no credit", async () => {
    class Discounted extends Pricing {
      override lookup(provider: string, model: string): ModelPrice | undefined {
        const price = super.lookup(provider, model);
        return price === undefined ? undefined : { ...price, cachedInputPerMTok: -1_000_000 };
      }
    }
    const m = await metered({}, { pricing: new Discounted(DEFAULT_PRICING) });
    await expect(hello(m.fetch)).rejects.toThrow(TypeError);
    expect(mock.received).toHaveLength(0);
  });

  it("lowers a maximum above what the caps allow, with acceptCaps", async () => {
    const m = await metered({ child: { tokens: 500 } }, { acceptCaps: true });
    await (
      await hello(m.fetch, {
        max_completion_tokens: 10_000,
      })
    ).arrayBuffer();
    expect(mock.received[0]?.body.max_completion_tokens).toBe(500 - 37);
  });

  it("divides the output maximum among n choices", async () => {
    const m = await metered({ child: { tokens: 337 } }, { acceptCaps: true });
    await (
      await hello(m.fetch, {
        n: 3,
        max_tokens: 1000,
      })
    ).arrayBuffer();
    expect(mock.received[0]?.body.max_tokens).toBe(100);
  });

  it("keeps Anthropic's thinking budget below the lowered max_tokens", async () => {
    const m = await metered({ child: { tokens: 3_037 } }, { acceptCaps: true });
    await (
      await post(m.fetch, `${mock.url}/v1/messages`, {
        model: "claude-sonnet-4-5",
        max_tokens: 8000,
        thinking: { type: "enabled", budget_tokens: 5000 },
        messages: [{ role: "user", content: "Say hello" }],
      })
    ).arrayBuffer();
    expect(mock.received[0]?.body).toMatchObject({
      max_tokens: 3000,
      thinking: { type: "enabled", budget_tokens: 2999 },
    });
  });

  it("charges what the provider reports above a bound, as an overrun the enforcer records (never dropped)", async () => {
    const m = await metered();
    const overruns: { kind: string }[] = [];
    m.enforcer.on("overrun", (o) => overruns.push(o));
    // A provider that reports more than the bound allows (an unbounded case: e.g. tool results fed back as input).
    mock.usage = { input: 1_000_000, output: 10, cached: 0, cacheWrite: 0 };
    await (
      await hello(m.fetch, {
        max_tokens: 10,
      })
    ).arrayBuffer();
    expect((await m.ledger()).tokens).toBe(1_000_010);
    expect(overruns.map((o) => o.kind).sort()).toEqual(["tokens", "usdMicros"]);
  });

  it("rejects hostile option values with a TypeError or RangeError", async () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      await expect(metered({}, { defaultMaxOutputTokens: bad })).rejects.toThrow(RangeError);
      await expect(metered({}, { defaultMaxToolCalls: bad })).rejects.toThrow(RangeError);
    }
    // null is not "the default", a misspelt option is not ignored, a callback is a function.
    for (const bad of [null, "4096", 4096n])
      for (const name of ["defaultMaxOutputTokens", "defaultMaxToolCalls"] as const)
        await expect(metered({}, { [name]: bad as unknown as number }), name).rejects.toThrow(
          TypeError,
        );
    for (const bad of [
      { onDeny: 5 },
      { onError: "log" },
      { allowUnmetered: true },
      { acceptCaps: "yes" },
      { tool: 42 },
      { tool: "" },
      { abandonedStreams: "release" },
      { ttlSeconds: 60 },
      // null is not "the default" for any option.
      { bound: null },
      { unmatched: null },
      { abandonedStream: null },
      { pricing: null },
      { providers: null },
      { azure: null },
    ])
      await expect(metered({}, bad as never), JSON.stringify(bad)).rejects.toThrow(TypeError);
    // A hold's ttl: more than 0 and at most the enforcer's 7 days; null is not "the default".
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 604_801])
      await expect(metered({}, { ttl: bad })).rejects.toThrow(RangeError);
    for (const bad of [null, "300", 300n])
      await expect(metered({}, { ttl: bad as unknown as number })).rejects.toThrow(TypeError);
    await expect(metered({}, { bound: "soft" as "hard" })).rejects.toThrow(TypeError);
    await expect(metered({}, { unmatched: "allow" as "pass" })).rejects.toThrow(TypeError);
    await expect(metered({}, { abandonedStream: "free" as "release" })).rejects.toThrow(TypeError);
    await expect(
      metered({}, { azure: { deployments: { d: 42 as unknown as string } } }),
    ).rejects.toThrow(TypeError);
  });
});

describe("a key given twice in the JSON text, or spelt with an escape", () => {
  /** Sends `text` as it is to Anthropic's path through a fresh meter; the text the mock received. */
  const sent = async (text: string): Promise<string | undefined> => {
    const m = await metered();
    await (
      await m.fetch(`${mock.url}/v1/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: text,
      })
    ).arrayBuffer();
    return mock.receivedText[0];
  };

  it("is sent re-serialised, so the provider sees the limit the hold was sized for", async () => {
    const text =
      '{"model":"claude-haiku-4-5","max_tokens":100000,"messages":[{"role":"user","content":"hi"}],"max_tokens":10}';
    const received = await sent(text);
    expect(received).toBe(JSON.stringify(JSON.parse(text)));
    expect(received?.match(/max_tokens/g)).toHaveLength(1);
  });

  it.each([
    [
      "a limit spelt with an escape",
      '{"model":"claude-haiku-4-5","max_tokens":100000,"messages":[{"role":"user","content":"hi"}],"max\\u005ftokens":10}',
    ],
    [
      "the model given twice",
      '{"model":"claude-opus-4-1","model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}',
    ],
    [
      "the messages given twice",
      `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"${"x".repeat(5000)}"}],"messages":[{"role":"user","content":"hi"}]}`,
    ],
    [
      "the system prompt given twice",
      `{"model":"claude-haiku-4-5","max_tokens":10,"system":"${"x".repeat(5000)}","system":"be brief","messages":[{"role":"user","content":"hi"}]}`,
    ],
  ])("%s: sent as the meter parsed it", async (_name, text) => {
    expect(await sent(text)).toBe(JSON.stringify(JSON.parse(text)));
  });

  it("a request with no key twice and no escape is sent as it was written", async () => {
    const text =
      '{"model":"claude-haiku-4-5", "max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}';
    expect(await sent(text)).toBe(text);
  });
});
