import { Enforcer, MemoryLedger } from "@allowance/enforcer";
import { maxCostOf, wrapFetch, DEFAULT_PRICING } from "@allowance/meter";
import { inspect } from "node:util";
import { describe, expect, it, vi } from "vitest";
import { MockLlm, mockLlmPerTest, cost, metered, post, readAll } from "./meter-support.js";

// List prices the default table states (micro-dollars per million tokens), restated as the oracle.
const GPT_4O_MINI = { input: 150_000, cached: 75_000, output: 600_000 };
const GPT_4_1 = { input: 2_000_000, cached: 500_000, output: 8_000_000 };
const SONNET_4_5 = {
  input: 3_000_000,
  cacheWrite: 3_750_000,
  cacheRead: 300_000,
  output: 15_000_000,
};

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const hello = [{ role: "user", content: "Say hello" }];
/** The hard input bound: "user" + "Say hello" = 13 UTF-8 bytes, + 8 per message + 16 per request = 37 tokens. */
const HELLO_INPUT_TOKENS = 37;
/** The text the mock streams (chat completions, then Anthropic), as UTF-8 bytes: what an abandoned stream delivered. */
const CHAT_TEXT_BYTES = Buffer.byteLength("Hello there, ünïcode ✓.");
const ANTHROPIC_TEXT_BYTES = Buffer.byteLength("Hello, ünïcode ✓!");

describe("wrapFetch on OpenAI chat completions", () => {
  it("commits exactly the usage the provider reported, priced by the table, on every link", async () => {
    const m = await metered();
    mock.usage = { input: 1234, output: 567, cached: 200, cacheWrite: 0 };
    const response = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
      max_tokens: 1000,
    });
    expect(response.status).toBe(200);
    expect((await response.json()) as unknown).toMatchObject({
      object: "chat.completion",
      usage: { prompt_tokens: 1234 },
    });
    const usd =
      cost(1234 - 200, GPT_4O_MINI.input) +
      cost(200, GPT_4O_MINI.cached) +
      cost(567, GPT_4O_MINI.output);
    expect(await m.ledger(1)).toEqual({
      tokens: 1234 + 567,
      usdMicros: usd,
      heldTokens: 0,
      heldUsdMicros: 0,
    });
    expect(await m.ledger(0)).toEqual({
      tokens: 1234 + 567,
      usdMicros: usd,
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("passes every streamed byte through unchanged and commits from the final usage chunk", async () => {
    const m = await metered();
    const response = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
      max_tokens: 1000,
      stream: true,
    });
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const bytes = await readAll(response);
    expect(bytes.equals(mock.streamed[0] as Buffer)).toBe(true);
    expect(bytes.toString("utf8")).toContain("data: [DONE]");
    expect(mock.received[0]?.body.stream_options).toEqual({ include_usage: true });
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 567,
      usdMicros: cost(1234, GPT_4O_MINI.input) + cost(567, GPT_4O_MINI.output),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("keeps an explicit include_usage: false, and then charges the input bound plus the text delivered", async () => {
    const m = await metered();
    const response = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
      max_tokens: 100,
      stream: true,
      stream_options: { include_usage: false },
    });
    await readAll(response);
    expect(mock.received[0]?.body.stream_options).toEqual({ include_usage: false });
    const tokens = HELLO_INPUT_TOKENS + CHAT_TEXT_BYTES;
    expect(await m.ledger()).toEqual({
      tokens,
      usdMicros:
        cost(HELLO_INPUT_TOKENS, GPT_4O_MINI.input) + cost(CHAT_TEXT_BYTES, GPT_4O_MINI.output),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("meters a request given as a Request object", async () => {
    const m = await metered();
    const request = new Request(`${mock.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: hello }),
    });
    const response = await m.fetch(request);
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    expect(mock.received[0]?.body.model).toBe("gpt-4o-mini");
    expect((await m.ledger()).tokens).toBe(1234 + 567);
  });

  it("meters a body given as bytes, and sends the same JSON", async () => {
    const m = await metered();
    const body = new TextEncoder().encode(
      JSON.stringify({ model: "gpt-4o-mini", messages: hello }),
    );
    const response = await m.fetch(`${mock.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    await response.arrayBuffer();
    // The same JSON, with the output maximum the hold covers written on it.
    expect(mock.received[0]?.body).toEqual({
      max_completion_tokens: 4096,
      model: "gpt-4o-mini",
      messages: hello,
    });
    expect((await m.ledger()).tokens).toBe(1234 + 567);
  });
});

describe("wrapFetch on the OpenAI responses API", () => {
  it("commits input (cached priced apart) and output tokens from a JSON response", async () => {
    const m = await metered();
    mock.usage = { input: 5000, output: 300, cached: 4096, cacheWrite: 0 };
    const response = await post(m.fetch, `${mock.url}/v1/responses`, {
      model: "gpt-4.1-2025-04-14",
      input: "Say hello",
      max_output_tokens: 500,
    });
    expect((await response.json()) as unknown).toMatchObject({
      object: "response",
      status: "completed",
    });
    const usd =
      cost(5000 - 4096, GPT_4_1.input) + cost(4096, GPT_4_1.cached) + cost(300, GPT_4_1.output);
    expect(await m.ledger()).toEqual({
      tokens: 5300,
      usdMicros: usd,
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("commits from response.completed in a stream, bytes unchanged", async () => {
    const m = await metered();
    const response = await post(m.fetch, `${mock.url}/v1/responses`, {
      model: "gpt-4.1",
      input: [{ role: "user", content: "Say hello" }],
      stream: true,
    });
    const bytes = await readAll(response);
    expect(bytes.equals(mock.streamed[0] as Buffer)).toBe(true);
    expect(mock.received[0]?.body.stream_options).toBeUndefined();
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 567,
      usdMicros: cost(1234, GPT_4_1.input) + cost(567, GPT_4_1.output),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });
});

describe("wrapFetch on Anthropic messages", () => {
  it("commits input, cache writes, cache reads and output, each at its own price (dated model id by prefix)", async () => {
    const m = await metered();
    mock.usage = { input: 1234, output: 567, cached: 2000, cacheWrite: 100 };
    const response = await post(m.fetch, `${mock.url}/v1/messages`, {
      model: "claude-sonnet-4-5-20250929",
      max_tokens: 1024,
      messages: hello,
    });
    expect((await response.json()) as unknown).toMatchObject({
      type: "message",
      usage: { cache_read_input_tokens: 2000 },
    });
    const usd =
      cost(1234, SONNET_4_5.input) +
      cost(100, SONNET_4_5.cacheWrite) +
      cost(2000, SONNET_4_5.cacheRead) +
      cost(567, SONNET_4_5.output);
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 100 + 2000 + 567,
      usdMicros: usd,
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("commits message_start input and message_delta output from a stream, bytes unchanged", async () => {
    const m = await metered();
    mock.usage = { input: 40, output: 25, cached: 0, cacheWrite: 0 };
    const response = await post(m.fetch, `${mock.url}/v1/messages`, {
      model: "claude-sonnet-4-5",
      max_tokens: 1024,
      messages: hello,
      stream: true,
    });
    const bytes = await readAll(response);
    expect(bytes.equals(mock.streamed[0] as Buffer)).toBe(true);
    expect(bytes.toString("utf8")).toContain("event: message_stop");
    expect(await m.ledger()).toEqual({
      tokens: 65,
      usdMicros: cost(40, SONNET_4_5.input) + cost(25, SONNET_4_5.output),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("charges the input bound plus the text delivered when a stream ends without usage events, never nothing", async () => {
    const m = await metered();
    mock.script.push({ kind: "no-usage" });
    const response = await post(m.fetch, `${mock.url}/v1/messages`, {
      model: "claude-sonnet-4-5",
      max_tokens: 200,
      messages: hello,
      stream: true,
    });
    await readAll(response);
    expect(await m.ledger()).toEqual({
      tokens: HELLO_INPUT_TOKENS + ANTHROPIC_TEXT_BYTES,
      usdMicros:
        cost(HELLO_INPUT_TOKENS, SONNET_4_5.input) + cost(ANTHROPIC_TEXT_BYTES, SONNET_4_5.output),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });
});

describe("settling a call that did not complete", () => {
  it("releases the hold on an HTTP error and hands the error to the caller unchanged", async () => {
    const m = await metered();
    mock.script.push({ kind: "error", status: 400 });
    const response = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
    });
    expect(response.status).toBe(400);
    expect((await response.json()) as unknown).toMatchObject({
      error: { type: "invalid_request_error" },
    });
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });

  it("charges the whole hold when the reported usage cannot be priced (past 2^53 − 1), JSON or streamed, and never leaves it open", async () => {
    const price = DEFAULT_PRICING.openai?.["gpt-4o-mini"];
    if (price === undefined) throw new Error("no price");
    // Each count is a safe integer; their sum is not, so the usage cannot be priced.
    mock.usage = { input: 2 ** 52, output: 2 ** 52, cached: 0, cacheWrite: 0 };
    const hold = {
      tokens: HELLO_INPUT_TOKENS + 1000,
      usdMicros: maxCostOf({ inputTokens: HELLO_INPUT_TOKENS, outputTokens: 1000 }, price),
    };
    for (const stream of [false, true]) {
      const m = await metered();
      const response = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
        model: "gpt-4o-mini",
        messages: hello,
        max_tokens: 1000,
        ...(stream ? { stream: true } : {}),
      });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      expect(await m.ledger()).toEqual({
        tokens: hold.tokens,
        usdMicros: hold.usdMicros,
        heldTokens: 0,
        heldUsdMicros: 0,
      });
    }
  });

  it("releases the hold on a network error and rethrows it", async () => {
    const m = await metered(
      {},
      { inner: async () => Promise.reject(new TypeError("fetch failed")) },
    );
    await expect(
      post(m.fetch, `${mock.url}/v1/chat/completions`, { model: "gpt-4o-mini", messages: hello }),
    ).rejects.toThrow("fetch failed");
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });

  it('releases the hold when the consumer cancels a stream mid-way, with abandonedStream: "release" (the loose choice)', async () => {
    const m = await metered({}, { abandonedStream: "release" });
    mock.script.push({ kind: "hang", events: 2 });
    const response = await post(m.fetch, `${mock.url}/v1/messages`, {
      model: "claude-sonnet-4-5",
      max_tokens: 1000,
      messages: hello,
      stream: true,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("message_start");
    expect((await m.ledger()).heldTokens).toBe(HELLO_INPUT_TOKENS + 1000);
    await reader.cancel();
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
    await mock.closedHanging; // the connection to the provider is closed too
  });

  it('releases the hold when the caller aborts a stream through its AbortSignal, with abandonedStream: "release"', async () => {
    const m = await metered({}, { abandonedStream: "release" });
    mock.script.push({ kind: "hang", events: 2 });
    const controller = new AbortController();
    const response = await post(
      m.fetch,
      `${mock.url}/v1/chat/completions`,
      { model: "gpt-4o-mini", messages: hello, stream: true },
      { signal: controller.signal },
    );
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    controller.abort();
    await expect(reader.read()).rejects.toThrow();
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });

  it("charges an abandoned stream by default: the input reported, and the output delivered when above the reported 1", async () => {
    const m = await metered();
    mock.usage = { input: 40, output: 25, cached: 0, cacheWrite: 0 };
    mock.script.push({ kind: "hang", events: 2 });
    const response = await post(m.fetch, `${mock.url}/v1/messages`, {
      model: "claude-sonnet-4-5",
      max_tokens: 1000,
      messages: hello,
      stream: true,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    await reader.cancel();
    // message_start said 40 input tokens and 1 output token so far; no text was delivered yet.
    expect(await m.ledger()).toEqual({
      tokens: 41,
      usdMicros: cost(40, SONNET_4_5.input) + cost(1, SONNET_4_5.output),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });
});

describe("denied calls", () => {
  it("never reach the provider, and answer 402 (budgets) with the reason, link and field", async () => {
    const m = await metered({ child: { usdMicros: 10 } });
    const response = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
      max_tokens: 1000,
    });
    expect(response.status).toBe(402);
    expect(response.headers.get("x-should-retry")).toBe("false");
    expect((await response.json()) as unknown).toMatchObject({
      type: "error",
      error: {
        type: "allowance_denied",
        code: "BUDGET_USD",
        reason: "BUDGET_USD",
        linkIndex: 1,
        field: "usdMicros",
        available: 10,
      },
    });
    expect(mock.count()).toBe(0);
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });

  it("carry retry-after when a rate window denies", async () => {
    const m = await metered({ child: { rate: [{ seconds: 60, requests: 1 }] } });
    await (
      await post(m.fetch, `${mock.url}/v1/chat/completions`, {
        model: "gpt-4o-mini",
        messages: hello,
      })
    ).arrayBuffer();
    const response = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "again" }],
    });
    // 403, not 429: the AI SDK retries every 429 whatever the headers say.
    expect(response.status).toBe(403);
    const retryAfter = Number(response.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect((await response.json()) as unknown).toMatchObject({
      error: { reason: "RATE_LIMITED", field: "rate.60s.requests", retryAfter },
    });
    expect(mock.count()).toBe(1);
  });

  it("deny an unknown model with UNKNOWN_MODEL_PRICE by default: never silently free", async () => {
    const m = await metered();
    const response = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-99-turbo",
      messages: hello,
    });
    expect(response.status).toBe(403);
    const body = (await response.json()) as { error: { message: string } };
    expect(body).toMatchObject({
      error: {
        type: "allowance_denied",
        reason: "UNKNOWN_MODEL_PRICE",
        linkIndex: null,
        field: "model",
      },
    });
    // The message says how to supply a price.
    expect(body.error.message).toContain("pricing");
    expect(mock.count()).toBe(0);
  });

  it("charge an unknown model at the configured default price when one is given", async () => {
    const m = await metered(
      {},
      { unknownModel: { inputPerMTok: 1_000_000, outputPerMTok: 2_000_000 } },
    );
    await (
      await post(m.fetch, `${mock.url}/v1/chat/completions`, {
        model: "gpt-99-turbo",
        messages: hello,
      })
    ).arrayBuffer();
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 567,
      usdMicros: cost(1234, 1_000_000) + cost(567, 2_000_000),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("deny a model the chain does not allow", async () => {
    const m = await metered({ child: { models: ["gpt-4o-mini"] } });
    const response = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o",
      messages: hello,
    });
    expect((await response.json()) as unknown).toMatchObject({
      error: { reason: "MODEL_NOT_ALLOWED", linkIndex: 1, field: "models" },
    });
    expect(mock.count()).toBe(0);
  });

  it("deny a provider the chain does not allow", async () => {
    const m = await metered({ child: { providers: [{ name: "openai" }] } });
    const response = await post(m.fetch, `${mock.url}/v1/messages`, {
      model: "claude-sonnet-4-5",
      max_tokens: 10,
      messages: hello,
    });
    expect((await response.json()) as unknown).toMatchObject({
      error: { reason: "PROVIDER_NOT_ALLOWED", linkIndex: 1 },
    });
    expect(mock.count()).toBe(0);
  });

  it("deny a body that is not a JSON object as UNMETERABLE_REQUEST", async () => {
    const m = await metered();
    const response = await m.fetch(`${mock.url}/v1/chat/completions`, {
      method: "POST",
      body: "model=gpt-4o",
    });
    expect((await response.json()) as unknown).toMatchObject({
      error: { reason: "UNMETERABLE_REQUEST" },
    });
    expect(mock.count()).toBe(0);
  });

  it("let requests no adapter knows pass unmetered, unless told to deny them", async () => {
    const open = await metered();
    expect((await open.fetch(`${mock.url}/v1/models`)).status).toBe(200);
    expect(mock.count("/v1/models")).toBe(1);
    const strict = await metered({}, { unmatched: "deny" });
    expect((await (await strict.fetch(`${mock.url}/v1/models`)).json()) as unknown).toMatchObject({
      error: { reason: "UNMATCHED_ENDPOINT" },
    });
    expect(mock.count("/v1/models")).toBe(1);
  });

  it("report each denial to onDeny", async () => {
    const seen: string[] = [];
    const m = await metered({}, { onDeny: (d) => seen.push(d.reason) });
    await post(m.fetch, `${mock.url}/v1/chat/completions`, { model: "nope", messages: hello });
    expect(seen).toEqual(["UNKNOWN_MODEL_PRICE"]);
  });
});

describe("ALLOW_WITH_CAPS", () => {
  it("lowers max_tokens in the body the server receives to what fits in the tokens left", async () => {
    const m = await metered({ child: { tokens: 1000 } }, { acceptCaps: true });
    const response = await post(m.fetch, `${mock.url}/v1/messages`, {
      model: "claude-sonnet-4-5",
      max_tokens: 4000,
      messages: hello,
    });
    expect(response.status).toBe(200);
    expect(mock.received[0]?.body.max_tokens).toBe(1000 - HELLO_INPUT_TOKENS);
  });

  it("lowers it to what fits in the micro-dollars left", async () => {
    const m = await metered({ child: { usdMicros: 1000 } }, { acceptCaps: true });
    await post(m.fetch, `${mock.url}/v1/messages`, {
      model: "claude-sonnet-4-5",
      max_tokens: 4000,
      messages: hello,
    });
    // The most output whose worst-case cost (input at its dearest rate) still fits in 1,000 µ$.
    const price = DEFAULT_PRICING.anthropic?.["claude-sonnet-4-5"];
    if (price === undefined) throw new Error("no price");
    const sent = mock.received[0]?.body.max_tokens as number;
    expect(
      maxCostOf({ inputTokens: HELLO_INPUT_TOKENS, outputTokens: sent }, price),
    ).toBeLessThanOrEqual(1000);
    expect(
      maxCostOf({ inputTokens: HELLO_INPUT_TOKENS, outputTokens: sent + 1 }, price),
    ).toBeGreaterThan(1000);
  });

  it("sets max_completion_tokens on an OpenAI request that had no maximum", async () => {
    const m = await metered({ child: { tokens: 500 } }, { acceptCaps: true });
    await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
    });
    expect(mock.received[0]?.body.max_completion_tokens).toBe(500 - HELLO_INPUT_TOKENS);
    expect(mock.received[0]?.body.max_tokens).toBeUndefined();
  });

  it("leaves every choice an output token: a cap too small for that is the enforcer's denial, with its link and field", async () => {
    // Room for the input bound and two output tokens: one token for each of three choices does not fit.
    const m = await metered({ child: { tokens: HELLO_INPUT_TOKENS + 2 } }, { acceptCaps: true });
    const response = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
      n: 3,
      max_tokens: 100,
    });
    expect(response.status).toBe(402);
    expect((await response.json()) as unknown).toMatchObject({
      error: { reason: "BUDGET_TOKENS", linkIndex: 1, field: "tokens", available: 39 },
    });
    expect(mock.count()).toBe(0);
    // With room for three, each choice gets one.
    const roomy = await metered(
      { child: { tokens: HELLO_INPUT_TOKENS + 3 } },
      { acceptCaps: true },
    );
    const ok = await post(roomy.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
      n: 3,
      max_tokens: 100,
    });
    expect(ok.status).toBe(200);
    expect(mock.received[0]?.body.max_tokens).toBe(1);
  });

  it("refuses a request whose own limits leave no output before holding anything, not as a budget denial", async () => {
    const m = await metered();
    for (const body of [
      { model: "gpt-4o-mini", messages: hello, max_tokens: 0 },
      { model: "claude-sonnet-4-5", messages: hello, max_tokens: 0 },
    ]) {
      const path = body.model.startsWith("claude") ? "/v1/messages" : "/v1/chat/completions";
      const response = await post(m.fetch, `${mock.url}${path}`, body);
      expect(response.status).toBe(403);
      expect((await response.json()) as unknown).toMatchObject({
        error: { reason: "UNMETERABLE_REQUEST", linkIndex: null, field: "body" },
      });
    }
    expect(mock.count()).toBe(0);
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });

  it("denies instead when caps are not accepted", async () => {
    const m = await metered({ child: { tokens: 1000 } });
    const response = await post(m.fetch, `${mock.url}/v1/messages`, {
      model: "claude-sonnet-4-5",
      max_tokens: 4000,
      messages: hello,
    });
    expect((await response.json()) as unknown).toMatchObject({
      error: { reason: "BUDGET_TOKENS", linkIndex: 1 },
    });
    expect(mock.count()).toBe(0);
  });
});

describe("a metered JSON answer, served from memory", () => {
  const call = async () => {
    const m = await metered();
    return post(m.fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
    });
  };

  it("reads like the provider's answer through every body method, once", async () => {
    const viaJson = await call();
    expect(viaJson.url).toBe(`${mock.url}/v1/chat/completions`);
    expect(viaJson.headers.get("x-request-id")).toBe("req_mock");
    expect(viaJson.bodyUsed).toBe(false);
    const json = (await viaJson.json()) as { object: string };
    expect(json.object).toBe("chat.completion");
    expect(viaJson.bodyUsed).toBe(true);
    await expect(viaJson.text()).rejects.toThrow(TypeError);
    const text = await (await call()).text();
    expect(JSON.parse(text)).toEqual(json);
    const bytes = Buffer.from(await (await call()).arrayBuffer());
    expect(bytes.toString("utf8")).toBe(text);
    expect(await (await (await call()).blob()).text()).toBe(text);
    expect((await readAll(await call())).toString("utf8")).toBe(text);
  });

  it("does not use the body when only looking at it, and clones before use", async () => {
    const response = await call();
    expect(response.body).not.toBeNull();
    expect(response.bodyUsed).toBe(false);
    const copy = response.clone();
    expect(await copy.text()).toBe(await response.text());
    expect(() => response.clone()).toThrow(TypeError);
  });

  it("is a Response in every member, without Response's constructor: JSON and streamed alike", async () => {
    // A new question each time: the same one sent again and again would be a loop.
    let n = 0;
    const body = (stream: boolean) => ({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: `Say hello ${n++}` }],
      ...(stream ? { stream: true } : {}),
    });
    const m = await metered();
    const url = `${mock.url}/v1/chat/completions`;
    /** What a member gives, comparable between two answers: a value, or that it failed. */
    const outcome = async (read: () => unknown): Promise<unknown> => {
      try {
        const value = await read();
        if (value instanceof Response) return "a Response";
        if (value instanceof Headers) return value.get("content-type");
        if (value instanceof ReadableStream) return "a stream";
        if (value instanceof Blob) return value.text();
        if (value instanceof ArrayBuffer || value instanceof Uint8Array)
          return Buffer.from(value as ArrayBuffer).toString("utf8");
        return value;
      } catch (error) {
        return `failed: ${(error as Error).name}`;
      }
    };
    for (const stream of [false, true]) {
      const kind = stream ? "streamed" : "JSON";
      const served = await post(m.fetch, url, body(stream));
      expect(served).toBeInstanceOf(Response);
      expect(Object.prototype.toString.call(served)).toBe("[object Response]");
      expect(inspect(served)).toContain(`status: ${served.status}`);
      // Each member of Response.prototype, on a fresh served answer and a fresh plain one: the
      // same value (a streamed answer's bytes differ: the meter asks for the usage report), or
      // both fail alike (formData() of JSON). A member left to Response.prototype, or one a new
      // runtime adds, fails where the plain answer does not.
      for (const key of Reflect.ownKeys(Response.prototype)) {
        if (key === "constructor" || key === Symbol.toStringTag) continue;
        if (key === Symbol.for("nodejs.util.inspect.custom")) continue;
        const read = (r: Response) => {
          const member = (r as unknown as Record<PropertyKey, unknown>)[key];
          return typeof member === "function" ? (member as () => unknown).call(r) : member;
        };
        const mine = await outcome(async () => read(await post(m.fetch, url, body(stream))));
        const theirs = await outcome(async () =>
          read(await post(globalThis.fetch, url, body(stream))),
        );
        const comparable =
          stream && typeof theirs === "string" && theirs.startsWith("data:")
            ? typeof mine === "string" && mine.startsWith("data:")
            : mine;
        expect([kind, String(key), comparable]).toEqual([
          kind,
          String(key),
          stream && typeof theirs === "string" && theirs.startsWith("data:") ? true : theirs,
        ]);
      }
    }
  });

  it("hands over memory of its own: the answer's bytes alone, and a clone's never shared", async () => {
    const alone = await (await call()).arrayBuffer();
    expect(JSON.parse(Buffer.from(alone).toString("utf8"))).toMatchObject({
      object: "chat.completion",
    });
    const response = await call();
    const copy = response.clone();
    const [a, b] = [new Uint8Array(await response.arrayBuffer()), await copy.arrayBuffer()];
    expect(a.buffer).not.toBe(b);
    a.fill(0);
    expect(JSON.parse(Buffer.from(b).toString("utf8"))).toMatchObject({
      object: "chat.completion",
    });
  });
});

describe("settling through the enforcer", () => {
  const ask = (fetch: typeof globalThis.fetch) =>
    post(fetch, `${mock.url}/v1/chat/completions`, { model: "gpt-4o-mini", messages: hello });

  it("calls a subclass's own reserve and commit, not the synchronous methods beside them", async () => {
    const { chain } = await metered();
    const calls: string[] = [];
    class Audited extends Enforcer {
      override async reserve(...args: Parameters<Enforcer["reserve"]>) {
        calls.push("reserve");
        return super.reserve(...args);
      }
      override async commit(...args: Parameters<Enforcer["commit"]>) {
        calls.push("commit");
        return super.commit(...args);
      }
    }
    const enforcer = new Audited();
    expect(enforcer.synchronous).toBe(true);
    const response = await ask(wrapFetch(globalThis.fetch, { enforcer, chain }));
    await response.json();
    expect(calls).toEqual(["reserve", "commit"]);
    const usd = (await enforcer.remaining(chain)).links[1]?.limits.find(
      (l) => l.field === "usdMicros",
    );
    expect(usd).toMatchObject({ held: 0 });
    expect(usd?.spent).toBeGreaterThan(0);
  });

  it("settles through a plain enforcer's synchronous methods on the memory ledger, not its promises", async () => {
    const { chain } = await metered();
    const spies = (["reserve", "commit", "reserveSync", "commitSync"] as const).map((name) =>
      vi.spyOn(Enforcer.prototype, name),
    );
    try {
      const fetch = wrapFetch(globalThis.fetch, { enforcer: new Enforcer(), chain });
      await (await ask(fetch)).json();
      expect(spies.map((spy) => spy.mock.calls.length)).toEqual([0, 0, 1, 1]);
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });

  it("reports a ledger error of a synchronous release, and hands the provider's error to the caller", async () => {
    const { chain } = await metered();
    const broken = new Error("disk full");
    class Failing extends MemoryLedger {
      override releaseSync(): never {
        throw broken;
      }
    }
    const errors: unknown[] = [];
    const fetch = wrapFetch(globalThis.fetch, {
      enforcer: new Enforcer({ ledger: new Failing() }),
      chain,
      onError: (error) => errors.push(error),
    });
    mock.script.push({ kind: "error", status: 500 });
    expect((await ask(fetch)).status).toBe(500);
    expect(errors).toEqual([broken]);
  });

  it("reports a ledger error of a synchronous commit, never throws it at the caller, and serves the answer", async () => {
    const { chain } = await metered();
    const broken = new Error("disk full");
    class Failing extends MemoryLedger {
      override commitSync(): never {
        throw broken;
      }
    }
    const enforcer = new Enforcer({ ledger: new Failing() });
    expect(enforcer.synchronous).toBe(true);
    const errors: unknown[] = [];
    const fetch = wrapFetch(globalThis.fetch, {
      enforcer,
      chain,
      onError: (error) => errors.push(error),
    });
    const json = (await (await ask(fetch)).json()) as { object: string };
    expect(json.object).toBe("chat.completion");
    expect(errors).toEqual([broken]);
  });
});
