/** `@allowance/meter`: metering of LLM calls under a verified chain's budget. */
export { METER_DENY_REASONS, denialResponse, denialStatus, wrapFetch } from "./wrap-fetch.js";
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
  costOf,
  createPricing,
  modelPriceSchema,
  maxCostOf,
  outputTokensWithin,
  outputTokensWithinBound,
  parseModelPrice,
  parsePricingTable,
  priceUsage,
  pricingTableSchema,
} from "./pricing.js";
export type {
  CreatePricingOptions,
  ModelPrice,
  PricingTable,
  TierPrice,
  TokenUsage,
} from "./pricing.js";
export {
  BOUND,
  BUILTIN_ADAPTERS,
  anthropicMessages,
  azureAdapters,
  builtinAdapters,
  chatCompletionsAdapter,
  compatibleAdapters,
  completionsAdapter,
  embeddingsAdapter,
  estimateInputTokens,
  geminiBatchEmbedContents,
  geminiEmbedContent,
  geminiGenerateContent,
  geminiOpenAiChat,
  geminiOpenAiEmbeddings,
  geminiStreamGenerateContent,
  isFreeEndpoint,
  isProviderHost,
  openaiChatCompletions,
  openaiCompletions,
  openaiEmbeddings,
  openaiResponses,
  responsesAdapter,
} from "./providers.js";
export type {
  BoundMode,
  CompatibleServer,
  EstimateOptions,
  JsonObject,
  ProviderAdapter,
  RequestEstimate,
  RequestLimits,
  StreamTally,
} from "./providers.js";
export { JsonArrayParser, SseParser } from "./sse.js";
export type { SseEvent } from "./sse.js";
export { CircuitBreaker } from "./breaker.js";
export type {
  BreakerOptions,
  BreakerOutcome,
  BreakerPermit,
  BreakerSnapshot,
  BreakerState,
} from "./breaker.js";
export { LoopDetector, fingerprint, normalise } from "./loop.js";
export type { LoopOptions, LoopVerdict } from "./loop.js";
export {
  MemoryUsageLog,
  UNKNOWN,
  UNLABELLED,
  USAGE_DIMENSIONS,
  attachUsageLog,
  formatUsdMicros,
  renderUsageReport,
  summarizeUsage,
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
