/**
 * Every metered endpoint against the loopback mock: the request the provider receives carries the
 * output maximum the hold covers, and the ledger holds exactly the reported usage at list price.
 * Then the hosts rule: a provider host's endpoint that no adapter meters is refused.
 */
import { DEFAULT_PRICING, maxCostOf, type ModelPrice } from "@allowance/meter";
import { describe, expect, it } from "vitest";
import { MockLlm, cost, metered, mockLlmPerTest, post, readAll } from "./meter-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const priceOf = (provider: string, model: string): ModelPrice => {
  const price = DEFAULT_PRICING[provider]?.[model];
  if (price === undefined) throw new Error(`no list price for ${provider} ${model}`);
  return price;
};
const zero = { heldTokens: 0, heldUsdMicros: 0 };
const hello = [{ role: "user", content: "Say hello" }];

describe("OpenAI embeddings and legacy completions", () => {
  it("meters /v1/embeddings: input only, no output maximum written", async () => {
    const m = await metered();
    mock.usage = { input: 812, output: 0, cached: 0, cacheWrite: 0 };
    const response = await post(m.fetch, `${mock.url}/v1/embeddings`, {
      model: "text-embedding-3-small",
      input: ["one", "two"],
    });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    expect(mock.received[0]?.body).toEqual({
      model: "text-embedding-3-small",
      input: ["one", "two"],
    });
    expect(await m.ledger()).toEqual({
      tokens: 812,
      usdMicros: cost(812, priceOf("openai", "text-embedding-3-small").inputPerMTok),
      ...zero,
    });
  });

  it("meters /v1/completions, sets max_tokens (its own field) and commits the reported usage", async () => {
    const m = await metered();
    const response = await post(m.fetch, `${mock.url}/v1/completions`, {
      model: "gpt-3.5-turbo-instruct",
      prompt: "Say hello",
    });
    await response.arrayBuffer();
    expect(mock.received[0]?.body.max_tokens).toBe(4096);
    const p = priceOf("openai", "gpt-3.5-turbo-instruct");
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 567,
      usdMicros: cost(1234, p.inputPerMTok) + cost(567, p.outputPerMTok),
      ...zero,
    });
  });

  it("meters a streamed legacy completion from its usage chunk, asking for it", async () => {
    const m = await metered();
    const bytes = await readAll(
      await post(m.fetch, `${mock.url}/v1/completions`, {
        model: "gpt-3.5-turbo-instruct",
        prompt: ["a", "b"],
        max_tokens: 10,
        stream: true,
      }),
    );
    expect(bytes.equals(mock.streamed[0] as Buffer)).toBe(true);
    expect(mock.received[0]?.body.stream_options).toEqual({ include_usage: true });
    expect((await m.ledger()).tokens).toBe(1234 + 567);
  });
});

describe("Azure OpenAI", () => {
  it("meters a deployment path with api-version, priced as the mapped OpenAI model, under provider azure", async () => {
    const m = await metered(
      { child: { providers: [{ name: "azure" }] } },
      { azure: { deployments: { "prod-chat": "gpt-4o-mini" } } },
    );
    const response = await post(
      m.fetch,
      `${mock.url}/openai/deployments/prod-chat/chat/completions?api-version=2024-10-21`,
      { messages: hello, max_tokens: 50 },
    );
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    expect(mock.received[0]?.query.get("api-version")).toBe("2024-10-21");
    const p = priceOf("openai", "gpt-4o-mini");
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 567,
      usdMicros: cost(1234, p.inputPerMTok) + cost(567, p.outputPerMTok),
      ...zero,
    });
  });

  it.each([
    ["2024-06-01", "max_tokens", false],
    ["2024-08-01-preview", "max_tokens", false],
    ["2024-09-01-preview", "max_completion_tokens", true],
    ["2024-10-21", "max_completion_tokens", true],
    ["2025-04-01-preview", "max_completion_tokens", true],
  ])(
    "api-version %s: a chat request without a maximum gets %s (stream_options asked: %s)",
    async (version, field, asksUsage) => {
      const m = await metered({}, { azure: { deployments: { chat: "gpt-4o-mini" } } });
      const url = `${mock.url}/openai/deployments/chat/chat/completions?api-version=${version}`;
      await (await post(m.fetch, url, { messages: hello })).arrayBuffer();
      await readAll(await post(m.fetch, url, { messages: hello, stream: true }));
      const [json, streamed] = [mock.received[0]?.body, mock.received[1]?.body];
      expect(json?.[field]).toBe(4096);
      expect(Object.keys(json ?? {}).filter((k) => k.startsWith("max_"))).toEqual([field]);
      expect(streamed?.[field]).toBe(4096);
      expect(streamed?.stream_options).toEqual(asksUsage ? { include_usage: true } : undefined);
      // Both calls are charged, with or without the stream's usage.
      expect((await m.ledger()).tokens).toBeGreaterThan(1234 + 567);
    },
  );

  it("checks the grant's models against the model a deployment runs", async () => {
    const m = await metered(
      { child: { models: ["gpt-4o"] } },
      { azure: { deployments: { cheap: "gpt-4o-mini" } } },
    );
    const response = await post(
      m.fetch,
      `${mock.url}/openai/deployments/cheap/chat/completions?api-version=2024-10-21`,
      { messages: hello },
    );
    expect((await response.json()) as unknown).toMatchObject({
      error: { reason: "MODEL_NOT_ALLOWED" },
    });
    expect(mock.count()).toBe(0);
  });

  it("denies an unmapped deployment with UNKNOWN_MODEL_PRICE and says how to map it", async () => {
    const m = await metered();
    const response = await post(
      m.fetch,
      `${mock.url}/openai/deployments/my-dep/embeddings?api-version=2024-10-21`,
      { input: "x" },
    );
    expect(response.status).toBe(403);
    const body = (await response.json()) as { error: { reason: string; message: string } };
    expect(body.error.reason).toBe("UNKNOWN_MODEL_PRICE");
    expect(body.error.message).toContain('deployments: { "my-dep"');
    expect(mock.count()).toBe(0);
  });

  it("meters the v1 API, where the body's model names the deployment", async () => {
    const m = await metered({}, { azure: { deployments: { d1: "gpt-4.1" } } });
    await (
      await post(m.fetch, `${mock.url}/openai/v1/responses`, { model: "d1", input: "hi" })
    ).arrayBuffer();
    expect(mock.received[0]?.body.max_output_tokens).toBe(4096);
    const p = priceOf("openai", "gpt-4.1");
    expect((await m.ledger()).usdMicros).toBe(
      cost(1234, p.inputPerMTok) + cost(567, p.outputPerMTok),
    );
  });
});

describe("Gemini", () => {
  const contents = [{ role: "user", parts: [{ text: "Say hello" }] }];
  const flash = () => priceOf("gemini", "gemini-2.5-flash");

  it("meters generateContent from usageMetadata, the model from the path, maxOutputTokens written", async () => {
    const m = await metered();
    mock.usage = { input: 100, output: 20, cached: 50, cacheWrite: 0 };
    const response = await post(
      m.fetch,
      `${mock.url}/v1beta/models/gemini-2.5-flash:generateContent`,
      { contents, generationConfig: { temperature: 0 } },
    );
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    expect(mock.received[0]?.body.generationConfig).toEqual({
      temperature: 0,
      maxOutputTokens: 4096,
    });
    const p = flash();
    expect(await m.ledger()).toEqual({
      tokens: 170,
      usdMicros:
        cost(100, p.inputPerMTok) + cost(50, p.cachedInputPerMTok ?? 0) + cost(20, p.outputPerMTok),
      ...zero,
    });
  });

  it("meters streamGenerateContent with alt=sse, bytes unchanged", async () => {
    const m = await metered();
    const bytes = await readAll(
      await post(
        m.fetch,
        `${mock.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`,
        { contents },
      ),
    );
    expect(bytes.equals(mock.streamed[0] as Buffer)).toBe(true);
    const p = flash();
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 567,
      usdMicros: cost(1234, p.inputPerMTok) + cost(567, p.outputPerMTok),
      ...zero,
    });
  });

  it("meters the JSON-array stream (no alt=sse), bytes unchanged", async () => {
    const m = await metered();
    const response = await post(
      m.fetch,
      `${mock.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent`,
      { contents },
    );
    expect(response.headers.get("content-type")).toContain("application/json");
    const bytes = await readAll(response);
    expect(bytes.equals(mock.streamed[0] as Buffer)).toBe(true);
    expect(JSON.parse(bytes.toString("utf8"))).toHaveLength(2);
    const p = flash();
    expect(await m.ledger()).toEqual({
      tokens: 1234 + 567,
      usdMicros: cost(1234, p.inputPerMTok) + cost(567, p.outputPerMTok),
      ...zero,
    });
  });

  it("meters embedContent, charging the hold (the input bound at its dearest rate) when the answer reports no usage", async () => {
    const m = await metered();
    await (
      await post(m.fetch, `${mock.url}/v1beta/models/gemini-embedding-001:embedContent`, {
        content: { parts: [{ text: "héllo" }] },
      })
    ).arrayBuffer();
    // "héllo" is 6 UTF-8 bytes, + 8 for the content and 16 for the request.
    expect(await m.ledger()).toEqual({
      tokens: 30,
      usdMicros: maxCostOf(
        { inputTokens: 30, outputTokens: 0 },
        priceOf("gemini", "gemini-embedding-001"),
      ),
      ...zero,
    });
  });

  it("meters Gemini's OpenAI-compatible base as provider gemini", async () => {
    const m = await metered({ child: { providers: [{ name: "gemini" }] } });
    await (
      await post(m.fetch, `${mock.url}/v1beta/openai/chat/completions`, {
        model: "gemini-2.5-flash",
        messages: hello,
      })
    ).arrayBuffer();
    expect(mock.received[0]?.body.max_tokens).toBe(4096);
    const p = flash();
    expect((await m.ledger()).usdMicros).toBe(
      cost(1234, p.inputPerMTok) + cost(567, p.outputPerMTok),
    );
  });

  it("refuses inline media and Google Search grounding as UNMETERABLE_REQUEST", async () => {
    const m = await metered();
    const image = [
      { role: "user", parts: [{ inlineData: { mimeType: "image/png", data: "AAAA" } }] },
    ];
    const a = await post(m.fetch, `${mock.url}/v1beta/models/gemini-2.5-flash:generateContent`, {
      contents: image,
    });
    const b = await post(m.fetch, `${mock.url}/v1beta/models/gemini-2.5-flash:generateContent`, {
      contents,
      tools: [{ googleSearch: {} }],
    });
    for (const r of [a, b])
      expect((await r.json()) as unknown).toMatchObject({
        error: { reason: "UNMETERABLE_REQUEST" },
      });
    expect(mock.count()).toBe(0);
  });
});

describe("requests priced above the table, or read two ways", () => {
  const gemini = "/v1beta/models/gemini-2.5-flash:generateContent";
  const parts = [{ role: "user", parts: [{ text: "hi" }] }];
  const image = { type: "image_url", image_url: { url: "https://example.com/a.png" } };
  it.each<[string, string, Record<string, unknown>]>([
    [
      "an OpenAI priority tier",
      "/v1/chat/completions",
      { model: "gpt-4o-mini", messages: hello, service_tier: "priority" },
    ],
    [
      "a Responses priority tier",
      "/v1/responses",
      { model: "gpt-4.1", input: "hi", service_tier: "priority" },
    ],
    [
      "a legacy completion on an unknown tier",
      "/v1/completions",
      { model: "gpt-3.5-turbo-instruct", prompt: "hi", service_tier: "scale" },
    ],
    [
      "Anthropic fast mode",
      "/v1/messages",
      { model: "claude-sonnet-4-5", max_tokens: 10, messages: hello, speed: "fast" },
    ],
    [
      "Anthropic inference kept in one region",
      "/v1/messages",
      { model: "claude-sonnet-4-5", max_tokens: 10, messages: hello, inference_geo: "us" },
    ],
    [
      "a stored item referenced from the input",
      "/v1/responses",
      { model: "gpt-4.1", input: [{ type: "item_reference", id: "msg_1" }] },
    ],
    ["Gemini Google Maps grounding", gemini, { contents: parts, tools: [{ googleMaps: {} }] }],
    [
      "Gemini's maximum in both spellings",
      gemini,
      { contents: parts, generationConfig: { maxOutputTokens: 10, max_output_tokens: 60_000 } },
    ],
    [
      "Gemini's generation config in both spellings",
      gemini,
      {
        contents: parts,
        generationConfig: { maxOutputTokens: 10 },
        generation_config: { max_output_tokens: 60_000 },
      },
    ],
    [
      "Gemini's system instruction in both spellings",
      gemini,
      {
        contents: parts,
        systemInstruction: { parts: [{ text: "a" }] },
        system_instruction: { parts: [{ text: "x".repeat(10_000) }] },
      },
    ],
    ["Gemini contents that are not a list", gemini, { contents: { parts: [{ text: "hi" }] } }],
    [
      "chat messages that are not a list",
      "/v1/chat/completions",
      { model: "gpt-4o-mini", messages: { role: "user", content: "hi" } },
    ],
    [
      "Responses input that is neither text nor a list",
      "/v1/responses",
      { model: "gpt-4.1", input: { role: "user", content: "hi" } },
    ],
    [
      "an image on Gemini's OpenAI-compatible base, which documents no image maximum",
      "/v1beta/openai/chat/completions",
      { model: "gemini-2.5-flash", messages: [{ role: "user", content: [image] }] },
    ],
  ])("refuses %s as UNMETERABLE_REQUEST, before sending", async (_name, path, body) => {
    const m = await metered();
    const response = await post(m.fetch, `${mock.url}${path}`, body);
    expect((await response.json()) as unknown).toMatchObject({
      error: { reason: "UNMETERABLE_REQUEST" },
    });
    expect(mock.count()).toBe(0);
  });

  it("takes the standard, default, auto and flex tiers, and a null tool on Gemini is no error", async () => {
    const m = await metered();
    for (const tier of ["default", "auto", "flex"]) {
      const r = await post(m.fetch, `${mock.url}/v1/chat/completions`, {
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: `tier ${tier}` }],
        service_tier: tier,
      });
      expect([tier, r.status]).toEqual([tier, 200]);
    }
    const r = await post(m.fetch, `${mock.url}${gemini}`, { contents: parts, tools: [null] });
    expect(r.status).toBe(200);
  });
});

describe("registered OpenAI-compatible servers", () => {
  it("meter a base under the provider name given, priced from the table under that name", async () => {
    const base = () => `${mock.url}/ollama/v1`;
    const m = await metered(
      {},
      {
        compatible: [{ baseUrl: `${mock.url}/ollama/v1`, provider: "ollama" }],
        pricing: { ollama: { "llama3.2": { inputPerMTok: 1_000, outputPerMTok: 2_000 } } },
      },
    );
    await (
      await post(m.fetch, `${base()}/chat/completions`, { model: "llama3.2", messages: hello })
    ).arrayBuffer();
    await (
      await post(m.fetch, `${base()}/embeddings`, { model: "llama3.2", input: "x" })
    ).arrayBuffer();
    expect(mock.received[0]?.body.max_tokens).toBe(4096);
    expect((await m.ledger()).usdMicros).toBe(
      cost(1234, 1_000) + cost(567, 2_000) + cost(1234, 1_000),
    );
  });

  it("deny an unpriced model there, and refuse an endpoint of the base that no adapter meters", async () => {
    const m = await metered(
      {},
      { compatible: [{ baseUrl: `${mock.url}/vllm/v1`, provider: "vllm" }] },
    );
    const a = await post(m.fetch, `${mock.url}/vllm/v1/chat/completions`, {
      model: "qwen",
      messages: hello,
    });
    expect((await a.json()) as unknown).toMatchObject({ error: { reason: "UNKNOWN_MODEL_PRICE" } });
    const b = await post(m.fetch, `${mock.url}/vllm/v1/audio/speech`, {
      model: "qwen",
      input: "x",
    });
    expect((await b.json()) as unknown).toMatchObject({ error: { reason: "UNMATCHED_ENDPOINT" } });
    expect(mock.count()).toBe(0);
  });

  it("reject a malformed registration with a TypeError", async () => {
    await expect(
      metered({}, { compatible: [{ baseUrl: "not a url", provider: "x" }] }),
    ).rejects.toThrow(TypeError);
    await expect(
      metered({}, { compatible: [{ baseUrl: "http://127.0.0.1:1/v1", provider: "" }] }),
    ).rejects.toThrow(TypeError);
    await expect(
      metered({}, { compatible: [{ baseUrl: "file:///etc", provider: "x" }] }),
    ).rejects.toThrow(TypeError);
  });
});

describe("provider hosts: metered or refused", () => {
  /** A stub for off-machine hosts: records each URL and answers locally, so nothing leaves the machine. */
  const stub = () => {
    const seen: string[] = [];
    const inner: typeof fetch = async (input, init) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      seen.push(
        `${(init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase()} ${url}`,
      );
      return new Response(
        JSON.stringify({
          object: "list",
          data: [],
          usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
        }),
        { status: 200, headers: { "content-type": "application/json" } },
      );
    };
    return { seen, inner };
  };

  it.each([
    ["POST", "https://api.openai.com/v1/images/generations"],
    ["POST", "https://api.openai.com/v1/audio/speech"],
    ["POST", "https://api.openai.com/v1/files"],
    ["POST", "https://api.openai.com/v1/batches"],
    ["POST", "https://api.anthropic.com/v1/messages/batches"],
    [
      "POST",
      "https://generativelanguage.googleapis.com/v1beta/models/imagen-3.0-generate-002:predict",
    ],
    ["POST", "https://generativelanguage.googleapis.com/v1beta/cachedContents"],
    [
      "POST",
      "https://my-res.openai.azure.com/openai/deployments/whisper/audio/transcriptions?api-version=2024-10-21",
    ],
    ["DELETE", "https://api.openai.com/v1/responses/resp_1"],
    // The host's fully qualified name is the same host.
    ["POST", "https://api.openai.com./v1/images/generations"],
    ["POST", "https://API.ANTHROPIC.COM./v1/messages/batches"],
  ])("refuses %s %s with UNMATCHED_ENDPOINT and never calls it", async (method, url) => {
    const { seen, inner } = stub();
    const m = await metered({}, { inner });
    const response = await m.fetch(url, { method, body: method === "DELETE" ? null : "{}" });
    expect(response.status).toBe(403);
    expect((await response.json()) as unknown).toMatchObject({
      error: { reason: "UNMATCHED_ENDPOINT", linkIndex: null },
    });
    expect(seen).toEqual([]);
  });

  it.each([
    ["GET", "https://api.openai.com/v1/models"],
    ["GET", "https://api.openai.com/v1/models/gpt-4o"],
    ["GET", "https://api.anthropic.com/v1/models"],
    ["POST", "https://api.anthropic.com/v1/messages/count_tokens"],
    ["GET", "https://generativelanguage.googleapis.com/v1beta/models"],
    [
      "POST",
      "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:countTokens",
    ],
    ["POST", "https://example.com/some/other/api"],
  ])("lets the free endpoint or other host %s %s pass unmetered", async (method, url) => {
    const { seen, inner } = stub();
    const m = await metered({}, { inner });
    const response = await m.fetch(url, { method, ...(method === "POST" ? { body: "{}" } : {}) });
    expect(response.status).toBe(200);
    expect(seen).toEqual([`${method} ${url}`]);
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, ...zero });
  });

  it("meters a known endpoint on the provider's own host (through the stub)", async () => {
    const { seen, inner } = stub();
    const m = await metered({}, { inner });
    await (
      await post(m.fetch, "https://api.openai.com/v1/chat/completions", {
        model: "gpt-4o-mini",
        messages: hello,
      })
    ).arrayBuffer();
    expect(seen).toEqual(["POST https://api.openai.com/v1/chat/completions"]);
    expect((await m.ledger()).tokens).toBe(7);
  });

  it("lets an endpoint pass that allowUnmetered names, and everything with unmatched: pass", async () => {
    const { seen, inner } = stub();
    const m = await metered(
      {},
      { inner, allowUnmetered: (url, method) => method === "POST" && url.pathname === "/v1/files" },
    );
    expect(
      (await m.fetch("https://api.openai.com/v1/files", { method: "POST", body: "{}" })).status,
    ).toBe(200);
    expect(
      (await m.fetch("https://api.openai.com/v1/batches", { method: "POST", body: "{}" })).status,
    ).toBe(403);
    const loose = await metered({}, { inner, unmatched: "pass" });
    expect(
      (await loose.fetch("https://api.openai.com/v1/batches", { method: "POST", body: "{}" }))
        .status,
    ).toBe(200);
    expect(seen).toEqual([
      "POST https://api.openai.com/v1/files",
      "POST https://api.openai.com/v1/batches",
    ]);
  });
});

describe("requests the meter cannot bound (hard mode)", () => {
  it.each([
    [
      "OpenAI audio input",
      "/v1/chat/completions",
      {
        model: "gpt-4o-mini",
        messages: [
          {
            role: "user",
            content: [{ type: "input_audio", input_audio: { data: "AAAA", format: "wav" } }],
          },
        ],
      },
    ],
    [
      "OpenAI file input",
      "/v1/chat/completions",
      {
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: [{ type: "file", file: { file_id: "file-1" } }] }],
      },
    ],
    [
      "a stored conversation",
      "/v1/responses",
      { model: "gpt-4.1", input: "hi", previous_response_id: "resp_1" },
    ],
    [
      "a per-call tool with no price",
      "/v1/responses",
      {
        model: "gpt-4.1",
        input: "hi",
        tools: [{ type: "code_interpreter", container: { type: "auto" } }],
      },
    ],
    [
      "an Anthropic PDF",
      "/v1/messages",
      {
        model: "claude-sonnet-4-5",
        max_tokens: 10,
        messages: [
          {
            role: "user",
            content: [
              {
                type: "document",
                source: { type: "base64", media_type: "application/pdf", data: "JVBER" },
              },
            ],
          },
        ],
      },
    ],
    [
      "a data: URL outside any image part",
      "/v1/chat/completions",
      {
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "data:application/octet-stream;base64,AAAA" }],
      },
    ],
  ])("refuses %s as UNMETERABLE_REQUEST", async (_name, path, body) => {
    const m = await metered();
    const response = await post(m.fetch, `${mock.url}${path}`, body);
    expect(response.status).toBe(403);
    expect((await response.json()) as unknown).toMatchObject({
      error: { reason: "UNMETERABLE_REQUEST" },
    });
    expect(mock.count()).toBe(0);
  });

  it.each([
    ["a string n", "/v1/chat/completions", { model: "gpt-4o-mini", messages: hello, n: "3" }],
    ["a fractional n", "/v1/chat/completions", { model: "gpt-4o-mini", messages: hello, n: 2.5 }],
    [
      "a negative best_of",
      "/v1/completions",
      { model: "gpt-3.5-turbo-instruct", prompt: "x", best_of: -2 },
    ],
    [
      "a huge candidateCount",
      "/v1beta/models/gemini-2.5-flash:generateContent",
      { contents: [{ parts: [{ text: "x" }] }], generationConfig: { candidateCount: 1e300 } },
    ],
  ])(
    "refuses %s, which a coercing server could multiply the output by",
    async (_name, path, body) => {
      const m = await metered();
      const response = await post(m.fetch, `${mock.url}${path}`, body);
      expect((await response.json()) as unknown).toMatchObject({
        error: { reason: "UNMETERABLE_REQUEST" },
      });
      expect(mock.count()).toBe(0);
    },
  );

  it.each([
    ["a string", "100000"],
    ["a negative", -1],
    ["a float", 10.5],
    ["NaN-like null", null],
    ["an object", { n: 1 }],
  ])("overwrites %s max_tokens with the bound", async (_name, value) => {
    const m = await metered();
    await (
      await post(m.fetch, `${mock.url}/v1/messages`, {
        model: "claude-haiku-4-5",
        max_tokens: value,
        messages: hello,
      })
    ).arrayBuffer();
    expect(mock.received[0]?.body.max_tokens).toBe(4096);
  });

  it("prices an image at its documented maximum instead of by its base64 length", async () => {
    const m = await metered();
    const image = {
      type: "image",
      source: { type: "base64", media_type: "image/png", data: "A".repeat(200_000) },
    };
    const response = await post(m.fetch, `${mock.url}/v1/messages`, {
      model: "claude-sonnet-4-5",
      max_tokens: 10,
      messages: [{ role: "user", content: [image] }],
    });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
  });

  it('meters them with bound: "estimate", the older guess', async () => {
    const m = await metered({}, { bound: "estimate" });
    const response = await post(m.fetch, `${mock.url}/v1/responses`, {
      model: "gpt-4.1",
      input: "hi",
      previous_response_id: "resp_1",
    });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    // Estimate mode writes no limits unless caps require it.
    expect(mock.received[0]?.body.max_output_tokens).toBeUndefined();
  });
});

describe("server tools", () => {
  it("writes max_uses on Anthropic web search and reserves its calls", async () => {
    const m = await metered();
    await (
      await post(m.fetch, `${mock.url}/v1/messages`, {
        model: "claude-sonnet-4-5",
        max_tokens: 100,
        messages: hello,
        tools: [{ type: "web_search_20250305", name: "web_search" }],
      })
    ).arrayBuffer();
    expect(mock.received[0]?.body.tools).toEqual([
      { type: "web_search_20250305", name: "web_search", max_uses: 5 },
    ]);
  });

  it("writes max_tool_calls on an OpenAI responses request with web search", async () => {
    const m = await metered({}, { defaultMaxToolCalls: 2 });
    await (
      await post(m.fetch, `${mock.url}/v1/responses`, {
        model: "gpt-4.1",
        input: "hi",
        tools: [{ type: "web_search" }],
      })
    ).arrayBuffer();
    expect(mock.received[0]?.body.max_tool_calls).toBe(2);
  });
});
