/**
 * `wrapFetch`: one line that puts every LLM call under a verified chain's budget.
 *
 * For a request an adapter recognises (providers.ts), in this order:
 *   1. price the model (pricing.ts); an unknown model follows `unknownModel` (default: deny);
 *   2. ask the provider's circuit breaker (breaker.ts) and the loop detector (loop.ts);
 *   3. estimate tokens and micro-dollars and reserve them on every link (the enforcer);
 *      on ALLOW_WITH_CAPS (only with `acceptCaps`) lower the request's maximum output to what fits;
 *   4. send the request; a streaming OpenAI chat request gets `stream_options.include_usage: true`
 *      unless it sets `include_usage` itself;
 *   5. commit the usage the provider reports: from the JSON body, or, for server-sent events, from
 *      the usage events while every chunk passes through untouched.
 * Any denial is a 429 `Response` (`denialResponse`) and the provider is never called.
 *
 * Settling the hold:
 *   - an HTTP error answer (not 2xx) or a network error before the answer: release;
 *   - a 2xx answer without readable usage (no `usage`, not JSON, a stream that ends without a usage
 *     event): commit the reserved estimate. Never free: the provider may well have charged;
 *   - a stream the consumer cancels or aborts, or that breaks mid-way: release by default
 *     (`abandonedStream: "release"`); `"charge"` commits the usage seen so far, else the estimate.
 *     Providers do bill the tokens of an abandoned stream, so "charge" is the stricter setting.
 *   - a consumer that never reads nor cancels a stream: the hold expires after `ttl`.
 * Requests no adapter recognises pass through unmetered (`unmatched: "pass"`), or are denied.
 */
import type { VerifiedChain } from "@allowance/verifier";
import type { Decision, DenyReason, Enforcer } from "../enforcer.js";
import { CircuitBreaker, type BreakerOptions, type BreakerOutcome, type BreakerSnapshot } from "./breaker.js";
import { LoopDetector, fingerprint, type LoopOptions } from "./loop.js";
import { costOf, createPricing, outputTokensWithin, parseModelPrice, priceUsage, Pricing, type ModelPrice, type PricingTable, type TokenUsage } from "./pricing.js";
import { BUILTIN_ADAPTERS, type JsonObject, type ProviderAdapter } from "./providers.js";
import { SseParser, type SseEvent } from "./sse.js";
import { chainLabels } from "../enforcer.js";

/** The enforcer's reasons, and the meter's own. */
export type MeterDenyReason = DenyReason | "UNKNOWN_MODEL_PRICE" | "PROVIDER_OPEN" | "LOOP_DETECTED" | "UNMETERABLE_REQUEST" | "UNMATCHED_ENDPOINT";

export interface MeterDenial {
  readonly reason: MeterDenyReason;
  /** The link that denied (root = 0), or null for the meter's own reasons. */
  readonly linkIndex: number | null;
  readonly linkId?: string;
  /** `usdMicros`, `providers.openai.tokens`, `model`, `breaker.openai`, `fingerprint`, … */
  readonly field: string;
  /** Seconds after which the same request may pass. */
  readonly retryAfter?: number;
  /** For budget denials: what was still available. */
  readonly available?: number;
  readonly message: string;
  readonly provider?: string;
  readonly model?: string;
}

export interface WrapFetchOptions {
  readonly enforcer: Enforcer;
  readonly chain: VerifiedChain;
  /** A `Pricing`, or a table merged over DEFAULT_PRICING (zod-validated). */
  readonly pricing?: Pricing | PricingTable;
  /** Models with no price: "deny" (default) or a price to charge them at. */
  readonly unknownModel?: "deny" | ModelPrice;
  /** On ALLOW_WITH_CAPS, lower the request's max output tokens instead of being denied. Default false. */
  readonly acceptCaps?: boolean;
  /** Seconds a reservation is held before it releases itself. Default 300 (long generations). */
  readonly ttl?: number;
  /** A breaker to share between wrapped fetches, options for a new one, or false. Default: a new one. */
  readonly breaker?: CircuitBreaker | BreakerOptions | false;
  /** A loop detector to share, options for a new one, or false. Default: a new one (5 in 60 s). */
  readonly loop?: LoopDetector | LoopOptions | false;
  /** Adapters tried before the built-in ones. */
  readonly providers?: readonly ProviderAdapter[];
  /** The tool this caller acts as: checked against the chain's `tools`, part of the loop fingerprint. */
  readonly tool?: string;
  /** Output estimate for a request that sets no maximum. Default 4096. */
  readonly defaultMaxOutputTokens?: number;
  /** What to do with a request no adapter recognises. Default "pass" (SDKs also list models, upload files, …). */
  readonly unmatched?: "pass" | "deny";
  /** A stream cancelled, aborted or broken before its end: "release" (default) or "charge". */
  readonly abandonedStream?: "release" | "charge";
  /** Called with every denial, the enforcer's included. */
  readonly onDeny?: (denial: MeterDenial) => void;
  /** A ledger error while settling a call that already happened. Default: process.emitWarning. */
  readonly onError?: (error: unknown) => void;
}

/** What `wrapFetch` returns: a fetch, with the state of its breaker. */
export type MeteredFetch = typeof globalThis.fetch & {
  readonly breaker: CircuitBreaker | undefined;
  readonly loops: LoopDetector | undefined;
  /** The breaker's state for one provider (closed when there is no breaker). */
  breakerState(provider: string): BreakerSnapshot;
  snapshot(): MeterSnapshot;
};

export interface MeterSnapshot {
  readonly breakers: Readonly<Record<string, BreakerSnapshot>>;
}

type Hold = Extract<Decision, { reservationId: string }>;

export function wrapFetch(fetch: typeof globalThis.fetch, options: WrapFetchOptions): MeteredFetch {
  if (typeof fetch !== "function") throw new TypeError('"fetch" expected a function');
  const { enforcer, chain } = options;
  if (enforcer === undefined || typeof enforcer.reserve !== "function") throw new TypeError('"enforcer" expected an Enforcer');
  if (chain === undefined || !Array.isArray(chain.links)) throw new TypeError('"chain" expected a VerifiedChain');
  const pricing = options.pricing instanceof Pricing ? options.pricing : createPricing(options.pricing ?? {});
  const unknownPrice = options.unknownModel === undefined || options.unknownModel === "deny" ? undefined : parseModelPrice(options.unknownModel);
  const breaker = options.breaker === false ? undefined : options.breaker instanceof CircuitBreaker ? options.breaker : new CircuitBreaker(options.breaker);
  // The enforcer's remaining() (and so the MCP get_budget tool) shows the breakers' states.
  if (breaker !== undefined) {
    options.enforcer.reportProviderStatus(() =>
      Object.fromEntries(
        Object.entries(breaker.snapshot()).map(([provider, b]) => [provider, { breaker: b.state, ...(b.openUntil === undefined ? {} : { openUntil: b.openUntil }) }]),
      ),
    );
  }
  const loops = options.loop === false ? undefined : options.loop instanceof LoopDetector ? options.loop : new LoopDetector(options.loop);
  const adapters = [...(options.providers ?? []), ...BUILTIN_ADAPTERS];
  const ttl = options.ttl ?? 300;
  const defaultMaxOutputTokens = options.defaultMaxOutputTokens ?? 4096;
  if (!Number.isSafeInteger(defaultMaxOutputTokens) || defaultMaxOutputTokens < 1) throw new RangeError(`"defaultMaxOutputTokens" expected a positive integer, got ${defaultMaxOutputTokens}`);
  const charge = options.abandonedStream === "charge";
  const tool = options.tool;
  const report = options.onError ?? ((error: unknown) => process.emitWarning(`allowance meter: ${String(error)}`, "AllowanceMeterWarning"));
  const settle = async (work: Promise<unknown>): Promise<void> => {
    try {
      await work;
    } catch (error) {
      report(error);
    }
  };
  const deny = (denial: MeterDenial): Response => {
    options.onDeny?.(denial);
    // The enforcer reports its own denials; the meter's reach listeners and webhooks this way.
    if (denial.linkIndex === null) {
      options.enforcer.emit("refused", {
        reason: denial.reason,
        field: denial.field,
        detail: denial.message,
        ...(denial.provider === undefined ? {} : { provider: denial.provider }),
        ...(denial.model === undefined ? {} : { model: denial.model }),
        labels: chainLabels(options.chain),
      });
    }
    return denialResponse(denial);
  };

  const metered = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request ? input : undefined;
    const method = (init?.method ?? request?.method ?? "GET").toUpperCase();
    let url: URL;
    try {
      url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    } catch {
      return fetch(input, init);
    }
    const adapter = adapters.find((a) => a.match(url, method));
    if (adapter === undefined) {
      if (options.unmatched === "deny") return deny({ reason: "UNMATCHED_ENDPOINT", linkIndex: null, field: "url", message: `no metering adapter for ${method} ${url.pathname}` });
      return fetch(input, init);
    }
    const provider = adapter.provider;

    // The body as text: a string is used as it is; anything else is read once and sent as text.
    let text: string | undefined;
    let resend = false;
    if (init?.body !== undefined && init.body !== null) {
      if (typeof init.body === "string") text = init.body;
      else {
        text = await new Response(init.body).text();
        resend = true;
      }
    } else if (request?.body !== null && request !== undefined) {
      text = await request.clone().text();
    }
    const body = parseObject(text);
    if (body === undefined) return deny({ reason: "UNMETERABLE_REQUEST", linkIndex: null, field: "body", message: "the request body is not a JSON object", provider });

    const estimate = adapter.estimate(body, { defaultMaxOutputTokens });
    const model = estimate.model;
    const price = pricing.lookup(provider, model) ?? unknownPrice;
    if (price === undefined) return deny({ reason: "UNKNOWN_MODEL_PRICE", linkIndex: null, field: "model", message: `no price for ${provider} model "${model}"`, provider, model });

    const permit = breaker?.acquire(provider);
    if (permit !== undefined && !permit.ok) {
      return deny({ reason: "PROVIDER_OPEN", linkIndex: null, field: `breaker.${provider}`, retryAfter: Math.max(1, Math.ceil(permit.retryAfterMs / 1000)), message: `the circuit for ${provider} is open`, provider, model });
    }
    const probe = permit?.probe ?? false;
    // A probe that is not sent hands its turn back.
    const unsent = () => breaker?.record(provider, "aborted", probe);

    if (loops !== undefined) {
      const verdict = loops.check(fingerprint({ provider, model, ...(tool === undefined ? {} : { tool }), input: adapter.fingerprintInput(body) }));
      if (!verdict.ok) {
        unsent();
        return deny({ reason: "LOOP_DETECTED", linkIndex: null, field: "fingerprint", retryAfter: Math.max(1, Math.ceil(verdict.retryAfterMs / 1000)), message: `the same request was sent ${verdict.count} times within ${loops.windowMs / 1000} s`, provider, model });
      }
    }

    const inputUsd = costOf(estimate.inputTokens, price.inputPerMTok);
    let decision: Decision;
    try {
      decision = await enforcer.reserve(
        {
          chain,
          provider,
          model,
          ...(tool === undefined ? {} : { tool }),
          tokens: estimate.inputTokens + estimate.outputTokens,
          usdMicros: inputUsd + costOf(estimate.outputTokens, price.outputPerMTok),
          // At least one output token must fit, or the call is pointless.
          ...(options.acceptCaps === true ? { acceptCaps: { minTokens: estimate.inputTokens + 1, minUsdMicros: inputUsd + costOf(1, price.outputPerMTok) } } : {}),
        },
        { ttl },
      );
    } catch (error) {
      unsent();
      throw error;
    }
    if (decision.decision === "DENY") {
      unsent();
      return deny({
        reason: decision.reason,
        linkIndex: decision.linkIndex,
        linkId: decision.linkId,
        field: decision.field,
        ...(decision.retryAfter === undefined ? {} : { retryAfter: decision.retryAfter }),
        ...(decision.available === undefined ? {} : { available: decision.available }),
        message: decision.detail,
        provider,
        model,
      });
    }
    const hold: Hold = decision;
    const release = () => settle(enforcer.release(hold.reservationId));
    const commit = (usage: TokenUsage | undefined) =>
      settle(enforcer.commit(hold.reservationId, usage === undefined ? { tokens: hold.amounts.tokens, usdMicros: hold.amounts.usdMicros } : priceUsage(usage, price)));

    let outgoing = body;
    if (hold.decision === "ALLOW_WITH_CAPS") {
      const byTokens = hold.caps.tokens === undefined ? estimate.outputTokens : hold.caps.tokens - estimate.inputTokens;
      const byUsd = hold.caps.usdMicros === undefined ? estimate.outputTokens : outputTokensWithin(hold.caps.usdMicros - inputUsd, price.outputPerMTok);
      const lowered = adapter.withMaxOutput(outgoing, Math.min(estimate.outputTokens, byTokens, byUsd));
      if (lowered === undefined) {
        unsent();
        await release();
        const reason = byTokens <= byUsd ? "BUDGET_TOKENS" : "BUDGET_USD";
        return deny({ reason, linkIndex: null, field: reason === "BUDGET_TOKENS" ? "tokens" : "usdMicros", message: "too little budget is left for any output", provider, model });
      }
      outgoing = lowered;
    }
    if (estimate.stream) outgoing = adapter.withStreamUsage?.(outgoing) ?? outgoing;

    let response: Response;
    try {
      if (outgoing === body && !resend) response = await fetch(input, init);
      else {
        const sent = outgoing === body ? (text as string) : JSON.stringify(outgoing);
        // The length changed: let fetch compute it.
        const headers = new Headers(init?.headers ?? request?.headers);
        headers.delete("content-length");
        response = request === undefined ? await fetch(input, { ...init, headers, body: sent }) : await fetch(new Request(request, { ...init, headers, body: sent }));
      }
    } catch (error) {
      breaker?.record(provider, aborted(error, init?.signal ?? request?.signal) ? "aborted" : "network-error", probe);
      await release();
      throw error;
    }

    if (!response.ok) {
      const outcome: BreakerOutcome = response.status === 429 ? "rate-limited" : response.status >= 500 ? "server-error" : "success";
      breaker?.record(provider, outcome, probe, retryAfterMs(response.headers.get("retry-after")));
      await release();
      return response;
    }
    breaker?.record(provider, "success", probe);

    const stream = response.body !== null && (response.headers.get("content-type") ?? "").includes("text/event-stream");
    if (!stream) {
      let bytes: ArrayBuffer;
      try {
        bytes = await response.arrayBuffer();
      } catch (error) {
        await release();
        throw error;
      }
      let usage: TokenUsage | undefined;
      try {
        usage = adapter.usageFromJson(JSON.parse(new TextDecoder().decode(bytes)));
      } catch {
        usage = undefined;
      }
      await commit(usage);
      return rebuilt(response, bytes);
    }

    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const parser = new SseParser();
    let usage: TokenUsage | undefined;
    let settled = false;
    const observe = (event: SseEvent) => {
      usage = adapter.usageFromEvent(event, usage);
    };
    const abandon = async () => {
      if (settled) return;
      settled = true;
      await (charge ? commit(usage) : release());
    };
    const passthrough = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          let next: Awaited<ReturnType<typeof reader.read>>;
          try {
            next = await reader.read();
          } catch (error) {
            await abandon();
            controller.error(error);
            return;
          }
          if (next.done) {
            parser.end(observe);
            settled = true;
            await commit(usage);
            controller.close();
            return;
          }
          // Observing must never break the stream the consumer reads.
          try {
            parser.push(next.value, observe);
          } catch {
            /* an unreadable event: the estimate is charged if no usage is ever read */
          }
          controller.enqueue(next.value);
        },
        async cancel(reason) {
          await abandon();
          // An upstream that already failed has nothing left to cancel.
          await reader.cancel(reason).catch(() => undefined);
        },
      },
      { highWaterMark: 0 },
    );
    return rebuilt(response, passthrough);
  };

  return Object.assign(metered, {
    breaker,
    loops,
    breakerState: (provider: string): BreakerSnapshot => breaker?.state(provider) ?? { state: "closed", consecutiveFailures: 0, rateLimited: 0, serverErrors: 0, opened: 0 },
    snapshot: (): MeterSnapshot => ({ breakers: breaker?.snapshot() ?? {} }),
  }) as MeteredFetch;
}

/** The 429 a denied call answers with. `x-should-retry: false` stops the official SDKs' automatic retries. */
export function denialResponse(denial: MeterDenial): Response {
  const headers = new Headers({ "content-type": "application/json", "x-should-retry": "false" });
  if (denial.retryAfter !== undefined) headers.set("retry-after", String(denial.retryAfter));
  const error = {
    type: "allowance_denied",
    reason: denial.reason,
    linkIndex: denial.linkIndex,
    field: denial.field,
    ...(denial.retryAfter === undefined ? {} : { retryAfter: denial.retryAfter }),
    ...(denial.available === undefined ? {} : { available: denial.available }),
    ...(denial.linkId === undefined ? {} : { linkId: denial.linkId }),
    message: denial.message,
  };
  return new Response(JSON.stringify({ error }), { status: 429, headers });
}

function parseObject(text: string | undefined): JsonObject | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as JsonObject) : undefined;
  } catch {
    return undefined;
  }
}

/** The same answer over a new body; `url` is kept for callers that log it. */
function rebuilt(response: Response, body: ConstructorParameters<typeof Response>[0]): Response {
  const copy = new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  Object.defineProperty(copy, "url", { value: response.url });
  return copy;
}

function aborted(error: unknown, signal: AbortSignal | null | undefined): boolean {
  return signal?.aborted === true || (error instanceof Error && error.name === "AbortError");
}

/** `retry-after` in seconds or as an HTTP date (RFC 9110 §10.2.3), in milliseconds. */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  if (/^\d{1,9}$/.test(header.trim())) return Number(header.trim()) * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
