import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { TokenUsage } from "@allowance/meter";
import {
  anthropicUsage,
  geminiResponseUsage,
  geminiUsage,
  geminiWebSearchCalls,
  mostOf,
  openaiChatUsage,
  openaiEmbeddingsUsage,
  openaiResponsesBodyUsage,
  openaiResponsesUsage,
  openaiWebSearchCalls,
} from "../src/usage.js";

const HOSTILE: readonly unknown[] = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -1,
  1.5,
  2 ** 53,
  "12",
  true,
  {},
  [],
  -0.5,
];

/** A usage a meter can charge: every field a non-negative safe integer, reasoning inside the output. */
function expectChargeable(usage: TokenUsage | undefined): void {
  if (usage === undefined) return;
  for (const [key, value] of Object.entries(usage)) {
    expect(Number.isSafeInteger(value) && (value as number) >= 0, `${key} = ${String(value)}`).toBe(
      true,
    );
  }
  expect(usage.reasoningTokens ?? 0).toBeLessThanOrEqual(usage.outputTokens);
}

describe("OpenAI usage", () => {
  it("takes cached tokens (and cache writes) out of the prompt count, and keeps reasoning inside the output", () => {
    expect(
      openaiChatUsage({
        prompt_tokens: 100,
        completion_tokens: 50,
        prompt_tokens_details: { cached_tokens: 60, cache_write_tokens: 10 },
        completion_tokens_details: { reasoning_tokens: 40 },
      }),
    ).toEqual({
      inputTokens: 30,
      outputTokens: 50,
      cachedInputTokens: 60,
      cacheWriteInputTokens: 10,
      reasoningTokens: 40,
    });
    expect(
      openaiResponsesUsage(
        {
          input_tokens: 100,
          output_tokens: 50,
          input_tokens_details: { cached_tokens: 0 },
          output_tokens_details: { reasoning_tokens: 0 },
        },
        2,
      ),
    ).toEqual({ inputTokens: 100, outputTokens: 50, webSearchCalls: 2 });
  });

  it("reads null details as none, the way the API sends them", () => {
    expect(
      openaiChatUsage({
        prompt_tokens: 3,
        completion_tokens: 4,
        prompt_tokens_details: null,
        completion_tokens_details: null,
      }),
    ).toEqual({ inputTokens: 3, outputTokens: 4 });
  });

  it("counts every web_search_call output item, whatever its status or action, and nothing else", () => {
    const output = [
      { type: "web_search_call", status: "completed", action: { type: "search" } },
      { type: "web_search_call", status: "failed" },
      { type: "web_search_call", action: { type: "open_page" } },
      { type: "file_search_call" },
      { type: "message", content: [{ type: "web_search_call" }] },
    ];
    expect(openaiWebSearchCalls(output)).toBe(3);
    expect(openaiWebSearchCalls([])).toBe(0);
    expect(openaiWebSearchCalls({ type: "web_search_call" })).toBeUndefined();
    expect(openaiWebSearchCalls([null])).toBeUndefined();
    expect(
      openaiResponsesBodyUsage({ output, usage: { input_tokens: 1, output_tokens: 2 } }),
    ).toEqual({ inputTokens: 1, outputTokens: 2, webSearchCalls: 3 });
    expect(
      openaiResponsesBodyUsage({ output: "x", usage: { input_tokens: 1, output_tokens: 2 } }),
    ).toBeUndefined();
  });

  it("charges the larger of an embedding's prompt and total counts, with no output", () => {
    expect(openaiEmbeddingsUsage({ prompt_tokens: 8, total_tokens: 8 })).toEqual({
      inputTokens: 8,
      outputTokens: 0,
    });
    expect(openaiEmbeddingsUsage({ prompt_tokens: 8, total_tokens: 9 })).toEqual({
      inputTokens: 9,
      outputTokens: 0,
    });
    expect(openaiEmbeddingsUsage({ prompt_tokens: 8 })).toEqual({
      inputTokens: 8,
      outputTokens: 0,
    });
    expect(openaiEmbeddingsUsage({ total_tokens: 8 })).toBeUndefined();
  });

  it("reads a count that is not a non-negative safe integer, or counts that contradict each other, as unreadable", () => {
    for (const bad of HOSTILE) {
      expect(
        openaiChatUsage({ prompt_tokens: bad, completion_tokens: 1 }),
        String(bad),
      ).toBeUndefined();
      expect(
        openaiChatUsage({ prompt_tokens: 1, completion_tokens: bad }),
        String(bad),
      ).toBeUndefined();
      expect(
        openaiChatUsage({
          prompt_tokens: 100,
          completion_tokens: 1,
          prompt_tokens_details: { cached_tokens: bad },
        }),
        String(bad),
      ).toBeUndefined();
      expect(
        openaiResponsesUsage({
          input_tokens: 1,
          output_tokens: 100,
          output_tokens_details: { reasoning_tokens: bad },
        }),
        String(bad),
      ).toBeUndefined();
      expect(
        openaiResponsesUsage({ input_tokens: 1, output_tokens: 1 }, bad as number),
        String(bad),
      ).toBeUndefined();
      expect(openaiEmbeddingsUsage({ prompt_tokens: bad }), String(bad)).toBeUndefined();
    }
    expect(
      openaiChatUsage({
        prompt_tokens: 10,
        completion_tokens: 1,
        prompt_tokens_details: { cached_tokens: 11 },
      }),
    ).toBeUndefined();
    expect(
      openaiChatUsage({
        prompt_tokens: 10,
        completion_tokens: 1,
        prompt_tokens_details: { cached_tokens: 6, cache_write_tokens: 5 },
      }),
    ).toBeUndefined();
    expect(
      openaiResponsesUsage({
        input_tokens: 1,
        output_tokens: 3,
        output_tokens_details: { reasoning_tokens: 4 },
      }),
    ).toBeUndefined();
    expect(
      openaiChatUsage({ prompt_tokens: 1, completion_tokens: 1, prompt_tokens_details: "none" }),
    ).toBeUndefined();
    for (const notUsage of [undefined, null, 5, "usage", [1, 2]])
      expect(openaiChatUsage(notUsage)).toBeUndefined();
  });
});

describe("Anthropic usage", () => {
  it("splits cache writes by lifetime, and charges a write the split leaves out at the 1-hour price", () => {
    const base = { input_tokens: 10, output_tokens: 20, cache_read_input_tokens: 30 };
    expect(
      anthropicUsage(
        {
          ...base,
          cache_creation_input_tokens: 300,
          cache_creation: { ephemeral_5m_input_tokens: 100, ephemeral_1h_input_tokens: 200 },
        },
        undefined,
      ),
    ).toEqual({
      inputTokens: 10,
      outputTokens: 20,
      cachedInputTokens: 30,
      cacheWriteInputTokens: 100,
      cacheWrite1hInputTokens: 200,
    });
    expect(
      anthropicUsage(
        {
          ...base,
          cache_creation_input_tokens: 350,
          cache_creation: { ephemeral_5m_input_tokens: 100, ephemeral_1h_input_tokens: 200 },
        },
        undefined,
      ),
    ).toMatchObject({ cacheWriteInputTokens: 100, cacheWrite1hInputTokens: 250 });
    expect(
      anthropicUsage(
        {
          ...base,
          cache_creation_input_tokens: 50,
          cache_creation: { ephemeral_5m_input_tokens: 100, ephemeral_1h_input_tokens: 200 },
        },
        undefined,
      ),
    ).toMatchObject({ cacheWriteInputTokens: 100, cacheWrite1hInputTokens: 200 });
    // No split (older API versions): the default 5-minute lifetime.
    expect(anthropicUsage({ ...base, cache_creation_input_tokens: 300 }, undefined)).toMatchObject({
      cacheWriteInputTokens: 300,
    });
  });

  it("counts server-side web searches", () => {
    expect(
      anthropicUsage(
        {
          input_tokens: 1,
          output_tokens: 1,
          server_tool_use: { web_search_requests: 4, web_fetch_requests: 2 },
        },
        undefined,
      ),
    ).toEqual({ inputTokens: 1, outputTokens: 1, webSearchCalls: 4 });
  });

  it("reads thinking tokens, when reported, as the reasoning inside the output", () => {
    expect(
      anthropicUsage(
        { input_tokens: 1, output_tokens: 90, output_tokens_details: { thinking_tokens: 60 } },
        undefined,
      ),
    ).toEqual({ inputTokens: 1, outputTokens: 90, reasoningTokens: 60 });
    expect(
      anthropicUsage(
        { input_tokens: 1, output_tokens: 90, output_tokens_details: { thinking_tokens: 91 } },
        undefined,
      ),
    ).toBeUndefined();
  });

  it("folds a stream: message_start's counts stay unless a later event sends them again; output is cumulative", () => {
    const start = anthropicUsage(
      {
        input_tokens: 500,
        output_tokens: 1,
        cache_read_input_tokens: 100,
        cache_creation_input_tokens: 40,
        cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 40 },
      },
      undefined,
    );
    expect(start).toEqual({
      inputTokens: 500,
      outputTokens: 1,
      cachedInputTokens: 100,
      cacheWrite1hInputTokens: 40,
    });
    const delta = anthropicUsage({ output_tokens: 77 }, start);
    expect(delta).toEqual({
      inputTokens: 500,
      outputTokens: 77,
      cachedInputTokens: 100,
      cacheWrite1hInputTokens: 40,
    });
    // Newer API versions repeat every count in message_delta, with nulls and without the split.
    expect(
      anthropicUsage(
        {
          input_tokens: null,
          cache_creation_input_tokens: 40,
          cache_read_input_tokens: null,
          output_tokens: 90,
          server_tool_use: { web_search_requests: 1 },
        },
        delta,
      ),
    ).toEqual({
      inputTokens: 500,
      outputTokens: 90,
      cachedInputTokens: 100,
      cacheWrite1hInputTokens: 40,
      webSearchCalls: 1,
    });
    expect(anthropicUsage(undefined, delta)).toBe(delta);
    expect(anthropicUsage(undefined, undefined)).toBeUndefined();
  });

  it("never lowers a count a stream reported before: a later, smaller report keeps the earlier one", () => {
    const seen = anthropicUsage(
      {
        input_tokens: 1000,
        output_tokens: 900,
        cache_read_input_tokens: 50,
        server_tool_use: { web_search_requests: 3 },
      },
      undefined,
    );
    expect(
      anthropicUsage(
        {
          input_tokens: 0,
          output_tokens: 2,
          cache_read_input_tokens: 0,
          server_tool_use: { web_search_requests: 1 },
        },
        seen,
      ),
    ).toEqual({ inputTokens: 1000, outputTokens: 900, cachedInputTokens: 50, webSearchCalls: 3 });
    // OpenAI chat and Gemini streams alike (mostOf).
    const first = openaiChatUsage({ prompt_tokens: 1000, completion_tokens: 900 }) as TokenUsage;
    const second = openaiChatUsage({ prompt_tokens: 10, completion_tokens: 2 }) as TokenUsage;
    expect(mostOf(second, first)).toMatchObject({ inputTokens: 1000, outputTokens: 900 });
    expect(mostOf(first, second)).toMatchObject({ inputTokens: 1000, outputTokens: 900 });
  });

  it("reads a malformed count anywhere in the stream as unreadable, never as the last good value or NaN", () => {
    const seen = { inputTokens: 5, outputTokens: 1 };
    for (const bad of HOSTILE) {
      expect(
        anthropicUsage({ input_tokens: bad, output_tokens: 1 }, undefined),
        String(bad),
      ).toBeUndefined();
      expect(anthropicUsage({ output_tokens: bad }, seen), String(bad)).toBeUndefined();
      expect(
        anthropicUsage(
          { input_tokens: 1, output_tokens: 1, cache_creation: { ephemeral_1h_input_tokens: bad } },
          undefined,
        ),
        String(bad),
      ).toBeUndefined();
      expect(
        anthropicUsage(
          { input_tokens: 1, output_tokens: 1, server_tool_use: { web_search_requests: bad } },
          undefined,
        ),
        String(bad),
      ).toBeUndefined();
      expect(
        anthropicUsage(
          { input_tokens: 1, output_tokens: 100, output_tokens_details: { thinking_tokens: bad } },
          undefined,
        ),
        String(bad),
      ).toBeUndefined();
    }
    expect(anthropicUsage({ input_tokens: 1 }, undefined)).toBeUndefined();
    expect(
      anthropicUsage({ input_tokens: 1, output_tokens: 1, server_tool_use: 3 }, undefined),
    ).toBeUndefined();
    expect(anthropicUsage("usage", seen)).toBeUndefined();
  });
});

describe("Gemini usage", () => {
  it("bills thoughts as output on top of the candidates, and prices cached content apart from the prompt", () => {
    expect(
      geminiUsage({
        promptTokenCount: 100,
        cachedContentTokenCount: 60,
        toolUsePromptTokenCount: 7,
        candidatesTokenCount: 20,
        thoughtsTokenCount: 30,
        totalTokenCount: 157,
      }),
    ).toEqual({
      inputTokens: 47,
      outputTokens: 50,
      cachedInputTokens: 60,
      reasoningTokens: 30,
    });
    expect(geminiUsage({ promptTokenCount: 9 })).toEqual({ inputTokens: 9, outputTokens: 0 }); // every candidate blocked
  });

  it("counts the grounding search queries of every candidate", () => {
    const response = {
      candidates: [
        { groundingMetadata: { webSearchQueries: ["a", "b"] } },
        { groundingMetadata: { webSearchQueries: ["c"] } },
        {},
      ],
      usageMetadata: { promptTokenCount: 1, candidatesTokenCount: 1 },
    };
    expect(geminiWebSearchCalls(response)).toBe(3);
    expect(geminiResponseUsage(response)).toEqual({
      inputTokens: 1,
      outputTokens: 1,
      webSearchCalls: 3,
    });
    expect(
      geminiWebSearchCalls({ candidates: [{ groundingMetadata: { webSearchQueries: "a" } }] }),
    ).toBeUndefined();
    expect(
      geminiResponseUsage({ candidates: "x", usageMetadata: { promptTokenCount: 1 } }),
    ).toBeUndefined();
  });

  it("folds stream chunks so that no component ever goes down", () => {
    const first = geminiResponseUsage({
      usageMetadata: { promptTokenCount: 12, candidatesTokenCount: 3 },
    });
    const second = geminiResponseUsage(
      { usageMetadata: { promptTokenCount: 12, candidatesTokenCount: 1 } },
      first,
    );
    expect(second).toEqual({ inputTokens: 12, outputTokens: 3 });
    const last = geminiResponseUsage(
      {
        candidates: [{ groundingMetadata: { webSearchQueries: ["q"] } }],
        usageMetadata: {
          promptTokenCount: 12,
          cachedContentTokenCount: 10,
          candidatesTokenCount: 9,
          thoughtsTokenCount: 4,
        },
      },
      second,
    );
    expect(last).toEqual({
      inputTokens: 2,
      outputTokens: 13,
      cachedInputTokens: 10,
      reasoningTokens: 4,
      webSearchCalls: 1,
    });
    expect(geminiResponseUsage({ candidates: [] }, last)).toBe(last);
  });

  it("reads malformed or contradictory counts as unreadable", () => {
    for (const bad of HOSTILE) {
      expect(
        geminiUsage({ promptTokenCount: bad, candidatesTokenCount: 1 }),
        String(bad),
      ).toBeUndefined();
      expect(
        geminiUsage({ promptTokenCount: 1, candidatesTokenCount: bad }),
        String(bad),
      ).toBeUndefined();
      expect(
        geminiUsage({ promptTokenCount: 100, thoughtsTokenCount: bad }),
        String(bad),
      ).toBeUndefined();
      expect(
        geminiUsage({ promptTokenCount: 100, cachedContentTokenCount: bad }),
        String(bad),
      ).toBeUndefined();
    }
    expect(geminiUsage({ candidatesTokenCount: 1 })).toBeUndefined();
    expect(geminiUsage({ promptTokenCount: 5, cachedContentTokenCount: 6 })).toBeUndefined();
    expect(geminiResponseUsage({ embedding: { values: [0.1] } })).toBeUndefined(); // embedContent reports no usage
  });
});

describe("every normaliser, given anything", () => {
  const anything = fc.anything({
    withNullPrototype: true,
    withBigInt: true,
    withObjectString: true,
    maxDepth: 3,
  });
  const countish = fc.oneof(
    fc.nat(),
    fc.integer(),
    fc.double(),
    fc.string(),
    fc.constant(null),
    fc.constant(undefined),
    fc.constant(2 ** 53),
  );
  const openaiShaped = fc.record({
    prompt_tokens: countish,
    completion_tokens: countish,
    input_tokens: countish,
    output_tokens: countish,
    total_tokens: countish,
    prompt_tokens_details: fc.oneof(
      fc.constant(null),
      fc.record({ cached_tokens: countish, cache_write_tokens: countish }),
    ),
    input_tokens_details: fc.oneof(fc.constant(null), fc.record({ cached_tokens: countish })),
    completion_tokens_details: fc.oneof(
      fc.constant(null),
      fc.record({ reasoning_tokens: countish }),
    ),
    output_tokens_details: fc.oneof(fc.constant(null), fc.record({ reasoning_tokens: countish })),
  });
  const anthropicShaped = fc.record(
    {
      input_tokens: countish,
      output_tokens: countish,
      cache_read_input_tokens: countish,
      cache_creation_input_tokens: countish,
      cache_creation: fc.oneof(
        fc.constant(null),
        fc.record({ ephemeral_5m_input_tokens: countish, ephemeral_1h_input_tokens: countish }),
      ),
      output_tokens_details: fc.oneof(fc.constant(null), fc.record({ thinking_tokens: countish })),
      server_tool_use: fc.oneof(fc.constant(null), fc.record({ web_search_requests: countish })),
    },
    { requiredKeys: [] },
  );
  const geminiShaped = fc.record(
    {
      promptTokenCount: countish,
      cachedContentTokenCount: countish,
      toolUsePromptTokenCount: countish,
      candidatesTokenCount: countish,
      thoughtsTokenCount: countish,
    },
    { requiredKeys: [] },
  );

  it("law: the result is unreadable or a usage of non-negative safe integers, never NaN, a string or a negative", () => {
    fc.assert(
      fc.property(
        fc.oneof(anything, openaiShaped, anthropicShaped, geminiShaped),
        fc.array(fc.oneof(anything, anthropicShaped, geminiShaped), { maxLength: 4 }),
        (value, stream) => {
          expectChargeable(openaiChatUsage(value));
          expectChargeable(openaiResponsesUsage(value));
          expectChargeable(openaiResponsesBodyUsage({ usage: value, output: stream }));
          expectChargeable(openaiEmbeddingsUsage(value));
          expectChargeable(geminiUsage(value));
          expectChargeable(geminiResponseUsage({ usageMetadata: value }));
          let anthropic = anthropicUsage(value, undefined);
          let gemini = geminiResponseUsage({ usageMetadata: value });
          for (const event of stream) {
            anthropic = anthropicUsage(event, anthropic);
            gemini = geminiResponseUsage({ usageMetadata: event }, gemini);
            expectChargeable(anthropic);
            expectChargeable(gemini);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("law: a well-formed OpenAI usage keeps every token it reports: input + cached + writes = prompt", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 1_000_000 }),
        fc.nat({ max: 1_000_000 }),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        (prompt, completion, a, b, c) => {
          const cached = a % (prompt + 1);
          const written = b % (prompt - cached + 1);
          const reasoning = c % (completion + 1);
          const usage = openaiChatUsage({
            prompt_tokens: prompt,
            completion_tokens: completion,
            prompt_tokens_details: { cached_tokens: cached, cache_write_tokens: written },
            completion_tokens_details: { reasoning_tokens: reasoning },
          });
          expect(usage).toBeDefined();
          expect(
            (usage?.inputTokens ?? 0) +
              (usage?.cachedInputTokens ?? 0) +
              (usage?.cacheWriteInputTokens ?? 0),
          ).toBe(prompt);
          expect(usage?.outputTokens).toBe(completion);
        },
      ),
      { numRuns: 500 },
    );
  });
});
