/**
 * What a request's writer can put into telemetry. A model name is the request's to choose, and
 * the meter reads it before it can refuse it: a metric names a model only when the meter's price
 * table lists it or the provider answered it (else `_OTHER`), a span's name likewise, and every
 * string taken from a request, an event or a grant is cut to 128 characters.
 */
import { describe, expect, it } from "vitest";
import type { AttributeValue } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { Enforcer } from "@allowance/enforcer";
import type { GrantFields } from "@allowance/core";
import { wrapFetch, type WrapFetchOptions } from "@allowance/meter";
import type { VerifiedChain } from "@allowance/verifier";
import { instrumentEnforcer, tracedWrapFetch } from "@allowance/otel";
import { Clock, family } from "../../../test/support/ledger-suite.js";
import { MockLlm, mockLlmPerTest, post, readAll } from "../../meter/test/meter-support.js";
import { TestTelemetry, type Point } from "./otel-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const hello = [{ role: "user", content: "Say hello" }];
const CAP = 128;
const HOSTILE = `x${"A".repeat(200_000)}`;
const METRICS = [
  "allowance.denials",
  "allowance.spend",
  "allowance.tokens",
  "gen_ai.client.operation.duration",
  "gen_ai.client.token.usage",
];

async function setup(
  options: Partial<Omit<WrapFetchOptions, "enforcer" | "chain">> = {},
  child: GrantFields = {},
  traced = true,
) {
  const { children } = await family(
    { tokens: 100_000_000, usdMicros: 100_000_000, label: "team" },
    [{ label: "agent", ...child }],
  );
  const chain = children[0] as VerifiedChain;
  const enforcer = new Enforcer({ now: new Clock().now });
  const t = new TestTelemetry();
  instrumentEnforcer(enforcer, t);
  const fetch = traced
    ? tracedWrapFetch(globalThis.fetch, { enforcer, chain, ...options }, t)
    : wrapFetch(globalThis.fetch, { enforcer, chain, ...options });
  return { t, fetch, enforcer, chain };
}

const chat = (fetch: typeof globalThis.fetch, model: string, extra: object = {}) =>
  post(fetch, `${mock.url}/v1/chat/completions`, { model, messages: hello, ...extra });

/** Every string an attribute holds, one array item at a time. */
function strings(value: AttributeValue | undefined): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  return [];
}

/**
 * The longest string among the spans' names, attributes, status messages and events, and the
 * metrics' attributes; the exception events' message and stack trace are the error's own text,
 * and only searched for a run of the hostile name.
 */
async function longest(t: TestTelemetry): Promise<{ length: number; where: string }> {
  let found = { length: 0, where: "" };
  const see = (text: string, where: string, own = false) => {
    expect(text.includes("A".repeat(CAP)), where).toBe(false);
    if (!own && text.length > found.length) found = { length: text.length, where };
  };
  for (const span of t.spans()) {
    see(span.name, "span name");
    see(span.status.message ?? "", `span ${span.name}: status`, true);
    for (const [key, value] of Object.entries(span.attributes))
      for (const text of strings(value)) see(text, `span ${span.name}: ${key}`);
    for (const event of span.events)
      for (const [key, value] of Object.entries(event.attributes ?? {}))
        for (const text of strings(value))
          see(text, `event ${event.name}: ${key}`, key.startsWith("exception."));
  }
  for (const name of METRICS)
    for (const point of (await t.metric(name))?.points ?? [])
      for (const [key, value] of Object.entries(point.attributes))
        for (const text of strings(value)) see(text, `${name}: ${key}`);
  return found;
}

const models = (points: readonly Point[] | undefined, key: string) =>
  new Set((points ?? []).map((p) => p.attributes[key]));

describe("a model the meter did not price", () => {
  it("300 refused calls with distinct model names are one denial series and one duration series, `_OTHER`", async () => {
    const { t, fetch } = await setup();
    for (let i = 0; i < 300; i++) {
      // Refused for want of a price, and (a maximum of 0) before the meter looks for one.
      const response = await chat(fetch, `evil-model-${i}`, i % 3 === 0 ? { max_tokens: 0 } : {});
      expect(response.status).toBe(403);
    }
    expect(mock.count()).toBe(0);

    const denials = (await t.metric("allowance.denials"))?.points ?? [];
    expect(denials.map((p) => p.attributes)).toEqual([
      {
        "allowance.deny.reason": "UNMETERABLE_REQUEST",
        "allowance.link.label": "agent",
        "allowance.provider": "openai",
        "allowance.model": "_OTHER",
      },
      {
        "allowance.deny.reason": "UNKNOWN_MODEL_PRICE",
        "allowance.link.label": "agent",
        "allowance.provider": "openai",
        "allowance.model": "_OTHER",
      },
    ]);
    expect(denials.map((p) => p.value)).toEqual([100, 200]);

    const duration = (await t.metric("gen_ai.client.operation.duration"))?.points ?? [];
    expect(duration).toHaveLength(2); // one per error.type
    expect(models(duration, "gen_ai.request.model")).toEqual(new Set(["_OTHER"]));
    expect(duration.reduce((n, p) => n + (p.value as { count: number }).count, 0)).toBe(300);

    // Each span still says which model it refused (an attribute); none is named after one.
    const spans = t.spans();
    expect(spans).toHaveLength(300);
    expect(new Set(spans.map((s) => s.name))).toEqual(new Set(["chat"]));
    expect(new Set(spans.map((s) => s.attributes["gen_ai.request.model"])).size).toBe(300);
  });

  it("a 200 kB model name never appears in full: not in a span name, an attribute or a metric", async () => {
    const { t, fetch } = await setup();
    expect((await chat(fetch, HOSTILE)).status).toBe(403);
    const span = t.spans()[0] as ReadableSpan;
    expect(span.name).toBe("chat");
    const model = span.attributes["gen_ai.request.model"] as string;
    expect(model).toHaveLength(CAP);
    expect(model).toBe(`${HOSTILE.slice(0, CAP - 1)}…`);
    expect(await t.sum("allowance.denials", { "allowance.model": "_OTHER" })).toBe(1);
    expect((await longest(t)).length).toBeLessThanOrEqual(CAP);
  });

  it("priced only by unknownModel, or a snapshot suffix the provider does not serve: `_OTHER` in every metric", async () => {
    const { t, fetch } = await setup({
      unknownModel: { inputPerMTok: 1_000_000, outputPerMTok: 1_000_000 },
    });
    // The meter prices each (a dated snapshot of a listed model, or the fallback) and sends it;
    // the provider has no such model.
    const names = [
      ...Array.from({ length: 20 }, (_, i) => `gpt-4o-mini-2099${String(1000 + i)}`),
      ...Array.from({ length: 20 }, (_, i) => `made-up-${i}`),
    ];
    for (const name of names) {
      mock.script.push({ kind: "error", status: 404 });
      expect((await chat(fetch, name)).status).toBe(404);
    }
    expect(mock.count()).toBe(40);
    const duration = await t.metric("gen_ai.client.operation.duration");
    expect(duration?.points.map((p) => p.attributes["gen_ai.request.model"])).toEqual(["_OTHER"]);
    expect(
      new Set(
        t
          .spans()
          .filter((s) => !s.name.startsWith("allowance."))
          .map((s) => s.name),
      ),
    ).toEqual(new Set(["chat"]));
    // A 200 kB one reaches the enforcer, which refuses the name: its spans are cut too.
    const error = await chat(fetch, HOSTILE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RangeError);
    expect((await longest(t)).length).toBeLessThanOrEqual(CAP);
    expect(t.spans("chat").at(-1)?.attributes["gen_ai.request.model"]).toHaveLength(CAP);
  });
});

describe("a model the meter priced", () => {
  it("a listed model is kept on the span's name, the GenAI metrics and the spend; a snapshot the budget denies is not", async () => {
    const { t, fetch } = await setup({}, { usdMicros: 1_000 });
    const ok = await chat(fetch, "gpt-4o-mini", { max_tokens: 100 });
    expect(ok.status).toBe(200);
    await ok.json();
    // Both priced, both denied by the budget: the listed id is named, the made-up date is not.
    expect((await chat(fetch, "gpt-4o", { max_tokens: 100_000 })).status).toBe(402);
    expect((await chat(fetch, "gpt-4o-20991231", { max_tokens: 100_000 })).status).toBe(402);
    const calls = t.spans().filter((s) => !s.name.startsWith("allowance."));
    expect(calls.map((s) => s.name)).toEqual(["chat gpt-4o-mini", "chat gpt-4o", "chat"]);
    expect(calls[2]?.attributes["gen_ai.request.model"]).toBe("gpt-4o-20991231");
    const duration = await t.metric("gen_ai.client.operation.duration");
    expect(models(duration?.points, "gen_ai.request.model")).toEqual(
      new Set(["gpt-4o-mini", "gpt-4o", "_OTHER"]),
    );
    const usage = await t.metric("gen_ai.client.token.usage");
    expect(models(usage?.points, "gen_ai.request.model")).toEqual(new Set(["gpt-4o-mini"]));
    expect(await t.sum("allowance.spend", { "allowance.model": "gpt-4o-mini" })).toBeGreaterThan(0);
  });

  it("a model priced by a snapshot suffix or by unknownModel is kept once the provider serves it", async () => {
    const { t, fetch } = await setup({
      unknownModel: { inputPerMTok: 1_000_000, outputPerMTok: 1_000_000 },
    });
    for (const model of ["gpt-4o-mini-20250101", "a-new-model"]) {
      // Not found first (the provider vouches for nothing), then served.
      mock.script.push({ kind: "error", status: 404 });
      expect((await chat(fetch, model, { max_tokens: 100 })).status).toBe(404);
      const response = await chat(fetch, model, { stream: true, max_tokens: 100 });
      expect(response.status).toBe(200);
      await readAll(response);
    }
    const duration = await t.metric("gen_ai.client.operation.duration");
    expect(
      duration?.points.map((p) => [
        p.attributes["gen_ai.request.model"],
        p.attributes["error.type"],
      ]),
    ).toEqual([
      ["_OTHER", "404"],
      ["gpt-4o-mini-20250101", undefined],
      ["a-new-model", undefined],
    ]);
    expect(
      t
        .spans()
        .filter((s) => !s.name.startsWith("allowance."))
        .map((s) => s.name),
    ).toEqual(["chat", "chat gpt-4o-mini-20250101", "chat", "chat a-new-model"]);
  });

  it("a refusal after pricing (a loop) names a listed model on allowance.denials, and no other", async () => {
    const { t, fetch } = await setup({ loop: { maxRepeats: 2, windowMs: 60_000 } });
    for (const model of ["gpt-4o-mini", "gpt-4o-mini-20991231"])
      for (let i = 0; i < 3; i++) await (await chat(fetch, model)).text();
    const denials = await t.metric("allowance.denials");
    expect(
      denials?.points.map((p) => [
        p.attributes["allowance.deny.reason"],
        p.attributes["allowance.model"],
        p.value,
      ]),
    ).toEqual([
      ["LOOP_DETECTED", "gpt-4o-mini", 1],
      ["LOOP_DETECTED", "_OTHER", 1],
    ]);
  });
});

describe("the enforcer's instrumentation, with no traced call", () => {
  it("a plain wrapFetch's refusals name only a model the default table lists", async () => {
    const { t, fetch } = await setup({}, {}, false);
    for (let i = 0; i < 50; i++) expect((await chat(fetch, `evil-${i}`)).status).toBe(403);
    expect((await chat(fetch, HOSTILE)).status).toBe(403);
    const denials = await t.metric("allowance.denials");
    expect(denials?.points.map((p) => [p.attributes["allowance.model"], p.value])).toEqual([
      ["_OTHER", 51],
    ]);
  });

  it("an event's reason, provider and label, and a request's names, are cut or `_OTHER`", async () => {
    const long = "p".repeat(5_000);
    const { t, enforcer, chain } = await setup({}, { label: "L".repeat(256) }, false);
    enforcer.emit("refused", {
      reason: `MADE_UP_${long}`,
      field: long,
      detail: long,
      provider: long,
      model: "gpt-4o-mini",
      labels: [long],
    });
    const denials = await t.metric("allowance.denials");
    expect(denials?.points.map((p) => p.attributes)).toEqual([
      {
        "allowance.deny.reason": "_OTHER",
        "allowance.link.label": `${long.slice(0, CAP - 1)}…`,
        "allowance.provider": `${long.slice(0, CAP - 1)}…`,
        "allowance.model": "gpt-4o-mini",
      },
    ]);
    // Names as long as the enforcer takes (256), and a label as long as a grant takes (256 bytes).
    const name = "n".repeat(256);
    const hold = await enforcer.reserve({ chain, provider: "openai", model: name, tool: name });
    if (hold.decision === "DENY") throw new Error(hold.detail);
    await enforcer.commit(hold.reservationId, { tokens: 1 });
    // A name the enforcer refuses is cut on the span that records the refusal.
    await expect(enforcer.reserve({ chain, model: HOSTILE })).rejects.toThrow(RangeError);
    expect((await longest(t)).length).toBeLessThanOrEqual(CAP);
    const spend = await t.metric("allowance.tokens");
    expect(spend?.points[0]?.attributes).toMatchObject({
      "allowance.model": `${name.slice(0, CAP - 1)}…`,
      "allowance.tool": `${name.slice(0, CAP - 1)}…`,
      "allowance.link.label": `${"L".repeat(CAP - 1)}…`,
    });
  });
});
