/**
 * `@allowance/otel`: OpenTelemetry spans and metrics for verification, enforcement and metering
 * (docs/observability.md), through `@opentelemetry/api` alone: without an SDK, every one is a no-op.
 */
export { traceVerifier } from "./verify.js";
export type { VerifyFunction } from "./verify.js";
export { instrumentEnforcer } from "./enforcer.js";
export type { EnforcerInstrumentation } from "./enforcer.js";
export { tracedWrapFetch } from "./meter.js";
export type { TelemetryOptions } from "./telemetry.js";
