export {
  DENY_REASONS,
  ENFORCER_MODES,
  Enforcer,
  MAX_REQUEST_NAME_LENGTH,
  MAX_TTL_SECONDS,
  chainLabels,
  createEnforcer,
} from "./enforcer.js";
export { MAX_IDEMPOTENCY_KEY_LENGTH } from "./idempotency.js";
export type {
  CheckResult,
  CommitResult,
  Decision,
  DenyReason,
  EnforcerEvents,
  EnforcerMode,
  EnforcerOptions,
  ExtendResult,
  Fits,
  LimitRemaining,
  LinkRemaining,
  OveragePolicy,
  ProviderStatus,
  ReleaseResult,
  ReservationContext,
  RemainingReport,
  ReserveOptions,
  ReserveRequest,
  SettleOptions,
  SettleResult,
  ShadowedDecision,
  Usage,
} from "./enforcer.js";
export {
  LINE_KINDS,
  MAX_AMOUNT,
  MAX_CLOCK_SKEW_MS,
  MAX_HOLD_MS,
  MAX_NAME_LENGTH,
  MAX_TIME_MS,
  SynchronousLedger,
  THRESHOLD_PERCENTS,
  isSyncLedger,
  rootOfReservation,
} from "./ledger.js";
export type {
  AccountRef,
  Amounts,
  Balance,
  BalancesOutcome,
  ChargedLine,
  CommitOptions,
  CommitOutcome,
  ExtendOutcome,
  Ledger,
  LedgerClockOptions,
  LedgerLine,
  LineKind,
  ReleaseOutcome,
  ReserveOp,
  ReserveOutcome,
  SyncLedger,
  ThresholdPercent,
  WouldBe,
} from "./ledger.js";
export { MemoryLedger } from "./memory-ledger.js";
export { RECEIPT_PROBLEMS, decodeReceipt, receiptToJSON, verifyReceipts } from "./receipts.js";
export type {
  Receipt,
  ReceiptEntry,
  ReceiptJSON,
  ReceiptProblem,
  ReceiptProblemKind,
  ReceiptsReport,
  RootReceipts,
  VerifyReceiptsOptions,
} from "./receipts.js";
export type { MemoryLedgerOptions } from "./memory-ledger.js";
export { parseRiskPolicy, riskOf, riskPolicySchema } from "./policy.js";
export type { RiskPolicy } from "./policy.js";
export { EVENT_NAMES, attachWebhook, signWebhook, verifyWebhookSignature } from "./webhook.js";
export type { EventName, WebhookEnvelope, WebhookOptions, WebhookSink } from "./webhook.js";
