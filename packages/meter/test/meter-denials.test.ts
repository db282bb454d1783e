/**
 * Denials stop callers: the official openai and @anthropic-ai/sdk clients and the AI SDK (with the
 * OpenAI, Anthropic and Google providers), each allowed 3 retries, send exactly one request per
 * denied call; `denialOf` reads the typed denial back out of each one's error.
 */
import { createAnthropic } from "@ai-sdk/anthropic";
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { createOpenAI } from "@ai-sdk/openai";
import Anthropic from "@anthropic-ai/sdk";
import { APICallError, RetryError, embed, generateText } from "ai";
import OpenAI from "openai";
import { DENY_REASONS } from "@allowance/enforcer";
import { denialOf, denialResponse, METER_DENY_REASONS, type MeterDenial } from "@allowance/meter";
import { denialStatus } from "../src/wrap-fetch.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fetchListener, listen, type RunningServer } from "../../../test/support/http.js";
import { metered, MockLlm, mockLlmPerTest } from "./meter-support.js";

const BUDGET: MeterDenial = {
  reason: "BUDGET_USD",
  linkIndex: 1,
  linkId: "link-1",
  field: "usdMicros",
  available: 0,
  limit: 10_000,
  message: "this agent has $0.00 left of the $0.01 its grant allows",
  provider: "openai",
  model: "gpt-4o-mini",
};
const RATE: MeterDenial = {
  reason: "RATE_LIMITED",
  linkIndex: 0,
  linkId: "link-0",
  field: "rate.60s.requests",
  retryAfter: 1,
  message: "one request a minute: try again in 1 s",
};

/** A loopback server that denies every request as a metering gateway would, and counts them. */
let server: RunningServer;
let requests = 0;
let answer: MeterDenial = BUDGET;
beforeAll(async () => {
  server = await listen(
    fetchListener(async () => {
      requests++;
      return denialResponse(answer);
    }),
  );
});
afterAll(() => server.close());

/** Every client, one call each, allowed 3 retries. */
const CLIENTS: readonly (readonly [
  string,
  (base: string, fetch?: typeof globalThis.fetch) => Promise<unknown>,
])[] = [
  [
    "openai chat",
    (base, fetch) =>
      new OpenAI({
        apiKey: "sk",
        baseURL: `${base}/v1`,
        maxRetries: 3,
        ...(fetch ? { fetch } : {}),
      }).chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
      }),
  ],
  [
    "openai embeddings",
    (base, fetch) =>
      new OpenAI({
        apiKey: "sk",
        baseURL: `${base}/v1`,
        maxRetries: 3,
        ...(fetch ? { fetch } : {}),
      }).embeddings.create({ model: "text-embedding-3-small", input: "hi" }),
  ],
  [
    "@anthropic-ai/sdk",
    (base, fetch) =>
      new Anthropic({
        apiKey: "sk",
        baseURL: base,
        maxRetries: 3,
        ...(fetch ? { fetch } : {}),
      }).messages.create({
        model: "claude-haiku-4-5",
        max_tokens: 10,
        messages: [{ role: "user", content: "hi" }],
      }),
  ],
  [
    "ai + @ai-sdk/openai (responses)",
    (base, fetch) =>
      generateText({
        model: createOpenAI({ apiKey: "sk", baseURL: `${base}/v1`, ...(fetch ? { fetch } : {}) })(
          "gpt-4o-mini",
        ),
        prompt: "hi",
        maxRetries: 3,
      }),
  ],
  [
    "ai + @ai-sdk/openai (chat)",
    (base, fetch) =>
      generateText({
        model: createOpenAI({
          apiKey: "sk",
          baseURL: `${base}/v1`,
          ...(fetch ? { fetch } : {}),
        }).chat("gpt-4o-mini"),
        prompt: "hi",
        maxRetries: 3,
      }),
  ],
  [
    "ai embed + @ai-sdk/openai",
    (base, fetch) =>
      embed({
        model: createOpenAI({
          apiKey: "sk",
          baseURL: `${base}/v1`,
          ...(fetch ? { fetch } : {}),
        }).embedding("text-embedding-3-small"),
        value: "hi",
        maxRetries: 3,
      }),
  ],
  [
    "ai + @ai-sdk/anthropic",
    (base, fetch) =>
      generateText({
        model: createAnthropic({
          apiKey: "sk",
          baseURL: `${base}/v1`,
          ...(fetch ? { fetch } : {}),
        })("claude-haiku-4-5"),
        prompt: "hi",
        maxRetries: 3,
      }),
  ],
  [
    "ai + @ai-sdk/google",
    (base, fetch) =>
      generateText({
        model: createGoogleGenerativeAI({
          apiKey: "sk",
          baseURL: `${base}/v1beta`,
          ...(fetch ? { fetch } : {}),
        })("gemini-2.5-flash"),
        prompt: "hi",
        maxRetries: 3,
      }),
  ],
];

describe.each([
  ["a budget denial (402)", BUDGET],
  ["a rate denial with retry-after (403)", RATE],
])("%s from a metering gateway", (_name, denial) => {
  it.each(CLIENTS)(
    "%s sends exactly one request, and denialOf reads the denial from its error",
    async (_client, call) => {
      answer = denial;
      requests = 0;
      const error = await call(server.url).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeDefined();
      expect(requests).toBe(1);
      expect(denialOf(error)).toEqual(denial);
    },
  );
});

describe("denials made by wrapFetch itself", () => {
  let mock: MockLlm;
  mockLlmPerTest((started) => (mock = started));

  it.each(CLIENTS)(
    "%s calls the metered fetch once, reaches no server, and gets a typed denial",
    async (_client, call) => {
      const m = await metered({ child: { usdMicros: 1 } });
      let calls = 0;
      const counted: typeof fetch = (input, init) => {
        calls++;
        return m.fetch(input, init);
      };
      const error = await call(mock.url, counted).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(calls).toBe(1);
      expect(mock.count()).toBe(0);
      expect(denialOf(error)).toMatchObject({
        reason: "BUDGET_USD",
        linkIndex: 1,
        field: "usdMicros",
      });
    },
  );
});

describe("denialStatus and denialOf", () => {
  it("answers 402 for budgets and debt, 403 for every other reason: statuses no SDK retries", () => {
    for (const reason of METER_DENY_REASONS)
      expect(denialStatus(reason)).toBe(
        reason.startsWith("BUDGET_") || reason === "DEBT_OUTSTANDING" ? 402 : 403,
      );
  });

  it("knows every reason the enforcer denies with: a denial of each reads back from its body (ARGUMENT_NOT_ALLOWED and DEBT_OUTSTANDING were missing, and read back as no denial)", async () => {
    for (const reason of DENY_REASONS) {
      expect(METER_DENY_REASONS).toContain(reason);
      const denial: MeterDenial = { reason, linkIndex: 0, field: "usdMicros", message: reason };
      const body = await denialResponse(denial).text();
      expect(denialOf(body), reason).toEqual(denial);
    }
    expect(new Set(METER_DENY_REASONS).size).toBe(METER_DENY_REASONS.length);
  });

  it("reads a raw body, as text or parsed, and a RetryError's attempts", async () => {
    const text = await denialResponse(BUDGET).text();
    expect(denialOf(text)).toEqual(BUDGET);
    expect(denialOf(JSON.parse(text))).toEqual(BUDGET);
    const apiError = new APICallError({
      message: "denied",
      url: "http://x",
      requestBodyValues: {},
      statusCode: 402,
      responseBody: text,
    });
    expect(
      denialOf(
        new RetryError({
          message: "failed",
          reason: "maxRetriesExceeded",
          errors: [new Error("first"), apiError],
        }),
      ),
    ).toEqual(BUDGET);
    expect(denialOf(new Error("wrapped", { cause: apiError }))).toEqual(BUDGET);
  });

  it("answers a native Gemini call in Google's error shape, which the Gemini clients parse, with the typed denial inside", async () => {
    const response = denialResponse(BUDGET, { wire: "google" });
    expect(response.status).toBe(402);
    const body = (await response.json()) as { error: Record<string, unknown> };
    // Google's schema: a numeric code, a message and a status string.
    expect(body.error).toMatchObject({
      code: 402,
      message: BUDGET.message,
      status: "FAILED_PRECONDITION",
    });
    expect(denialOf(body)).toEqual(BUDGET);
  });

  it("denialResponse refuses a misspelt wire or option and a denial that denialOf could not read back", async () => {
    for (const options of [null, { wire: "Google" }, { wire: null }, { shape: "google" }])
      expect(() => denialResponse(BUDGET, options as never), JSON.stringify(options)).toThrow(
        TypeError,
      );
    for (const denial of [
      null,
      { ...BUDGET, reason: "NOPE" },
      { ...BUDGET, message: undefined },
      { ...BUDGET, linkIndex: -1 },
      { ...RATE, retryAfter: Number.NaN },
      { ...RATE, retryAfter: 1.5 },
      { ...BUDGET, available: -5 },
    ])
      expect(() => denialResponse(denial as never), JSON.stringify(denial)).toThrow(/"denial/);
    const response = denialResponse(RATE, { wire: "openai" });
    expect(response.headers.get("retry-after")).toBe("1");
    expect(denialOf(await response.json())).toEqual(RATE);
  });

  it("finds nothing in other errors, and never throws on hostile values", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.error = cyclic;
    cyclic.cause = cyclic;
    let deep: Record<string, unknown> = {
      type: "allowance_denied",
      reason: "BUDGET_USD",
      linkIndex: 0,
    };
    for (let i = 0; i < 10_000; i++) deep = { error: deep };
    for (const value of [
      undefined,
      null,
      42,
      "{",
      "x".repeat(1_000_000),
      new Error("boom"),
      new OpenAI.APIError(500, { message: "server" }, "server", new Headers()),
      { error: { type: "allowance_denied", reason: "NOT_A_REASON", linkIndex: null } },
      { error: { type: "allowance_denied", reason: "BUDGET_USD", linkIndex: -1 } },
      { error: { type: "allowance_denied", reason: "BUDGET_USD", linkIndex: 1.5 } },
      cyclic,
      deep,
      Object.create(null),
    ]) {
      expect(denialOf(value)).toBeUndefined();
    }
  });

  it("never throws from a getter or proxy that throws, and still finds a denial beside it", () => {
    const throwing = new Proxy(
      {},
      {
        get() {
          throw new Error("getter");
        },
      },
    );
    const { proxy: revoked, revoke } = Proxy.revocable({}, {});
    revoke();
    for (const value of [
      throwing,
      revoked,
      { errors: revoked },
      {
        get error(): unknown {
          throw new Error("getter");
        },
      },
    ])
      expect(denialOf(value)).toBeUndefined();
    const body = JSON.parse(JSON.stringify({ error: { type: "allowance_denied", ...BUDGET } }));
    expect(
      denialOf({
        get error(): unknown {
          throw new Error("getter");
        },
        cause: body,
      }),
    ).toEqual(BUDGET);
  });

  it("keeps only well-formed optional fields", () => {
    expect(
      denialOf({
        type: "allowance_denied",
        reason: "BUDGET_TOKENS",
        linkIndex: 2,
        field: "tokens",
        message: "m",
        available: -5,
        limit: "10",
        retryAfter: Number.NaN,
      }),
    ).toEqual({ reason: "BUDGET_TOKENS", linkIndex: 2, field: "tokens", message: "m" });
  });
});
