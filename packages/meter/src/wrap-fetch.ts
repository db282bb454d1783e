/**
 * `wrapFetch`: one line that puts every LLM call under a verified chain's budget.
 *
 * For a request an adapter recognises (providers.ts), in this order:
 *   1. bound the request (`bound: "hard"`, the default): input = UTF-8 bytes of the prompt plus
 *      stated overheads, media at documented maxima; output = the request's maximum, else
 *      `defaultMaxOutputTokens`; web search calls = `max_uses` / `max_tool_calls`, else
 *      `defaultMaxToolCalls`. A request that cannot be bounded (audio, PDFs, stored conversations,
 *      per-call tools without a price) is refused as UNMETERABLE_REQUEST, and so is one whose own
 *      limits leave no output (max_tokens 0). `bound: "estimate"` is the older guess
 *      (docs/metering.md);
 *   2. price the model (pricing.ts); an unknown model follows `unknownModel` (default: deny);
 *   3. ask the provider's circuit breaker (breaker.ts) and the loop detector (loop.ts);
 *   4. reserve the bound's maximum cost on every link (the enforcer). The reserve is the
 *      pre-flight: the enforcer's rule decides whether the call fits, and every budget denial is
 *      its Decision. On ALLOW_WITH_CAPS (only with `acceptCaps`, whose minimum is the least output
 *      the request can be sent with) the output maximum is lowered to what the hold covers;
 *   5. write the limits on the request (hard mode: always; the output maximum is set when absent
 *      and lowered when above the bound), so the provider cannot bill past the hold; a streaming
 *      OpenAI-shaped request gets `stream_options.include_usage: true` unless it sets `include_usage`;
 *   6. commit the usage the provider reports: from the JSON body, or, for streams, from the usage
 *      events while every chunk passes through untouched.
 * Any denial is a 402 (budgets, debt) or 403 (everything else) `Response` with `x-should-retry: false`
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
import type { Decision, DenyReason, Enforcer, ReserveRequest } from "@allowance/enforcer";
import {
  DENY_REASONS,
  Enforcer as EnforcerClass,
  MAX_TTL_SECONDS,
  chainLabels,
} from "@allowance/enforcer";
import {
  CircuitBreaker,
  type BreakerOptions,
  type BreakerOutcome,
  type BreakerSnapshot,
} from "./breaker.js";
import { LoopDetector, fingerprintOf, type LoopOptions, type LoopVerdict } from "./loop.js";
import {
  boundCostOf,
  chargeOf,
  checkedPrice,
  checkUsage,
  costOf,
  createPricing,
  outputTokensWithinBound,
  parseModelPrice,
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
  type RequestEstimate,
  type RequestLimits,
  type StreamTally,
} from "./providers.js";
import type { CompatibleBase } from "./adapters/compatible.js";
import { functionOption, integerOption, optionsOf, shown } from "./options.js";
import { JsonArrayParser, SseParser, type SseEvent } from "./sse.js";

/** The meter's own reasons for denying a call, before any ledger is asked. */
const METER_OWN_REASONS = [
  "UNKNOWN_MODEL_PRICE",
  "PROVIDER_OPEN",
  "LOOP_DETECTED",
  "UNMETERABLE_REQUEST",
  "UNMATCHED_ENDPOINT",
] as const;

/** The enforcer's reasons, and the meter's own. */
export type MeterDenyReason = DenyReason | (typeof METER_OWN_REASONS)[number];

/** Every reason a meter's denial may carry: the enforcer's (DENY_REASONS), then the meter's own. */
export const METER_DENY_REASONS: readonly MeterDenyReason[] = Object.freeze([
  ...DENY_REASONS,
  ...METER_OWN_REASONS,
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
  /**
   * Holds and charges every call. When it is `synchronous` and its reserve, commit and release are
   * the Enforcer class's own, the meter calls their `…Sync` twins instead (the same operations,
   * without the promises). That is decided when wrapFetch is called: a method replaced on the
   * instance later (a spy, a wrapper) is not seen; subclass the Enforcer to wrap its methods.
   */
  readonly enforcer: Enforcer;
  readonly chain: VerifiedChain;
  /** A `Pricing`, or a table merged over DEFAULT_PRICING (checked by parsePricingTable). */
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

/** Every key of WrapFetchOptions: any other is a misspelling, refused rather than ignored. */
const OPTION_KEYS = Object.keys({
  enforcer: 0,
  chain: 0,
  pricing: 0,
  unknownModel: 0,
  bound: 0,
  acceptCaps: 0,
  ttl: 0,
  breaker: 0,
  loop: 0,
  providers: 0,
  compatible: 0,
  azure: 0,
  tool: 0,
  defaultMaxOutputTokens: 0,
  defaultMaxToolCalls: 0,
  unmatched: 0,
  allowUnmetered: 0,
  abandonedStream: 0,
  onDeny: 0,
  onError: 0,
} satisfies Record<keyof WrapFetchOptions, 0>) as (keyof WrapFetchOptions)[];

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

const DECODER = new TextDecoder();
const ENCODER = new TextEncoder();

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
  const meter = new Meter(fetch, options);
  const metered = (input: string | URL | Request, init?: RequestInit): Promise<Response> =>
    meter.call(input, init);
  const breaker = meter.breaker;
  return Object.assign(metered, {
    breaker,
    loops: meter.loops,
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

/** Routes remembered per method before the table is cleared (a bound on memory, not a tuning knob). */
const MAX_ROUTES = 1024;

/**
 * wrapFetch's options, checked once, and the steps of a metered call (module comment). The steps
 * are methods rather than closures made per call: a call allocates only what it must keep.
 */
class Meter {
  readonly #fetch: typeof globalThis.fetch;
  /**
   * Whether to call the enforcer's …Sync methods: the same operations as its promise-returning
   * ones (directOf), without the microtask turns of their promises.
   */
  readonly #direct: boolean;
  readonly enforcer: Enforcer;
  readonly #chain: VerifiedChain;
  readonly #hard: boolean;
  readonly #mode: BoundMode;
  readonly #unmatched: "deny-known" | "deny" | "pass";
  readonly releaseAbandoned: boolean;
  readonly #pricing: Pricing;
  readonly #unknownPrice: ModelPrice | undefined;
  readonly breaker: CircuitBreaker | undefined;
  readonly loops: LoopDetector | undefined;
  readonly #bases: readonly CompatibleBase[];
  /** The caller's adapters, asked on every call (they may look at more than the URL). */
  readonly #custom: ReadonlySet<ProviderAdapter>;
  /** Registered compatible servers, then the built-in adapters: their match depends on the URL and method alone. */
  readonly #known: readonly ProviderAdapter[];
  /** Method → href → the first of #known that matches (null: none), so a repeated URL is matched once. */
  readonly #routes = new Map<string, Map<string, ProviderAdapter | null>>();
  readonly #reserveOptions: { readonly ttl: number };
  readonly #defaultMaxOutputTokens: number;
  readonly #defaultMaxToolCalls: number;
  readonly #acceptCaps: boolean;
  readonly #allowUnmetered: ((url: URL, method: string) => boolean) | undefined;
  readonly #tool: string | undefined;
  readonly #labels: readonly string[];
  readonly #onDeny: ((denial: MeterDenial) => void) | undefined;
  readonly report: (error: unknown) => void;
  /** The last URL parsed from a string, and its href when parsed (a URL is mutable: a changed one is parsed again). */
  #lastInput: string | undefined;
  #lastUrl: URL | undefined;
  #lastHref = "";

  constructor(fetch: typeof globalThis.fetch, options: WrapFetchOptions) {
    if (typeof fetch !== "function") throw new TypeError('"fetch" expected a function');
    optionsOf(options, "options", OPTION_KEYS);
    for (const key of ["allowUnmetered", "onDeny", "onError"] as const)
      functionOption(options[key], key);
    if (options.acceptCaps !== undefined && typeof options.acceptCaps !== "boolean")
      throw new TypeError(`"acceptCaps" expected true or false, got ${String(options.acceptCaps)}`);
    if (
      options.tool !== undefined &&
      (typeof options.tool !== "string" || options.tool.length === 0 || options.tool.length > 256)
    )
      throw new TypeError(`"tool" expected a tool name, got ${String(options.tool)}`);
    const { enforcer, chain } = options;
    if (enforcer === undefined || typeof enforcer.reserve !== "function")
      throw new TypeError('"enforcer" expected an Enforcer');
    if (chain === undefined || !Array.isArray(chain.links))
      throw new TypeError('"chain" expected a VerifiedChain');
    // Only an option left out takes its default: null is refused below, as for every option.
    const mode: BoundMode = options.bound === undefined ? "hard" : options.bound;
    if (mode !== "hard" && mode !== "estimate")
      throw new TypeError(`"bound" expected "hard" or "estimate", got ${String(mode)}`);
    const unmatched = options.unmatched === undefined ? "deny-known" : options.unmatched;
    if (unmatched !== "deny-known" && unmatched !== "deny" && unmatched !== "pass")
      throw new TypeError(
        `"unmatched" expected "deny-known", "deny" or "pass", got ${String(unmatched)}`,
      );
    const abandoned = options.abandonedStream === undefined ? "charge" : options.abandonedStream;
    if (abandoned !== "charge" && abandoned !== "release")
      throw new TypeError(
        `"abandonedStream" expected "charge" or "release", got ${String(abandoned)}`,
      );
    this.#fetch = fetch;
    this.enforcer = enforcer;
    this.#direct = directOf(enforcer);
    this.#chain = chain;
    this.#mode = mode;
    this.#hard = mode === "hard";
    this.#unmatched = unmatched;
    this.releaseAbandoned = abandoned === "release";
    this.#pricing =
      options.pricing instanceof Pricing
        ? options.pricing
        : createPricing(options.pricing === undefined ? {} : options.pricing);
    this.#unknownPrice =
      options.unknownModel === undefined || options.unknownModel === "deny"
        ? undefined
        : parseModelPrice(options.unknownModel);
    const breaker =
      options.breaker === false
        ? undefined
        : options.breaker instanceof CircuitBreaker
          ? options.breaker
          : new CircuitBreaker(options.breaker);
    this.breaker = breaker;
    // The enforcer's remaining() (and so the MCP get_budget tool) shows the breakers' states.
    if (breaker !== undefined) {
      enforcer.reportProviderStatus(() =>
        Object.fromEntries(
          Object.entries(breaker.snapshot()).map(([provider, b]) => [
            provider,
            { breaker: b.state, ...(b.openUntil === undefined ? {} : { openUntil: b.openUntil }) },
          ]),
        ),
      );
    }
    this.loops =
      options.loop === false
        ? undefined
        : options.loop instanceof LoopDetector
          ? options.loop
          : new LoopDetector(options.loop);
    const compatible = compatibleSetup(options.compatible);
    this.#bases = compatible.bases;
    if (
      options.azure !== undefined &&
      (options.azure === null || typeof options.azure !== "object")
    )
      throw new TypeError(`"azure" expected { deployments }, got ${shown(options.azure)}`);
    const deployments = options.azure?.deployments;
    if (
      deployments !== undefined &&
      (deployments === null ||
        typeof deployments !== "object" ||
        Object.values(deployments).some((m) => typeof m !== "string" || m.length === 0))
    ) {
      throw new TypeError('"azure.deployments" expected { deployment: "model" } with model names');
    }
    const custom = options.providers === undefined ? [] : options.providers;
    if (!Array.isArray(custom))
      throw new TypeError('"providers" expected an array of provider adapters');
    this.#custom = new Set(custom);
    this.#known = [
      ...compatible.adapters,
      ...builtinAdapters(deployments === undefined ? {} : { azureDeployments: deployments }),
    ];
    // Checked here, not at the first call's reserve: a NaN would otherwise fail every call, and
    // the stream's extension interval is derived from it.
    const ttl = options.ttl === undefined ? 300 : options.ttl;
    if (typeof ttl !== "number") throw new TypeError(`"ttl" expected seconds, got ${shown(ttl)}`);
    if (!(ttl > 0 && ttl <= MAX_TTL_SECONDS))
      throw new RangeError(
        `"ttl" expected seconds, more than 0 and at most ${MAX_TTL_SECONDS} (7 days), got ${String(ttl)}`,
      );
    this.#reserveOptions = Object.freeze({ ttl });
    // Only an option left out takes its default: null is a TypeError, as any other non-number.
    this.#defaultMaxOutputTokens = integerOption(
      options.defaultMaxOutputTokens,
      "defaultMaxOutputTokens",
      4096,
      1,
    );
    this.#defaultMaxToolCalls = integerOption(
      options.defaultMaxToolCalls,
      "defaultMaxToolCalls",
      5,
      1,
    );
    this.#acceptCaps = options.acceptCaps === true;
    this.#allowUnmetered = options.allowUnmetered;
    this.#tool = options.tool;
    this.#labels = chainLabels(chain);
    this.#onDeny = options.onDeny;
    this.report =
      options.onError ??
      ((error: unknown) =>
        process.emitWarning(`allowance meter: ${String(error)}`, "AllowanceMeterWarning"));
  }

  /** One call through the meter: refused, passed through, or metered from reserve to settlement. */
  async call(
    input: string | URL | Request,
    init: RequestInit | undefined,
    /** Redirects followed to get here (#passThrough). */
    hops = 0,
  ): Promise<Response> {
    // fetch refuses an init that is not a dictionary with a TypeError, and coerces any method to
    // a string (`{ method: null }` sends "null"); the meter, which picks its adapter by the method,
    // takes only a string: anything else would be metered as one method and sent as another.
    if (
      init !== undefined &&
      init !== null &&
      typeof init !== "object" &&
      typeof init !== "function"
    )
      throw new TypeError(`"init" expected the options of fetch (an object), got ${shown(init)}`);
    // Read once: what is metered is what is sent, even from getters that answer differently twice.
    init = init === undefined || init === null ? undefined : snapshotOf(init);
    const asked: unknown = init?.method;
    if (asked !== undefined && typeof asked !== "string")
      throw new TypeError(`"init.method" expected an HTTP method (a string), got ${shown(asked)}`);
    // Fetch makes a string of any redirect mode (`new String("follow")` follows): the meter, which
    // decides by the mode whether it answers redirects itself, takes only the strings fetch knows.
    const mode: unknown = init?.redirect;
    if (mode !== undefined && !REDIRECT_MODES.has(mode as string))
      throw new TypeError(
        `"init.redirect" expected "follow", "manual" or "error", got ${shown(mode)}`,
      );
    // Refused here, as fetch would refuse them, rather than after a hold and counted by the
    // breaker as the provider's failure. A signal as fetch takes one: any object with `aborted`
    // and `addEventListener` (a polyfill's or another realm's AbortSignal too).
    const signal = init?.signal as
      { aborted?: unknown; addEventListener?: unknown } | null | undefined;
    if (
      signal !== undefined &&
      signal !== null &&
      (typeof signal !== "object" ||
        typeof signal.aborted !== "boolean" ||
        typeof signal.addEventListener !== "function")
    )
      throw new TypeError(`"init.signal" expected an AbortSignal, got ${shown(signal)}`);
    const dispatcher: unknown = (init as { dispatcher?: unknown } | undefined)?.dispatcher;
    if (
      dispatcher !== undefined &&
      (typeof dispatcher !== "object" ||
        dispatcher === null ||
        typeof (dispatcher as { dispatch?: unknown }).dispatch !== "function")
    )
      throw new TypeError(
        `"init.dispatcher" expected an undici Dispatcher, got ${shown(dispatcher)}`,
      );
    // Read once, as fetch reads it, and then both metered and sent. A Request and the options are
    // made one Request, as fetch makes them (from its own state: a subclass's url or clone() could
    // answer otherwise than what fetch would send); only what a Request does not hold stays in
    // init. A URL, or anything else, is the string fetch would make of it.
    let request: Request | undefined;
    if (input instanceof Request) {
      request = new Request(input, init);
      input = request;
      // Kept beside the Request too: the signal, so that the caller's own object (which the
      // copies do not keep alive) still reaches the connection; the dispatcher, which a Request
      // does not hold.
      let kept: Record<string, unknown> | undefined;
      if (dispatcher !== undefined) (kept ??= {})["dispatcher"] = dispatcher;
      if (signal !== undefined) (kept ??= {})["signal"] = signal;
      init = kept as RequestInit | undefined;
    } else if (typeof input !== "string") input = String(input);
    const method = request?.method ?? asked?.toUpperCase() ?? "GET";
    let url = this.#urlOf(input);
    if (url === undefined) {
      // A relative URL is resolved where fetch would resolve it (a page's location), and sent
      // resolved; where there is none, it is refused: passed through, it would go unmetered to
      // whatever base fetch finds.
      url = resolvedUrl(input as string);
      input = url.href;
    }
    const adapter = this.#adapterFor(url, method);
    if (adapter === undefined) return this.#unmatchedCall(input, init, url, method, hops);
    const provider = adapter.provider;

    // The body as text: a string is used as it is; anything else is read once and sent as text.
    let text: string | undefined;
    let resend = false;
    /** The Content-Type fetch would give a body that is not a string (a Blob's type). */
    let blobType: string | undefined;
    const given = init?.body;
    if (given !== undefined && given !== null) {
      if (typeof given === "string") text = given;
      else {
        // Read as fetch reads it, with the Content-Type fetch would give it (a Blob's type, also
        // of a Blob from another realm or a polyfill; none for bytes or a stream).
        const read = new Response(given);
        blobType = read.headers.get("content-type") ?? undefined;
        text = await read.text();
        resend = true;
      }
    } else if (request !== undefined && request.body !== null) {
      text = await request.clone().text();
      // Sent as the text read: bytes that are not UTF-8, or a BOM, would reach the provider
      // otherwise than the meter read them.
      resend = true;
    }
    const body = parseObject(text);
    if (body === undefined)
      return this.#refuse(url, {
        reason: "UNMETERABLE_REQUEST",
        linkIndex: null,
        field: "body",
        message:
          "the request body is not a JSON object, so the meter cannot tell what it would cost",
        provider,
      });

    const estimate = adapter.estimate(body, {
      defaultMaxOutputTokens: this.#defaultMaxOutputTokens,
      defaultMaxToolCalls: this.#defaultMaxToolCalls,
      bound: this.#mode,
      url,
    });
    const model = estimate.model;
    if (estimate.unmeterable !== undefined)
      return this.#refuse(url, {
        reason: "UNMETERABLE_REQUEST",
        linkIndex: null,
        field: "body",
        message: `this request cannot be metered with a hard bound: ${estimate.unmeterable}`,
        provider,
        model,
      });
    // The limits the meter writes (hard mode, or any call a cap may lower): a request whose own
    // limits leave no output (max_tokens 0, more web search tools than calls) cannot be held to a
    // bound, and is refused before anything is asked of the breaker, the loop check or the ledger.
    const searches = estimate.webSearchCalls;
    let patch: JsonObject | undefined;
    if (this.#hard || this.#acceptCaps) {
      const limits = adapter.limitsPatch(body, limitsOf(estimate.outputTokens, searches), url);
      if (limits === undefined)
        return this.#refuse(url, {
          reason: "UNMETERABLE_REQUEST",
          linkIndex: null,
          field: "body",
          message:
            "the request's own limits leave no room for output (a maximum of 0, or fewer web search calls than search tools), so the meter cannot write a maximum on it",
          provider,
          model,
        });
      if (this.#hard) patch = limits;
    }
    const found =
      this.#pricing.lookup(provider, model) ??
      (adapter.pricedAs === undefined
        ? undefined
        : this.#pricing.lookup(adapter.pricedAs, model)) ??
      this.#unknownPrice;
    if (found === undefined)
      return this.#refuse(url, {
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
    // A parsed price passes with one lookup; one a Pricing subclass made up is checked as a
    // caller's is (chargeOf and boundCostOf below take it as checked).
    const price = checkedPrice(found);

    const permit = this.breaker?.acquire(provider);
    if (permit !== undefined && !permit.ok) {
      const seconds = Math.max(1, Math.ceil(permit.retryAfterMs / 1000));
      return this.#refuse(url, {
        reason: "PROVIDER_OPEN",
        linkIndex: null,
        field: `breaker.${provider}`,
        retryAfter: seconds,
        message: `calls to ${provider} are paused after repeated failures; try again in ${seconds} s`,
        provider,
        model,
      });
    }
    const probe = permit?.probe ?? false;

    const loops = this.loops;
    if (loops !== undefined) {
      let verdict: LoopVerdict;
      try {
        verdict = loops.check(
          fingerprintOf(provider, model, this.#tool, adapter.fingerprintInput(body)),
        );
      } catch (error) {
        this.#unsent(provider, probe);
        throw error;
      }
      if (!verdict.ok) {
        this.#unsent(provider, probe);
        return this.#refuse(url, {
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
    // The reserve is the pre-flight: the enforcer decides whether the bound fits and, with
    // acceptCaps, how much of it; every budget denial is its Decision.
    let decision: Decision;
    try {
      const reserve = this.#reserveRequest(
        provider,
        model,
        estimate,
        price,
        this.#acceptCaps ? leastOutput(adapter, body, estimate.outputTokens, searches) : 0,
      );
      decision = this.#direct
        ? this.enforcer.reserveSync(reserve, this.#reserveOptions)
        : await this.enforcer.reserve(reserve, this.#reserveOptions);
    } catch (error) {
      this.#unsent(provider, probe);
      throw error;
    }
    if (decision.decision === "DENY") {
      this.#unsent(provider, probe);
      const limit = (decision as { limit?: unknown }).limit;
      return this.#refuse(url, {
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

    // The output the hold covers.
    let outputTokens = estimate.outputTokens;
    const capped = hold.decision === "ALLOW_WITH_CAPS";
    if (capped) {
      outputTokens = this.#cappedOutput(hold, estimate, price);
      patch = adapter.limitsPatch(body, limitsOf(outputTokens, searches), url);
      if (patch === undefined) {
        // The enforcer left at least leastOutput(), which every built-in adapter accepts; only an
        // adapter whose limitsPatch refuses a larger maximum than one it accepted gets here.
        this.#unsent(provider, probe);
        await this.release(hold);
        return this.#refuse(url, {
          reason: hold.caps.tokens !== undefined ? "BUDGET_TOKENS" : "BUDGET_USD",
          linkIndex: null,
          field: hold.caps.tokens !== undefined ? "tokens" : "usdMicros",
          message: `the ${adapter.endpoint} adapter found the output the budget leaves too little for this request`,
          provider,
          model,
        });
      }
    }
    if (estimate.stream) {
      const usage = adapter.streamUsagePatch?.(body, url);
      if (usage !== undefined) patch = patch === undefined ? usage : { ...patch, ...usage };
    }

    // A metered call is not followed elsewhere: the next hop could be another model, or another
    // provider, than the one the hold was sized for. Where the caller left fetch to follow
    // redirects, the call is sent with redirect "error" (fetch then keeps no copy of the request
    // to send again, which costs more than the whole meter on Node's fetch), and a redirect is
    // refused, as fetch would have followed it. A caller who chose a mode gets what fetch gives.
    const follow = (init?.redirect ?? request?.redirect ?? "follow") === "follow";
    const send = (redirect: "error" | "manual" | undefined) =>
      this.#send(input, init, request, text as string, body, patch, resend, redirect, blobType);
    let response: Response;
    try {
      try {
        response = await send(follow ? "error" : undefined);
      } catch (error) {
        if (!(follow && resentEmpty(error))) throw error;
        // Node's fetch retries a 421 (Misdirected Request) on a new connection, and in redirect
        // mode "error" sends the request whose body it already sent: the retry fails without
        // reaching the provider whole. Sent once more, in the mode fetch would have kept a copy
        // in, under the same hold.
        response = await send("manual");
      }
    } catch (error) {
      const redirected = unexpectedRedirect(error);
      // Options fetch refused before sending anything (a header it cannot send) are the caller's
      // mistake, not the provider's failure: the breaker hears nothing of them.
      if (!redirected && refusedArguments(error, url, init, blobType))
        this.#unsent(provider, probe);
      else
        this.#record(
          provider,
          redirected
            ? "success"
            : aborted(error, init?.signal ?? request?.signal)
              ? "aborted"
              : "network-error",
          probe,
        );
      await this.release(hold);
      // A redirect is an answer, not a failure; refused here when the meter chose the mode,
      // fetch's own error when the caller did.
      if (redirected && follow) return this.#refuseRedirect(url, provider, model, undefined);
      throw error;
    }

    // A fetch that does not keep to redirect "error" (or the "manual" resend above) hands over
    // the redirect itself; refused as fetch's error is, with or without a Location.
    if (follow && REDIRECTS.has(response.status)) {
      const location = response.headers.get("location");
      this.#record(provider, "success", probe);
      await response.body?.cancel().catch(() => undefined);
      await this.release(hold);
      return this.#refuseRedirect(
        url,
        provider,
        model,
        `(${response.status}) ${location === null ? "without a Location" : `to ${JSON.stringify(location)}`}`,
      );
    }

    if (!response.ok) {
      const outcome: BreakerOutcome =
        response.status === 429
          ? "rate-limited"
          : response.status >= 500
            ? "server-error"
            : "success";
      this.#record(provider, outcome, probe, retryAfterMs(response.headers.get("retry-after")));
      // Providers do not bill a request they answer with an error.
      await this.release(hold);
      return response;
    }
    this.#record(provider, "success", probe);

    const sse = (response.headers.get("content-type") ?? "").includes("text/event-stream");
    if (response.body !== null && (sse || (estimate.stream && adapter.jsonArrayStream === true))) {
      const stream = new StreamMeter(this, adapter, price, hold, inputTokens, outputTokens, sse);
      stream.start(response.body);
      return new StreamedResponse(response, stream) as unknown as Response;
    }
    // Awaited here rather than returned: a returned promise costs the caller two more turns.
    return await this.#settleJson(response, adapter, price, hold);
  }

  /** The refusal of a metered call answered with a redirect (`where`: its status and target, when known). */
  #refuseRedirect(url: URL, provider: string, model: string, where: string | undefined): Response {
    return this.#refuse(url, {
      reason: "UNMETERABLE_REQUEST",
      linkIndex: null,
      field: "url",
      message: `${url.host} answered with a redirect${where === undefined ? "" : ` ${where}`}: the meter does not follow a metered call elsewhere, where another model or provider than the one it held for could answer; call the final URL`,
      provider,
      model,
    });
  }

  /** The request's URL; undefined when it is not an absolute one (then call() resolves or refuses it). */
  #urlOf(input: string | Request): URL | undefined {
    if (typeof input === "string") {
      const last = this.#lastUrl;
      if (input === this.#lastInput && last !== undefined && last.href === this.#lastHref)
        return last;
      let url: URL;
      try {
        url = new URL(input);
      } catch {
        return undefined;
      }
      this.#lastInput = input;
      this.#lastUrl = url;
      this.#lastHref = url.href;
      return url;
    }
    try {
      return new URL(input.url);
    } catch {
      return undefined;
    }
  }

  /** The caller's adapters first, on every call; then the first known adapter that matches, found once per URL. */
  #adapterFor(url: URL, method: string): ProviderAdapter | undefined {
    for (const a of this.#custom) if (a.match(url, method)) return a;
    let routes = this.#routes.get(method);
    if (routes === undefined) {
      if (this.#routes.size >= MAX_ROUTES) this.#routes.clear();
      routes = new Map();
      this.#routes.set(method, routes);
    }
    const href = url.href;
    const known = routes.get(href);
    if (known !== undefined) return known ?? undefined;
    let found: ProviderAdapter | null = null;
    for (const a of this.#known) {
      if (a.match(url, method)) {
        found = a;
        break;
      }
    }
    if (routes.size >= MAX_ROUTES) routes.clear();
    routes.set(href, found);
    return found ?? undefined;
  }

  #unmatchedCall(
    input: string | Request,
    init: RequestInit | undefined,
    url: URL,
    method: string,
    hops: number,
  ): Promise<Response> | Response {
    const unmatched = this.#unmatched;
    if (unmatched === "pass") return this.#fetch(input, init);
    if (
      unmatched === "deny" ||
      ((isProviderHost(url.hostname) || this.#bases.some((b) => underBase(b, url))) &&
        !isFreeEndpoint(url, method) &&
        this.#allowUnmetered?.(url, method) !== true)
    ) {
      return this.#refuse(url, {
        reason: "UNMATCHED_ENDPOINT",
        linkIndex: null,
        field: "url",
        message: `the meter does not know how to meter ${method} ${url.pathname} on ${url.host}, so it is refused rather than sent unmetered`,
      });
    }
    return this.#passThrough(input, init, hops);
  }

  /**
   * A call to a host that is no provider's, sent as it is; but its redirects are followed here,
   * not by fetch: each next hop goes through the meter again (metered, refused or passed), so that
   * a redirect cannot carry an unmetered call to a provider (fetch keeps headers such as an API
   * key across origins). As fetch follows them: 303, and 301 or 302 after a POST, become a GET
   * without a body; Authorization is dropped on leaving the origin; 20 at most. A redirect mode
   * other than "follow" is the caller's, and left to fetch.
   */
  async #passThrough(
    input: string | Request,
    init: RequestInit | undefined,
    hops: number,
  ): Promise<Response> {
    const request = input instanceof Request ? input : undefined;
    if ((init?.redirect ?? request?.redirect ?? "follow") !== "follow")
      return this.#fetch(input, init);
    // A body a redirect may send again: a Request's is kept in a copy.
    const again = request !== undefined && request.body !== null ? request.clone() : undefined;
    const response = await this.#fetch(input, { ...init, redirect: "manual" });
    const location = REDIRECTS.has(response.status) ? response.headers.get("location") : null;
    if (location === null) return response;
    await response.body?.cancel().catch(() => undefined);
    if (hops >= MAX_REDIRECTS) throw new TypeError(`more than ${MAX_REDIRECTS} redirects`);
    const from = new URL(request?.url ?? (input as string));
    const next = new URL(location, from);
    const method = (request?.method ?? init?.method ?? "GET").toUpperCase();
    const toGet =
      (response.status === 303 && method !== "GET" && method !== "HEAD") ||
      ((response.status === 301 || response.status === 302) && method === "POST");
    const headers = new Headers(request?.headers);
    if (init?.headers !== undefined) new Headers(init.headers).forEach((v, k) => headers.set(k, v));
    // As fetch: only http(s), and what identifies the caller stays with its origin.
    if (next.protocol !== "http:" && next.protocol !== "https:")
      throw new TypeError(`a redirect to ${next.protocol} is not followed`);
    if (next.origin !== from.origin) for (const name of CREDENTIAL_HEADERS) headers.delete(name);
    if (toGet) for (const name of BODY_HEADERS) headers.delete(name);
    const body = toGet ? undefined : (again?.body ?? init?.body ?? undefined);
    const { dispatcher, signal } = (init ?? {}) as { dispatcher?: unknown; signal?: unknown };
    const nextInit: Record<string, unknown> = {
      method: toGet ? "GET" : method,
      headers,
      ...(body === undefined || body === null ? {} : { body }),
      ...(again?.body != null ? { duplex: "half" } : {}),
      signal: signal ?? request?.signal,
      ...(dispatcher === undefined ? {} : { dispatcher }),
    };
    const answer = await this.call(next.href, nextInit as RequestInit, hops + 1);
    // As fetch says of an answer it reached by a redirect (its `url` is already the last hop's).
    Object.defineProperty(answer, "redirected", { value: true, configurable: true });
    return answer;
  }

  #refuse(url: URL, denial: MeterDenial): Response {
    this.#onDeny?.(denial);
    // The enforcer reports its own denials; the meter's reach listeners and webhooks this way.
    if (denial.linkIndex === null) {
      this.enforcer.emit("refused", {
        reason: denial.reason,
        field: denial.field,
        detail: denial.message,
        ...(denial.provider === undefined ? {} : { provider: denial.provider }),
        ...(denial.model === undefined ? {} : { model: denial.model }),
        labels: this.#labels,
      });
    }
    return denialResponse(denial, { wire: nativeGemini(url) ? "google" : "openai" });
  }

  /** A probe that is not sent hands its turn back. */
  #unsent(provider: string, probe: boolean): void {
    this.#record(provider, "aborted", probe);
  }

  /**
   * Tells the breaker how a call ended. Once a call was sent its hold must still be settled: a
   * breaker that throws (a clock that is not a time) is reported, never left to skip the settling.
   */
  #record(provider: string, outcome: BreakerOutcome, probe: boolean, retryAfterMs?: number): void {
    try {
      this.breaker?.record(provider, outcome, probe, retryAfterMs);
    } catch (error) {
      this.report(error);
    }
  }

  /** What to hold: the bound's maximum cost (hard) or the estimate's cost. */
  #costFor(estimate: RequestEstimate, outputTokens: number, price: ModelPrice): number {
    return this.#hard
      ? boundCostOf(
          estimate.webSearchCalls === undefined
            ? { inputTokens: estimate.inputTokens, outputTokens }
            : {
                inputTokens: estimate.inputTokens,
                outputTokens,
                webSearchCalls: estimate.webSearchCalls,
              },
          price,
        )
      : costOf(estimate.inputTokens, price.inputPerMTok) +
          costOf(outputTokens, price.outputPerMTok);
  }

  #reserveRequest(
    provider: string,
    model: string,
    estimate: RequestEstimate,
    price: ModelPrice,
    minOutput: number,
  ): ReserveRequest {
    const inputTokens = estimate.inputTokens;
    const request: {
      -readonly [K in keyof ReserveRequest]: ReserveRequest[K];
    } = {
      chain: this.#chain,
      provider,
      model,
      tokens: inputTokens + estimate.outputTokens,
      usdMicros: this.#costFor(estimate, estimate.outputTokens, price),
    };
    if (this.#tool !== undefined) request.tool = this.#tool;
    if (this.#acceptCaps) {
      // A cap must leave the least output the request can be sent with (none for embeddings).
      request.acceptCaps = {
        minTokens: Math.max(1, inputTokens + minOutput),
        minUsdMicros: Math.max(1, this.#costFor(estimate, minOutput, price)),
      };
    }
    return request;
  }

  /** On ALLOW_WITH_CAPS: the output the capped hold covers once the input bound is paid for. */
  #cappedOutput(
    hold: Extract<Hold, { decision: "ALLOW_WITH_CAPS" }>,
    estimate: RequestEstimate,
    price: ModelPrice,
  ): number {
    const outputTokens = estimate.outputTokens;
    const inputTokens = estimate.inputTokens;
    const byTokens = hold.caps.tokens === undefined ? outputTokens : hold.caps.tokens - inputTokens;
    const byUsd =
      hold.caps.usdMicros === undefined
        ? outputTokens
        : this.#hard
          ? outputTokensWithinBound(
              hold.caps.usdMicros,
              estimate.webSearchCalls === undefined
                ? { inputTokens }
                : { inputTokens, webSearchCalls: estimate.webSearchCalls },
              price,
            )
          : Math.floor(
              ((hold.caps.usdMicros - costOf(inputTokens, price.inputPerMTok)) * 1_000_000) /
                Math.max(1, price.outputPerMTok),
            );
    return Math.max(0, Math.min(outputTokens, byTokens, byUsd));
  }

  /** Sends the request: as given when nothing changes, else with the limits written on the body. */
  #send(
    input: string | URL | Request,
    init: RequestInit | undefined,
    request: Request | undefined,
    text: string,
    body: JsonObject,
    patch: JsonObject | undefined,
    resend: boolean,
    /** The redirect mode the meter sends the call in, where it chose one. */
    redirect: "error" | "manual" | undefined,
    blobType: string | undefined,
  ): Promise<Response> {
    // A key given twice in one object or spelt with an escape (ambiguous): send the object as parsed, so
    // that the provider sees the request the hold was sized for.
    const duplicated = this.#hard && ambiguous(text);
    const unchanged = patch === undefined || isEmpty(patch);
    if (!resend && !duplicated && unchanged) {
      // A caller's Content-Length is left to fetch to compute: one that differs from the body
      // only fails the call (and would read as the resent body of a 421, above).
      const given = init?.headers;
      const headers = withoutContentLength(given);
      const stripped = headers !== given && headers !== undefined;
      if (redirect === undefined && !stripped) return this.#fetch(input, init);
      const sent: RequestInit = { ...init };
      if (redirect !== undefined) sent.redirect = redirect;
      if (stripped) sent.headers = headers;
      return this.#fetch(input, sent);
    }
    const sent = duplicated
      ? JSON.stringify(patch === undefined ? body : { ...body, ...patch })
      : unchanged
        ? text
        : patched(text, body, patch);
    // The length changed: let fetch compute it. A Blob's type stays the Content-Type, as fetch
    // would have sent it (bytes carry none).
    const headers = withContentType(
      withoutContentLength(init?.headers ?? request?.headers),
      blobType,
    );
    // A body that was not a string goes as bytes: as a string, fetch would give it a Content-Type
    // (text/plain) that the caller's request did not have.
    const payload = resend ? ENCODER.encode(sent) : sent;
    const changed: RequestInit = { ...init, body: payload };
    if (headers !== undefined) changed.headers = headers;
    if (redirect !== undefined) changed.redirect = redirect;
    // A Request's options are in it, but for what a Request does not hold (init keeps only that).
    return request === undefined
      ? this.#fetch(input, changed)
      : this.#fetch(new Request(request, changed), init);
  }

  /** A JSON answer: read it, charge its usage (the hold without one), serve it from memory. */
  async #settleJson(
    response: Response,
    adapter: ProviderAdapter,
    price: ModelPrice,
    hold: Hold,
  ): Promise<Response> {
    let bytes: ArrayBuffer;
    try {
      bytes = await response.arrayBuffer();
    } catch (error) {
      // The answer was sent: whatever it cost, the hold covers it.
      await this.commit(hold, heldOf(hold));
      throw error;
    }
    let json: unknown = NOT_JSON;
    let text: string | undefined;
    let charge: Charge;
    try {
      text = utf8Text(bytes);
      // The whole answer is parsed: V8's JSON.parse is faster than any check of the text in
      // JavaScript that would let the meter parse only the usage, and the SDKs' json() gets the
      // value, so most consumers do not parse it again.
      json = JSON.parse(text);
      const usage = adapter.usageFromJson(json);
      // Usage that cannot be read or priced (past 2^53 − 1) is charged as the hold.
      charge = usage === undefined ? heldOf(hold) : chargeOf(this.vetted(adapter, usage), price);
    } catch {
      charge = heldOf(hold);
    }
    // Awaited only when it is a promise (an enforcer that is not synchronous).
    const committed = this.commit(hold, charge);
    if (committed !== undefined) await committed;
    return new BufferedResponse(response, new Uint8Array(bytes), text, json) as unknown as Response;
  }

  /**
   * The usage an adapter read, for pricing with chargeOf. A caller's adapter's is checked as
   * priceUsage checks a hand-built one (a misspelt field would go uncharged: the error charges the
   * hold); the built-in adapters build theirs field by field.
   */
  vetted(adapter: ProviderAdapter, usage: TokenUsage): TokenUsage {
    if (this.#custom.has(adapter)) checkUsage(usage);
    return usage;
  }

  /**
   * Settling a call that already happened never throws at the caller: a ledger error is reported.
   * Done when it returns undefined (a synchronous enforcer), else when the promise settles. The
   * JSON and stream paths await only a promise, since even `await undefined` costs a turn.
   */
  commit(hold: Hold, charge: Charge): Promise<unknown> | undefined {
    if (!this.#direct)
      return this.enforcer.commit(hold.reservationId, charge).then(undefined, this.report);
    try {
      this.enforcer.commitSync(hold.reservationId, charge);
    } catch (error) {
      this.report(error);
    }
    return undefined;
  }

  /** As commit(). */
  release(hold: Hold): Promise<unknown> | undefined {
    if (!this.#direct)
      return this.enforcer.release(hold.reservationId).then(undefined, this.report);
    try {
      this.enforcer.releaseSync(hold.reservationId);
    } catch (error) {
      this.report(error);
    }
    return undefined;
  }

  /**
   * A stream's hold is extended by the hold's TTL while its bytes still flow (spec/enforcement.md
   * §3.11), at most once per half TTL: this long, in ms. Infinity where the enforcer cannot extend.
   */
  get extendEveryMs(): number {
    return typeof this.enforcer.extend === "function"
      ? this.#reserveOptions.ttl * 500
      : Number.POSITIVE_INFINITY;
  }

  extend(hold: Hold): Promise<unknown> {
    return this.enforcer.extend(hold.reservationId, this.#reserveOptions.ttl);
  }
}

const limitsOf = (outputTokens: number, webSearchCalls: number | undefined): RequestLimits =>
  webSearchCalls === undefined ? { outputTokens } : { outputTokens, webSearchCalls };

/**
 * The least output maximum `adapter` can write on this request, at most `most` (the request's own,
 * which it accepts): one token per choice, plus predicted output, above a thinking budget, … Found
 * by asking limitsPatch, which refuses too small a maximum and accepts any larger one. A cap that
 * leaves less is the enforcer's denial (acceptCaps' minimum), never a call the meter must refuse.
 */
function leastOutput(
  adapter: ProviderAdapter,
  body: JsonObject,
  most: number,
  webSearchCalls: number | undefined,
): number {
  if (most === 0) return 0;
  const fits = (n: number) => adapter.limitsPatch(body, limitsOf(n, webSearchCalls)) !== undefined;
  if (fits(1)) return 1;
  let low = 1;
  let high = most;
  while (high - low > 1) {
    const mid = low + Math.floor((high - low) / 2);
    if (fits(mid)) high = mid;
    else low = mid;
  }
  return high;
}

/**
 * Whether `enforcer`'s …Sync methods are the same operations as its promise-returning ones: it says
 * so (`synchronous`), and reserve, commit and release are the Enforcer class's own. A subclass that
 * overrides one of them is called through it, as it expects.
 */
function directOf(enforcer: Enforcer): boolean {
  const own = EnforcerClass.prototype;
  return (
    enforcer instanceof EnforcerClass &&
    enforcer.synchronous &&
    enforcer.reserve === own.reserve &&
    enforcer.commit === own.commit &&
    enforcer.release === own.release &&
    enforcer.reserveSync === own.reserveSync &&
    enforcer.commitSync === own.commitSync &&
    enforcer.releaseSync === own.releaseSync
  );
}

const heldOf = (hold: Hold): Charge => ({
  tokens: hold.amounts.tokens,
  usdMicros: hold.amounts.usdMicros,
});

/**
 * A streamed answer's chunks on their way to the consumer (StreamMeter fills it); the consumer
 * takes them through StreamedResponse. One reader at a time: a body is read once.
 */
abstract class Relay {
  #chunks: Uint8Array[] = [];
  #head = 0;
  #state: "open" | "closed" | "errored" = "open";
  #error: unknown;
  #wake: (() => void) | undefined;
  /** A reader waits for the end (all()), not for the next chunk: pushes need not wake it. */
  #untilEnd = false;
  /** Cancels the upstream and settles the hold as abandoned. */
  abstract cancel(reason: unknown): Promise<void>;

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    if (!this.#untilEnd) this.#notify();
  }

  /**
   * When the chunks not taken yet are exactly the last `count` pushed, puts `whole` (their
   * concatenation, made for the usage parser) in their place: the consumer then takes one piece
   * rather than having them copied together again. `count` must be of chunks already pushed.
   */
  protected merge(count: number, whole: Uint8Array): void {
    if (this.#chunks.length - this.#head !== count) return;
    this.#chunks = [whole];
    this.#head = 0;
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
    this.#untilEnd = true;
    while (this.#state === "open") await new Promise<void>((resolve) => (this.#wake = resolve));
    if (this.#state === "errored") throw this.#error;
    const rest = this.#chunks.slice(this.#head);
    this.#chunks = [];
    this.#head = 0;
    return rest.length === 1 ? owned(rest[0] as Uint8Array) : concatenated(rest);
  }
}

/**
 * The chunks in one array that spans its own ArrayBuffer. Not Buffer.concat: its result may be a
 * view of a shared pool, which a consumer's arrayBuffer() would hand over whole.
 */
function concatenated(chunks: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const chunk of chunks) length += chunk.byteLength;
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/**
 * A streamed answer on its way to the consumer: the provider's stream is read to its end whatever
 * the consumer does (a consumer that stops reading without cancelling, such as an SDK that gave up
 * on a chunk it could not parse, would otherwise leave the hold open until it expires), every chunk
 * is queued for the consumer untouched (at most the answer, whose length the hold bounds), and the
 * usage events are read on the way. The hold is settled before the consumer sees the end.
 */
class StreamMeter extends Relay {
  readonly #meter: Meter;
  readonly #adapter: ProviderAdapter;
  readonly #price: ModelPrice;
  readonly #hold: Hold;
  readonly #inputTokens: number;
  /** The output maximum written on the request. */
  readonly #outputTokens: number;
  readonly #parser: SseParser | JsonArrayParser;
  readonly #tally: StreamTally = { usage: undefined, final: false };
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  /** Events not yet counted for the delivered output: counted in batches, so a long stream keeps little. */
  #pending: SseEvent[] = [];
  /** UTF-8 bytes of delivered output (at least the tokens delivered), and the events that carried any (at most the tokens delivered: no event carries less than a token). */
  #delivered = 0;
  #deliveredEvents = 0;
  /** Chunks not parsed yet: parsed in batches, the same events at a fraction of the per-chunk decoding cost. */
  #unparsed: Uint8Array[] = [];
  #unparsedBytes = 0;
  #settled = false;
  #cancelled = false;
  /** When (performance.now()) the hold is next extended, if bytes still flow: every half TTL. */
  #extendAt = Number.POSITIVE_INFINITY;
  readonly #observe = (event: SseEvent): void => {
    this.#adapter.observe(event, this.#tally);
    if (this.#tally.final) return;
    this.#pending.push(event);
    if (this.#pending.length >= DELIVERED_BATCH) this.#count();
  };

  constructor(
    meter: Meter,
    adapter: ProviderAdapter,
    price: ModelPrice,
    hold: Hold,
    inputTokens: number,
    outputTokens: number,
    sse: boolean,
  ) {
    super();
    this.#meter = meter;
    this.#adapter = adapter;
    this.#price = price;
    this.#hold = hold;
    this.#inputTokens = inputTokens;
    this.#outputTokens = outputTokens;
    this.#parser = sse ? new SseParser() : new JsonArrayParser();
  }

  start(body: ReadableStream<Uint8Array>): void {
    this.#reader = body.getReader();
    this.#extendAt = performance.now() + this.#meter.extendEveryMs;
    void this.#pump(this.#reader);
  }

  /**
   * Extends the hold of a stream still flowing, one extend at a time. Once the hold is being
   * settled, an extend's answer is moot: its failure (the commit closed the hold first) is not
   * reported, and no other follows.
   */
  #extend(): void {
    this.#extendAt = Number.POSITIVE_INFINITY;
    this.#meter.extend(this.#hold).then(
      () => {
        if (!this.#settled) this.#extendAt = performance.now() + this.#meter.extendEveryMs;
      },
      (error: unknown) => {
        if (!this.#settled) this.#meter.report(error);
      },
    );
  }

  /** The consumer cancelled: settle as abandoned, then cancel the provider's stream. */
  async cancel(reason: unknown): Promise<void> {
    this.#cancelled = true;
    await this.#finish(false);
    // An upstream that already failed has nothing left to cancel.
    await this.#reader?.cancel(reason).catch(() => undefined);
  }

  async #pump(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    for (;;) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (error) {
        await this.#finish(false);
        if (!this.#cancelled) this.fail(error);
        return;
      }
      if (this.#cancelled) return;
      if (next.done) {
        // Settled before the consumer sees the end.
        await this.#finish(true);
        this.close();
        return;
      }
      const chunk = next.value;
      this.#unparsed.push(chunk);
      this.#unparsedBytes += chunk.byteLength;
      // Queued before it is parsed: merge() may then put the batch in place of its chunks.
      this.push(chunk);
      if (this.#unparsedBytes >= PARSE_BATCH_BYTES) this.#parse();
      if (performance.now() >= this.#extendAt) this.#extend();
    }
  }

  #parse(): void {
    const unparsed = this.#unparsed;
    if (unparsed.length === 0) return;
    let batch = unparsed[0] as Uint8Array;
    if (unparsed.length > 1) {
      batch = concatenated(unparsed);
      this.merge(unparsed.length, batch);
    }
    this.#unparsed = [];
    this.#unparsedBytes = 0;
    // Observing must never break the stream the consumer reads.
    try {
      this.#parser.push(batch, this.#observe);
    } catch {
      /* an unreadable event: without a closing report, what was delivered is charged */
    }
  }

  #count(): void {
    for (const e of this.#pending) {
      const bytes = this.#adapter.deliveredBytes(e);
      this.#delivered += bytes;
      if (bytes > 0) this.#deliveredEvents++;
    }
    this.#pending = [];
  }

  /** Settles the hold once: at the end of the stream (`ended`) or when it is abandoned. */
  async #finish(ended: boolean): Promise<void> {
    if (this.#settled) return;
    this.#settled = true;
    this.#parse();
    if (ended) {
      try {
        this.#parser.end(this.#observe);
      } catch {
        /* an unreadable tail: charged as delivered */
      }
    }
    const meter = this.#meter;
    const tally = this.#tally;
    if (!ended && !(tally.final && tally.usage !== undefined) && meter.releaseAbandoned) {
      await meter.release(this.#hold);
      return;
    }
    let charge: Charge;
    try {
      if (tally.usage !== undefined) meter.vetted(this.#adapter, tally.usage);
      charge =
        tally.final && tally.usage !== undefined
          ? chargeOf(tally.usage, this.#price)
          : this.#partialCharge(tally.usage);
    } catch {
      // Usage that cannot be priced (past 2^53 − 1): the hold.
      charge = heldOf(this.#hold);
    }
    const committed = meter.commit(this.#hold, charge);
    if (committed !== undefined) await committed;
  }

  /** The charge of a stream without its closing report (docs/metering.md "Settling"). */
  #partialCharge(reported: TokenUsage | undefined): Charge {
    this.#count();
    const held = heldOf(this.#hold);
    const price = this.#price;
    // The byte count bounds the tokens delivered from above. While the provider may have kept to
    // the maximum written on the request, more bytes than the maximum allows tokens is ordinary
    // (a token is 1 to ~4 bytes), so the charge stops at the hold. More output events than the
    // maximum allows tokens proves it did not (no event carries less than a token): then every
    // delivered byte is charged, past the hold, as an overrun (spec/enforcement.md §3.4).
    const pastMaximum = this.#deliveredEvents > this.#outputTokens;
    const seen = Math.max(reported?.outputTokens ?? 0, this.#delivered);
    const out = pastMaximum ? seen : Math.min(this.#outputTokens, seen);
    const raised = chargeOf(
      reported === undefined
        ? { inputTokens: this.#inputTokens, outputTokens: out }
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
    const floor = chargeOf(reported, price);
    return {
      tokens: Math.max(charge.tokens, floor.tokens),
      usdMicros: Math.max(charge.usdMicros, floor.usdMicros),
    };
  }
}

/**
 * Budgets, and spend past a budget not yet settled: 402 Payment Required. Everything else: 403
 * Forbidden. Neither is retried by the SDKs (docs/metering.md "Denials").
 */
export function denialStatus(reason: MeterDenyReason): 402 | 403 {
  return reason === "BUDGET_USD" ||
    reason === "BUDGET_TOKENS" ||
    reason === "BUDGET_RISK" ||
    reason === "DEBT_OUTSTANDING"
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

export function denialResponse(denial: MeterDenial, options?: DenialResponseOptions): Response {
  checkDenial(denial);
  const { wire } = optionsOf(options, "options", ["wire"]);
  // A misspelt wire would answer in the other shape, which that client cannot read as a denial.
  if (wire !== undefined && wire !== "openai" && wire !== "google")
    throw new TypeError(`"wire" expected "openai" or "google", got ${shown(wire)}`);
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
  if (wire === "google") {
    const google = { ...error, code: status, status: GOOGLE_STATUS[status] ?? "PERMISSION_DENIED" };
    return new Response(JSON.stringify({ error: google }), { status, headers });
  }
  return new Response(JSON.stringify({ type: "error", error }), { status, headers });
}

/**
 * A denial to answer with, checked: one that denialOf would not read back (an unknown reason, a
 * linkIndex or retryAfter that is not a count) would reach the caller as an untyped error, and a
 * NaN retryAfter would be sent as `retry-after: NaN`.
 */
function checkDenial(denial: MeterDenial): void {
  if (denial === null || typeof denial !== "object")
    throw new TypeError(`"denial" expected a MeterDenial, got ${shown(denial)}`);
  if (!(METER_DENY_REASONS as readonly unknown[]).includes(denial.reason))
    throw new TypeError(`"denial.reason" expected a MeterDenyReason, got ${shown(denial.reason)}`);
  for (const key of ["field", "message"] as const)
    if (typeof denial[key] !== "string")
      throw new TypeError(`"denial.${key}" expected a string, got ${shown(denial[key])}`);
  const count = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  if (denial.linkIndex !== null && !count(denial.linkIndex))
    throw new RangeError(
      `"denial.linkIndex" expected null or a count, got ${shown(denial.linkIndex)}`,
    );
  for (const key of ["retryAfter", "available", "limit"] as const)
    if (denial[key] !== undefined && !count(denial[key]))
      throw new RangeError(`"denial.${key}" expected a count, got ${shown(denial[key])}`);
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

/**
 * Whether the provider might read the request otherwise than JSON.parse did: a key given twice in
 * one object, at any depth (JSON.parse keeps the last, a provider's parser might keep the first),
 * a key written with an escape (`"a\/b"` is `"a/b"`: no comparison of the text would see them as
 * one), or any \u escape at all (which can spell a key, "max\u005ftokens"). Such a request is sent
 * as the meter parsed it.
 *
 * `text` is JSON (JSON.parse read it): outside its strings there are no quotes, and each string
 * ends at the first quote after it that no odd run of backslashes escapes. So the walk goes from
 * string to string with native searches; the brackets between two strings open and close the
 * objects and arrays, and a string followed by a colon is a key of the innermost object. Linear:
 * each object's keys are a list while they are few, then a set.
 */
export function ambiguous(text: string): boolean {
  if (text.includes("\\u")) return true;
  try {
    return repeatsKey(text);
  } finally {
    // Nothing of a request is kept past its call.
    keys.length = 0;
    frames.length = 0;
    sets.length = 0;
  }
}

/**
 * The keys of the open objects, outermost first; where each open object's keys start in `keys`
 * (-1 for an open array); and, for an object with many keys, a set of them. Module scratch: the
 * walk is synchronous, and reusing them spares a list per object.
 */
const keys: string[] = [];
const frames: number[] = [];
const sets: (Set<string> | undefined)[] = [];
/** Keys of one object compared one by one, up to this many; then a set. */
const LISTED_KEYS = 16;

function repeatsKey(text: string): boolean {
  let gap = 0;
  for (let start = text.indexOf('"'); start >= 0;) {
    for (let i = gap; i < start; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x7b || c === 0x5b) {
        frames.push(c === 0x7b ? keys.length : -1);
        sets.push(undefined);
      } else if (c === 0x7d || c === 0x5d) {
        const from = frames.pop();
        sets.pop();
        if (from !== undefined && from >= 0) keys.length = from;
      }
    }
    let close = text.indexOf('"', start + 1);
    while (close > 0 && escaped(text, close)) close = text.indexOf('"', close + 1);
    // Not the JSON it was parsed as: the text cannot be trusted to say what it asks.
    if (close < 0) return true;
    if (isKey(text, close)) {
      const from = frames[frames.length - 1];
      // A key outside an object: not the JSON it was parsed as.
      if (from === undefined || from < 0) return true;
      const key = text.slice(start + 1, close);
      if (key.includes("\\")) return true;
      const set = sets[sets.length - 1];
      if (set !== undefined) {
        if (set.has(key)) return true;
        set.add(key);
      } else {
        for (let i = from; i < keys.length; i++) if (keys[i] === key) return true;
        keys.push(key);
        if (keys.length - from > LISTED_KEYS) sets[sets.length - 1] = new Set(keys.slice(from));
      }
    }
    gap = close + 1;
    start = text.indexOf('"', gap);
  }
  return false;
}

/** Whether the quote at `at` follows an odd run of backslashes (is inside a string). */
function escaped(text: string, at: number): boolean {
  let i = at - 1;
  while (i >= 0 && text.charCodeAt(i) === 0x5c) i--;
  return ((at - 1 - i) & 1) === 1;
}

/** Whether the string that ends at the quote `close` is a key: a colon follows it, after JSON's whitespace. */
function isKey(text: string, close: number): boolean {
  for (let i = close + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x3a) return true;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return false;
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
  if (headers instanceof Headers && !headers.has("content-length")) return headers;
  if (Array.isArray(headers))
    return headers.some(([name]: string[]) => (name ?? "").toLowerCase() === "content-length")
      ? headers.filter(([name]: string[]) => (name ?? "").toLowerCase() !== "content-length")
      : headers;
  // A Headers, or any other iterable of pairs fetch takes (a Map, another library's Headers):
  // read as fetch reads it.
  if (isIterable(headers)) {
    const copy = new Headers(headers);
    copy.delete("content-length");
    return copy;
  }
  const record = headers as Record<string, string>;
  for (const name in record) {
    if (name.toLowerCase() === "content-length")
      return Object.fromEntries(
        Object.entries(record).filter(([n]) => n.toLowerCase() !== "content-length"),
      );
  }
  return headers;
}

/** Whether `value` is iterable (headers given as pairs rather than as a record). */
const isIterable = (value: object): boolean =>
  typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === "function";

/** `headers`, with `type` as the Content-Type where they name none (any type: undefined). */
function withContentType(
  headers: RequestInit["headers"],
  type: string | undefined,
): RequestInit["headers"] {
  if (type === undefined) return headers;
  const copy = new Headers(headers);
  if (!copy.has("content-type")) copy.set("content-type", type);
  return copy;
}

/** Where undici's setGlobalOrigin keeps the origin Node's fetch resolves relative URLs against. */
const UNDICI_ORIGIN = Symbol.for("undici.globalOrigin.1");

/**
 * A URL that is not absolute, resolved where fetch resolves it: a page's base URL, a worker's or
 * Deno's (--location) location, undici's global origin; a TypeError where there is none.
 */
function resolvedUrl(input: string): URL {
  // A page's fetch resolves against the document's base URL (a <base> element moves it), a
  // worker's against its location, Node's against the origin undici's setGlobalOrigin set.
  const scope = globalThis as {
    document?: { baseURI?: unknown };
    location?: { href?: unknown };
    [UNDICI_ORIGIN]?: unknown;
  };
  const documentBase: unknown = scope.document?.baseURI;
  const origin: unknown = scope[UNDICI_ORIGIN];
  const base: unknown =
    typeof documentBase === "string"
      ? documentBase
      : (scope.location?.href ?? (origin instanceof URL ? origin.href : undefined));
  if (typeof base === "string") {
    try {
      return new URL(input, base);
    } catch {
      // Refused below.
    }
  }
  throw new TypeError(
    `the metered fetch takes an absolute URL, got ${shown(input)}: resolve it before the call`,
  );
}

/** The statuses fetch follows, and how many redirects it follows at most. */
const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 20;
/** What fetch drops from a redirect that leaves the origin, and from one that becomes a GET. */
const CREDENTIAL_HEADERS = ["authorization", "cookie", "proxy-authorization", "host"] as const;
const BODY_HEADERS = [
  "content-type",
  "content-length",
  "content-encoding",
  "content-language",
] as const;
/** The redirect modes fetch knows. */
const REDIRECT_MODES: ReadonlySet<string> = new Set(["follow", "manual", "error"]);

/** The members of RequestInit that fetch reads (undici's `dispatcher` among them). */
const INIT_MEMBERS = [
  "method",
  "headers",
  "body",
  "referrer",
  "referrerPolicy",
  "mode",
  "credentials",
  "cache",
  "redirect",
  "integrity",
  "keepalive",
  "signal",
  "duplex",
  "priority",
  "window",
  "dispatcher",
] as const;

/**
 * A plain copy of a fetch's options, each member read once: its own enumerable members (a spread)
 * and any member fetch reads that it inherits (a class instance's getters). The meter reads the
 * copy and hands fetch the copy, so a getter that answers a second read otherwise (a small body
 * metered, a large one sent) is read once, by the meter.
 */
function snapshotOf(init: RequestInit): RequestInit {
  const copy: Record<string, unknown> = { ...init };
  for (const key of INIT_MEMBERS) {
    if (Object.hasOwn(copy, key)) continue;
    const value: unknown = (init as Record<string, unknown>)[key];
    if (value !== undefined) copy[key] = value;
  }
  // Headers given as a plain record, read once too (fetch reads its own enumerable members): what
  // is sent is what a later look at the call (refusedArguments) sees.
  const headers = copy["headers"];
  if (typeof headers === "object" && headers !== null && !isIterable(headers))
    copy["headers"] = { ...headers };
  return copy as RequestInit;
}

const NOT_JSON: unique symbol = Symbol("not JSON");

/**
 * What both served answers show of the provider's: status, headers (served as they are, immutable
 * as on any fetched answer, not copied), URL, type and whether it was redirected.
 *
 * Not built by Response's constructor, which makes state these objects never read (a state record,
 * a headers list, its options converted): inside a call that was a measurable part of the meter's
 * cost (docs/metering.md, "Overhead"). Their prototype
 * chain runs through Response.prototype, so `instanceof Response` holds and the inherited
 * `Symbol.toStringTag` and inspection read the members below; every other member of
 * Response.prototype is implemented by each served class (checked at load, see below).
 */
class ResponseBase {
  /** The provider's answer, its body already read: each member reads it when asked. */
  readonly #source: Response;

  constructor(source: Response) {
    this.#source = source;
  }

  get status(): number {
    return this.#source.status;
  }

  get ok(): boolean {
    return this.#source.ok;
  }

  get statusText(): string {
    return this.#source.statusText;
  }

  get headers(): Headers {
    return this.#source.headers;
  }

  get url(): string {
    return this.#source.url;
  }

  get type(): Response["type"] {
    return this.#source.type;
  }

  get redirected(): boolean {
    return this.#source.redirected;
  }
}
Object.setPrototypeOf(ResponseBase.prototype, Response.prototype);

/**
 * A JSON answer the meter has read, served from memory. Why not `new Response(bytes)`: on Node 20
 * every ReadableStream costs about 30 µs to construct, the largest part of the meter's budget, and
 * the SDKs read JSON answers with `json()` / `text()`, which need no stream. `body` builds one only
 * when asked. `text()` hands over the text the meter decoded, and `json()` the value it parsed for
 * the usage (the meter only reads it).
 */
class BufferedResponse extends ResponseBase {
  readonly #bytes: Uint8Array;
  /** The body as text, when the meter decoded it. */
  readonly #text: string | undefined;
  readonly #json: unknown;
  #used = false;
  /** Whether a clone reads the same bytes: then each read hands over a copy, else the bytes themselves. */
  #shared = false;
  #stream: ReadableStream<Uint8Array> | undefined;

  constructor(source: Response, bytes: Uint8Array, text: string | undefined, json: unknown) {
    super(source);
    this.#bytes = bytes;
    this.#text = text;
    this.#json = json;
  }

  get body(): ReadableStream<Uint8Array> {
    // Looking at `body` (SDKs log it) reads nothing; the first read of the stream uses the body.
    this.#stream ??= new ReadableStream<Uint8Array>(
      {
        pull: (controller) => {
          const bytes = this.#handed();
          if (bytes.byteLength > 0) controller.enqueue(bytes);
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

  /** The bytes to hand over: they span their own ArrayBuffer, which no one else reads unless cloned. */
  #handed(): Uint8Array {
    const bytes = this.#take();
    return this.#shared ? bytes.slice() : bytes;
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    return this.#handed().buffer as ArrayBuffer;
  }

  async bytes(): Promise<Uint8Array> {
    return this.#handed();
  }

  async text(): Promise<string> {
    const bytes = this.#take();
    return this.#text ?? DECODER.decode(bytes);
  }

  async json(): Promise<unknown> {
    const bytes = this.#take();
    if (this.#json !== NOT_JSON) return this.#json;
    return JSON.parse(this.#text ?? DECODER.decode(bytes));
  }

  async blob(): Promise<Blob> {
    return new Blob([this.#take()], { type: this.headers.get("content-type") ?? "" });
  }

  async formData(): Promise<FormData> {
    return new Response(this.#take(), { headers: this.headers }).formData();
  }

  clone(): BufferedResponse {
    if (this.#used) throw new TypeError("Response.clone: Body has already been consumed.");
    // A clone's json() must not share the parsed value with this one, nor its reads the bytes.
    const clone = new BufferedResponse(
      this as unknown as Response,
      this.#bytes,
      this.#text,
      NOT_JSON,
    );
    this.#shared = true;
    clone.#shared = true;
    return clone;
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
  #used = false;
  #stream: ReadableStream<Uint8Array> | undefined;

  constructor(source: Response, relay: Relay) {
    super(source);
    this.#relay = relay;
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

/**
 * A member of Response.prototype that a served class does not implement would reach for state it
 * does not have. A runtime that adds one gets, on that member, a TypeError that names it. Node's
 * inspection is inherited: it reads the public members.
 */
const INSPECT = Symbol.for("nodejs.util.inspect.custom");
for (const served of [BufferedResponse, StreamedResponse])
  for (const key of Reflect.ownKeys(Response.prototype)) {
    if (key === "constructor" || key === Symbol.toStringTag || key === INSPECT) continue;
    if (Object.hasOwn(ResponseBase.prototype, key) || Object.hasOwn(served.prototype, key))
      continue;
    const fail = (): never => {
      throw new TypeError(`a metered response does not implement Response.${String(key)}`);
    };
    const inherited = Object.getOwnPropertyDescriptor(Response.prototype, key);
    Object.defineProperty(
      served.prototype,
      key,
      inherited?.get === undefined ? { value: fail } : { get: fail },
    );
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

/**
 * Whether fetch failed because it sent a request body shorter than its length: Node's fetch after
 * a 421 answer in redirect mode "error", which resends a body it has already read (the meter sends
 * strings or bytes without a caller's Content-Length, so fetch's own length is never wrong
 * otherwise).
 */
function resentEmpty(error: unknown): boolean {
  return causeCode(error) === "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH";
}

/** The code of the cause of a TypeError fetch failed with (undici's errors carry one). */
function causeCode(error: unknown): unknown {
  if (!(error instanceof TypeError)) return undefined;
  const cause: unknown = error.cause;
  return typeof cause === "object" && cause !== null
    ? (cause as { code?: unknown }).code
    : undefined;
}

/**
 * Whether fetch refused the call's options before sending it: a TypeError without a cause (Node's
 * fetch gives network failures a cause) for options a Request cannot be made of (a header name
 * or value it cannot send, an unknown mode), or one whose cause is undici's argument error.
 * Asked only after a failure, of the options as they were sent (the headers were copied once).
 */
function refusedArguments(
  error: unknown,
  url: URL,
  init: RequestInit | undefined,
  contentType: string | undefined,
): boolean {
  if (!(error instanceof TypeError)) return false;
  if (error.cause !== undefined) {
    // Node's fetch refuses some headers (Transfer-Encoding, Connection, Upgrade, Expect) when it
    // dispatches, before anything is sent, with an argument error as the cause.
    const code = causeCode(error);
    return code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_NOT_SUPPORTED";
  }
  try {
    // The headers as sent; without what a Request need not be made of to judge them: the body,
    // the signal.
    const headers = withContentType(init?.headers, contentType);
    new Request(url, {
      ...init,
      ...(headers === undefined ? {} : { headers }),
      body: null,
      signal: null,
    });
    return false;
  } catch {
    return true;
  }
}

/**
 * Whether fetch failed a call sent with redirect "error" because it was answered with a redirect:
 * Node's fetch (undici) rejects with a TypeError whose cause says so. Any other failure, or
 * another fetch's way of saying it, is passed on as the network error it is.
 */
function unexpectedRedirect(error: unknown): boolean {
  if (!(error instanceof TypeError)) return false;
  const cause: unknown = error.cause;
  return cause instanceof Error && cause.message === "unexpected redirect";
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
