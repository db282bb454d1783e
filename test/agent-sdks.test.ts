/**
 * The integrations of docs/integrations.md, run as written against the meter's loopback mock
 * provider: the OpenAI Agents SDK for JavaScript (an Agent run through a Runner whose OpenAI client
 * has the metered fetch) and the Vercel AI SDK (`fetch: wrapFetch(…)`). No request leaves
 * 127.0.0.1, and Agents SDK tracing is off (it would export to OpenAI).
 */
import OpenAI from "openai";
import { Agent, OpenAIProvider, Runner, setTracingDisabled } from "@openai/agents";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText } from "ai";
import { beforeAll, describe, expect, it } from "vitest";
import { denialOf } from "@allowance/meter";
import { MockLlm, cost, metered, mockLlmPerTest } from "../packages/meter/test/meter-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));
beforeAll(() => {
  setTracingDisabled(true);
});

/** The docs' recipe: an OpenAI client with the metered fetch, handed to the Agents SDK's provider. */
function runner(fetch: typeof globalThis.fetch, useResponses: boolean): Runner {
  const openAIClient = new OpenAI({
    apiKey: "sk-test",
    baseURL: `${mock.url}/v1`,
    fetch,
    maxRetries: 0,
  });
  return new Runner({
    modelProvider: new OpenAIProvider({ openAIClient, useResponses }),
    tracingDisabled: true,
  });
}

const agent = () =>
  new Agent({ name: "researcher", instructions: "Answer briefly.", model: "gpt-4.1" });

describe("the OpenAI Agents SDK through wrapFetch", () => {
  it("runs an Agent on the Responses API, and the ledger holds the reported usage", async () => {
    const m = await metered();
    const result = await runner(m.fetch, true).run(agent(), "Say hello");
    expect(result.finalOutput).toBe("Hi there.");
    expect(mock.count("/v1/responses")).toBe(1);
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 567,
      usdMicros: cost(1234, 2_000_000) + cost(567, 8_000_000),
      heldTokens: 0,
      heldUsdMicros: 0,
    });
  });

  it("streams a run, and charges what the stream reported", async () => {
    const m = await metered();
    const stream = await runner(m.fetch, true).run(agent(), "Say hello", { stream: true });
    let text = "";
    for await (const chunk of stream.toTextStream()) text += chunk;
    await stream.completed;
    expect(text).toBe("Hi there.");
    expect(stream.finalOutput).toBe("Hi there.");
    expect(await m.ledger()).toMatchObject({ tokens: 1234 + 567, heldTokens: 0 });
  });

  it("runs on Chat Completions too (useResponses: false)", async () => {
    const m = await metered();
    const result = await runner(m.fetch, false).run(
      new Agent({ name: "chat", instructions: "Answer briefly.", model: "gpt-4o-mini" }),
      "Say hello",
    );
    expect(result.finalOutput).toBe("Hello there.");
    expect(mock.count("/v1/chat/completions")).toBe(1);
    expect(await m.ledger()).toMatchObject({
      tokens: 1234 + 567,
      usdMicros: cost(1234, 150_000) + cost(567, 600_000),
    });
  });

  it("stops a run the grant cannot pay for, before the provider is called", async () => {
    const m = await metered({ child: { usdMicros: 5 } });
    const error: unknown = await runner(m.fetch, true)
      .run(agent(), "Say hello")
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(denialOf(error)?.reason).toBe("BUDGET_USD");
    expect(mock.count()).toBe(0);
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });
});

describe("the Vercel AI SDK through wrapFetch", () => {
  it("generates text with `fetch: wrapFetch(…)` and charges the reported usage", async () => {
    const m = await metered();
    const openai = createOpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, fetch: m.fetch });
    const { text } = await generateText({ model: openai("gpt-4.1"), prompt: "Say hello" });
    expect(text).toBe("Hi there.");
    expect(await m.ledger()).toMatchObject({
      tokens: 1234 + 567,
      usdMicros: cost(1234, 2_000_000) + cost(567, 8_000_000),
    });
  });
});
