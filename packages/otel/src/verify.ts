/**
 * `traceVerifier`: a span per verification, and a count of verifications by outcome. The verify
 * path itself never loads OpenTelemetry: only a verifier passed through here records anything.
 */
import { context, type Attributes, type Counter, type Span } from "@opentelemetry/api";
import type { VerifiedChain, Verifier, verify } from "@allowance/verifier";
import { isAllowanceError } from "@allowance/verifier";
import {
  capped,
  chainAttributes,
  errorTypeOf,
  failed,
  shown,
  telemetryOf,
  type TelemetryOptions,
} from "./telemetry.js";

/** `verify` from `@allowance/verifier`, or any function with its signature. */
export type VerifyFunction = typeof verify;

/**
 * `verify` (or a `Verifier`) that opens a span `allowance.verify` around every call and counts
 * `allowance.verifications`. Results, errors and the prefix cache are the wrapped verifier's, unchanged.
 */
export function traceVerifier(verify: VerifyFunction, telemetry?: TelemetryOptions): VerifyFunction;
export function traceVerifier(verifier: Verifier, telemetry?: TelemetryOptions): Verifier;
export function traceVerifier(
  target: VerifyFunction | Verifier,
  telemetry?: TelemetryOptions,
): VerifyFunction | Verifier {
  const { tracer, meter } = telemetryOf(telemetry, "telemetry");
  const verifications = meter.createCounter("allowance.verifications", {
    description: "Token verifications, by outcome (valid, invalid, error) and error.type",
    unit: "{verification}",
  });
  const traced = <A extends unknown[]>(call: (...args: A) => VerifiedChain) => {
    return (...args: A): VerifiedChain => {
      const span = tracer.startSpan(
        "allowance.verify",
        { attributes: callAttributes(args[1]) },
        context.active(),
      );
      try {
        const chain = call(...args);
        const attributes = chainAttributes(chain);
        attributes["allowance.root.kid"] = chain.rootKid;
        attributes["allowance.verify.outcome"] = "valid";
        span.setAttributes(attributes);
        verifications.add(1, { "allowance.verify.outcome": "valid" });
        return chain;
      } catch (error) {
        endFailed(span, error, verifications);
        throw error;
      } finally {
        span.end();
      }
    };
  };
  if (typeof target === "function") return traced(target);
  if (
    typeof target !== "object" ||
    target === null ||
    typeof (target as Partial<Verifier>).verify !== "function"
  )
    throw new TypeError(
      `"verifier" expected verify or a Verifier from createVerifier, got ${shown(target)}`,
    );
  const verifier = target;
  return Object.freeze({
    cache: verifier.cache,
    verify: traced(
      (token: Parameters<Verifier["verify"]>[0], options?: Parameters<Verifier["verify"]>[1]) =>
        verifier.verify(token, options),
    ),
  });
}

/** What a call's options say that is worth a span attribute: the audience, when it is a string. */
function callAttributes(options: unknown): Attributes {
  if (typeof options !== "object" || options === null) return {};
  try {
    const audience = (options as { audience?: unknown }).audience;
    return typeof audience === "string" ? { "allowance.audience": capped(audience) } : {};
  } catch {
    // A getter that throws is verify's to report, not ours.
    return {};
  }
}

function endFailed(span: Span, error: unknown, verifications: Counter): void {
  // A token that is not valid is verify's answer ("invalid"); a TypeError or RangeError is a misuse
  // of the API ("error").
  const outcome = isAllowanceError(error) ? "invalid" : "error";
  span.setAttribute("allowance.verify.outcome", outcome);
  if (isAllowanceError(error) && error.linkIndex !== undefined)
    span.setAttribute("allowance.error.link_index", error.linkIndex);
  failed(span, error);
  verifications.add(1, { "allowance.verify.outcome": outcome, "error.type": errorTypeOf(error) });
}
