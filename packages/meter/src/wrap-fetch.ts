/**
 * `wrapFetch`: one line that puts every LLM call under a verified chain's budget.
 *
 * For a request an adapter recognises (providers.ts), in this order:
 *   1. bound the request (`bound: "hard"`, the default): input = UTF-8 bytes of the prompt plus
 *      stated overheads, media at documented maxima; output = the request's maximum, else
 *      `defaultMaxOutputTokens`; web search calls = `max_uses` / `max_tool_calls`, else
 *      `defaultMaxToolCalls`. A request that cannot be bounded (audio, PDFs, stored conversations,
 *      per-call tools without a price) is refused as UNMETERABLE_REQUEST. `bound: "estimate"` is the
 *      older guess (docs/metering.md);
 *   2. price the model (pricing.ts); an unknown model follows `unknownModel` (default: deny);
 *   3. ask the provider's circuit breaker (breaker.ts) and the loop detector (loop.ts);
 *   4. reserve the bound's maximum cost on every link (the enforcer); on ALLOW_WITH_CAPS (only with
 *      `acceptCaps`) the output maximum is lowered to what the hold covers;
 *   5. write the limits on the request (hard mode: always; the output maximum is set when absent
 *      and lowered when above the bound), so the provider cannot bill past the hold; a streaming
 *      OpenAI-shaped request gets `stream_options.include_usage: true` unless it sets `include_usage`;
 *   6. commit the usage the provider reports: from the JSON body, or, for streams, from the usage
 *      events while every chunk passes through untouched.
 * Any denial is a 402 (budgets) or 403 (everything else) `Response` with `x-should-retry: false`
 * (`denialResponse`), which none of the official SDKs retries, and the provider is never called.
 *
 * Settling the hold (nothing that reached a provider is free):
 *   - an HTTP error answer (not 2xx) or a network error before the answer: release (providers do
 *     not bill failed requests);
 *   - a 2xx JSON answer: its usage; without readable usage, the whole hold;
 *   - a stream that ends with its closing usage report: that usage (also when a malformed chunk
 *     follows it);
 *   - a stream cancelled or aborted by the consumer, cut by the server, broken by a malformed
 *     chunk, or ended without a closing usage report: the usage reported so far, with the output
 *     raised to what was delivered (UTF-8 bytes of streamed text and tool arguments, an upper bound
 *     of tokens), else the input bound plus what was delivered; never above the hold unless the
 *     provider reported more, or delivered more output events than the maximum allows tokens (then
 *     every delivered byte is charged, past the hold). `abandonedStream: "release"` releases cancelled and broken streams
 *     instead: the loose choice;
 *   - a consumer that stops reading without cancelling: the provider's stream is read to its end
 *     anyway and settled as above; only a provider that never ends it leaves the hold to `ttl`.
 * A request no adapter recognises passes unmetered, unless it goes to a provider's host
 * (`unmatched: "deny-known"`, the default; isProviderHost) and is not free (isFreeEndpoint).
 */
import type { VerifiedChain } from "@allowance/verifier";
import type { Decision, DenyReason, Enforcer } from "@allowance/enforcer";
import { chainLabels } from "@allowance/enforcer";
import {
  CircuitBreaker,
  type BreakerOptions,
  type BreakerOutcome,
  type BreakerSnapshot,
} from "./breaker.js";
import { LoopDetector, fingerprint, type LoopOptions } from "./loop.js";
import {
  costOf,
  createPricing,
  maxCostOf,
  outputTokensWithinBound,
  parseModelPrice,
  priceUsage,
  Pricing,
  unknownPriceMessage,
  type ModelPrice,
  type PricingTable,
  type TokenUsage,
} from "./pricing.js";
import {
  builtinAdapters,
  compatibleSetup,
  isFreeEndpoint,
  isProviderHost,
  underBase,
  type BoundMode,
  type CompatibleServer,
  type JsonObject,
  type ProviderAdapter,
  type StreamTally,
} from "./providers.js";
import { JsonArrayParser, SseParser, type SseEvent } from "./sse.js";

/** The enforcer's reasons, and the meter's own. */
export type MeterDenyReason =
  | DenyReason
  | "UNKNOWN_MODEL_PRICE"
  | "PROVIDER_OPEN"
  | "LOOP_DETECTED"
  | "UNMETERABLE_REQUEST"
  | "UNMATCHED_ENDPOINT";

export const METER_DENY_REASONS: readonly MeterDenyReason[] = Object.freeze([
  "BUDGET_TOKENS",
  "BUDGET_USD",
  "BUDGET_RISK",
  "PROVIDER_NOT_ALLOWED",
  "MODEL_NOT_ALLOWED",
  "TOOL_NOT_ALLOWED",
  "RATE_LIMITED",
  "EXPIRED",
  "NOT_YET_VALID",
  "UNKNOWN_MODEL_PRICE",
  "PROVIDER_OPEN",
  "LOOP_DETECTED",
  "UNMETERABLE_REQUEST",
  "UNMATCHED_ENDPOINT",
]);

export interface MeterDenial {
  readonly reason: MeterDenyReason;
  /** The link that denied (root = 0), or null for the meter's own reasons. */
  readonly linkIndex: number | null;
  readonly linkId?: string;
  /** `usdMicros`, `providers.openai.tokens`, `model`, `breaker.openai`, `fingerprint`, `url`, … */
  readonly field: string;
  /** Seconds after which the same request may pass. */
  readonly retryAfter?: number;
  /** For budget denials: what was still available. */
  readonly available?: number;
  /** For budget denials: the cap of the limit that denied. */
  readonly limit?: number;
  /** A sentence for a person. */
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
  /** "hard" (default): reserve an upper bound and write the limits on every request; "estimate": the older guess, limits only on caps. */
  readonly bound?: BoundMode;
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
  /** OpenAI-compatible servers to meter, by base URL: `[{ baseUrl: "http://localhost:11434/v1", provider: "ollama" }]`. */
  readonly compatible?: readonly CompatibleServer[];
  /** Azure OpenAI: deployment name → the OpenAI model it runs, for pricing and the grant's `models`. */
  readonly azure?: { readonly deployments?: Readonly<Record<string, string>> };
  /** The tool this caller acts as: checked against the chain's `tools`, part of the loop fingerprint. */
  readonly tool?: string;
  /** The output maximum written on a request that sets none. Default 4096. */
  readonly defaultMaxOutputTokens?: number;
  /** The web search calls allowed per request that enables web search without a maximum. Default 5. */
  readonly defaultMaxToolCalls?: number;
  /**
   * A request no adapter recognises: "deny-known" (default) refuses it on a provider's host
   * (isProviderHost, registered `compatible` bases) unless it is free (isFreeEndpoint) or
   * `allowUnmetered` says so, and lets other hosts pass; "deny" refuses every one; "pass" lets all pass.
   */
  readonly unmatched?: "deny-known" | "deny" | "pass";
  /** Provider requests you accept unmetered (file uploads, batch reads, …): checked before UNMATCHED_ENDPOINT. */
  readonly allowUnmetered?: (url: URL, method: string) => boolean;
  /** A stream cancelled, aborted or broken before its end: "charge" (default) or "release" (the loose choice). */
  readonly abandonedStream?: "charge" | "release";
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
type Charge = { tokens: number; usdMicros: number };

const positive = (value: number | undefined, fallback: number, name: string): number => {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1)
    throw new RangeError(`"${name}" expected a positive safe integer, got ${String(v)}`);
  return v;
};

const DECODER = new TextDecoder();

/** TextDecoder's result (a leading byte order mark dropped) by Buffer's decoder, which is several times faster on Node 20. */
function utf8Text(bytes: ArrayBuffer): string {
  const text = Buffer.from(bytes).toString("utf8");
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
/** Streamed bytes kept before they are parsed for usage. */
const PARSE_BATCH_BYTES = 65_536;

/** Events kept for the delivered count, counted in batches so a long stream keeps little. */
const DELIVERED_BATCH = 256;

export function wrapFetch(fetch: typeof globalThis.fetch, options: WrapFetchOptions): MeteredFetch {
  if (typeof fetch !== "function") throw new TypeError('"fetch" expected a function');
  if (options === null || typeof options !== "object")
    throw new TypeError('"options" expected an object');
  const { enforcer, chain } = options;
  if (enforcer === undefined || typeof enforcer.reserve !== "function")
    throw new TypeError('"enforcer" expected an Enforcer');
  if (chain === undefined || !Array.isArray(chain.links))
    throw new TypeError('"chain" expected a VerifiedChain');
  const mode: BoundMode = options.bound ?? "hard";
  if (mode !== "hard" && mode !== "estimate")
    throw new TypeError(`"bound" expected "hard" or "estimate", got ${String(mode)}`);
  const unmatched = options.unmatched ?? "deny-known";
  if (unmatched !== "deny-known" && unmatched !== "deny" && unmatched !== "pass")
    throw new TypeError(
      `"unmatched" expected "deny-known", "deny" or "pass", got ${String(unmatched)}`,
    );
  const abandoned = options.abandonedStream ?? "charge";
  if (abandoned !== "charge" && abandoned !== "release")
    throw new TypeError(
      `"abandonedStream" expected "charge" or "release", got ${String(abandoned)}`,
    );
  const releaseAbandoned = abandoned === "release";
  const pricing =
    options.pricing instanceof Pricing ? options.pricing : createPricing(options.pricing ?? {});
  const unknownPrice =
    options.unknownModel === undefined || options.unknownModel === "deny"
      ? undefined
      : parseModelPrice(options.unknownModel);
  const breaker =
    options.breaker === false
      ? undefined
      : options.breaker instanceof CircuitBreaker
        ? options.breaker
        : new CircuitBreaker(options.breaker);
  // The enforcer's remaining() (and so the MCP get_budget tool) shows the breakers' states.
  if (breaker !== undefined) {
    options.enforcer.reportProviderStatus(() =>
      Object.fromEntries(
        Object.entries(breaker.snapshot()).map(([provider, b]) => [
          provider,
          { breaker: b.state, ...(b.openUntil === undefined ? {} : { openUntil: b.openUntil }) },
        ]),
      ),
    );
  }
  const loops =
    options.loop === false
      ? undefined
      : options.loop instanceof LoopDetector
        ? options.loop
        : new LoopDetector(options.loop);
  const compatible = compatibleSetup(options.compatible);
  const deployments = options.azure?.deployments;
  if (
    deployments !== undefined &&
    (deployments === null ||
      typeof deployments !== "object" ||
      Object.values(deployments).some((m) => typeof m !== "string" || m.length === 0))
  ) {
    throw new TypeError('"azure.deployments" expected { deployment: "model" } with model names');
  }
  const adapters = [
    ...(options.providers ?? []),
    ...compatible.adapters,
    ...builtinAdapters(deployments === undefined ? {} : { azureDeployments: deployments }),
  ];
  const ttl = options.ttl ?? 300;
  const defaultMaxOutputTokens = positive(
    options.defaultMaxOutputTokens,
    4096,
    "defaultMaxOutputTokens",
  );
  const defaultMaxToolCalls = positive(options.defaultMaxToolCalls, 5, "defaultMaxToolCalls");
  const estimateOptions = { defaultMaxOutputTokens, defaultMaxToolCalls, bound: mode };
  const allowUnmetered = options.allowUnmetered;
  const tool = options.tool;
  const labels = chainLabels(chain);
  const report =
    options.onError ??
    ((error: unknown) =>
      process.emitWarning(`allowance meter: ${String(error)}`, "AllowanceMeterWarning"));
  const settle = async (work: Promise<unknown>): Promise<void> => {
    try {
      await work;
    } catch (error) {
      report(error);
    }
  };
  const deny = (denial: MeterDenial, url: URL): Response => {
    options.onDeny?.(denial);
    // The enforcer reports its own denials; the meter's reach listeners and webhooks this way.
    if (denial.linkIndex === null) {
      enforcer.emit("refused", {
        reason: denial.reason,
        field: denial.field,
        detail: denial.message,
        ...(denial.provider === undefined ? {} : { provider: denial.provider }),
        ...(denial.model === undefined ? {} : { model: denial.model }),
        labels,
      });
    }
    return denialResponse(denial, { wire: nativeGemini(url) ? "google" : "openai" });
  };
  const knownHost = (url: URL): boolean =>
    isProviderHost(url.hostname) || compatible.bases.some((b) => underBase(b, url));

  const metered = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request ? input : undefined;
    const method = init?.method?.toUpperCase() ?? request?.method ?? "GET";
    let url: URL;
    try {
      url =
        typeof input === "string"
          ? new URL(input)
          : input instanceof URL
            ? input
            : new URL(input.url);
    } catch {
      return fetch(input, init);
    }
    const refuse = (denial: MeterDenial): Response => deny(denial, url);
    let adapter: ProviderAdapter | undefined;
    for (const a of adapters) {
      if (a.match(url, method)) {
        adapter = a;
        break;
      }
    }
    if (adapter === undefined) {
      if (unmatched === "pass") return fetch(input, init);
      if (
        unmatched === "deny" ||
        (knownHost(url) && !isFreeEndpoint(url, method) && allowUnmetered?.(url, method) !== true)
      ) {
        return refuse({
          reason: "UNMATCHED_ENDPOINT",
          linkIndex: null,
          field: "url",
          message: `the meter does not know how to meter ${method} ${url.pathname} on ${url.host}, so it is refused rather than sent unmetered`,
        });
      }
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
    } else if (request !== undefined && request.body !== null) {
      text = await request.clone().text();
    }
    const body = parseObject(text);
    if (body === undefined)
      return refuse({
        reason: "UNMETERABLE_REQUEST",
        linkIndex: null,
        field: "body",
        message:
          "the request body is not a JSON object, so the meter cannot tell what it would cost",
        provider,
      });

    const estimate = adapter.estimate(body, { ...estimateOptions, url });
    const model = estimate.model;
    if (estimate.unmeterable !== undefined) {
      return refuse({
        reason: "UNMETERABLE_REQUEST",
        linkIndex: null,
        field: "body",
        message: `this request cannot be metered with a hard bound: ${estimate.unmeterable}`,
        provider,
        model,
      });
    }
    const price =
      pricing.lookup(provider, model) ??
      (adapter.pricedAs === undefined ? undefined : pricing.lookup(adapter.pricedAs, model)) ??
      unknownPrice;
    if (price === undefined) {
      return refuse({
        reason: "UNKNOWN_MODEL_PRICE",
        linkIndex: null,
        field: "model",
        message:
          estimate.priceHint === undefined
            ? unknownPriceMessage(provider, model)
            : `no price for ${provider} model "${model}": ${estimate.priceHint}`,
        provider,
        model,
      });
    }

    const permit = breaker?.acquire(provider);
    if (permit !== undefined && !permit.ok) {
      return refuse({
        reason: "PROVIDER_OPEN",
        linkIndex: null,
        field: `breaker.${provider}`,
        retryAfter: Math.max(1, Math.ceil(permit.retryAfterMs / 1000)),
        message: `calls to ${provider} are paused after repeated failures; try again in ${Math.max(1, Math.ceil(permit.retryAfterMs / 1000))} s`,
        provider,
        model,
      });
    }
    const probe = permit?.probe ?? false;
    // A probe that is not sent hands its turn back.
    const unsent = () => breaker?.record(provider, "aborted", probe);

    if (loops !== undefined) {
      const verdict = loops.check(
        fingerprint({
          provider,
          model,
          ...(tool === undefined ? {} : { tool }),
          input: adapter.fingerprintInput(body),
        }),
      );
      if (!verdict.ok) {
        unsent();
        return refuse({
          reason: "LOOP_DETECTED",
          linkIndex: null,
          field: "fingerprint",
          retryAfter: Math.max(1, Math.ceil(verdict.retryAfterMs / 1000)),
          message: `the same request was sent ${verdict.count} times within ${loops.windowMs / 1000} s, which looks like a loop`,
          provider,
          model,
        });
      }
    }

    const inputTokens = estimate.inputTokens;
    const searches = estimate.webSearchCalls;
    const bound =
      searches === undefined ? { inputTokens } : { inputTokens, webSearchCalls: searches };
    const hard = mode === "hard";
    const costFor = (outputTokens: number): number =>
      hard
        ? maxCostOf({ ...bound, outputTokens }, price)
        : costOf(inputTokens, price.inputPerMTok) + costOf(outputTokens, price.outputPerMTok);
    const minOutput = Math.min(1, estimate.outputTokens);
    let decision: Decision;
    try {
      decision = await enforcer.reserve(
        {
          chain,
          provider,
          model,
          ...(tool === undefined ? {} : { tool }),
          tokens: inputTokens + estimate.outputTokens,
          usdMicros: costFor(estimate.outputTokens),
          // At least one output token must fit (none for embeddings), or the call is pointless.
          ...(options.acceptCaps === true
            ? {
                acceptCaps: {
                  minTokens: Math.max(1, inputTokens + minOutput),
                  minUsdMicros: Math.max(1, costFor(minOutput)),
                },
              }
            : {}),
        },
        { ttl },
      );
    } catch (error) {
      unsent();
      throw error;
    }
    if (decision.decision === "DENY") {
      unsent();
      const limit = (decision as { limit?: unknown }).limit;
      return refuse({
        reason: decision.reason,
        linkIndex: decision.linkIndex,
        linkId: decision.linkId,
        field: decision.field,
        ...(decision.retryAfter === undefined ? {} : { retryAfter: decision.retryAfter }),
        ...(decision.available === undefined ? {} : { available: decision.available }),
        ...(typeof limit === "number" ? { limit } : {}),
        message: decision.detail,
        provider,
        model,
      });
    }
    const hold: Hold = decision;
    const release = () => settle(enforcer.release(hold.reservationId));
    const commitCharge = (charge: Charge) => settle(enforcer.commit(hold.reservationId, charge));
    const held: Charge = { tokens: hold.amounts.tokens, usdMicros: hold.amounts.usdMicros };

    // The output the hold covers.
    let outputTokens = estimate.outputTokens;
    const capped = hold.decision === "ALLOW_WITH_CAPS";
    if (capped) {
      const byTokens =
        hold.caps.tokens === undefined ? outputTokens : hold.caps.tokens - inputTokens;
      const byUsd =
        hold.caps.usdMicros === undefined
          ? outputTokens
          : hard
            ? outputTokensWithinBound(hold.caps.usdMicros, bound, price)
            : Math.floor(
                ((hold.caps.usdMicros - costOf(inputTokens, price.inputPerMTok)) * 1_000_000) /
                  Math.max(1, price.outputPerMTok),
              );
      outputTokens = Math.max(0, Math.min(outputTokens, byTokens, byUsd));
    }
    let patch: JsonObject | undefined;
    if (hard || capped) {
      patch = adapter.limitsPatch(
        body,
        searches === undefined ? { outputTokens } : { outputTokens, webSearchCalls: searches },
      );
      if (patch === undefined) {
        unsent();
        await release();
        return refuse({
          reason: capped && hold.caps.tokens !== undefined ? "BUDGET_TOKENS" : "BUDGET_USD",
          linkIndex: null,
          field: capped && hold.caps.tokens !== undefined ? "tokens" : "usdMicros",
          message: "too little budget is left for any output",
          provider,
          model,
        });
      }
    }
    if (estimate.stream) {
      const usage = adapter.streamUsagePatch?.(body);
      if (usage !== undefined) patch = patch === undefined ? usage : { ...patch, ...usage };
    }

    // A limit given twice: JSON.parse kept the last, a provider's parser might keep the first. Send
    // the object as parsed, so the provider sees the limits the hold was sized for.
    const duplicated = hard && duplicateLimit(text as string);
    let response: Response;
    try {
      if (!resend && !duplicated && (patch === undefined || isEmpty(patch)))
        response = await fetch(input, init);
      else {
        const sent = duplicated
          ? JSON.stringify(patch === undefined ? body : { ...body, ...patch })
          : patch === undefined || isEmpty(patch)
            ? (text as string)
            : patched(text as string, body, patch);
        // The length changed: let fetch compute it.
        const headers = withoutContentLength(init?.headers ?? request?.headers);
        const changed: RequestInit =
          headers === undefined ? { ...init, body: sent } : { ...init, headers, body: sent };
        response =
          request === undefined
            ? await fetch(input, changed)
            : await fetch(new Request(request, changed));
      }
    } catch (error) {
      breaker?.record(
        provider,
        aborted(error, init?.signal ?? request?.signal) ? "aborted" : "network-error",
        probe,
      );
      await release();
      throw error;
    }

    if (!response.ok) {
      const outcome: BreakerOutcome =
        response.status === 429
          ? "rate-limited"
          : response.status >= 500
            ? "server-error"
            : "success";
      breaker?.record(provider, outcome, probe, retryAfterMs(response.headers.get("retry-after")));
      // Providers do not bill a request they answer with an error.
      await release();
      return response;
    }
    breaker?.record(provider, "success", probe);

    const contentType = response.headers.get("content-type") ?? "";
    const sse = contentType.includes("text/event-stream");
    const streamed =
      response.body !== null && (sse || (estimate.stream && adapter.jsonArrayStream === true));
    if (!streamed) {
      let bytes: ArrayBuffer;
      try {
        bytes = await response.arrayBuffer();
      } catch (error) {
        // The answer was sent: whatever it cost, the hold covers it.
        await commitCharge(held);
        throw error;
      }
      let usage: TokenUsage | undefined;
      let json: unknown = NOT_JSON;
      try {
        json = JSON.parse(utf8Text(bytes));
        usage = adapter.usageFromJson(json);
      } catch {
        usage = undefined;
      }
      await commitCharge(usage === undefined ? held : priceUsage(usage, price));
      return new BufferedResponse(response, new Uint8Array(bytes), json) as unknown as Response;
    }

    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const parser = sse ? new SseParser() : new JsonArrayParser();
    const tally: StreamTally = { usage: undefined, final: false };
    let pending: SseEvent[] = [];
    // UTF-8 bytes of delivered output (at least the tokens delivered), and the events that carried
    // any (at most the tokens delivered: no event carries less than a token).
    let delivered = 0;
    let deliveredEvents = 0;
    const count = () => {
      for (const e of pending) {
        const bytes = adapter.deliveredBytes(e);
        delivered += bytes;
        if (bytes > 0) deliveredEvents++;
      }
      pending = [];
    };
    const observe = (event: SseEvent) => {
      adapter.observe(event, tally);
      if (tally.final) return;
      pending.push(event);
      if (pending.length >= DELIVERED_BATCH) count();
    };
    /** The charge of a stream without its closing report (docs/metering.md "Settling"). */
    const partialCharge = (): Charge => {
      count();
      const reported = tally.usage;
      // The byte count bounds the tokens delivered from above. While the provider may have kept to
      // the maximum written on the request, more bytes than the maximum allows tokens is ordinary
      // (a token is 1 to ~4 bytes), so the charge stops at the hold. More output events than the
      // maximum allows tokens proves it did not (no event carries less than a token): then every
      // delivered byte is charged, past the hold, as an overrun (spec/enforcement.md §3.4).
      const pastMaximum = deliveredEvents > outputTokens;
      const seen = Math.max(reported?.outputTokens ?? 0, delivered);
      const out = pastMaximum ? seen : Math.min(outputTokens, seen);
      const raised = priceUsage(
        reported === undefined
          ? { inputTokens, outputTokens: out }
          : { ...reported, outputTokens: out },
        price,
      );
      const charge = pastMaximum
        ? raised
        : {
            tokens: Math.min(raised.tokens, held.tokens),
            usdMicros: Math.min(raised.usdMicros, held.usdMicros),
          };
      if (reported === undefined) return charge;
      // Never less than what the provider itself reported.
      const floor = priceUsage(reported, price);
      return {
        tokens: Math.max(charge.tokens, floor.tokens),
        usdMicros: Math.max(charge.usdMicros, floor.usdMicros),
      };
    };
    // Chunks are parsed in batches rather than one by one: the same events, a fraction of the
    // per-chunk decoding cost. Every batch is parsed before the hold is settled.
    let unparsed: Uint8Array[] = [];
    let unparsedBytes = 0;
    const parseUnparsed = () => {
      if (unparsed.length === 0) return;
      const batch = unparsed.length === 1 ? (unparsed[0] as Uint8Array) : Buffer.concat(unparsed);
      unparsed = [];
      unparsedBytes = 0;
      // Observing must never break the stream the consumer reads.
      try {
        parser.push(batch, observe);
      } catch {
        /* an unreadable event: without a closing report, what was delivered is charged */
      }
    };
    let settled = false;
    const finish = async (how: "end" | "abandon") => {
      if (settled) return;
      settled = true;
      parseUnparsed();
      if (how === "end") {
        try {
          parser.end(observe);
        } catch {
          /* an unreadable tail: charged as delivered */
        }
      }
      if (tally.final && tally.usage !== undefined)
        await commitCharge(priceUsage(tally.usage, price));
      else if (how === "abandon" && releaseAbandoned) await release();
      else await commitCharge(partialCharge());
    };
    // The upstream is read to its end whatever the consumer does: a consumer that stops reading
    // without cancelling (an SDK that gave up on a chunk it could not parse) would otherwise leave
    // the hold open until it expires. What the consumer has not read yet waits in the queue (at
    // most the answer, whose length the hold bounds).
    let cancelled = false;
    const relay = new Relay(async (reason) => {
      cancelled = true;
      await finish("abandon");
      // An upstream that already failed has nothing left to cancel.
      await reader.cancel(reason).catch(() => undefined);
    });
    const pump = async (): Promise<void> => {
      for (;;) {
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await reader.read();
        } catch (error) {
          await finish("abandon");
          if (!cancelled) relay.fail(error);
          return;
        }
        if (cancelled) return;
        if (next.done) {
          // Settled before the consumer sees the end.
          await finish("end");
          relay.close();
          return;
        }
        unparsed.push(next.value);
        unparsedBytes += next.value.byteLength;
        if (unparsedBytes >= PARSE_BATCH_BYTES) parseUnparsed();
        relay.push(next.value);
      }
    };
    void pump();
    return new StreamedResponse(response, relay) as unknown as Response;
  };

  return Object.assign(metered, {
    breaker,
    loops,
    breakerState: (provider: string): BreakerSnapshot =>
      breaker?.state(provider) ?? {
        state: "closed",
        consecutiveFailures: 0,
        rateLimited: 0,
        serverErrors: 0,
        opened: 0,
      },
    snapshot: (): MeterSnapshot => ({ breakers: breaker?.snapshot() ?? {} }),
  }) as MeteredFetch;
}

/** Budgets: 402 Payment Required. Everything else: 403 Forbidden. Neither is retried by the SDKs (docs/metering.md "Denials"). */
export function denialStatus(reason: MeterDenyReason): 402 | 403 {
  return reason === "BUDGET_USD" || reason === "BUDGET_TOKENS" || reason === "BUDGET_RISK"
    ? 402
    : 403;
}

/**
 * The answer to a denied call: 402 or 403, `x-should-retry: false` (honoured by the openai and
 * @anthropic-ai/sdk clients; the AI SDK retries only 408, 409, 429 and 5xx), `retry-after` when
 * known, and a body that reads as an error in both providers' shapes:
 * `{ type: "error", error: { type: "allowance_denied", code, reason, message, … } }`.
 */
/** A native Gemini method call (`…/models/{model}:generateContent`), whose SDKs read Google's error shape. */
function nativeGemini(url: URL): boolean {
  return /\/models\/[^/]+:[A-Za-z]+$/.test(url.pathname) && !url.pathname.includes("/openai/");
}

const GOOGLE_STATUS: Readonly<Record<number, string>> = {
  402: "FAILED_PRECONDITION",
  403: "PERMISSION_DENIED",
};

export interface DenialResponseOptions {
  /**
   * Whose error shape the body takes. "openai" (default): `{ type: "error", error: { type, code, message, … } }`,
   * which the OpenAI and Anthropic SDKs and OpenAI-compatible clients read. "google": Google's
   * `{ error: { code: <HTTP status>, message, status } }` with the same typed fields beside, which
   * Gemini clients (the AI SDK's google provider) read.
   */
  readonly wire?: "openai" | "google";
}

export function denialResponse(denial: MeterDenial, options: DenialResponseOptions = {}): Response {
  const headers = new Headers({
    "content-type": "application/json",
    "x-should-retry": "false",
    "x-allowance-denied": denial.reason,
  });
  if (denial.retryAfter !== undefined) headers.set("retry-after", String(denial.retryAfter));
  const error = {
    type: "allowance_denied",
    code: denial.reason,
    reason: denial.reason,
    message: denial.message,
    linkIndex: denial.linkIndex,
    field: denial.field,
    ...(denial.retryAfter === undefined ? {} : { retryAfter: denial.retryAfter }),
    ...(denial.available === undefined ? {} : { available: denial.available }),
    ...(denial.limit === undefined ? {} : { limit: denial.limit }),
    ...(denial.linkId === undefined ? {} : { linkId: denial.linkId }),
    ...(denial.provider === undefined ? {} : { provider: denial.provider }),
    ...(denial.model === undefined ? {} : { model: denial.model }),
    param: null,
  };
  const status = denialStatus(denial.reason);
  if (options.wire === "google") {
    const google = { ...error, code: status, status: GOOGLE_STATUS[status] ?? "PERMISSION_DENIED" };
    return new Response(JSON.stringify({ error: google }), { status, headers });
  }
  return new Response(JSON.stringify({ type: "error", error }), { status, headers });
}

function parseObject(text: string | undefined): JsonObject | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as JsonObject)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Keys that size the bound: each may appear at most once in a request's text, or it is sent re-serialised. */
const LIMIT_KEYS = [
  '"max_tokens"',
  '"max_completion_tokens"',
  '"max_output_tokens"',
  '"maxOutputTokens"',
  '"generationConfig"',
  '"generation_config"',
  '"n"',
  '"best_of"',
  '"candidateCount"',
  '"max_uses"',
  '"max_tool_calls"',
  '"thinking"',
];
/**
 * Any of LIMIT_KEYS, found in one pass over the text rather than one pass per key. The closing
 * quote is only looked at, so a key that starts on it is found too (never fewer hits than a
 * search per key: at worst a request is re-serialised that did not need it).
 */
const LIMIT_KEY = new RegExp(`"(?:${LIMIT_KEYS.map((k) => k.slice(1, -1)).join("|")})(?=")`, "g");

function duplicateLimit(text: string): boolean {
  LIMIT_KEY.lastIndex = 0;
  let seen: string[] | undefined;
  for (let m = LIMIT_KEY.exec(text); m !== null; m = LIMIT_KEY.exec(text)) {
    if (seen === undefined) seen = [m[0]];
    else if (seen.includes(m[0])) return true;
    else seen.push(m[0]);
  }
  return false;
}

function isEmpty(object: JsonObject): boolean {
  for (const _ in object) return false;
  return true;
}

/**
 * `text` with `patch` set: when every patched field is new, its members are spliced in after the
 * opening brace (no re-serialisation, no duplicate key); otherwise the object is serialised again.
 */
function patched(text: string, body: JsonObject, patch: JsonObject): string {
  for (const key in patch)
    if (Object.hasOwn(body, key)) return JSON.stringify({ ...body, ...patch });
  const members = JSON.stringify(patch).slice(1, -1);
  const open = text.indexOf("{");
  const rest = text.slice(open + 1);
  return `{${members}${/^\s*\}/.test(rest) ? "" : ","}${rest}`;
}

/** The headers without content-length, or undefined when there is none to drop (no copy). */
function withoutContentLength(headers: RequestInit["headers"]): RequestInit["headers"] {
  if (headers === undefined) return undefined;
  if (headers instanceof Headers) {
    if (!headers.has("content-length")) return headers;
    const copy = new Headers(headers);
    copy.delete("content-length");
    return copy;
  }
  if (Array.isArray(headers))
    return headers.some(([name]: string[]) => (name ?? "").toLowerCase() === "content-length")
      ? headers.filter(([name]: string[]) => (name ?? "").toLowerCase() !== "content-length")
      : headers;
  const record = headers as Record<string, string>;
  for (const name in record) {
    if (name.toLowerCase() === "content-length")
      return Object.fromEntries(
        Object.entries(record).filter(([n]) => n.toLowerCase() !== "content-length"),
      );
  }
  return headers;
}

const NOT_JSON: unique symbol = Symbol("not JSON");

/**
 * A JSON answer the meter has read, served from memory. Why not `new Response(bytes)`: on Node 20
 * every ReadableStream costs about 30 µs to construct, the largest part of the meter's budget, and
 * the SDKs read JSON answers with `json()` / `text()`, which need no stream. `body` builds one only
 * when asked. `json()` hands over the value already parsed for the usage (the meter only reads it).
 */
// Typed as a bare base: the DOM typings declare Response's members as properties, which a subclass cannot override.
const ResponseBase = Response as unknown as new (
  body: null,
  init: ResponseInit,
) => { readonly headers: Headers };

class BufferedResponse extends ResponseBase {
  readonly #bytes: Uint8Array;
  readonly #json: unknown;
  readonly #url: string;
  #used = false;
  #stream: ReadableStream<Uint8Array> | undefined;

  constructor(source: Response, bytes: Uint8Array, json: unknown) {
    super(null, { status: source.status, statusText: source.statusText, headers: source.headers });
    this.#bytes = bytes;
    this.#json = json;
    this.#url = source.url;
  }

  get url(): string {
    return this.#url;
  }

  get body(): ReadableStream<Uint8Array> {
    // Looking at `body` (SDKs log it) reads nothing; the first read of the stream uses the body.
    this.#stream ??= new ReadableStream<Uint8Array>(
      {
        pull: (controller) => {
          const bytes = this.#take();
          if (bytes.byteLength > 0) controller.enqueue(bytes.slice());
          controller.close();
        },
      },
      // No pull before the first read.
      { highWaterMark: 0 },
    );
    return this.#stream;
  }

  get bodyUsed(): boolean {
    return this.#used;
  }

  #take(): Uint8Array {
    if (this.#used) throw new TypeError("Body is unusable: Body has already been read");
    this.#used = true;
    return this.#bytes;
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    return this.#take().slice().buffer;
  }

  async bytes(): Promise<Uint8Array> {
    return this.#take().slice();
  }

  async text(): Promise<string> {
    return DECODER.decode(this.#take());
  }

  async json(): Promise<unknown> {
    const bytes = this.#take();
    return this.#json === NOT_JSON ? JSON.parse(DECODER.decode(bytes)) : this.#json;
  }

  async blob(): Promise<Blob> {
    return new Blob([this.#take()], { type: this.headers.get("content-type") ?? "" });
  }

  async formData(): Promise<FormData> {
    return new Response(this.#take(), { headers: this.headers }).formData();
  }

  clone(): BufferedResponse {
    if (this.#used) throw new TypeError("Response.clone: Body has already been consumed.");
    // A clone's json() must not share the parsed value with this one.
    return new BufferedResponse(this as unknown as Response, this.#bytes, NOT_JSON);
  }
}

/**
 * A streamed answer's chunks on their way to the consumer. The meter reads the provider's stream
 * into it to the end whatever the consumer does (module comment); the consumer takes them through
 * StreamedResponse. One reader at a time: a body is read once.
 */
class Relay {
  #chunks: Uint8Array[] = [];
  #head = 0;
  #state: "open" | "closed" | "errored" = "open";
  #error: unknown;
  #wake: (() => void) | undefined;
  /** Cancels the upstream and settles the hold as abandoned. */
  readonly cancel: (reason: unknown) => Promise<void>;

  constructor(cancel: (reason: unknown) => Promise<void>) {
    this.cancel = cancel;
  }

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#notify();
  }

  /** Only once the hold is settled. */
  close(): void {
    this.#state = "closed";
    this.#notify();
  }

  fail(error: unknown): void {
    this.#state = "errored";
    this.#error = error;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The next chunk, or undefined at the end; rejects with the upstream's error. */
  async next(): Promise<Uint8Array | undefined> {
    for (;;) {
      if (this.#head < this.#chunks.length) {
        const chunk = this.#chunks[this.#head] as Uint8Array;
        if (++this.#head === this.#chunks.length) {
          this.#chunks = [];
          this.#head = 0;
        }
        return chunk;
      }
      if (this.#state === "closed") return undefined;
      if (this.#state === "errored") throw this.#error;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** Every chunk to the end, in one piece. */
  async all(): Promise<Uint8Array> {
    while (this.#state === "open") await new Promise<void>((resolve) => (this.#wake = resolve));
    if (this.#state === "errored") throw this.#error;
    const rest = this.#chunks.slice(this.#head);
    this.#chunks = [];
    this.#head = 0;
    if (rest.length === 1) return owned(rest[0] as Uint8Array);
    // Not Buffer.concat: its result may be a view of a shared pool, which the consumer's
    // arrayBuffer() would hand over whole.
    let length = 0;
    for (const chunk of rest) length += chunk.byteLength;
    const out = new Uint8Array(length);
    let at = 0;
    for (const chunk of rest) {
      out.set(chunk, at);
      at += chunk.byteLength;
    }
    return out;
  }
}

/** `bytes` if it spans its own ArrayBuffer exactly, else a copy that does (no view of memory beyond it). */
function owned(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength &&
    bytes.buffer instanceof ArrayBuffer
    ? bytes
    : new Uint8Array(bytes);
}

/**
 * A streamed answer served from the Relay. Why not `new Response(stream)`: on Node 20 every
 * ReadableStream costs tens of µs, and a consumer that reads with arrayBuffer() / text() / json()
 * needs none; `body` builds one only when asked, and reading it pulls from the same relay, so a
 * consumer reads the answer whichever way it takes, and the hold is settled before any of them sees
 * the end.
 */
class StreamedResponse extends ResponseBase {
  readonly #relay: Relay;
  readonly #url: string;
  #used = false;
  #stream: ReadableStream<Uint8Array> | undefined;

  constructor(source: Response, relay: Relay) {
    super(null, { status: source.status, statusText: source.statusText, headers: source.headers });
    this.#relay = relay;
    this.#url = source.url;
  }

  get url(): string {
    return this.#url;
  }

  get body(): ReadableStream<Uint8Array> {
    this.#stream ??= new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          this.#used = true;
          const chunk = await this.#relay.next();
          if (chunk === undefined) controller.close();
          else controller.enqueue(chunk);
        },
        cancel: (reason) => {
          this.#used = true;
          return this.#relay.cancel(reason);
        },
      },
      // No pull before the first read.
      { highWaterMark: 0 },
    );
    return this.#stream;
  }

  get bodyUsed(): boolean {
    return this.#used;
  }

  async #bytes(): Promise<Uint8Array> {
    if (this.#used || this.#stream?.locked === true)
      throw new TypeError("Body is unusable: Body has already been read");
    this.#used = true;
    // A body already handed out (and not read) is read through, so nothing is taken twice.
    if (this.#stream !== undefined)
      return new Uint8Array(await new Response(this.#stream).arrayBuffer());
    return this.#relay.all();
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    return (await this.#bytes()).buffer as ArrayBuffer;
  }

  async bytes(): Promise<Uint8Array> {
    return this.#bytes();
  }

  async text(): Promise<string> {
    return DECODER.decode(await this.#bytes());
  }

  async json(): Promise<unknown> {
    return JSON.parse(DECODER.decode(await this.#bytes()));
  }

  async blob(): Promise<Blob> {
    return new Blob([await this.#bytes()], { type: this.headers.get("content-type") ?? "" });
  }

  async formData(): Promise<FormData> {
    return new Response(await this.#bytes(), { headers: this.headers }).formData();
  }

  clone(): Response {
    if (this.#used || this.#stream?.locked === true)
      throw new TypeError("Response.clone: Body has already been consumed.");
    // Both copies read the same relay through a tee.
    const [mine, theirs] = this.body.tee();
    this.#stream = mine;
    return rebuilt(this as unknown as Response, theirs);
  }
}

/** The same answer over a new body; `url` is kept for callers that log it. */
function rebuilt(response: Response, body: ConstructorParameters<typeof Response>[0]): Response {
  const copy = new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
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
