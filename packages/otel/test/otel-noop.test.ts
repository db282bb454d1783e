/**
 * Without an SDK, @opentelemetry/api's tracer and meter are no-ops: everything instrumented with
 * the defaults works, and answers, charges and denials are those of the plain verifier, enforcer
 * and metered fetch. Also: the verify path itself never loads OpenTelemetry.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT_CONTEXT, context, trace } from "@opentelemetry/api";
import { describe, expect, it } from "vitest";
import { Enforcer } from "@allowance/enforcer";
import { wrapFetch } from "@allowance/meter";
import { AllowanceError, verify, type VerifiedChain } from "@allowance/verifier";
import { instrumentEnforcer, traceVerifier, tracedWrapFetch } from "@allowance/otel";
import { buildChain, NOW, USD } from "../../../test/support/chain.js";
import { Clock, family } from "../../../test/support/ledger-suite.js";
import { MockLlm, mockLlmPerTest, post, readAll } from "../../meter/test/meter-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const hello = [{ role: "user", content: "Say hello" }];

/** No SDK is installed in this file: a span the global tracer starts records nothing. */
function assertNoSdk(): void {
  const span = trace.getTracer("probe").startSpan("probe");
  expect(span.isRecording()).toBe(false);
  span.end();
  expect(context.active()).toBe(ROOT_CONTEXT);
}

describe("without an SDK", () => {
  it("traceVerifier returns verify's chains and throws its errors", async () => {
    assertNoSdk();
    const fixture = await buildChain([{ exp: NOW + 60, usdMicros: USD }]);
    const traced = traceVerifier(verify);
    const options = { roots: fixture.roots, now: () => NOW * 1000 };
    expect(traced(fixture.token, options).linkIds).toEqual(verify(fixture.token, options).linkIds);
    expect(() => traced(fixture.token, { ...options, now: () => (NOW + 120) * 1000 })).toThrow(
      AllowanceError,
    );
    assertNoSdk();
  });

  it("an instrumented enforcer and a traced fetch answer and charge as the plain ones", async () => {
    assertNoSdk();
    const { children } = await family({ usdMicros: 100 * USD, label: "team" }, [
      { usdMicros: 20_000, label: "agent" },
    ]);
    const chain = children[0] as VerifiedChain;
    const run = async (traced: boolean) => {
      const enforcer = new Enforcer({ now: new Clock().now });
      const options = { enforcer, chain };
      if (traced) instrumentEnforcer(enforcer);
      const fetch = traced
        ? tracedWrapFetch(globalThis.fetch, options)
        : wrapFetch(globalThis.fetch, options);
      const json = await post(fetch, `${mock.url}/v1/chat/completions`, {
        model: "gpt-4o-mini",
        messages: hello,
        max_tokens: 100,
      });
      const stream = await post(fetch, `${mock.url}/v1/chat/completions`, {
        model: "gpt-4o-mini",
        messages: hello,
        max_tokens: 100,
        stream: true,
      });
      const bytes = await readAll(stream);
      // The grant's $0.02 cannot hold a bound of 100,000 output tokens.
      const denied = await post(fetch, `${mock.url}/v1/chat/completions`, {
        model: "gpt-4o-mini",
        messages: hello,
        max_tokens: 100_000,
      });
      const remaining = await enforcer.remaining(chain);
      return {
        json: [json.status, await json.json()],
        streamed: bytes.toString("utf8"),
        denied: [denied.status, await denied.json()],
        spent: remaining.links.map((l) => l.limits.map((x) => [x.field, x.spent, x.held])),
      };
    };
    const plain = await run(false);
    const traced = await run(true);
    expect(traced).toEqual(plain);
    expect(plain.denied[0]).toBe(402);
    assertNoSdk();
  });
});

describe("the verify path", () => {
  it("loads no OpenTelemetry: neither core nor the verifier depends on it or imports it", () => {
    const root = join(import.meta.dirname, "../../..");
    for (const name of ["core", "verifier"]) {
      const manifest = readFileSync(join(root, "packages", name, "package.json"), "utf8");
      expect(manifest).not.toContain("@opentelemetry");
      const dir = join(root, "packages", name, "src");
      const files = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) =>
        f.endsWith(".ts"),
      );
      expect(files.length).toBeGreaterThan(5);
      for (const file of files)
        expect(readFileSync(join(dir, file), "utf8"), file).not.toContain("@opentelemetry");
    }
  });
});
