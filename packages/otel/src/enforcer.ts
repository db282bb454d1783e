/**
 * `instrumentEnforcer`: spans for reserve, commit and release on one Enforcer, and metrics from its
 * events (spend by link, label, provider and model; open holds; denials by reason; thresholds,
 * overruns and expiries). The enforcer's methods are wrapped on the instance, from outside: its
 * decisions, results and errors are unchanged.
 */
import {
  SpanKind,
  type Attributes,
  type AttributeValue,
  type Meter,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import {
  Enforcer,
  type CommitResult,
  type Decision,
  type EnforcerEvents,
  type ReleaseResult,
} from "@allowance/enforcer";
import { METER_DENY_REASONS } from "@allowance/meter";
import { isVerifiedChain } from "@allowance/verifier";
import { listedByDefault } from "./genai.js";
import {
  OTHER,
  capped,
  chainAttributes,
  currentCall,
  failed,
  nearestLabel,
  parentOf,
  shown,
  telemetryOf,
  type TelemetryOptions,
} from "./telemetry.js";

export interface EnforcerInstrumentation {
  /** Puts the enforcer's own methods back and stops listening to its events. */
  uninstall(): void;
}

/** Enforcers instrumented now: a second instrumentation would count every charge twice. */
const instrumented = new WeakSet<Enforcer>();

/** Open holds remembered for `allowance.holds` at most; the oldest leave first. */
const MAX_OPEN_HOLDS = 100_000;

/** The reasons the enforcer and the meter give (the meter's include the enforcer's). */
const REASONS: ReadonlySet<string> = new Set(METER_DENY_REASONS);

const METHODS = [
  "reserve",
  "commit",
  "release",
  "reserveSync",
  "commitSync",
  "releaseSync",
] as const;
type Method = (typeof METHODS)[number];

/**
 * Wraps `enforcer`'s reserve, commit and release (and their `…Sync` forms) on the instance, each
 * call in a span `allowance.reserve`, `allowance.commit` or `allowance.release`, and records the
 * `allowance.*` metrics from its events. A TypeError if it is not an Enforcer or is instrumented
 * already. Instrument before reserving: holds opened earlier are not counted, and their spend
 * carries no link or label (the enforcer records a reservation's context only while someone listens).
 */
export function instrumentEnforcer(
  enforcer: Enforcer,
  telemetry?: TelemetryOptions,
): EnforcerInstrumentation {
  if (!(enforcer instanceof Enforcer))
    throw new TypeError(`"enforcer" expected an Enforcer, got ${shown(enforcer)}`);
  if (instrumented.has(enforcer))
    throw new TypeError('"enforcer" is instrumented already: uninstall the first instrumentation');
  const { tracer, meter } = telemetryOf(telemetry, "telemetry");
  const restore = METHODS.map((method) => wrapMethod(enforcer, method, tracer));
  const detach = listen(enforcer, meter);
  instrumented.add(enforcer);
  let installed = true;
  return {
    uninstall: () => {
      if (!installed) return;
      installed = false;
      for (const put of restore) put();
      detach();
      instrumented.delete(enforcer);
    },
  };
}

/** Replaces one method by a traced one on the instance; returns what puts the original back. */
function wrapMethod(enforcer: Enforcer, method: Method, tracer: Tracer): () => void {
  const own = Object.getOwnPropertyDescriptor(enforcer, method);
  const original = enforcer[method] as (...args: unknown[]) => unknown;
  const name = `allowance.${method.replace("Sync", "")}`;
  const traced = function (this: unknown, ...args: unknown[]): unknown {
    const span = tracer.startSpan(
      name,
      { kind: SpanKind.INTERNAL, attributes: requestAttributes(method, args) },
      parentOf(method.startsWith("reserve") ? undefined : args[0]),
    );
    let result: unknown;
    try {
      result = original.apply(enforcer, args);
    } catch (error) {
      failed(span, error);
      span.end();
      throw error;
    }
    if (!(result instanceof Promise)) {
      ended(span, method, result);
      return result;
    }
    return result.then(
      (value: unknown) => {
        ended(span, method, value);
        return value;
      },
      (error: unknown) => {
        failed(span, error);
        span.end();
        throw error;
      },
    );
  };
  Object.defineProperty(enforcer, method, {
    value: traced,
    writable: true,
    configurable: true,
    enumerable: false,
  });
  return () => {
    // Someone who wrapped it after us keeps their wrapper.
    if (enforcer[method] !== traced) return;
    if (own === undefined) delete (enforcer as unknown as Record<string, unknown>)[method];
    else Object.defineProperty(enforcer, method, own);
  };
}

/**
 * The span's attributes from the call's arguments, read defensively: a hostile request is the
 * enforcer's to refuse, and reading it here must neither throw nor change what the enforcer sees.
 */
function requestAttributes(method: Method, args: readonly unknown[]): Attributes {
  const attributes: Attributes = {};
  try {
    if (method.startsWith("reserve")) {
      const request = args[0];
      if (typeof request !== "object" || request === null) return attributes;
      const r = request as Record<string, unknown>;
      if (isVerifiedChain(r.chain)) Object.assign(attributes, chainAttributes(r.chain));
      copy(attributes, "allowance.provider", r.provider, "string");
      copy(attributes, "allowance.model", r.model, "string");
      copy(attributes, "allowance.tool", r.tool, "string");
      copy(attributes, "allowance.request.tokens", r.tokens, "number");
      copy(attributes, "allowance.request.usd_micros", r.usdMicros, "number");
      copy(attributes, "allowance.request.risk", r.risk, "number");
      return attributes;
    }
    copy(attributes, "allowance.reservation.id", args[0], "string");
    const usage = args[1];
    if (method.startsWith("commit") && typeof usage === "object" && usage !== null) {
      const u = usage as Record<string, unknown>;
      copy(attributes, "allowance.usage.tokens", u.tokens, "number");
      copy(attributes, "allowance.usage.usd_micros", u.usdMicros, "number");
      copy(attributes, "allowance.usage.risk", u.risk, "number");
    }
  } catch {
    // A getter that throws: the enforcer reads the same field and reports it.
  }
  return attributes;
}

function copy(
  attributes: Attributes,
  name: string,
  value: unknown,
  type: "string" | "number",
): void {
  if (typeof value !== type) return;
  // A request's strings are the enforcer's to check, after this: cut here, whatever their length.
  attributes[name] = typeof value === "string" ? capped(value) : (value as AttributeValue);
}

/** A denial's reason as a metric attribute: one the enforcer or the meter defines, else `_OTHER`. */
function reasonOf(reason: string): string {
  return REASONS.has(reason) ? reason : OTHER;
}

/**
 * The model of a refusal as a metric attribute. The meter refuses before pricing, and for want
 * of a price, whatever model a request names: kept only when a traced call vouches for it (its
 * price table lists it), or outside one when the default table lists it; else `_OTHER`.
 */
function refusedModel(model: string): string {
  const call = currentCall.getStore();
  if (call !== undefined) return call.metricModel(model);
  return listedByDefault(model) ? capped(model) : OTHER;
}

/** The result's attributes; the span ends. A decision of DENY is an answer, not an error. */
function ended(span: Span, method: Method, result: unknown): void {
  if (method.startsWith("reserve")) {
    const decision = result as Decision;
    span.setAttribute("allowance.decision", decision.decision);
    if (decision.decision === "DENY") {
      span.setAttributes({
        "allowance.deny.reason": decision.reason,
        "allowance.deny.field": decision.field,
        "allowance.deny.link_index": decision.linkIndex,
      });
    } else {
      span.setAttributes({
        "allowance.reservation.id": decision.reservationId,
        "allowance.reserved.tokens": decision.amounts.tokens,
        "allowance.reserved.usd_micros": decision.amounts.usdMicros,
      });
    }
  } else if (method.startsWith("commit")) {
    const commit = result as CommitResult;
    span.setAttribute("allowance.commit.status", commit.status);
    if (commit.status === "committed") {
      span.setAttributes({
        "allowance.commit.late": commit.late,
        "allowance.commit.already": commit.already,
      });
      const overrun = Object.keys(commit.overrun);
      if (overrun.length > 0) span.setAttribute("allowance.overrun", overrun);
    }
  } else {
    const release = result as ReleaseResult;
    span.setAttributes({
      "allowance.release.status": release.status,
      "allowance.release.already": release.already,
    });
  }
  span.end();
}

/** The metrics, from the enforcer's events; returns what stops listening. */
function listen(enforcer: Enforcer, meter: Meter): () => void {
  const spend = meter.createCounter("allowance.spend", {
    description:
      "Micro-dollars charged by commits, by leaf link, nearest label, provider and model",
    unit: "{usd_micro}",
  });
  const tokens = meter.createCounter("allowance.tokens", {
    description: "Tokens charged by commits, by leaf link, nearest label, provider and model",
    unit: "{token}",
  });
  const holds = meter.createUpDownCounter("allowance.holds", {
    description: "Reservations held and not yet committed, released or expired",
    unit: "{hold}",
  });
  const denials = meter.createCounter("allowance.denials", {
    description: "Reservations denied and metered calls refused, by reason",
    unit: "{denial}",
  });
  const thresholds = meter.createCounter("allowance.thresholds", {
    description: "Caps crossing 50, 80 and 100 percent of their spend, by link and field",
    unit: "{crossing}",
  });
  const overruns = meter.createCounter("allowance.overruns", {
    description: "Commits that charged more than their hold, by kind",
    unit: "{overrun}",
  });
  const expirations = meter.createCounter("allowance.expirations", {
    description: "Holds that released themselves at the end of their TTL",
    unit: "{hold}",
  });

  // Only holds this instrumentation saw open are counted down: the gauge never goes below zero.
  const open = new Set<string>();
  const closed = (reservationId: string) => {
    if (open.delete(reservationId)) holds.add(-1);
  };
  const listeners = {
    reserved: ({ reservationId }: { reservationId: string }) => {
      // The same hold reported again (a retried reservation answered from the ledger) is one hold.
      if (open.has(reservationId)) return;
      if (open.size >= MAX_OPEN_HOLDS) closed(open.values().next().value as string);
      open.add(reservationId);
      holds.add(1);
    },
    committed: (event: EnforcerEvents["committed"][0]) => {
      closed(event.reservationId);
      const attributes: Attributes = {};
      const leaf = event.linkIds[event.linkIds.length - 1];
      if (leaf !== undefined) attributes["allowance.link.id"] = leaf;
      const label = nearestLabel(event.labels);
      if (label !== undefined) attributes["allowance.link.label"] = label;
      // What was charged: a hold the enforcer allowed and settled (through the meter, a model the
      // provider answered), named as reserved.
      if (event.provider !== undefined) attributes["allowance.provider"] = capped(event.provider);
      if (event.model !== undefined) attributes["allowance.model"] = capped(event.model);
      if (event.tool !== undefined) attributes["allowance.tool"] = capped(event.tool);
      spend.add(event.charged.usdMicros, attributes);
      tokens.add(event.charged.tokens, attributes);
    },
    released: ({ reservationId }: { reservationId: string }) => closed(reservationId),
    expired: ({ reservationId }: { reservationId: string }) => {
      closed(reservationId);
      expirations.add(1);
    },
    denied: (event: EnforcerEvents["denied"][0]) => {
      const attributes: Attributes = {
        "allowance.deny.reason": reasonOf(event.decision.reason),
        "allowance.deny.link_index": event.decision.linkIndex,
      };
      const label = nearestLabel(event.labels);
      if (label !== undefined) attributes["allowance.link.label"] = label;
      denials.add(1, attributes);
    },
    refused: (event: EnforcerEvents["refused"][0]) => {
      const attributes: Attributes = { "allowance.deny.reason": reasonOf(event.reason) };
      const label = nearestLabel(event.labels);
      if (label !== undefined) attributes["allowance.link.label"] = label;
      if (event.provider !== undefined) attributes["allowance.provider"] = capped(event.provider);
      if (event.model !== undefined) attributes["allowance.model"] = refusedModel(event.model);
      denials.add(1, attributes);
    },
    threshold: (event: EnforcerEvents["threshold"][0]) =>
      thresholds.add(1, {
        "allowance.link.id": event.linkId,
        "allowance.limit.field": event.field,
        "allowance.threshold.percent": event.percent,
      }),
    overrun: (event: EnforcerEvents["overrun"][0]) =>
      overruns.add(1, { "allowance.limit.kind": event.kind }),
  };
  const on = (subscribe: boolean) => {
    const method = subscribe ? "on" : "off";
    enforcer[method]("reserved", listeners.reserved);
    enforcer[method]("committed", listeners.committed);
    enforcer[method]("released", listeners.released);
    enforcer[method]("expired", listeners.expired);
    enforcer[method]("denied", listeners.denied);
    enforcer[method]("refused", listeners.refused);
    enforcer[method]("threshold", listeners.threshold);
    enforcer[method]("overrun", listeners.overrun);
  };
  on(true);
  return () => on(false);
}
