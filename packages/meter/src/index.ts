/**
 * `@allowance/meter`: metering of LLM calls under a verified chain's budget (docs/metering.md).
 * What a user calls: wrapFetch and what reads its denials, the prices, the breaker and loop
 * detector to share between wrapped fetches, the usage log and its report, and the building blocks
 * of an adapter for another endpoint. The built-in adapters and the hosts the meter knows are on
 * `@allowance/meter/adapters`; the SQLite usage log on `@allowance/meter/sqlite`.
 */
export { METER_DENY_REASONS, denialResponse, wrapFetch } from "./wrap-fetch.js";
export type {
  DenialResponseOptions,
  MeterDenial,
  MeterDenyReason,
  MeteredFetch,
  MeterSnapshot,
  WrapFetchOptions,
} from "./wrap-fetch.js";
export { denialOf } from "./denial.js";
export {
  DEFAULT_PRICING,
  PRICING_TABLE_DATE,
  PRICING_TABLE_VERSION,
  Pricing,
  createPricing,
  maxCostOf,
  parseModelPrice,
  parsePricingTable,
  priceUsage,
} from "./pricing.js";
export type {
  CreatePricingOptions,
  ModelPrice,
  PricingTable,
  TierPrice,
  TokenUsage,
} from "./pricing.js";
export {
  chatCompletionsAdapter,
  completionsAdapter,
  embeddingsAdapter,
  responsesAdapter,
} from "./providers.js";
export type {
  BoundMode,
  CompatibleServer,
  EstimateOptions,
  JsonObject,
  OpenAiShape,
  ProviderAdapter,
  RequestEstimate,
  RequestLimits,
  StreamTally,
} from "./providers.js";
export type { SseEvent } from "./sse.js";
export { CircuitBreaker } from "./breaker.js";
export type {
  BreakerOptions,
  BreakerOutcome,
  BreakerPermit,
  BreakerSnapshot,
  BreakerState,
} from "./breaker.js";
export { LoopDetector } from "./loop.js";
export type { LoopOptions, LoopVerdict } from "./loop.js";
export {
  MemoryUsageLog,
  USAGE_DIMENSIONS,
  attachUsageLog,
  formatUsdMicros,
  renderUsageReport,
  usageReport,
} from "./usage-log.js";
export type {
  MemoryUsageLogOptions,
  UsageDimension,
  UsageFilter,
  UsageLog,
  UsageLogAttachment,
  UsageRecord,
  UsageReport,
  UsageReportOptions,
  UsageRow,
  UsageTotals,
} from "./usage-log.js";
