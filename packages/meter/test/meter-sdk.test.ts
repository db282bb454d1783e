/**
 * The official SDKs, unchanged, pointed at the loopback imitation with `baseURL` and given the
 * metered fetch with their `fetch` option.
 */
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { MockLlm, mockLlmPerTest, cost, metered } from "./meter-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const openai = (fetch: typeof globalThis.fetch) =>
  new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, fetch, maxRetries: 0 });
const anthropic = (fetch: typeof globalThis.fetch) =>
  new Anthropic({ apiKey: "sk-ant-test", baseURL: mock.url, fetch, maxRetries: 0 });

describe("the official openai client through wrapFetch", () => {
  it("creates a chat completion, and the ledger holds exactly the reported usage", async () => {
    const m = await metered();
    const completion = await openai(m.fetch).chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Say hello" }],
      max_tokens: 100,
    });
    expect(completion.choices[0]?.message.content).toBe("Hello there.");
    expect(completion.usage?.prompt_tokens).toBe(1234);
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 567,
      usdMicros: cost(1234, 150_000) + cost(567, 600_000),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("streams a chat completion chunk by chunk, with the usage chunk it did not ask for", async () => {
    const m = await metered();
    const stream = await openai(m.fetch).chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Say hello" }],
      stream: true,
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe("Hello there, ünïcode ✓.");
    expect(usage?.completion_tokens).toBe(567);
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 567,
      usdMicros: cost(1234, 150_000) + cost(567, 600_000),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("creates and streams responses", async () => {
    const m = await metered();
    const client = openai(m.fetch);
    const response = await client.responses.create({ model: "gpt-4.1", input: "Say hello" });
    expect(response.output_text).toBe("Hi there.");
    const stream = await client.responses.create({
      model: "gpt-4.1",
      input: "Say hello again",
      stream: true,
    });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types.at(-1)).toBe("response.completed");
    expect(await m.ledger()).toMatchObject({
      tokens: 2 * (1234 + 567),
      usdMicros: 2 * (cost(1234, 2_000_000) + cost(567, 8_000_000)),
      heldTokens: 0,
    });
  });

  it("surfaces a denial as the SDK's APIError (402), without retrying and without reaching the server", async () => {
    const m = await metered({ child: { usdMicros: 5 } });
    const client = new OpenAI({
      apiKey: "sk-test",
      baseURL: `${mock.url}/v1`,
      fetch: m.fetch,
      maxRetries: 2,
    });
    const error = await client.chat.completions
      .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hello" }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(402);
    expect((error as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({
      type: "allowance_denied",
      reason: "BUDGET_USD",
    });
    expect(mock.count()).toBe(0);
  });
});

describe("the official @anthropic-ai/sdk client through wrapFetch", () => {
  it("creates a message, and the ledger holds exactly the reported usage", async () => {
    const m = await metered();
    mock.usage = { input: 1234, output: 567, cached: 2000, cacheWrite: 100 };
    const message = await anthropic(m.fetch).messages.create({
      model: "claude-opus-4-5",
      max_tokens: 1024,
      messages: [{ role: "user", content: "Say hello" }],
    });
    expect(message.content[0]).toEqual({ type: "text", text: "Hello!" });
    // claude-opus-4-5: $5 in, $6.25 cache write, $0.50 cache read, $25 out per million tokens.
    const usd =
      cost(1234, 5_000_000) + cost(100, 6_250_000) + cost(2000, 500_000) + cost(567, 25_000_000);
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 100 + 2000 + 567,
      usdMicros: usd,
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("streams a message with the SDK's stream helper", async () => {
    const m = await metered();
    mock.usage = { input: 40, output: 25, cached: 0, cacheWrite: 0 };
    const stream = anthropic(m.fetch).messages.stream({
      model: "claude-haiku-4-5",
      max_tokens: 1024,
      messages: [{ role: "user", content: "Say hello" }],
    });
    let text = "";
    stream.on("text", (delta) => (text += delta));
    const final = await stream.finalMessage();
    expect(text).toBe("Hello, ünïcode ✓!");
    expect(final.usage.output_tokens).toBe(25);
    expect(await m.ledger()).toEqual({
      tokens: 65,
      usdMicros: cost(40, 1_000_000) + cost(25, 5_000_000),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("charges what was reported and delivered when the SDK's stream is aborted", async () => {
    const m = await metered();
    mock.usage = { input: 40, output: 25, cached: 0, cacheWrite: 0 };
    mock.script.push({ kind: "hang", events: 2 });
    const stream = await anthropic(m.fetch).messages.create({
      model: "claude-haiku-4-5",
      max_tokens: 1000,
      messages: [{ role: "user", content: "Say hello" }],
      stream: true,
    });
    for await (const event of stream) {
      expect(event.type).toBe("message_start");
      break; // leaving the loop aborts the stream
    }
    await mock.closedHanging;
    await new Promise((resolve) => setTimeout(resolve, 10));
    // message_start: 40 input tokens, 1 output token so far; claude-haiku-4-5: $1 in, $5 out.
    expect(await m.ledger()).toEqual({
      tokens: 41,
      usdMicros: cost(40, 1_000_000) + cost(1, 5_000_000),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });
});
