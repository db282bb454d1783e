/** `@allowance/otel`: OpenTelemetry spans and metrics for verification, enforcement and metering. */
export {};
