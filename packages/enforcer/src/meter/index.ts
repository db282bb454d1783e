/** `@allowance/enforcer/meter`: metering of LLM calls under a verified chain's budget. */
export { denialResponse, wrapFetch } from "./wrap-fetch.js";
export type { MeterDenial, MeterDenyReason, MeteredFetch, MeterSnapshot, WrapFetchOptions } from "./wrap-fetch.js";
export {
  DEFAULT_PRICING,
  PRICING_TABLE_DATE,
  Pricing,
  costOf,
  createPricing,
  modelPriceSchema,
  outputTokensWithin,
  parseModelPrice,
  parsePricingTable,
  priceUsage,
  pricingTableSchema,
} from "./pricing.js";
export type { CreatePricingOptions, ModelPrice, PricingTable, TokenUsage } from "./pricing.js";
export { BUILTIN_ADAPTERS, anthropicMessages, estimateInputTokens, openaiChatCompletions, openaiResponses } from "./providers.js";
export type { EstimateOptions, JsonObject, ProviderAdapter, RequestEstimate } from "./providers.js";
export { SseParser } from "./sse.js";
export type { SseEvent } from "./sse.js";
export { CircuitBreaker } from "./breaker.js";
export type { BreakerOptions, BreakerOutcome, BreakerPermit, BreakerSnapshot, BreakerState } from "./breaker.js";
export { LoopDetector, fingerprint, normalise } from "./loop.js";
export type { LoopOptions, LoopVerdict } from "./loop.js";
export { MemoryUsageLog, UNKNOWN, UNLABELLED, USAGE_DIMENSIONS, attachUsageLog, formatUsdMicros, renderUsageReport, summarizeUsage, usageReport } from "./usage-log.js";
export type { MemoryUsageLogOptions, UsageDimension, UsageFilter, UsageLog, UsageLogAttachment, UsageRecord, UsageReport, UsageReportOptions, UsageRow, UsageTotals } from "./usage-log.js";
export { SqliteUsageLog } from "./sqlite-usage-log.js";
export type { SqliteUsageLogOptions } from "./sqlite-usage-log.js";
