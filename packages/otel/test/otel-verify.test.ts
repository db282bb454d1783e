/** traceVerifier: one span per verification, with the chain's facts or the error's, and a count by outcome. */
import { beforeAll, describe, expect, it } from "vitest";
import { kidOf } from "@allowance/core";
import {
  AllowanceError,
  createVerifier,
  isVerifiedChain,
  verify,
  type VerifyOptions,
} from "@allowance/verifier";
import { traceVerifier } from "@allowance/otel";
import { buildChain, NOW, USD, type Fixture } from "../../../test/support/chain.js";
import { ERROR, TestTelemetry, UNSET } from "./otel-support.js";

let fixture: Fixture;
let options: VerifyOptions;
const at = (seconds: number) => () => seconds * 1000;

beforeAll(async () => {
  fixture = await buildChain([
    { exp: NOW + 86400, usdMicros: 10 * USD, label: "team" },
    { usdMicros: 5 * USD, label: "orchestrator" },
    { usdMicros: USD },
  ]);
  options = { roots: fixture.roots, now: at(NOW) };
});

describe("traceVerifier(verify)", () => {
  it("returns verify's own chain, and ends a span allowance.verify with the chain's facts", async () => {
    const t = new TestTelemetry();
    const traced = traceVerifier(verify, t);
    const chain = traced(fixture.token, { ...options, audience: "https://tools.example" });
    expect(isVerifiedChain(chain)).toBe(true);
    expect(chain.linkIds).toEqual(verify(fixture.token, options).linkIds);
    const span = t.span("allowance.verify");
    expect(span.attributes).toEqual({
      "allowance.audience": "https://tools.example",
      "allowance.chain.length": 3,
      "allowance.link.id": chain.linkIds[2],
      // The last labelled link, as the usage log attributes spend.
      "allowance.link.label": "orchestrator",
      "allowance.root.kid": await kidOf(fixture.root.publicKey),
      "allowance.verify.outcome": "valid",
    });
    expect(span.status.code).toBe(UNSET);
  });

  it("rethrows the same AllowanceError, and marks the span failed with its code and link", () => {
    const t = new TestTelemetry();
    const traced = traceVerifier(verify, t);
    const late = { ...options, now: at(NOW + 2 * 86400) };
    let thrown: unknown;
    try {
      traced(fixture.token, late);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(AllowanceError);
    expect((thrown as AllowanceError).code).toBe("ERR_EXPIRED");
    const span = t.span("allowance.verify");
    expect(span.status).toEqual({ code: ERROR, message: (thrown as Error).message });
    expect(span.attributes).toMatchObject({
      "allowance.verify.outcome": "invalid",
      "error.type": "ERR_EXPIRED",
      "allowance.error.link_index": 0,
    });
    expect(span.attributes["allowance.root.kid"]).toBeUndefined();
    expect(span.events.map((e) => e.name)).toEqual(["exception"]);
    // The SDK records an error's code, when it has one, as exception.type.
    expect(span.events[0]?.attributes).toMatchObject({
      "exception.type": "ERR_EXPIRED",
      "exception.message": (thrown as Error).message,
    });
  });

  it("reports a token from an unknown root as ERR_UNKNOWN_ROOT", async () => {
    const t = new TestTelemetry();
    const other = await buildChain([{ exp: NOW + 60 }]);
    expect(() => traceVerifier(verify, t)(other.token, options)).toThrow(AllowanceError);
    expect(t.span("allowance.verify").attributes["error.type"]).toBe("ERR_UNKNOWN_ROOT");
  });

  it("tells a misuse of the API (TypeError) from a token that is not valid", () => {
    const t = new TestTelemetry();
    const traced = traceVerifier(verify, t);
    expect(() => traced(fixture.token, { ...options, skewSeconds: Number.NaN })).toThrow(
      RangeError,
    );
    expect(() => traced(42 as unknown as string, options)).toThrow(TypeError);
    const [range, type] = t.spans("allowance.verify");
    expect(range?.attributes).toMatchObject({
      "allowance.verify.outcome": "error",
      "error.type": "RangeError",
    });
    expect(type?.attributes["error.type"]).toBe("TypeError");
    expect(type?.status.code).toBe(ERROR);
  });

  it("counts allowance.verifications by outcome and error type", async () => {
    const t = new TestTelemetry();
    const traced = traceVerifier(verify, t);
    traced(fixture.token, options);
    traced(fixture.token, options);
    expect(() => traced(fixture.token, { ...options, now: at(NOW + 2 * 86400) })).toThrow();
    const metric = await t.metric("allowance.verifications");
    expect(metric?.unit).toBe("{verification}");
    expect(await t.sum("allowance.verifications", { "allowance.verify.outcome": "valid" })).toBe(2);
    expect(
      await t.sum("allowance.verifications", {
        "allowance.verify.outcome": "invalid",
        "error.type": "ERR_EXPIRED",
      }),
    ).toBe(1);
  });
});

describe("traceVerifier(createVerifier(…))", () => {
  it("keeps the verifier's cache and per-call options, and traces each call", () => {
    const t = new TestTelemetry();
    const verifier = createVerifier({ roots: fixture.roots, now: at(NOW) });
    const traced = traceVerifier(verifier, t);
    expect(traced.cache).toBe(verifier.cache);
    const chain = traced.verify(fixture.token);
    expect(isVerifiedChain(chain)).toBe(true);
    expect(() => traced.verify(fixture.token, { now: at(NOW + 2 * 86400) })).toThrow(
      AllowanceError,
    );
    const [ok, expired] = t.spans("allowance.verify");
    expect(ok?.attributes["allowance.verify.outcome"]).toBe("valid");
    expect(expired?.attributes["error.type"]).toBe("ERR_EXPIRED");
    // What the verifier refuses per call, it still refuses.
    expect(() =>
      traced.verify(fixture.token, { roots: fixture.roots } as unknown as { now: () => number }),
    ).toThrow(TypeError);
  });
});

describe("traceVerifier's own arguments", () => {
  it("refuses anything but verify or a Verifier, and options other than a tracer and a meter", () => {
    const t = new TestTelemetry();
    for (const bad of [42, null, "verify", {}, { verify: 1 }])
      expect(() => traceVerifier(bad as unknown as typeof verify, t)).toThrow(TypeError);
    expect(() => traceVerifier(verify, { tracer: t.tracer, metre: t.meter } as never)).toThrow(
      /takes tracer and meter/,
    );
    expect(() => traceVerifier(verify, { tracer: {} as never })).toThrow(/Tracer/);
    expect(() => traceVerifier(verify, { meter: 1 as never })).toThrow(/Meter/);
    expect(() => traceVerifier(verify, null as never)).toThrow(TypeError);
    // An empty array has no key to refuse: it is refused for not being the object.
    expect(() => traceVerifier(verify, [] as never)).toThrow(/"telemetry"/);
  });
});
