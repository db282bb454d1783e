/**
 * tracedWrapFetch against the loopback mock provider, with a real Enforcer and MemoryLedger: one
 * GenAI span per metered or refused call, the enforcer's spans under it, the GenAI client metrics,
 * and answers, charges and denials exactly as the plain wrapFetch gives them.
 */
import { describe, expect, it } from "vitest";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { Enforcer } from "@allowance/enforcer";
import type { GrantFields } from "@allowance/core";
import { DEFAULT_PRICING, type MeterDenial, type WrapFetchOptions } from "@allowance/meter";
import type { VerifiedChain } from "@allowance/verifier";
import { instrumentEnforcer, tracedWrapFetch } from "@allowance/otel";
import { listen } from "../../../test/support/http.js";
import { Clock, family } from "../../../test/support/ledger-suite.js";
import { MockLlm, cost, mockLlmPerTest, post, readAll } from "../../meter/test/meter-support.js";
import { ERROR, TestTelemetry, UNSET, idOf, parentOf } from "./otel-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const hello = [{ role: "user", content: "Say hello" }];
const contents = [{ role: "user", parts: [{ text: "Say hello" }] }];
// List prices the default table states (micro-dollars per million tokens), restated as the oracle.
const GPT_4O_MINI = { input: 150_000, cached: 75_000, output: 600_000 };

async function setup(
  options: Partial<Omit<WrapFetchOptions, "enforcer" | "chain">> = {},
  child: GrantFields = {},
) {
  const clock = new Clock();
  const { children } = await family(
    { tokens: 100_000_000, usdMicros: 100_000_000, label: "team" },
    [{ label: "agent", ...child }],
  );
  const chain = children[0] as VerifiedChain;
  const enforcer = new Enforcer({ now: clock.now });
  const t = new TestTelemetry();
  instrumentEnforcer(enforcer, t);
  const fetch = tracedWrapFetch(globalThis.fetch, { enforcer, chain, ...options }, t);
  const spent = async () =>
    (await enforcer.remaining(chain)).links[1]?.limits.find((l) => l.field === "usdMicros")
      ?.spent ?? 0;
  return { chain, enforcer, t, fetch, spent };
}

/** The one GenAI call span (kind CLIENT). */
function callSpan(t: TestTelemetry): ReadableSpan {
  const calls = t.spans().filter((s) => !s.name.startsWith("allowance."));
  if (calls.length !== 1) throw new Error(`expected one call span, got ${calls.length}`);
  return calls[0] as ReadableSpan;
}

const port = () => Number(new URL(mock.url).port);

describe("a JSON answer", () => {
  it("is one span `chat gpt-4o-mini` with the GenAI attributes, Allowance's decision and charge, and the enforcer's spans under it", async () => {
    const { t, fetch, chain, spent } = await setup();
    mock.usage = { input: 1234, output: 567, cached: 200, cacheWrite: 0 };
    const response = await post(fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
      max_tokens: 1000,
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ usage: { prompt_tokens: 1234 } });
    // Charged as the plain meter charges: the oracle of the meter's own tests.
    const usd =
      cost(1234 - 200, GPT_4O_MINI.input) +
      cost(200, GPT_4O_MINI.cached) +
      cost(567, GPT_4O_MINI.output);
    expect(await spent()).toBe(usd);

    const span = callSpan(t);
    const reserve = t.span("allowance.reserve");
    const reservationId = reserve.attributes["allowance.reservation.id"];
    expect(span.name).toBe("chat gpt-4o-mini");
    expect(span.kind).toBe(2); // SpanKind.CLIENT
    expect(span.status.code).toBe(UNSET);
    expect(span.attributes).toEqual({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "openai",
      "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.response.model": "gpt-4o-mini",
      "gen_ai.response.id": "chatcmpl-mock1",
      "gen_ai.response.finish_reasons": ["stop"],
      // All input tokens, the cached ones included, as the convention counts them.
      "gen_ai.usage.input_tokens": 1234,
      "gen_ai.usage.cache_read.input_tokens": 200,
      "gen_ai.usage.output_tokens": 567,
      "server.address": "127.0.0.1",
      "server.port": port(),
      "http.response.status_code": 200,
      "allowance.provider": "openai",
      "allowance.link.id": chain.linkIds[1],
      "allowance.link.label": "agent",
      "allowance.chain.length": 2,
      "allowance.decision": "ALLOW",
      "allowance.reservation.id": reservationId,
      "allowance.reserved.tokens": reserve.attributes["allowance.reserved.tokens"],
      "allowance.reserved.usd_micros": reserve.attributes["allowance.reserved.usd_micros"],
      "allowance.settlement": "committed",
      "allowance.settlement.status": "committed",
      "allowance.charged.tokens": 1234 + 567,
      "allowance.charged.usd_micros": usd,
    });
    expect(typeof reservationId).toBe("string");
    // The enforcer's spans are children of the call.
    const commit = t.span("allowance.commit");
    expect(parentOf(reserve)).toBe(idOf(span));
    expect(parentOf(commit)).toBe(idOf(span));
    expect(commit.attributes["allowance.reservation.id"]).toBe(reservationId);
    expect(parentOf(span)).toBeUndefined();
    expect(commit.endTime[0] * 1e9 + commit.endTime[1]).toBeLessThanOrEqual(
      span.endTime[0] * 1e9 + span.endTime[1],
    );
  });

  it("records gen_ai.client.token.usage and gen_ai.client.operation.duration, and allowance.spend matches", async () => {
    const { t, fetch, spent } = await setup();
    mock.usage = { input: 1234, output: 567, cached: 200, cacheWrite: 0 };
    await (
      await post(fetch, `${mock.url}/v1/chat/completions`, {
        model: "gpt-4o-mini",
        messages: hello,
      })
    ).json();
    const base = {
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "openai",
      "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.response.model": "gpt-4o-mini",
      "server.address": "127.0.0.1",
      "server.port": port(),
    };
    const usage = await t.metric("gen_ai.client.token.usage");
    expect(usage?.unit).toBe("{token}");
    expect(usage?.points).toEqual(
      expect.arrayContaining([
        {
          attributes: { ...base, "gen_ai.token.type": "input" },
          value: expect.objectContaining({ count: 1, sum: 1234 }),
        },
        {
          attributes: { ...base, "gen_ai.token.type": "output" },
          value: expect.objectContaining({ count: 1, sum: 567 }),
        },
      ]),
    );
    const duration = await t.metric("gen_ai.client.operation.duration");
    expect(duration?.unit).toBe("s");
    expect(duration?.points).toEqual([
      { attributes: base, value: expect.objectContaining({ count: 1 }) },
    ]);
    const seconds = (duration?.points[0]?.value as { sum: number }).sum;
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(30);
    expect(await t.sum("allowance.spend", { "allowance.model": "gpt-4o-mini" })).toBe(
      await spent(),
    );
  });

  it("names Gemini on Vertex AI's paths gcp.vertex_ai, on the span and on the GenAI metrics", async () => {
    const { t, fetch } = await setup();
    const path = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash";
    const response = await post(fetch, `${mock.url}${path}:generateContent`, { contents });
    expect(response.status).toBe(200);
    await response.json();
    expect(callSpan(t).attributes).toMatchObject({
      "gen_ai.operation.name": "generate_content",
      "gen_ai.provider.name": "gcp.vertex_ai",
      "allowance.provider": "gemini",
    });
    const usage = await t.metric("gen_ai.client.token.usage");
    expect(usage?.points.map((p) => p.attributes["gen_ai.provider.name"])).toEqual([
      "gcp.vertex_ai",
      "gcp.vertex_ai",
    ]);
  });
});

describe("a streamed answer", () => {
  it("passes every byte through unchanged, and the span ends at the settlement with the stream's usage", async () => {
    const { t, fetch, spent } = await setup();
    const response = await post(fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
      max_tokens: 1000,
      stream: true,
    });
    const bytes = await readAll(response);
    expect(bytes.equals(mock.streamed[0] as Buffer)).toBe(true);
    expect(await spent()).toBe(cost(1234, GPT_4O_MINI.input) + cost(567, GPT_4O_MINI.output));
    const span = callSpan(t);
    expect(span.attributes).toMatchObject({
      "gen_ai.response.model": "gpt-4o-mini",
      "gen_ai.response.id": "chatcmpl-mock2",
      "gen_ai.response.finish_reasons": ["stop"],
      "gen_ai.usage.input_tokens": 1234,
      "gen_ai.usage.output_tokens": 567,
      "allowance.settlement": "committed",
      "allowance.charged.usd_micros": await spent(),
    });
    expect(parentOf(t.span("allowance.commit"))).toBe(idOf(span));
  });

  it("reads Anthropic's events: the model and id from message_start, every input token, the stop reason", async () => {
    const { t, fetch } = await setup();
    mock.usage = { input: 1000, output: 50, cached: 300, cacheWrite: 200 };
    await readAll(
      await post(fetch, `${mock.url}/v1/messages`, {
        model: "claude-sonnet-4-5",
        max_tokens: 1000,
        messages: hello,
        stream: true,
      }),
    );
    const span = callSpan(t);
    expect(span.name).toBe("chat claude-sonnet-4-5");
    expect(span.attributes).toMatchObject({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "anthropic",
      "gen_ai.response.model": "claude-sonnet-4-5",
      "gen_ai.response.id": "msg_01Mock",
      "gen_ai.response.finish_reasons": ["end_turn"],
      "gen_ai.usage.input_tokens": 1500,
      "gen_ai.usage.cache_read.input_tokens": 300,
      "gen_ai.usage.cache_creation.input_tokens": 200,
      "gen_ai.usage.output_tokens": 50,
    });
  });

  it("reads Gemini as server-sent events and as a JSON array: generate_content, gcp.gemini", async () => {
    for (const query of ["?alt=sse", ""]) {
      const { t, fetch } = await setup();
      const url = `${mock.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent${query}`;
      await readAll(await post(fetch, url, { contents }));
      const span = callSpan(t);
      expect(span.name).toBe("generate_content gemini-2.5-flash");
      expect(span.attributes).toMatchObject({
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "allowance.provider": "gemini",
        "gen_ai.response.model": "gemini-2.5-flash",
        "gen_ai.response.id": "resp-mock",
        "gen_ai.response.finish_reasons": ["STOP"],
        "gen_ai.usage.input_tokens": 1234,
        "gen_ai.usage.output_tokens": 567,
      });
    }
  });

  it("a consumer's cancel still reaches the provider, the hold is settled and the span ends", async () => {
    const { t, fetch, enforcer } = await setup();
    mock.script.push({ kind: "hang", events: 2 });
    const response = await post(fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
      max_tokens: 100,
      stream: true,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    await reader.cancel();
    await mock.closedHanging; // the provider saw the connection go away
    const span = callSpan(t);
    expect(span.attributes["allowance.settlement"]).toBe("committed");
    expect(span.attributes["allowance.charged.tokens"]).toBeGreaterThan(0);
    // Settled from the consumer's cancel, outside the call: still under the call.
    expect(parentOf(t.span("allowance.commit"))).toBe(idOf(span));
    expect(await t.sum("allowance.holds")).toBe(0);
    expect(enforcer.listenerCount("committed")).toBe(1);
  });
});

describe("many calls at once", () => {
  it("each span has its own reservation, usage and charge, and its own enforcer spans", async () => {
    const { t, fetch } = await setup();
    // The mock bills each request by the output maximum it asked for.
    mock.usageFor = (_path, body) => ({
      input: 100,
      output: body.max_tokens as number,
      cached: 0,
      cacheWrite: 0,
    });
    const maxima = [11, 22, 33, 44, 55, 66, 77, 88];
    await Promise.all(
      maxima.map(async (max, i) => {
        const response = await post(fetch, `${mock.url}/v1/chat/completions`, {
          model: "gpt-4o-mini",
          // Each its own prompt: the loop detector refuses the same request a sixth time.
          messages: [{ role: "user", content: `Say hello ${i}` }],
          max_tokens: max,
          ...(i % 2 === 0 ? { stream: true } : {}),
        });
        await readAll(response);
      }),
    );
    const calls = t.spans().filter((s) => !s.name.startsWith("allowance."));
    expect(calls.map((s) => s.attributes["gen_ai.usage.output_tokens"]).sort()).toEqual(maxima);
    for (const call of calls) {
      const output = call.attributes["gen_ai.usage.output_tokens"] as number;
      expect(call.attributes["allowance.charged.tokens"]).toBe(100 + output);
      const under = t.spans().filter((s) => parentOf(s) === idOf(call));
      expect(under.map((s) => s.name).sort()).toEqual(["allowance.commit", "allowance.reserve"]);
      for (const child of under)
        expect(child.attributes["allowance.reservation.id"]).toBe(
          call.attributes["allowance.reservation.id"],
        );
    }
    expect(new Set(calls.map((s) => s.attributes["allowance.reservation.id"])).size).toBe(8);
  });

  it("a malformed event in a stream reaches the consumer as sent, and the span still ends", async () => {
    const { t, fetch } = await setup();
    mock.script.push({ kind: "malformed", at: 2 });
    const bytes = await readAll(
      await post(fetch, `${mock.url}/v1/chat/completions`, {
        model: "gpt-4o-mini",
        messages: hello,
        max_tokens: 100,
        stream: true,
      }),
    );
    expect(bytes.equals(mock.streamed[0] as Buffer)).toBe(true);
    expect(callSpan(t).attributes).toMatchObject({
      "gen_ai.usage.output_tokens": 567,
      "allowance.settlement": "committed",
    });
  });
});

describe("refusals and failures", () => {
  it("a budget denial: the span fails with the reason, the reserve under it says DENY, the provider is never called", async () => {
    const denials: MeterDenial[] = [];
    const { t, fetch } = await setup({ onDeny: (d) => denials.push(d) }, { usdMicros: 10 });
    const response = await post(fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
    });
    expect(response.status).toBe(402);
    expect(response.headers.get("x-allowance-denied")).toBe("BUDGET_USD");
    expect(mock.count()).toBe(0);
    // The application's onDeny is still called, with the meter's denial.
    expect(denials.map((d) => d.reason)).toEqual(["BUDGET_USD"]);
    const span = callSpan(t);
    expect(span.status).toEqual({ code: ERROR, message: "BUDGET_USD" });
    expect(span.attributes).toMatchObject({
      "gen_ai.request.model": "gpt-4o-mini",
      "allowance.decision": "DENY",
      "allowance.deny.reason": "BUDGET_USD",
      "allowance.deny.field": "usdMicros",
      "allowance.deny.link_index": 1,
      "error.type": "BUDGET_USD",
    });
    expect(span.attributes["gen_ai.usage.input_tokens"]).toBeUndefined();
    const reserve = t.span("allowance.reserve");
    expect(parentOf(reserve)).toBe(idOf(span));
    expect(reserve.attributes["allowance.decision"]).toBe("DENY");
    expect(t.spans("allowance.commit")).toHaveLength(0);
    expect(
      await t.sum("allowance.denials", {
        "allowance.deny.reason": "BUDGET_USD",
        "allowance.deny.link_index": 1,
      }),
    ).toBe(1);
    const duration = await t.metric("gen_ai.client.operation.duration");
    expect(duration?.points[0]?.attributes["error.type"]).toBe("BUDGET_USD");
  });

  it("a refusal before any reservation (a model without a price) has its span, and no reserve", async () => {
    const { t, fetch } = await setup();
    const response = await post(fetch, `${mock.url}/v1/chat/completions`, {
      model: "no-such-model",
      messages: hello,
    });
    expect(response.status).toBe(403);
    const span = callSpan(t);
    // The model is the request's to name: on the span as an attribute, in no name or metric.
    expect(span.name).toBe("chat");
    expect(span.attributes).toMatchObject({
      "gen_ai.provider.name": "openai",
      "gen_ai.request.model": "no-such-model",
      "allowance.deny.reason": "UNKNOWN_MODEL_PRICE",
      "error.type": "UNKNOWN_MODEL_PRICE",
    });
    expect(span.attributes["allowance.deny.link_index"]).toBeUndefined();
    expect(t.spans("allowance.reserve")).toHaveLength(0);
    expect(
      await t.sum("allowance.denials", {
        "allowance.deny.reason": "UNKNOWN_MODEL_PRICE",
        "allowance.provider": "openai",
        "allowance.model": "_OTHER",
      }),
    ).toBe(1);
    const duration = await t.metric("gen_ai.client.operation.duration");
    expect(duration?.points.map((p) => p.attributes["gen_ai.request.model"])).toEqual(["_OTHER"]);
  });

  it("a provider endpoint the meter cannot meter is refused: a span `allowance.meter`, no GenAI metrics", async () => {
    const { t, fetch } = await setup();
    // Refused before anything is sent: no request leaves this machine.
    const response = await fetch("https://api.openai.com/v1/files", { method: "POST" });
    expect(response.status).toBe(403);
    const span = t.span("allowance.meter");
    expect(span.attributes).toMatchObject({
      "server.address": "api.openai.com",
      "server.port": 443,
      "allowance.deny.reason": "UNMATCHED_ENDPOINT",
      "error.type": "UNMATCHED_ENDPOINT",
    });
    expect(span.attributes["gen_ai.operation.name"]).toBeUndefined();
    expect(await t.metric("gen_ai.client.operation.duration")).toBeUndefined();
  });

  it("a provider's error answer: released, the status code as error.type", async () => {
    const { t, fetch } = await setup();
    mock.script.push({ kind: "error", status: 500 });
    const response = await post(fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
    });
    expect(response.status).toBe(500);
    const span = callSpan(t);
    expect(span.status.code).toBe(ERROR);
    expect(span.attributes).toMatchObject({
      "error.type": "500",
      "http.response.status_code": 500,
      "allowance.settlement": "released",
    });
    expect(parentOf(t.span("allowance.release"))).toBe(idOf(span));
    expect(await t.sum("allowance.holds")).toBe(0);
  });

  it("a network error: rethrown as is, the exception on the span, the hold released", async () => {
    const { t, fetch } = await setup();
    // A port that was just listened on, and closed.
    const gone = await listen((_req, res) => res.end());
    const closed = `${gone.url}/v1/chat/completions`;
    await gone.close();
    const error = await post(fetch, closed, { model: "gpt-4o-mini", messages: hello }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TypeError); // fetch failed
    const span = callSpan(t);
    expect(span.status.code).toBe(ERROR);
    expect(span.attributes["error.type"]).toBe("TypeError");
    expect(span.events.map((e) => e.name)).toEqual(["exception"]);
    expect(span.attributes["allowance.settlement"]).toBe("released");
    expect(await t.sum("allowance.holds")).toBe(0);
  });
});

describe("what is not an LLM call, and the wrapper's own arguments", () => {
  it("a request the meter passes unmetered gets no span", async () => {
    const { t, fetch } = await setup();
    const response = await fetch(`${mock.url}/v1/models`);
    expect(response.status).toBe(200);
    expect(t.spans()).toHaveLength(0);
  });

  it("keeps the metered fetch's breaker and snapshot", async () => {
    const { fetch } = await setup();
    expect(fetch.breaker).toBeDefined();
    expect(fetch.breakerState("openai").state).toBe("closed");
    expect(fetch.snapshot()).toEqual({ breakers: {} });
  });

  it("refuses a fetch that is not a function and options that are not an object; wrapFetch checks the rest", async () => {
    const { chain, enforcer } = await setup();
    expect(() => tracedWrapFetch(1 as never, { enforcer, chain })).toThrow(TypeError);
    expect(() => tracedWrapFetch(globalThis.fetch, null as never)).toThrow(TypeError);
    expect(() => tracedWrapFetch(globalThis.fetch, { chain } as never)).toThrow(/enforcer/);
    expect(() =>
      tracedWrapFetch(globalThis.fetch, { enforcer, chain }, { tracer: 1 } as never),
    ).toThrow(/Tracer/);
    expect(DEFAULT_PRICING).toBeDefined();
  });
});
