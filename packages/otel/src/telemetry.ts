/**
 * What every instrumentation of this package shares: the tracer and meter it records with, how an
 * error becomes `error.type`, and the parent of a span.
 *
 * Everything goes through `@opentelemetry/api` alone: without an SDK its tracer and meter are
 * no-ops, so an instrumented verifier, enforcer or fetch behaves exactly as the plain one.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import {
  SpanStatusCode,
  context,
  metrics,
  trace,
  type Attributes,
  type Context,
  type Meter,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import { isAllowanceError, type VerifiedChain } from "@allowance/verifier";

/** The instrumentation scope every tracer and meter is asked for. */
export const SCOPE = "@allowance/otel";

/**
 * What a metric records for a value it cannot vouch for (a model no price table lists, a reason
 * no one defined), as the OpenTelemetry conventions do for values outside a known set: whoever
 * writes requests must not choose how many series a metrics backend keeps.
 */
export const OTHER = "_OTHER";

/**
 * The most characters an attribute or a span name takes from a request, an event or a grant: the
 * longest model id a grant may name (MODEL_ID, packages/core/src/patterns.ts).
 */
const MAX_ATTRIBUTE_LENGTH = 128;

/** `value`, cut to `max` characters (the last one an ellipsis) when longer; never half a surrogate pair. */
export function capped(value: string, max = MAX_ATTRIBUTE_LENGTH): string {
  if (value.length <= max) return value;
  let end = max - 1;
  const last = value.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${value.slice(0, end)}…`;
}

export interface TelemetryOptions {
  /** Default: the global tracer provider's tracer for `@allowance/otel`. */
  readonly tracer?: Tracer;
  /**
   * Default: the global meter provider's meter for `@allowance/otel`, looked up when the
   * instrumentation is made. The metrics API has no proxy: start the SDK before instrumenting, or
   * the instruments stay no-ops.
   */
  readonly meter?: Meter;
}

export interface Telemetry {
  readonly tracer: Tracer;
  readonly meter: Meter;
}

/** The options, checked: anything but a tracer and a meter is a TypeError (a misspelt key too). */
export function telemetryOf(options: TelemetryOptions | undefined, name: string): Telemetry {
  if (options === undefined)
    return { tracer: trace.getTracer(SCOPE), meter: metrics.getMeter(SCOPE) };
  // An array has no misspelt key to catch, and would be read as no options at all.
  if (typeof options !== "object" || options === null || Array.isArray(options))
    throw new TypeError(`"${name}" expected { tracer?, meter? }, got ${shown(options)}`);
  for (const key of Object.keys(options))
    if (key !== "tracer" && key !== "meter")
      throw new TypeError(`"${name}" takes tracer and meter, got ${shown(key)}`);
  const { tracer, meter } = options;
  if (tracer !== undefined && typeof (tracer as Partial<Tracer>)?.startSpan !== "function")
    throw new TypeError(`"tracer" expected an OpenTelemetry Tracer, got ${shown(tracer)}`);
  if (meter !== undefined && typeof (meter as Partial<Meter>)?.createCounter !== "function")
    throw new TypeError(`"meter" expected an OpenTelemetry Meter, got ${shown(meter)}`);
  return { tracer: tracer ?? trace.getTracer(SCOPE), meter: meter ?? metrics.getMeter(SCOPE) };
}

/**
 * `error.type` (OpenTelemetry's general attribute): an AllowanceError's code, else the error's
 * class name, else `_OTHER` as the convention says for a value that is not an error.
 */
export function errorTypeOf(error: unknown): string {
  if (isAllowanceError(error)) return capped(error.code);
  if (error instanceof Error && typeof error.name === "string") return capped(error.name);
  return OTHER;
}

/**
 * Runs what records telemetry: a fault in it (a tracer or meter that throws) never reaches the call
 * it watches, as the OpenTelemetry API itself never throws into the instrumented code.
 */
export function quietly(record: () => void): void {
  try {
    record();
  } catch {
    // Telemetry is never worth a failed call.
  }
}

/** Marks a span failed by `error`, which the caller rethrows unchanged. */
export function failed(span: Span, error: unknown): void {
  span.setAttribute("error.type", errorTypeOf(error));
  if (error instanceof Error) {
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  } else span.setStatus({ code: SpanStatusCode.ERROR });
}

/** A metered call in progress, as the enforcer's instrumentation sees it. */
export interface CallInProgress {
  readonly span: Span | undefined;
  /** `model` as a metric attribute: the name when this call can vouch for it, else `_OTHER`. */
  metricModel(model: string): string;
}

/**
 * The metered call in progress (tracedWrapFetch), so that the enforcer's spans nest under it even
 * when the application runs no OpenTelemetry context manager, and its refusals are counted under
 * the model the call vouches for.
 */
export const currentCall = new AsyncLocalStorage<CallInProgress>();

/**
 * The call span of each open hold, by reservation id: a stream's hold may be settled outside its
 * call's async context (a consumer that cancels), and its commit still belongs under that call.
 */
const holdSpans = new Map<string, Span>();
/** Holds never settled (a provider that never ends a stream) leave oldest first. */
const MAX_HOLD_SPANS = 100_000;

export function rememberHold(reservationId: string, span: Span): void {
  if (holdSpans.size >= MAX_HOLD_SPANS) holdSpans.delete(holdSpans.keys().next().value as string);
  holdSpans.set(reservationId, span);
}

export function forgetHold(reservationId: string): void {
  holdSpans.delete(reservationId);
}

/**
 * The parent of an enforcer span: the metered call that holds this reservation, else the metered
 * call in progress, else the active context.
 */
export function parentOf(reservationId: unknown): Context {
  const active = context.active();
  const held = typeof reservationId === "string" ? holdSpans.get(reservationId) : undefined;
  const span = held ?? currentCall.getStore()?.span;
  return span === undefined ? active : trace.setSpan(active, span);
}

/**
 * Who spent, as the usage log attributes it (docs/metering.md): the leaf link (the holder) and
 * the nearest label (the last labelled link, root first).
 */
export function chainAttributes(chain: VerifiedChain): Attributes {
  const attributes: Attributes = {
    "allowance.link.id": chain.linkIds[chain.linkIds.length - 1] ?? "",
    "allowance.chain.length": chain.links.length,
  };
  const label = nearestLabel(chain.links.map((l) => l.grant.label));
  if (label !== undefined) attributes["allowance.link.label"] = label;
  return attributes;
}

/** The nearest label, capped: a grant's label may be as long as the grant's string limit. */
export function nearestLabel(labels: readonly (string | null | undefined)[]): string | undefined {
  for (let i = labels.length - 1; i >= 0; i--) {
    const label = labels[i];
    if (typeof label === "string") return capped(label);
  }
  return undefined;
}

export function shown(value: unknown): string {
  if (typeof value === "string")
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === "function") return "a function";
  if (value === null) return "null";
  if (typeof value === "object") return Array.isArray(value) ? "an array" : "an object";
  return String(value);
}
