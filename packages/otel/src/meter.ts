/**
 * `tracedWrapFetch`: `wrapFetch` with a span per LLM call, named and attributed by the GenAI
 * semantic conventions (gen_ai.*), with what Allowance decided and charged (allowance.*), and the
 * GenAI client metrics (gen_ai.client.operation.duration, gen_ai.client.token.usage).
 *
 * It watches the meter from outside, through what wrapFetch already takes: the enforcer (a view
 * of it that sees each reserve, commit and release), `onDeny`, and the inner fetch (which sees the
 * provider's answer pass on its way to the meter). The metered fetch decides and charges exactly
 * as the plain one.
 */
import {
  SpanKind,
  SpanStatusCode,
  context,
  trace,
  type Attributes,
  type Histogram,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import type {
  CommitResult,
  Decision,
  Enforcer,
  ReleaseResult,
  ReserveRequest,
  Usage,
} from "@allowance/enforcer";
import {
  DEFAULT_PRICING,
  Pricing,
  createPricing,
  wrapFetch,
  type MeterDenial,
  type MeteredFetch,
  type PricingTable,
  type ProviderAdapter,
  type TokenUsage,
  type WrapFetchOptions,
} from "@allowance/meter";
import { BUILTIN_ADAPTERS } from "@allowance/meter/adapters";
import { isVerifiedChain } from "@allowance/verifier";
import {
  inputTokensOf,
  listedIn,
  operationOf,
  providerNameOf,
  usageAttributes,
  type ResponseFacts,
} from "./genai.js";
import { AnswerReader, readAnswer } from "./response.js";
import {
  OTHER,
  capped,
  chainAttributes,
  currentCall,
  errorTypeOf,
  failed,
  forgetHold,
  quietly,
  rememberHold,
  shown,
  telemetryOf,
  type TelemetryOptions,
} from "./telemetry.js";

/** Calls with an open hold remembered at most (a provider that never ends a stream keeps one open). */
const MAX_OPEN_CALLS = 100_000;
/** A DNS name's longest (RFC 1035 §2.3.4): `server.address` is cut there. */
const MAX_HOSTNAME_LENGTH = 253;
/** Finish reasons kept on a span: one per choice (OpenAI's `n` goes up to 128). */
const MAX_FINISH_REASONS = 128;

/** The convention's advised buckets (GenAI metrics): seconds, and tokens in powers of 4. */
const DURATION_BUCKETS = [
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const TOKEN_BUCKETS = [
  1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
];

/**
 * `wrapFetch(fetch, options)`, traced: the same metered fetch, with a span (kind CLIENT) around
 * every call the meter meters or refuses, ended when its hold is settled (for a stream, when the
 * stream is). Requests that pass unmetered get no span. Give the enforcer to `instrumentEnforcer`
 * too for the `allowance.reserve` and `allowance.commit` spans under each call, and the spend metrics.
 */
export function tracedWrapFetch(
  fetch: typeof globalThis.fetch,
  options: WrapFetchOptions,
  telemetry?: TelemetryOptions,
): MeteredFetch {
  if (typeof fetch !== "function")
    throw new TypeError(`"fetch" expected a function, got ${shown(fetch)}`);
  if (typeof options !== "object" || options === null)
    throw new TypeError(`"options" expected the options of wrapFetch, got ${shown(options)}`);
  const tracer = new CallTracer(telemetryOf(telemetry, "telemetry"), options.providers);
  const { enforcer, onDeny } = options;
  const settings: WrapFetchOptions = {
    ...options,
    // Anything but an object is wrapFetch's to refuse, as it would.
    enforcer: typeof enforcer === "object" && enforcer !== null ? tracer.view(enforcer) : enforcer,
    ...(onDeny === undefined || typeof onDeny === "function"
      ? {
          onDeny: (denial: MeterDenial) => {
            onDeny?.(denial);
            quietly(() => tracer.ownCall()?.denied(denial));
          },
        }
      : {}),
  };
  const metered = wrapFetch((input, init) => tracer.send(fetch, input, init), settings);
  // The option wrapFetch has just checked, from the same copy: its table cannot fail to build.
  tracer.table = tableOf(settings.pricing);
  // As fetch and the plain metered fetch: always a promise. An argument the meter refuses rejects
  // it; a tracer that cannot start or record a span leaves the call untraced, never failed.
  const traced = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    let call: MeteredCall | undefined;
    let parent = context.active();
    try {
      call = new MeteredCall(tracer, input, init);
      if (call.span !== undefined) parent = trace.setSpan(parent, call.span);
    } catch {
      call = undefined;
    }
    if (call === undefined) return metered(input, init);
    const watched = call;
    let result: Promise<Response>;
    try {
      result = currentCall.run(watched, () => context.with(parent, () => metered(input, init)));
    } catch (error) {
      result = Promise.reject(error);
    }
    return result.then(
      async (response) => {
        try {
          await watched.returned(response);
        } catch {
          // The telemetry's fault, not the call's: the caller gets its answer.
        }
        return response;
      },
      (error: unknown) => {
        quietly(() => watched.threw(error));
        throw error;
      },
    );
  };
  return Object.assign(traced, {
    breaker: metered.breaker,
    loops: metered.loops,
    breakerState: metered.breakerState,
    snapshot: metered.snapshot,
  }) as MeteredFetch;
}

/** One tracedWrapFetch's tracer, instruments, adapters and open calls. */
class CallTracer {
  readonly tracer: Tracer;
  readonly duration: Histogram;
  readonly tokenUsage: Histogram;
  /** The application's adapters first, then the built-in ones, as the meter matches them. */
  readonly adapters: readonly ProviderAdapter[];
  /** The meter's price table: the models a metric may name as they are asked for. */
  table: PricingTable | undefined;
  /** Calls with an open hold, by reservation id. */
  readonly #open = new Map<string, MeteredCall>();

  constructor(
    { tracer, meter }: ReturnType<typeof telemetryOf>,
    providers: readonly ProviderAdapter[] | undefined,
  ) {
    this.tracer = tracer;
    this.duration = meter.createHistogram("gen_ai.client.operation.duration", {
      description: "GenAI operation duration",
      unit: "s",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.tokenUsage = meter.createHistogram("gen_ai.client.token.usage", {
      description: "Number of input and output tokens used",
      unit: "{token}",
      advice: { explicitBucketBoundaries: TOKEN_BUCKETS },
    });
    this.adapters = [...(Array.isArray(providers) ? providers : []), ...BUILTIN_ADAPTERS];
  }

  /** Whether the meter's table lists `model` by its exact id for `adapter`'s provider. */
  listed(adapter: ProviderAdapter | undefined, model: string): boolean {
    return (
      this.table !== undefined &&
      adapter !== undefined &&
      listedIn(this.table, [adapter.provider, adapter.pricedAs], model)
    );
  }

  /** The call in progress, if it is one of this tracer's. */
  ownCall(): MeteredCall | undefined {
    const call = currentCall.getStore();
    return call instanceof MeteredCall && call.owner === this ? call : undefined;
  }

  opened(reservationId: string, call: MeteredCall): void {
    if (this.#open.size >= MAX_OPEN_CALLS)
      this.#open.delete(this.#open.keys().next().value as string);
    this.#open.set(reservationId, call);
  }

  /** The call that holds this reservation, which it leaves. */
  closing(reservationId: unknown): MeteredCall | undefined {
    if (typeof reservationId !== "string") return undefined;
    const call = this.#open.get(reservationId);
    this.#open.delete(reservationId);
    return call;
  }

  /** The inner fetch: the provider's answer, read on its way to the meter. */
  async send(
    fetch: typeof globalThis.fetch,
    input: string | URL | Request,
    init: RequestInit | undefined,
  ): Promise<Response> {
    const call = this.ownCall();
    const response = await fetch(input, init);
    if (call === undefined) return response;
    try {
      return call.responded(response);
    } catch {
      return response; // read unread: the meter reads the answer as it came
    }
  }

  /**
   * The enforcer as the meter sees it: every method and property is the enforcer's own (bound to
   * it, so its private state is reached), except reserve, commit and release, which tell the call.
   */
  view(enforcer: Enforcer): Enforcer {
    const calls = this;
    const settled = <R>(
      reservationId: unknown,
      kind: "committed" | "released",
      usage: unknown,
      run: () => R,
    ): R => {
      const call = calls.closing(reservationId);
      let result: R;
      try {
        result = run();
      } catch (error) {
        if (call !== undefined) quietly(() => call.settleFailed(error));
        throw error;
      }
      if (call === undefined) return result;
      if (!(result instanceof Promise)) {
        quietly(() => call.settled(kind, usage, result));
        return result;
      }
      return result.then(
        (value: unknown) => {
          quietly(() => call.settled(kind, usage, value));
          return value;
        },
        (error: unknown) => {
          quietly(() => call.settleFailed(error));
          throw error;
        },
      ) as R;
    };
    const reserved = <R>(request: ReserveRequest, run: () => R): R => {
      const call = calls.ownCall();
      // The meter built this request; a fault in tracing it must still not reach it.
      if (call !== undefined) quietly(() => call.reserving(request));
      const result = run();
      if (call === undefined) return result;
      if (!(result instanceof Promise)) {
        quietly(() => call.decided(result as Decision));
        return result;
      }
      return result.then((decision: Decision) => {
        quietly(() => call.decided(decision));
        return decision;
      }) as R;
    };
    const methods: Partial<Record<PropertyKey, unknown>> = {
      reserve: (request: ReserveRequest, options?: Parameters<Enforcer["reserve"]>[1]) =>
        reserved(request, () => enforcer.reserve(request, options)),
      reserveSync: (request: ReserveRequest, options?: Parameters<Enforcer["reserve"]>[1]) =>
        reserved(request, () => enforcer.reserveSync(request, options)),
      commit: (id: string, usage: Usage): Promise<CommitResult> =>
        settled(id, "committed", usage, () => enforcer.commit(id, usage)),
      commitSync: (id: string, usage: Usage): CommitResult =>
        settled(id, "committed", usage, () => enforcer.commitSync(id, usage)),
      release: (id: string): Promise<ReleaseResult> =>
        settled(id, "released", undefined, () => enforcer.release(id)),
      releaseSync: (id: string): ReleaseResult =>
        settled(id, "released", undefined, () => enforcer.releaseSync(id)),
    };
    const bound = new Map<unknown, unknown>();
    return new Proxy(enforcer, {
      get(target, property) {
        if (Object.hasOwn(methods, property)) return methods[property];
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== "function") return value;
        let method = bound.get(value);
        if (method === undefined) bound.set(value, (method = value.bind(target)));
        return method;
      },
    });
  }
}

/** One call through the traced fetch, from the request to the settlement of its hold. */
class MeteredCall {
  readonly owner: CallTracer;
  span: Span | undefined;
  readonly #startMs = performance.timeOrigin + performance.now();
  readonly #startedAt = performance.now();
  readonly #operation: string | undefined;
  readonly #adapter: ProviderAdapter | undefined;
  readonly #server: Attributes = {};
  readonly #url: URL | undefined;
  #model: string | undefined;
  #provider: string | undefined;
  #reader: AnswerReader | undefined;
  /** The provider answered with a whole JSON answer, read from what the meter returns. */
  #wholeAnswer = false;
  /** The provider answered this call's model with a 2xx: a model it serves. */
  #served = false;
  #usage: TokenUsage | undefined;
  readonly #facts: ResponseFacts = {};
  #reservationId: string | undefined;
  #errorType: string | undefined;
  #holdOpen = false;
  #returned = false;
  #ended = false;

  constructor(owner: CallTracer, input: string | URL | Request, init: RequestInit | undefined) {
    this.owner = owner;
    const request = input instanceof Request ? input : undefined;
    const url = urlOf(input);
    this.#url = url;
    if (url === undefined) return;
    this.#server = {
      "server.address": capped(url.hostname, MAX_HOSTNAME_LENGTH),
      "server.port": url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port),
    };
    // Read as the meter reads it; a method the meter refuses (not a string) gets no span.
    const asked: unknown = init?.method;
    if (asked !== undefined && typeof asked !== "string") return;
    const method = asked?.toUpperCase() ?? request?.method ?? "GET";
    try {
      this.#adapter = owner.adapters.find((a) => a.match(url, method));
    } catch {
      // An adapter that throws is the meter's to report.
    }
    if (this.#adapter === undefined) return;
    // A request the meter will meter: the span opens now, so that what runs under the call (an HTTP
    // client's own span, with a context manager) nests under it.
    this.#operation = operationOf(this.#adapter.endpoint);
    this.#open();
  }

  #open(): Span {
    if (this.span !== undefined) return this.span;
    const attributes: Attributes = { ...this.#server };
    if (this.#operation !== undefined) attributes["gen_ai.operation.name"] = this.#operation;
    this.span = this.owner.tracer.startSpan(
      this.#name(),
      { kind: SpanKind.CLIENT, startTime: this.#startMs, attributes },
      context.active(),
    );
    return this.span;
  }

  /**
   * `{gen_ai.operation.name} {gen_ai.request.model}`, as the convention names a GenAI span, with
   * the model only when a metric may name it: backends group spans by name.
   */
  #name(): string {
    const operation = capped(this.#operation ?? "allowance.meter");
    const model = this.#model === undefined ? OTHER : this.metricModel(this.#model);
    return model === OTHER ? operation : `${operation} ${model}`;
  }

  /**
   * `model` as a metric attribute (and part of the span's name): as asked when the meter's table
   * lists it, or the provider answered it; else `_OTHER`. A request names any model it likes, and
   * the meter refuses one it cannot price only after reading it: its name is the request's writer's.
   */
  metricModel(model: string): string {
    const vouched =
      (this.#served && model === this.#model) || this.owner.listed(this.#adapter, model);
    return vouched ? capped(model) : OTHER;
  }

  /** The convention's name of `provider` (by the URL where the meter's name is not one). */
  #providerName(provider: string): string {
    return capped(providerNameOf(provider, this.#url));
  }

  #named(provider: string | undefined, model: string | undefined): void {
    const span = this.#open();
    if (this.#provider === undefined && provider !== undefined) {
      this.#provider = provider;
      span.setAttributes({
        "gen_ai.provider.name": this.#providerName(provider),
        "allowance.provider": capped(provider),
      });
    }
    if (this.#model === undefined && model !== undefined && model !== "") {
      this.#model = model;
      // On the span, the model as asked (cut to length): what a refusal was for.
      span.setAttribute("gen_ai.request.model", capped(model));
      span.updateName(this.#name());
    }
  }

  reserving(request: ReserveRequest): void {
    this.#named(request.provider, request.model);
    if (isVerifiedChain(request.chain))
      (this.span as Span).setAttributes(chainAttributes(request.chain));
  }

  decided(decision: Decision): void {
    const span = this.#open();
    span.setAttribute("allowance.decision", decision.decision);
    if (decision.decision === "DENY") return; // onDeny says the rest
    span.setAttributes({
      "allowance.reservation.id": decision.reservationId,
      "allowance.reserved.tokens": decision.amounts.tokens,
      "allowance.reserved.usd_micros": decision.amounts.usdMicros,
    });
    this.#holdOpen = true;
    this.#reservationId = decision.reservationId;
    this.owner.opened(decision.reservationId, this);
    rememberHold(decision.reservationId, span);
  }

  denied(denial: MeterDenial): void {
    this.#named(denial.provider, denial.model);
    const span = this.span as Span;
    span.setAttributes({
      "allowance.decision": "DENY",
      "allowance.deny.reason": capped(denial.reason),
      "allowance.deny.field": capped(denial.field),
    });
    if (denial.linkIndex !== null) span.setAttribute("allowance.deny.link_index", denial.linkIndex);
    this.#errorType = capped(denial.reason);
  }

  /**
   * The provider's answer, on its way to the meter. A stream passes through a reader; a whole
   * answer is read later from what the meter returns (its copy costs no second stream).
   */
  responded(response: Response): Response {
    this.span?.setAttribute("http.response.status_code", response.status);
    this.#served = response.ok;
    const adapter = this.#adapter;
    if (adapter === undefined || !response.ok || response.body === null) return response;
    const sse = (response.headers.get("content-type") ?? "").includes("text/event-stream");
    if (!sse && adapter.jsonArrayStream !== true) {
      this.#wholeAnswer = true;
      return response;
    }
    this.#reader = new AnswerReader(adapter, sse);
    return this.#reader.observe(response);
  }

  settled(kind: "committed" | "released", usage: unknown, result: unknown): void {
    const span = this.span;
    this.#closeHold();
    if (span !== undefined) {
      span.setAttribute("allowance.settlement", kind);
      if (kind === "committed" && typeof usage === "object" && usage !== null) {
        const { tokens, usdMicros } = usage as Usage;
        if (typeof tokens === "number") span.setAttribute("allowance.charged.tokens", tokens);
        if (typeof usdMicros === "number")
          span.setAttribute("allowance.charged.usd_micros", usdMicros);
      }
      const status = (result as { status?: unknown } | undefined)?.status;
      if (typeof status === "string") span.setAttribute("allowance.settlement.status", status);
    }
    this.#end();
  }

  settleFailed(error: unknown): void {
    this.#closeHold();
    if (this.span !== undefined) {
      this.span.setAttribute("allowance.settlement", "failed");
      failed(this.span, error);
      this.#errorType ??= errorTypeOf(error);
    }
    this.#end();
  }

  #closeHold(): void {
    this.#holdOpen = false;
    if (this.#reservationId !== undefined) forgetHold(this.#reservationId);
  }

  async returned(response: Response): Promise<void> {
    if (this.#wholeAnswer && response.ok && this.#adapter !== undefined) {
      try {
        // A clone of the meter's answer shares its bytes; the caller's copy stays unread.
        this.#usage = readAnswer(this.#adapter, await response.clone().json(), this.#facts);
      } catch {
        // Unreadable: the span goes without usage, as the meter charges the hold.
      }
    }
    this.#returned = true;
    // A denial is the meter's answer, a 402 or 403 the provider never saw; any other error status
    // is the provider's (its code is the error type, as the HTTP conventions have it).
    if (this.#errorType === undefined && response.status >= 400 && this.span !== undefined)
      this.#errorType = String(response.status);
    if (this.#errorType !== undefined)
      this.span?.setStatus({ code: SpanStatusCode.ERROR, message: this.#errorType });
    this.#end();
  }

  threw(error: unknown): void {
    this.#returned = true;
    if (this.span !== undefined) {
      failed(this.span, error);
      this.#errorType = errorTypeOf(error);
    }
    this.#end();
  }

  /** Once the call has returned and its hold is settled: the answer's facts, the metrics, the end. */
  #end(): void {
    const span = this.span;
    if (this.#ended || !this.#returned || this.#holdOpen || span === undefined) return;
    this.#ended = true;
    const usage = this.#reader?.usage ?? this.#usage;
    const facts: ResponseFacts = this.#reader?.facts ?? this.#facts;
    if (usage !== undefined) span.setAttributes(usageAttributes(usage));
    // The answer's facts are the provider's, cut to length all the same.
    const responseModel = facts.model === undefined ? undefined : capped(facts.model);
    if (responseModel !== undefined) span.setAttribute("gen_ai.response.model", responseModel);
    if (facts.id !== undefined) span.setAttribute("gen_ai.response.id", capped(facts.id));
    if (facts.finishReasons !== undefined)
      span.setAttribute(
        "gen_ai.response.finish_reasons",
        facts.finishReasons.slice(0, MAX_FINISH_REASONS).map((reason) => capped(reason)),
      );
    if (this.#errorType !== undefined) span.setAttribute("error.type", this.#errorType);
    // The provider the meter reserved for; a call refused before it knew names its adapter's.
    const provider = this.#provider ?? this.#adapter?.provider;
    const providerName = provider === undefined ? undefined : this.#providerName(provider);
    if (providerName !== undefined && this.#provider === undefined)
      span.setAttribute("gen_ai.provider.name", providerName);
    // The provider may have vouched for the model since the span was named.
    if (this.#model !== undefined) span.updateName(this.#name());
    span.end();
    if (this.#operation === undefined || providerName === undefined) return;
    // The metrics' attributes, as the convention lists them for both.
    const attributes: Attributes = {
      "gen_ai.operation.name": capped(this.#operation),
      "gen_ai.provider.name": providerName,
      ...this.#server,
    };
    if (this.#model !== undefined)
      attributes["gen_ai.request.model"] = this.metricModel(this.#model);
    if (responseModel !== undefined) attributes["gen_ai.response.model"] = responseModel;
    this.owner.duration.record(
      (performance.now() - this.#startedAt) / 1000,
      this.#errorType === undefined ? attributes : { ...attributes, "error.type": this.#errorType },
    );
    if (usage !== undefined) {
      this.owner.tokenUsage.record(inputTokensOf(usage), {
        ...attributes,
        "gen_ai.token.type": "input",
      });
      this.owner.tokenUsage.record(usage.outputTokens, {
        ...attributes,
        "gen_ai.token.type": "output",
      });
    }
  }
}

/** The table the meter prices from, built as wrapFetch builds it (which has checked the option). */
function tableOf(pricing: WrapFetchOptions["pricing"]): PricingTable {
  if (pricing === undefined) return DEFAULT_PRICING;
  return pricing instanceof Pricing ? pricing.table : createPricing(pricing).table;
}

/** The request's URL, as the meter reads it; undefined when it is not one (the meter passes it on). */
function urlOf(input: string | URL | Request): URL | undefined {
  if (input instanceof URL) return input;
  try {
    return new URL(typeof input === "string" ? input : input.url);
  } catch {
    return undefined;
  }
}
