import { describe, expect, it } from "vitest";
import { CircuitBreaker, LoopDetector } from "@allowance/meter";
import { fingerprint } from "../src/loop.js";
import fc from "fast-check";
import { MockLlm, mockLlmPerTest, metered, post } from "./meter-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

class Time {
  ms = 1_000_000;
  readonly now = () => this.ms;
}

const chat = (content = "hi") => ({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content }],
  max_tokens: 10,
});

describe("the circuit breaker", () => {
  it("opens after consecutive 5xx and then denies fast with PROVIDER_OPEN, without calling the provider", async () => {
    const time = new Time();
    const m = await metered(
      {},
      { breaker: { maxConsecutiveFailures: 3, coolDownMs: 10_000, now: time.now }, loop: false },
    );
    const refused: string[] = [];
    m.enforcer.on("refused", (e) => refused.push(`${e.reason}:${e.provider ?? ""}`));
    for (let i = 0; i < 3; i++) mock.script.push({ kind: "error", status: 500 });
    for (let i = 0; i < 3; i++)
      expect((await post(m.fetch, `${mock.url}/v1/chat/completions`, chat())).status).toBe(500);
    expect(m.fetch.breakerState("openai")).toMatchObject({
      state: "open",
      consecutiveFailures: 3,
      serverErrors: 3,
      openUntil: time.ms + 10_000,
      opened: 1,
    });
    const denied = await post(m.fetch, `${mock.url}/v1/chat/completions`, chat());
    expect(denied.status).toBe(403);
    expect(denied.headers.get("retry-after")).toBe("10");
    expect((await denied.json()) as unknown).toMatchObject({
      error: {
        type: "allowance_denied",
        reason: "PROVIDER_OPEN",
        field: "breaker.openai",
        retryAfter: 10,
      },
    });
    expect(mock.count()).toBe(3);
    // The refusal reaches the enforcer's listeners (and so its webhook sink).
    expect(refused).toEqual(["PROVIDER_OPEN:openai"]);
    // The enforcer's remaining() shows it too (and so the MCP get_budget tool of a shared enforcer).
    expect((await m.enforcer.remaining(m.chain)).providers).toEqual({
      openai: { breaker: "open", openUntil: time.ms + 10_000 },
    });
    // Per provider: Anthropic is unaffected.
    expect(m.fetch.breakerState("anthropic").state).toBe("closed");
    expect(
      (
        await post(m.fetch, `${mock.url}/v1/messages`, {
          model: "claude-haiku-4-5",
          max_tokens: 10,
          messages: [{ role: "user", content: "hi" }],
        })
      ).status,
    ).toBe(200);
    expect(await m.ledger()).toMatchObject({ heldTokens: 0, heldUsdMicros: 0 });
  });

  it("opens on too many 429s within the window, and a longer retry-after lengthens the cool-down", async () => {
    const time = new Time();
    const m = await metered(
      {},
      {
        breaker: {
          maxRateLimited: 2,
          maxConsecutiveFailures: 100,
          coolDownMs: 5_000,
          now: time.now,
        },
        loop: false,
      },
    );
    mock.script.push(
      { kind: "error", status: 429, retryAfter: 30 },
      { kind: "error", status: 429, retryAfter: 30 },
    );
    for (let i = 0; i < 2; i++)
      expect((await post(m.fetch, `${mock.url}/v1/chat/completions`, chat())).status).toBe(429);
    expect(m.fetch.breakerState("openai")).toMatchObject({
      state: "open",
      rateLimited: 2,
      openUntil: time.ms + 30_000,
    });
  });

  it("honours a retry-after up to an hour: a year's worth does not shut the provider off for good", async () => {
    const time = new Time();
    const m = await metered(
      {},
      { breaker: { maxRateLimited: 1, coolDownMs: 5_000, now: time.now }, loop: false },
    );
    mock.script.push({ kind: "error", status: 429, retryAfter: 999_999_999 });
    expect((await post(m.fetch, `${mock.url}/v1/chat/completions`, chat())).status).toBe(429);
    expect(m.fetch.breakerState("openai")).toMatchObject({
      state: "open",
      openUntil: time.ms + 3_600_000,
    });
  });

  it("forgets 429s older than the window", async () => {
    const time = new Time();
    const m = await metered(
      {},
      { breaker: { maxRateLimited: 2, windowMs: 1_000, now: time.now }, loop: false },
    );
    mock.script.push({ kind: "error", status: 429 });
    await post(m.fetch, `${mock.url}/v1/chat/completions`, chat());
    time.ms += 1_001;
    await post(m.fetch, `${mock.url}/v1/chat/completions`, chat()); // a success resets the consecutive count
    mock.script.push({ kind: "error", status: 429 });
    await post(m.fetch, `${mock.url}/v1/chat/completions`, chat());
    expect(m.fetch.breakerState("openai")).toMatchObject({ state: "closed", rateLimited: 1 });
  });

  it("does not count a client error (4xx other than 429) as a provider failure", async () => {
    const m = await metered({}, { breaker: { maxConsecutiveFailures: 1 }, loop: false });
    mock.script.push({ kind: "error", status: 400 });
    await post(m.fetch, `${mock.url}/v1/chat/completions`, chat());
    expect(m.fetch.breakerState("openai")).toMatchObject({
      state: "closed",
      consecutiveFailures: 0,
    });
  });

  it("counts network errors, and recovers through half-open: one probe at a time, then closed", async () => {
    const time = new Time();
    let failing = true;
    let gate: Promise<void> = Promise.resolve();
    const inner: typeof fetch = async (input, init) => {
      if (failing) throw new TypeError("fetch failed");
      await gate;
      return fetch(input, init);
    };
    const m = await metered(
      {},
      {
        inner,
        breaker: { maxConsecutiveFailures: 2, coolDownMs: 10_000, now: time.now },
        loop: false,
      },
    );
    for (let i = 0; i < 2; i++)
      await expect(post(m.fetch, `${mock.url}/v1/chat/completions`, chat())).rejects.toThrow(
        "fetch failed",
      );
    expect(m.fetch.breakerState("openai").state).toBe("open");

    time.ms += 10_000;
    expect(m.fetch.breakerState("openai").state).toBe("half-open");
    failing = false;
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    const probe = post(m.fetch, `${mock.url}/v1/chat/completions`, chat("probe"));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const meanwhile = await post(m.fetch, `${mock.url}/v1/chat/completions`, chat("meanwhile"));
    expect((await meanwhile.json()) as unknown).toMatchObject({
      error: { reason: "PROVIDER_OPEN" },
    });
    open();
    expect((await probe).status).toBe(200);
    expect(m.fetch.breakerState("openai")).toMatchObject({
      state: "closed",
      consecutiveFailures: 0,
    });
    expect((await post(m.fetch, `${mock.url}/v1/chat/completions`, chat("after"))).status).toBe(
      200,
    );
    expect(
      mock.received.map((r) => (r.body.messages as { content: string }[])[0]?.content),
    ).toEqual(["probe", "after"]);
  });

  it("opens again when the probe fails", async () => {
    const time = new Time();
    const m = await metered(
      {},
      { breaker: { maxConsecutiveFailures: 1, coolDownMs: 1_000, now: time.now }, loop: false },
    );
    mock.script.push({ kind: "error", status: 503 }, { kind: "error", status: 503 });
    await post(m.fetch, `${mock.url}/v1/chat/completions`, chat());
    time.ms += 1_000;
    expect((await post(m.fetch, `${mock.url}/v1/chat/completions`, chat())).status).toBe(503);
    expect(m.fetch.breakerState("openai")).toMatchObject({
      state: "open",
      opened: 2,
      openUntil: time.ms + 1_000,
    });
    expect(mock.count()).toBe(2);
  });

  it("hands the probe's turn back when the probe is denied before it is sent", async () => {
    const time = new Time();
    const m = await metered(
      { child: { models: ["gpt-4o-mini"] } },
      { breaker: { maxConsecutiveFailures: 1, coolDownMs: 1_000, now: time.now }, loop: false },
    );
    mock.script.push({ kind: "error", status: 500 });
    await post(m.fetch, `${mock.url}/v1/chat/completions`, chat());
    time.ms += 1_000;
    const denied = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      ...chat(),
      model: "gpt-4o",
    });
    expect((await denied.json()) as unknown).toMatchObject({
      error: { reason: "MODEL_NOT_ALLOWED" },
    });
    expect((await post(m.fetch, `${mock.url}/v1/chat/completions`, chat())).status).toBe(200);
    expect(m.fetch.breakerState("openai").state).toBe("closed");
  });

  it("can be shared by several wrapped fetches and lists every provider in a snapshot", async () => {
    const breaker = new CircuitBreaker({ maxConsecutiveFailures: 1 });
    const a = await metered({}, { breaker, loop: false });
    const b = await metered({}, { breaker, loop: false });
    mock.script.push({ kind: "error", status: 500 });
    await post(a.fetch, `${mock.url}/v1/chat/completions`, chat());
    expect(
      (await (await post(b.fetch, `${mock.url}/v1/chat/completions`, chat())).json()) as unknown,
    ).toMatchObject({ error: { reason: "PROVIDER_OPEN" } });
    expect(b.fetch.snapshot().breakers).toMatchObject({ openai: { state: "open" } });
  });
});

describe("loop detection", () => {
  it("denies the sixth identical request within a minute with LOOP_DETECTED, by default", async () => {
    const m = await metered();
    for (let i = 0; i < 5; i++)
      expect((await post(m.fetch, `${mock.url}/v1/chat/completions`, chat())).status).toBe(200);
    const sixth = await post(m.fetch, `${mock.url}/v1/chat/completions`, chat());
    expect(sixth.status).toBe(403);
    expect((await sixth.json()) as unknown).toMatchObject({
      error: { reason: "LOOP_DETECTED", field: "fingerprint" },
    });
    expect(Number(sixth.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(mock.count()).toBe(5);
  });

  it("is not fooled by whitespace or key order", async () => {
    const m = await metered({}, { loop: { maxRepeats: 2 } });
    await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "run the   tests" }],
    });
    await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      messages: [{ content: "  run the tests\n", role: "user" }],
      model: "gpt-4o-mini",
    });
    const third = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "run\tthe tests" }],
    });
    expect((await third.json()) as unknown).toMatchObject({ error: { reason: "LOOP_DETECTED" } });
    expect(mock.count()).toBe(2);
  });

  it("tells different arguments, models and tools apart", async () => {
    const m = await metered({}, { loop: { maxRepeats: 1 } });
    for (const body of [chat("a"), chat("b"), { ...chat("a"), model: "gpt-4o" }])
      expect((await post(m.fetch, `${mock.url}/v1/chat/completions`, body)).status).toBe(200);
    expect(fingerprint({ provider: "openai", model: "m", tool: "x", input: 1 })).not.toBe(
      fingerprint({ provider: "openai", model: "m", tool: "y", input: 1 }),
    );
  });

  it("lets the request through again once the window has passed", async () => {
    const time = new Time();
    const loop = new LoopDetector({ maxRepeats: 2, windowMs: 60_000, now: time.now });
    expect([loop.check("f").ok, loop.check("f").ok, loop.check("f").ok]).toEqual([
      true,
      true,
      false,
    ]);
    time.ms += 59_999;
    expect(loop.check("f")).toEqual({ ok: false, count: 2, retryAfterMs: 1 });
    time.ms += 1;
    expect(loop.check("f")).toEqual({ ok: true, count: 1 });
  });

  it("refuses a clock that is not a time, rather than seeing no repeat or failure ever (and the call is not sent)", async () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, "1" as unknown as number]) {
      const loop = new LoopDetector({ now: () => bad });
      expect(() => loop.check("f"), String(bad)).toThrow(RangeError);
      const breaker = new CircuitBreaker({ now: () => bad });
      expect(() => breaker.record("openai", "server-error", false), String(bad)).toThrow(
        RangeError,
      );
    }
    const m = await metered({}, { loop: { now: () => Number.NaN } });
    await expect(post(m.fetch, `${mock.url}/v1/chat/completions`, chat())).rejects.toThrow(
      RangeError,
    );
    expect(mock.count()).toBe(0);
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });

  it("refuses hostile options rather than reading them as the defaults", () => {
    for (const options of [
      null,
      { windowMs: null },
      { coolDownMs: Number.NaN },
      { maxConsecutiveFailures: 0 },
      { cooldownMs: 1 },
      { now: 5 },
    ]) {
      expect(() => new CircuitBreaker(options as never), JSON.stringify(options)).toThrow(
        /breaker options|windowMs|coolDownMs|maxConsecutiveFailures|now/,
      );
    }
    for (const options of [
      null,
      { windowMs: null },
      { maxRepeats: Number.POSITIVE_INFINITY },
      { repeats: 1 },
      { now: "Date.now" },
    ])
      expect(() => new LoopDetector(options as never), JSON.stringify(options)).toThrow(
        /loop options|windowMs|maxRepeats|now/,
      );
  });

  it("a NaN retry-after does not open the circuit only to let the next call through as a probe", () => {
    const time = new Time();
    const breaker = new CircuitBreaker({ maxConsecutiveFailures: 1, now: time.now });
    for (const retryAfterMs of [Number.NaN, Number.POSITIVE_INFINITY, -1])
      expect(
        () => breaker.record("openai", "rate-limited", false, retryAfterMs),
        String(retryAfterMs),
      ).toThrow(RangeError);
    breaker.record("openai", "rate-limited", false, 60_000);
    expect(breaker.acquire("openai")).toEqual({ ok: false, retryAfterMs: 60_000 });
  });

  it("an unknown outcome, a probe that is not a boolean or a provider that is not a string is refused", () => {
    const breaker = new CircuitBreaker({ maxConsecutiveFailures: 1 });
    expect(() => breaker.record("openai", "timeout" as never, false)).toThrow(/"outcome"/);
    expect(() => breaker.record("openai", "network-error", "false" as never)).toThrow(/"probe"/);
    expect(() => breaker.record(5 as never, "network-error", false)).toThrow(/"provider"/);
    expect(() => breaker.acquire({} as never)).toThrow(/"provider"/);
    expect(breaker.state("openai").state).toBe("closed");
    const loop = new LoopDetector({ maxRepeats: 1 });
    // Two equal objects are two Map keys: a loop of them would never be seen.
    expect(() => loop.check({ same: 1 } as never)).toThrow(/"fingerprint"/);
    // NaN is never equal to itself, nor is a fraction any hash's: neither counts as a fingerprint.
    for (const bad of [Number.NaN, 0.5, 2 ** 53, -Infinity, 1n, null, undefined])
      expect(() => loop.check(bad as never), String(bad)).toThrow(TypeError);
    // A number and the string of its digits are two fingerprints, each counted on its own.
    expect(loop.check(7).ok).toBe(true);
    expect(loop.check("7").ok).toBe(true);
    expect(loop.check(7).ok).toBe(false);
  });

  it("still settles a call that was sent when the breaker's clock fails, and reports the error", async () => {
    const errors: unknown[] = [];
    const m = await metered(
      {},
      { breaker: { now: () => Number.NaN }, onError: (error) => errors.push(error) },
    );
    const response = await post(m.fetch, `${mock.url}/v1/chat/completions`, chat());
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    expect(await m.ledger()).toMatchObject({ tokens: 1234 + 567, heldTokens: 0 });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(RangeError);
  });

  it("can be turned off", async () => {
    const m = await metered({}, { loop: false });
    for (let i = 0; i < 7; i++)
      expect((await post(m.fetch, `${mock.url}/v1/chat/completions`, chat())).status).toBe(200);
  });

  it("law: the fingerprint ignores key order and runs of whitespace", () => {
    const spaced = fc
      .array(fc.constantFrom("a", "b", "c", " ", "\n", "\t"), { maxLength: 12 })
      .map((chars) => chars.join(""));
    const message = fc.record({ role: fc.constantFrom("user", "assistant"), content: spaced });
    fc.assert(
      fc.property(fc.array(message, { maxLength: 5 }), (messages) => {
        const reordered = messages.map((m) => ({
          content: m.content.replace(/\s+/g, "  \n") + " ",
          role: m.role,
        }));
        return (
          fingerprint({ provider: "openai", model: "m", input: { messages } }) ===
          fingerprint({ provider: "openai", model: "m", input: { messages: reordered } })
        );
      }),
      { numRuns: 300 },
    );
  });
});
