/**
 * Nothing that reached a provider is free: every streamed API, abandoned by the consumer, aborted,
 * cut by the server, or broken by a malformed chunk, is charged; the charge never passes the hold
 * unless the provider reported more; an error answer is released.
 */
import OpenAI from "openai";
import { DEFAULT_PRICING, priceUsage, type ModelPrice } from "@allowance/meter";
import { describe, expect, it } from "vitest";
import {
  MockLlm,
  cost,
  metered,
  mockLlmPerTest,
  post,
  readAll,
  type Metered,
} from "./meter-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const hello = [{ role: "user", content: "Say hello" }];
const contents = [{ role: "user", parts: [{ text: "Say hello" }] }];

interface Family {
  readonly name: string;
  readonly path: string;
  readonly body: Record<string, unknown>;
  readonly provider: string;
  readonly model: string;
  /** Events the mock sends, the closing usage report last (Anthropic: message_delta, then message_stop). */
  readonly events: number;
  /** The index of the event that carries the closing usage. */
  readonly usageAt: number;
  /** The hard input bound of `body` (UTF-8 bytes of its prompt strings + 8 per message + 16). */
  readonly inputBound: number;
}

const FAMILIES: readonly Family[] = [
  {
    name: "OpenAI chat completions",
    path: "/v1/chat/completions",
    body: { model: "gpt-4o-mini", messages: hello, max_tokens: 100, stream: true },
    provider: "openai",
    model: "gpt-4o-mini",
    events: 7,
    usageAt: 5,
    inputBound: 37,
  },
  {
    name: "Azure OpenAI chat (a deployment named like its model)",
    path: "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
    body: { messages: hello, max_tokens: 100, stream: true },
    provider: "openai",
    model: "gpt-4o-mini",
    events: 7,
    usageAt: 5,
    inputBound: 37,
  },
  {
    name: "Gemini's OpenAI-compatible chat",
    path: "/v1beta/openai/chat/completions",
    body: { model: "gemini-2.5-flash", messages: hello, max_tokens: 100, stream: true },
    provider: "gemini",
    model: "gemini-2.5-flash",
    events: 7,
    usageAt: 5,
    inputBound: 37,
  },
  {
    name: "OpenAI responses",
    path: "/v1/responses",
    body: { model: "gpt-4.1", input: hello, max_output_tokens: 100, stream: true },
    provider: "openai",
    model: "gpt-4.1",
    events: 8,
    usageAt: 7,
    inputBound: 37,
  },
  {
    name: "OpenAI legacy completions",
    path: "/v1/completions",
    body: { model: "gpt-3.5-turbo-instruct", prompt: "Say hello", max_tokens: 100, stream: true },
    provider: "openai",
    model: "gpt-3.5-turbo-instruct",
    events: 6,
    usageAt: 4,
    inputBound: 33,
  },
  {
    name: "Anthropic messages",
    path: "/v1/messages",
    body: { model: "claude-sonnet-4-5", max_tokens: 100, messages: hello, stream: true },
    provider: "anthropic",
    model: "claude-sonnet-4-5",
    events: 8,
    usageAt: 6,
    inputBound: 37,
  },
  {
    name: "Gemini SSE",
    path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
    body: { contents, generationConfig: { maxOutputTokens: 100 } },
    provider: "gemini",
    model: "gemini-2.5-flash",
    events: 2,
    usageAt: 1,
    inputBound: 37,
  },
  {
    name: "Gemini JSON array",
    path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    body: { contents, generationConfig: { maxOutputTokens: 100 } },
    provider: "gemini",
    model: "gemini-2.5-flash",
    events: 2,
    usageAt: 1,
    inputBound: 37,
  },
];

const priceOf = (f: Family): ModelPrice => {
  const price = DEFAULT_PRICING[f.provider]?.[f.model];
  if (price === undefined) throw new Error(`no price for ${f.model}`);
  return price;
};

/** A metered fetch whose first hold is recorded. */
async function withHold(
  options: Parameters<typeof metered>[1] = {},
): Promise<Metered & { held: () => { tokens: number; usdMicros: number } }> {
  const m = await metered({}, options);
  let hold: { tokens: number; usdMicros: number } | undefined;
  m.enforcer.on(
    "reserved",
    ({ amounts }) => (hold ??= { tokens: amounts.tokens, usdMicros: amounts.usdMicros }),
  );
  return Object.assign(m, {
    held: () => {
      if (hold === undefined) throw new Error("nothing was held");
      return hold;
    },
  });
}

// The mock reports usage that the request's bound covers: 20 input tokens (≤ 37 bytes), 30 output (≤ 100).
const USAGE = { input: 20, output: 30, cached: 0, cacheWrite: 0 };

describe.each(FAMILIES)("$name", (f) => {
  const exact = () =>
    priceUsage({ inputTokens: USAGE.input, outputTokens: USAGE.output }, priceOf(f));

  it("commits exactly the reported usage when the stream completes", async () => {
    const m = await withHold();
    mock.usage = USAGE;
    await readAll(await post(m.fetch, `${mock.url}${f.path}`, f.body));
    expect(await m.ledger()).toEqual({ ...exact(), heldTokens: 0, heldUsdMicros: 0 });
    // In bound: the commit fits the hold.
    expect(exact().usdMicros).toBeLessThanOrEqual(m.held().usdMicros);
  });

  it.each(Array.from({ length: f.usageAt }, (_, k) => k + 1))(
    "charges a stream the server cuts after %i event(s), within the hold, never nothing",
    async (k) => {
      const m = await withHold();
      mock.usage = USAGE;
      mock.script.push({ kind: "cut", events: k });
      const response = await post(m.fetch, `${mock.url}${f.path}`, f.body);
      await expect(readAll(response)).rejects.toThrow();
      const spent = await m.ledger();
      expect(spent.heldUsdMicros).toBe(0);
      expect(spent.usdMicros).toBeGreaterThan(0);
      expect(spent.usdMicros).toBeLessThanOrEqual(m.held().usdMicros);
      expect(spent.tokens).toBeLessThanOrEqual(m.held().tokens);
      // At least the input the provider billed (20 ≤ the bound, or the 20 it reported).
      expect(spent.usdMicros).toBeGreaterThanOrEqual(cost(USAGE.input, priceOf(f).inputPerMTok));
    },
  );

  it("charges a stream the consumer cancels after the first chunk", async () => {
    const m = await withHold();
    mock.usage = USAGE;
    mock.script.push({ kind: "hang", events: 1 });
    const reader = (await post(m.fetch, `${mock.url}${f.path}`, f.body)).body?.getReader();
    await reader?.read();
    await reader?.cancel();
    const spent = await m.ledger();
    expect(spent.heldUsdMicros).toBe(0);
    expect(spent.usdMicros).toBeGreaterThanOrEqual(cost(USAGE.input, priceOf(f).inputPerMTok));
    expect(spent.usdMicros).toBeLessThanOrEqual(m.held().usdMicros);
    await mock.closedHanging;
  });

  it("charges a stream the caller aborts through its AbortSignal", async () => {
    const m = await withHold();
    mock.usage = USAGE;
    mock.script.push({ kind: "hang", events: 1 });
    const controller = new AbortController();
    const reader = (
      await post(m.fetch, `${mock.url}${f.path}`, f.body, { signal: controller.signal })
    ).body?.getReader();
    await reader?.read();
    controller.abort();
    await expect(reader?.read()).rejects.toThrow();
    const spent = await m.ledger();
    expect(spent.heldUsdMicros).toBe(0);
    expect(spent.usdMicros).toBeGreaterThan(0);
    expect(spent.usdMicros).toBeLessThanOrEqual(m.held().usdMicros);
  });

  it("commits the reported usage when a malformed chunk comes after the closing usage", async () => {
    const m = await withHold();
    mock.usage = USAGE;
    mock.script.push({ kind: "malformed", at: f.events });
    await readAll(await post(m.fetch, `${mock.url}${f.path}`, f.body));
    expect(await m.ledger()).toEqual({ ...exact(), heldTokens: 0, heldUsdMicros: 0 });
  });

  it("charges what was delivered when a malformed chunk comes first and no usage follows", async () => {
    const m = await withHold();
    mock.usage = USAGE;
    mock.script.push({ kind: "malformed", at: 0 });
    // The consumer gives up at the broken chunk, as the SDKs do.
    const reader = (await post(m.fetch, `${mock.url}${f.path}`, f.body)).body?.getReader();
    await reader?.read();
    await reader?.cancel();
    const spent = await m.ledger();
    expect(spent.heldUsdMicros).toBe(0);
    expect(spent.usdMicros).toBeGreaterThan(0);
    expect(spent.usdMicros).toBeLessThanOrEqual(m.held().usdMicros);
  });

  it("releases the hold on a 5xx answer: the provider does not bill errors", async () => {
    const m = await withHold();
    mock.script.push({ kind: "error", status: 503 });
    const response = await post(m.fetch, `${mock.url}${f.path}`, f.body);
    expect(response.status).toBe(503);
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });

  it('releases an abandoned stream with abandonedStream: "release" (the loose choice)', async () => {
    const m = await withHold({ abandonedStream: "release" });
    mock.script.push({ kind: "cut", events: 1 });
    await expect(readAll(await post(m.fetch, `${mock.url}${f.path}`, f.body))).rejects.toThrow();
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });
});

describe("the charge of an abandoned stream, exactly", () => {
  it("OpenAI chat cut after 3 events: the input bound plus the UTF-8 bytes of the text delivered", async () => {
    const m = await withHold();
    mock.script.push({ kind: "cut", events: 3 });
    await expect(
      readAll(
        await post(m.fetch, `${mock.url}/v1/chat/completions`, {
          model: "gpt-4o-mini",
          messages: hello,
          max_tokens: 100,
          stream: true,
        }),
      ),
    ).rejects.toThrow();
    // Events: the role chunk (content ""), "Hello", " there".
    const delivered = Buffer.byteLength("Hello there");
    const p = DEFAULT_PRICING.openai?.["gpt-4o-mini"] as ModelPrice;
    expect(await m.ledger()).toEqual({
      tokens: 37 + delivered,
      usdMicros: cost(37, p.inputPerMTok) + cost(delivered, p.outputPerMTok),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("Anthropic cut after the text: the reported input, and the larger of the reported output (1) and the bytes delivered", async () => {
    const m = await withHold();
    mock.usage = USAGE;
    mock.script.push({ kind: "cut", events: 5 });
    await expect(
      readAll(
        await post(m.fetch, `${mock.url}/v1/messages`, {
          model: "claude-sonnet-4-5",
          max_tokens: 100,
          messages: hello,
          stream: true,
        }),
      ),
    ).rejects.toThrow();
    const delivered = Buffer.byteLength("Hello, ünïcode ✓!");
    const p = DEFAULT_PRICING.anthropic?.["claude-sonnet-4-5"] as ModelPrice;
    expect(await m.ledger()).toEqual({
      tokens: 20 + delivered,
      usdMicros: cost(20, p.inputPerMTok) + cost(delivered, p.outputPerMTok),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("never charges more output than the maximum written on the request", async () => {
    const m = await withHold();
    mock.script.push({ kind: "cut", events: 4 });
    await expect(
      readAll(
        await post(m.fetch, `${mock.url}/v1/chat/completions`, {
          model: "gpt-4o-mini",
          messages: hello,
          max_tokens: 3,
          stream: true,
        }),
      ),
    ).rejects.toThrow();
    const p = DEFAULT_PRICING.openai?.["gpt-4o-mini"] as ModelPrice;
    expect(await m.ledger()).toEqual({
      tokens: 37 + 3,
      usdMicros: cost(37, p.inputPerMTok) + cost(3, p.outputPerMTok),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });
});

describe("through the official openai client", () => {
  it("a malformed chunk makes the SDK throw; the stream is charged, not released", async () => {
    const m = await withHold();
    mock.usage = USAGE;
    mock.script.push({ kind: "malformed", at: 2 });
    const client = new OpenAI({
      apiKey: "sk-test",
      baseURL: `${mock.url}/v1`,
      fetch: m.fetch,
      maxRetries: 0,
    });
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Say hello" }],
      max_tokens: 100,
      stream: true,
    });
    await expect(
      (async () => {
        for await (const chunk of stream) void chunk;
      })(),
    ).rejects.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const spent = await m.ledger();
    expect(spent.heldUsdMicros).toBe(0);
    expect(spent.usdMicros).toBeGreaterThan(0);
    expect(spent.usdMicros).toBeLessThanOrEqual(m.held().usdMicros);
  });
});

describe("a long stream (parsed in batches)", () => {
  /** An OpenAI chat stream of `count` one-word chunks, optionally failing after them instead of sending its usage. */
  const long =
    (count: number, fail: boolean): typeof fetch =>
    async () => {
      const encoder = new TextEncoder();
      let i = 0;
      const chunk = (body: object) => encoder.encode(`data: ${JSON.stringify(body)}\n\n`);
      return new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            if (i < count)
              controller.enqueue(
                chunk({
                  id: "c",
                  object: "chat.completion.chunk",
                  choices: [{ index: 0, delta: { content: "word " }, finish_reason: null }],
                  usage: null,
                }),
              );
            else if (fail) controller.error(new TypeError("terminated"));
            else if (i === count)
              controller.enqueue(
                chunk({
                  id: "c",
                  object: "chat.completion.chunk",
                  choices: [],
                  usage: { prompt_tokens: 30, completion_tokens: count },
                }),
              );
            else controller.close();
            i++;
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    };
  const body = { model: "gpt-4o-mini", messages: hello, max_tokens: 20_000, stream: true };
  const p = () => DEFAULT_PRICING.openai?.["gpt-4o-mini"] as ModelPrice;

  it("commits the closing usage of a stream far longer than one batch", async () => {
    const m = await metered({}, { inner: long(5_000, false) });
    await readAll(await post(m.fetch, "http://127.0.0.1:9/v1/chat/completions", body));
    expect(await m.ledger()).toEqual({
      tokens: 30 + 5_000,
      usdMicros: cost(30, p().inputPerMTok) + cost(5_000, p().outputPerMTok),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("charges every batch delivered when such a stream breaks", async () => {
    const m = await metered({}, { inner: long(3_000, true) });
    await expect(
      readAll(await post(m.fetch, "http://127.0.0.1:9/v1/chat/completions", body)),
    ).rejects.toThrow();
    const delivered = 3_000 * Buffer.byteLength("word ");
    expect(await m.ledger()).toEqual({
      tokens: 37 + delivered,
      usdMicros: cost(37, p().inputPerMTok) + cost(delivered, p().outputPerMTok),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });
});

describe("a provider that streams past the maximum written on the request", () => {
  it("is charged every delivered byte once it sent more output events than the maximum allows tokens, past the hold, as a recorded overrun", async () => {
    const encoder = new TextEncoder();
    let i = 0;
    // 50 one-word chunks against max_tokens 3, then the connection fails: no usage is ever reported.
    const ignoring: typeof fetch = async () =>
      new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            if (i++ < 50)
              controller.enqueue(
                encoder.encode(
                  `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: "word " }, finish_reason: null }], usage: null })}\n\n`,
                ),
              );
            else controller.error(new TypeError("terminated"));
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    const m = await metered({}, { inner: ignoring });
    const overruns: number[] = [];
    m.enforcer.on("overrun", ({ kind, actual, reserved }) =>
      kind === "tokens" ? overruns.push(actual - reserved) : undefined,
    );
    await expect(
      readAll(
        await post(m.fetch, "http://127.0.0.1:9/v1/chat/completions", {
          model: "gpt-4o-mini",
          messages: hello,
          max_tokens: 3,
          stream: true,
        }),
      ),
    ).rejects.toThrow();
    const p = DEFAULT_PRICING.openai?.["gpt-4o-mini"] as ModelPrice;
    // 50 events against a maximum of 3 tokens: proven past it, so the 250 delivered bytes are charged.
    const delivered = 50 * Buffer.byteLength("word ");
    expect(await m.ledger()).toEqual({
      tokens: 37 + delivered,
      usdMicros: cost(37, p.inputPerMTok) + cost(delivered, p.outputPerMTok),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
    expect(overruns).toEqual([delivered - 3]);
  });
});

describe("a consumer that stops reading without cancelling", () => {
  it("is charged when the provider's stream ends, not left to expire", async () => {
    const m = await metered();
    mock.usage = USAGE;
    mock.script.push({ kind: "no-usage" });
    const reader = (
      await post(m.fetch, `${mock.url}/v1/messages`, {
        model: "claude-sonnet-4-5",
        max_tokens: 100,
        messages: hello,
        stream: true,
      })
    ).body?.getReader();
    await reader?.read();
    // The consumer walks away; the provider finishes its stream.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const delivered = Buffer.byteLength("Hello, ünïcode ✓!");
    const p = DEFAULT_PRICING.anthropic?.["claude-sonnet-4-5"] as ModelPrice;
    expect(await m.ledger()).toEqual({
      tokens: 37 + delivered,
      usdMicros: cost(37, p.inputPerMTok) + cost(delivered, p.outputPerMTok),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });
});
