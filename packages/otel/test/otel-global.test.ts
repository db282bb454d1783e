/**
 * With an SDK registered globally (as the Node SDK does: tracer and meter providers, and a context
 * manager), the instrumentations' defaults record to it, and their spans nest under the
 * application's active span.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import {
  ROOT_CONTEXT,
  context,
  metrics,
  trace,
  type Context,
  type ContextManager,
} from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Enforcer } from "@allowance/enforcer";
import { verify, type VerifiedChain } from "@allowance/verifier";
import { instrumentEnforcer, traceVerifier, tracedWrapFetch } from "@allowance/otel";
import { buildChain, NOW, USD } from "../../../test/support/chain.js";
import { Clock, family } from "../../../test/support/ledger-suite.js";
import { MockLlm, mockLlmPerTest, post } from "../../meter/test/meter-support.js";
import { TestTelemetry, idOf, parentOf } from "./otel-support.js";

/** A context manager on AsyncLocalStorage, as @opentelemetry/context-async-hooks provides. */
class StorageContextManager implements ContextManager {
  readonly #storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.#storage.run(ctx, () => fn.call(thisArg, ...args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#storage.disable();
    return this;
  }
}

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const t = new TestTelemetry();

beforeAll(() => {
  expect(trace.setGlobalTracerProvider(t.tracerProvider)).toBe(true);
  expect(metrics.setGlobalMeterProvider(t.meterProvider)).toBe(true);
  expect(context.setGlobalContextManager(new StorageContextManager())).toBe(true);
});

afterAll(() => {
  trace.disable();
  metrics.disable();
  context.disable();
});

describe("with a global SDK and context manager", () => {
  it("the default tracer and meter are the global ones, and verify nests under the active span", async () => {
    const fixture = await buildChain([{ exp: NOW + 60, usdMicros: USD }]);
    const traced = traceVerifier(verify);
    const app = trace.getTracer("app");
    app.startActiveSpan("request", (request) => {
      traced(fixture.token, { roots: fixture.roots, now: () => NOW * 1000 });
      request.end();
    });
    expect(parentOf(t.span("allowance.verify"))).toBe(idOf(t.span("request")));
    expect(
      await t.sum("allowance.verifications", { "allowance.verify.outcome": "valid" }),
    ).toBeGreaterThanOrEqual(1);
  });

  it("a metered call nests under the application's span, the enforcer's under it, and the provider is called inside it", async () => {
    const { children } = await family({ usdMicros: 100 * USD }, [{ label: "agent" }]);
    const chain = children[0] as VerifiedChain;
    const enforcer = new Enforcer({ now: new Clock().now });
    instrumentEnforcer(enforcer);
    const activeAtSend: (string | undefined)[] = [];
    const inner: typeof fetch = (input, init) => {
      activeAtSend.push(trace.getActiveSpan()?.spanContext().spanId);
      return fetch(input, init);
    };
    const metered = tracedWrapFetch(inner, { enforcer, chain });
    const app = trace.getTracer("app");
    await app.startActiveSpan("agent step", async (step) => {
      await (
        await post(metered, `${mock.url}/v1/chat/completions`, {
          model: "gpt-4o-mini",
          messages: [{ role: "user", content: "Say hello" }],
        })
      ).json();
      step.end();
    });
    const call = t.span("chat gpt-4o-mini");
    expect(parentOf(call)).toBe(idOf(t.span("agent step")));
    expect(parentOf(t.span("allowance.reserve"))).toBe(idOf(call));
    expect(parentOf(t.span("allowance.commit"))).toBe(idOf(call));
    // What runs to reach the provider (an HTTP client's own span) runs under the call.
    expect(activeAtSend).toEqual([idOf(call)]);
    expect(await t.sum("allowance.spend")).toBeGreaterThan(0);
  });
});
