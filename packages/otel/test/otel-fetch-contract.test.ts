/**
 * tracedWrapFetch keeps fetch's contract: whatever its arguments, it returns a promise (an
 * argument the meter refuses rejects it, as the plain metered fetch does), and telemetry that
 * fails to start or record a span never fails the call it watches.
 */
import { describe, expect, it } from "vitest";
import type { Histogram, Meter, Tracer } from "@opentelemetry/api";
import { Enforcer } from "@allowance/enforcer";
import { wrapFetch } from "@allowance/meter";
import type { VerifiedChain } from "@allowance/verifier";
import { tracedWrapFetch } from "@allowance/otel";
import { Clock, family } from "../../../test/support/ledger-suite.js";
import { MockLlm, mockLlmPerTest, post } from "../../meter/test/meter-support.js";
import { TestTelemetry } from "./otel-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const hello = [{ role: "user", content: "Say hello" }];

async function setup(telemetry?: { tracer: Tracer; meter: Meter }) {
  const { children } = await family({ tokens: 100_000_000, usdMicros: 100_000_000 }, [{}]);
  const chain = children[0] as VerifiedChain;
  const enforcer = new Enforcer({ now: new Clock().now });
  const t = new TestTelemetry();
  const fetch = tracedWrapFetch(globalThis.fetch, { enforcer, chain }, telemetry ?? t);
  const plain = wrapFetch(globalThis.fetch, { enforcer, chain });
  return { t, fetch, plain };
}

/** Calls `fetch` and returns what it returned, failing the test if it threw synchronously. */
function called(fetch: typeof globalThis.fetch, input: string, init: unknown): Promise<Response> {
  let result: unknown;
  expect(() => {
    result = fetch(input, init as RequestInit);
  }).not.toThrow();
  expect(result).toBeInstanceOf(Promise);
  return result as Promise<Response>;
}

const settled = (promise: Promise<Response>) =>
  promise.then(
    (response) => ({ response, error: undefined }),
    (error: unknown) => ({ response: undefined, error }),
  );

describe("tracedWrapFetch's promise", () => {
  it("a bad init rejects the promise with the meter's TypeError, never throws synchronously", async () => {
    const { t, fetch, plain } = await setup();
    const url = `${mock.url}/v1/chat/completions`;
    const body = JSON.stringify({ model: "gpt-4o-mini", messages: hello });
    const inits: unknown[] = [
      { method: 1, body },
      { method: { toUpperCase: () => 1 }, body },
      { method: null, body },
      5,
    ];
    for (const init of inits) {
      const traced = await settled(called(fetch, url, init));
      const direct = await settled(called(plain, url, init));
      expect(traced.error).toBeInstanceOf(TypeError);
      // The same refusal as the plain metered fetch's, word for word.
      expect((traced.error as Error).message).toBe((direct.error as Error).message);
      expect((traced.error as Error).message).toMatch(/^"init(?:\.method)?" expected/);
    }
    expect(mock.count()).toBe(0);
    expect(t.spans()).toHaveLength(0);
  });

  it("an init whose method getter throws rejects with that error, as the plain metered fetch does", async () => {
    const { fetch, plain } = await setup();
    const boom = new Error("no method for you");
    const init = {
      get method(): string {
        throw boom;
      },
    };
    const url = `${mock.url}/v1/chat/completions`;
    expect((await settled(called(fetch, url, init))).error).toBe(boom);
    expect((await settled(called(plain, url, init))).error).toBe(boom);
  });

  it("a tracer that cannot start a span leaves the call untraced, answered and charged as the plain one", async () => {
    const t = new TestTelemetry();
    const broken = new Proxy(t.tracer, {
      get(target, property, receiver) {
        if (property === "startSpan")
          return () => {
            throw new Error("exporter down");
          };
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    const { fetch } = await setup({ tracer: broken, meter: t.meter });
    const response = await called(fetch, `${mock.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: hello }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ usage: { prompt_tokens: 1234 } });
    expect(mock.count()).toBe(1);
  });

  it("a meter whose instruments throw when recording never fails the call, nor a refusal", async () => {
    const t = new TestTelemetry();
    const throwing = new Proxy(t.meter, {
      get(target, property, receiver) {
        if (property === "createHistogram")
          return (): Histogram =>
            ({
              record: () => {
                throw new Error("metrics backend down");
              },
            }) as unknown as Histogram;
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    const { fetch } = await setup({ tracer: t.tracer, meter: throwing });
    const ok = await post(fetch, `${mock.url}/v1/chat/completions`, {
      model: "gpt-4o-mini",
      messages: hello,
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ usage: { prompt_tokens: 1234 } });
    const refused = await post(fetch, `${mock.url}/v1/chat/completions`, {
      model: "no-such-model",
      messages: hello,
    });
    expect(refused.status).toBe(403);
    // The spans still end: only the metrics failed.
    expect(t.spans().filter((s) => s.name.startsWith("chat"))).toHaveLength(2);
  });
});
