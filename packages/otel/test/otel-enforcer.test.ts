/**
 * instrumentEnforcer on a real Enforcer and MemoryLedger: spans for reserve, commit and release
 * (and their …Sync forms), and the allowance.* metrics from the enforcer's events.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { Enforcer, type Decision } from "@allowance/enforcer";
import type { VerifiedChain } from "@allowance/verifier";
import { instrumentEnforcer } from "@allowance/otel";
import { Clock, family } from "../../../test/support/ledger-suite.js";
import { ERROR, TestTelemetry, UNSET, parentOf } from "./otel-support.js";

const USD = 1_000_000;

let clock: Clock;
let chain: VerifiedChain;
let enforcer: Enforcer;
let t: TestTelemetry;

beforeEach(async () => {
  clock = new Clock();
  const { children } = await family({ usdMicros: 10 * USD, tokens: 1_000_000, label: "team" }, [
    { usdMicros: 2 * USD, label: "agent" },
  ]);
  chain = children[0] as VerifiedChain;
  enforcer = new Enforcer({ now: clock.now });
  t = new TestTelemetry();
});

const leafId = () => chain.linkIds[1] as string;
type Hold = Extract<Decision, { reservationId: string }>;
const held = (decision: Decision): Hold => {
  if (decision.decision === "DENY") throw new Error(`denied: ${decision.detail}`);
  return decision;
};

describe("spans", () => {
  it("allowance.reserve and allowance.commit carry the request, the decision and the result", async () => {
    instrumentEnforcer(enforcer, t);
    const hold = held(
      await enforcer.reserve(
        { chain, provider: "openai", model: "gpt-4o-mini", tokens: 1000, usdMicros: 500 },
        { ttl: 60 },
      ),
    );
    const result = await enforcer.commit(hold.reservationId, { tokens: 800, usdMicros: 400 });
    expect(result).toEqual({ status: "committed", already: false, late: false, overrun: {} });

    const reserve = t.span("allowance.reserve");
    expect(reserve.attributes).toEqual({
      "allowance.link.id": leafId(),
      "allowance.chain.length": 2,
      "allowance.link.label": "agent",
      "allowance.provider": "openai",
      "allowance.model": "gpt-4o-mini",
      "allowance.request.tokens": 1000,
      "allowance.request.usd_micros": 500,
      "allowance.decision": "ALLOW",
      "allowance.reservation.id": hold.reservationId,
      "allowance.reserved.tokens": 1000,
      "allowance.reserved.usd_micros": 500,
    });
    expect(reserve.status.code).toBe(UNSET);
    // Outside a metered call and without an active span, a root span.
    expect(parentOf(reserve)).toBeUndefined();

    expect(t.span("allowance.commit").attributes).toEqual({
      "allowance.reservation.id": hold.reservationId,
      "allowance.usage.tokens": 800,
      "allowance.usage.usd_micros": 400,
      "allowance.commit.status": "committed",
      "allowance.commit.late": false,
      "allowance.commit.already": false,
    });
  });

  it("a DENY is the reserve's answer, not an error: the span says why and is not marked failed", async () => {
    instrumentEnforcer(enforcer, t);
    const decision = await enforcer.reserve({ chain, usdMicros: 3 * USD });
    expect(decision).toMatchObject({ decision: "DENY", reason: "BUDGET_USD", linkIndex: 1 });
    const span = t.span("allowance.reserve");
    expect(span.attributes).toMatchObject({
      "allowance.decision": "DENY",
      "allowance.deny.reason": "BUDGET_USD",
      "allowance.deny.field": "usdMicros",
      "allowance.deny.link_index": 1,
    });
    expect(span.attributes["allowance.reservation.id"]).toBeUndefined();
    expect(span.status.code).toBe(UNSET);
  });

  it("an error thrown by the enforcer is rethrown as is, and marks the span failed", async () => {
    instrumentEnforcer(enforcer, t);
    const copy = { ...chain } as VerifiedChain;
    const error = await enforcer.reserve({ chain: copy, usdMicros: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    const span = t.span("allowance.reserve");
    expect(span.status).toEqual({ code: ERROR, message: (error as Error).message });
    expect(span.attributes["error.type"]).toBe("TypeError");
    // A copy of a chain is not a verified chain: none of its facts are reported.
    expect(span.attributes["allowance.link.id"]).toBeUndefined();
    const commit = await enforcer.commit("", {}).catch((e: unknown) => e);
    expect(commit).toBeInstanceOf(RangeError);
    expect(t.span("allowance.commit").attributes["error.type"]).toBe("RangeError");
  });

  it("reading a hostile request for its attributes changes nothing: the enforcer's own error reaches the caller", async () => {
    instrumentEnforcer(enforcer, t);
    let reads = 0;
    const hostile = {
      get chain(): VerifiedChain {
        reads++;
        throw new Error("boom");
      },
    };
    const error = await enforcer.reserve(hostile as never).catch((e: unknown) => e);
    expect((error as Error).message).toBe("boom");
    expect(t.span("allowance.reserve").attributes["error.type"]).toBe("Error");
    expect(reads).toBe(2); // once for the attributes (caught), once by the enforcer
  });

  it("the …Sync methods are traced under the same names", () => {
    instrumentEnforcer(enforcer, t);
    const a = held(enforcer.reserveSync({ chain, tokens: 10 }));
    const b = held(enforcer.reserveSync({ chain, tokens: 10 }));
    expect(enforcer.commitSync(a.reservationId, { tokens: 10 }).status).toBe("committed");
    expect(enforcer.releaseSync(b.reservationId)).toEqual({ status: "released", already: false });
    expect(t.spans("allowance.reserve")).toHaveLength(2);
    expect(t.span("allowance.commit").attributes["allowance.commit.status"]).toBe("committed");
    expect(t.span("allowance.release").attributes).toEqual({
      "allowance.reservation.id": b.reservationId,
      "allowance.release.status": "released",
      "allowance.release.already": false,
    });
  });

  it("an overrun is named on the commit span", async () => {
    instrumentEnforcer(enforcer, t);
    const hold = held(await enforcer.reserve({ chain, tokens: 100, usdMicros: 100 }));
    await enforcer.commit(hold.reservationId, { tokens: 150, usdMicros: 100 });
    expect(t.span("allowance.commit").attributes["allowance.overrun"]).toEqual(["tokens"]);
    expect(await t.sum("allowance.overruns", { "allowance.limit.kind": "tokens" })).toBe(1);
  });
});

describe("metrics", () => {
  it("allowance.spend and allowance.tokens add up each commit by leaf link, label, provider and model", async () => {
    instrumentEnforcer(enforcer, t);
    const calls = [
      { provider: "openai", model: "gpt-4o-mini", tokens: 300, usdMicros: 120 },
      { provider: "openai", model: "gpt-4o-mini", tokens: 200, usdMicros: 80 },
      { provider: "anthropic", model: "claude-sonnet-4-5", tokens: 50, usdMicros: 999 },
    ];
    for (const { provider, model, tokens, usdMicros } of calls) {
      const hold = held(await enforcer.reserve({ chain, provider, model, tokens, usdMicros }));
      await enforcer.commit(hold.reservationId, { tokens, usdMicros });
    }
    const spend = await t.metric("allowance.spend");
    expect(spend?.unit).toBe("{usd_micro}");
    const who = { "allowance.link.id": leafId(), "allowance.link.label": "agent" };
    expect(spend?.points).toEqual(
      expect.arrayContaining([
        {
          attributes: { ...who, "allowance.provider": "openai", "allowance.model": "gpt-4o-mini" },
          value: 200,
        },
        {
          attributes: {
            ...who,
            "allowance.provider": "anthropic",
            "allowance.model": "claude-sonnet-4-5",
          },
          value: 999,
        },
      ]),
    );
    expect(spend?.points).toHaveLength(2);
    expect(await t.sum("allowance.tokens", { "allowance.provider": "openai" })).toBe(500);
    expect(await t.sum("allowance.tokens")).toBe(550);
    // What the ledger charged the leaf, the metric says too.
    const remaining = await enforcer.remaining(chain);
    const leafUsd = remaining.links[1]?.limits.find((l) => l.field === "usdMicros");
    expect(await t.sum("allowance.spend")).toBe(leafUsd?.spent);
  });

  it("allowance.holds goes up on reserve and down on commit, release and expiry, never below zero", async () => {
    instrumentEnforcer(enforcer, t);
    const holds = () => t.sum("allowance.holds");
    const [a, b, c] = await Promise.all(
      [1, 2, 3].map(async () => held(await enforcer.reserve({ chain, tokens: 10 }, { ttl: 60 }))),
    );
    expect(await holds()).toBe(3);
    await enforcer.commit((a as Hold).reservationId, { tokens: 10 });
    expect(await holds()).toBe(2);
    await enforcer.release((b as Hold).reservationId);
    await enforcer.release((b as Hold).reservationId); // again: nothing more to count
    expect(await holds()).toBe(1);
    clock.advance(61);
    await enforcer.remaining(chain); // the ledger reports the hold expired
    expect(await holds()).toBe(0);
    expect(await t.sum("allowance.expirations")).toBe(1);
    // A late commit of the expired hold is spend, but no hold closes twice.
    const late = await enforcer.commit((c as Hold).reservationId, { tokens: 10, usdMicros: 7 });
    expect(late).toMatchObject({ status: "committed", late: true });
    expect(await holds()).toBe(0);
    expect(await t.sum("allowance.spend")).toBe(7);
    expect((await t.metric("allowance.holds"))?.unit).toBe("{hold}");
  });

  it("allowance.denials counts by reason, the link that denied and the nearest label", async () => {
    instrumentEnforcer(enforcer, t);
    await enforcer.reserve({ chain, usdMicros: 3 * USD });
    await enforcer.reserve({ chain, usdMicros: 11 * USD });
    await enforcer.reserve({ chain, tokens: 2_000_000 });
    // check() is a question, not a refusal.
    await enforcer.check({ chain, usdMicros: 3 * USD });
    const denials = await t.metric("allowance.denials");
    expect(denials?.points).toEqual(
      expect.arrayContaining([
        {
          attributes: {
            "allowance.deny.reason": "BUDGET_USD",
            "allowance.deny.link_index": 1,
            "allowance.link.label": "agent",
          },
          value: 1,
        },
        {
          attributes: {
            "allowance.deny.reason": "BUDGET_USD",
            "allowance.deny.link_index": 0,
            "allowance.link.label": "agent",
          },
          value: 1,
        },
        {
          attributes: {
            "allowance.deny.reason": "BUDGET_TOKENS",
            "allowance.deny.link_index": 0,
            "allowance.link.label": "agent",
          },
          value: 1,
        },
      ]),
    );
    expect(await t.sum("allowance.denials")).toBe(3);
  });

  it("allowance.thresholds counts each cap crossing 50, 80 and 100 percent", async () => {
    instrumentEnforcer(enforcer, t);
    for (const usdMicros of [USD, 0.6 * USD, 0.4 * USD]) {
      const hold = held(await enforcer.reserve({ chain, usdMicros }));
      await enforcer.commit(hold.reservationId, { usdMicros });
    }
    const crossings = await t.metric("allowance.thresholds");
    const leaf = (crossings?.points ?? []).filter(
      (p) =>
        p.attributes["allowance.link.id"] === leafId() &&
        p.attributes["allowance.limit.field"] === "usdMicros",
    );
    expect(leaf.map((p) => p.attributes["allowance.threshold.percent"]).sort()).toEqual([
      100, 50, 80,
    ]);
    // The parent's $10 crossed nothing with $2 spent.
    expect(
      (crossings?.points ?? []).some((p) => p.attributes["allowance.link.id"] === chain.linkIds[0]),
    ).toBe(false);
  });
});

describe("installing and uninstalling", () => {
  it("refuses what is not an Enforcer, and a second instrumentation of the same one", () => {
    const lookalike = { reserve: async () => ({}), on: () => undefined };
    expect(() => instrumentEnforcer(lookalike as never, t)).toThrow(TypeError);
    expect(() => instrumentEnforcer(null as never, t)).toThrow(TypeError);
    expect(() => instrumentEnforcer(enforcer, { tracer: t.tracer, metre: 1 } as never)).toThrow(
      TypeError,
    );
    const first = instrumentEnforcer(enforcer, t);
    expect(() => instrumentEnforcer(enforcer, t)).toThrow(/instrumented already/);
    first.uninstall();
    instrumentEnforcer(enforcer, t).uninstall();
  });

  it("uninstall puts the enforcer's own methods back and stops recording", async () => {
    const instrumentation = instrumentEnforcer(enforcer, t);
    expect(Object.hasOwn(enforcer, "reserve")).toBe(true);
    instrumentation.uninstall();
    instrumentation.uninstall(); // twice is harmless
    for (const method of ["reserve", "commit", "release", "reserveSync", "commitSync"])
      expect(Object.hasOwn(enforcer, method)).toBe(false);
    expect(enforcer.reserve).toBe(Enforcer.prototype.reserve);
    const hold = held(await enforcer.reserve({ chain, usdMicros: 5 }));
    await enforcer.commit(hold.reservationId, { usdMicros: 5 });
    expect(t.spans()).toHaveLength(0);
    expect(await t.sum("allowance.spend")).toBe(0);
    expect(enforcer.listenerCount("committed")).toBe(0);
  });

  it("a wrapper someone put on the instance before is kept, and called", async () => {
    const seen: string[] = [];
    const own = enforcer.reserve.bind(enforcer);
    enforcer.reserve = (request, options) => {
      seen.push("theirs");
      return own(request, options);
    };
    const theirs = enforcer.reserve;
    const instrumentation = instrumentEnforcer(enforcer, t);
    await enforcer.reserve({ chain, usdMicros: 5 });
    expect(seen).toEqual(["theirs"]);
    expect(t.spans("allowance.reserve")).toHaveLength(1);
    instrumentation.uninstall();
    expect(enforcer.reserve).toBe(theirs);
  });
});
