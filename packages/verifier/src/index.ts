export { DEFAULT_SKEW_SECONDS, createVerifier, safeVerify, verify } from "./verify.js";
export type {
  RevocationCheck,
  VerifiedChain,
  VerifiedLink,
  Verifier,
  VerifierOptions,
  VerifyCallOptions,
  VerifyOptions,
  VerifyResult,
} from "./verify.js";
export { isVerifiedChain } from "./verified.js";
export { LruPrefixCache } from "./cache.js";
export type { PrefixCache, PrefixEntry } from "./cache.js";
export {
  DEFAULT_PRESENTATION_MAX_AGE_SECONDS,
  PRESENTATION_CONTEXT,
  PRESENTATION_PREFIX,
  present,
  verifyPresentation,
} from "./presentation.js";
export type {
  PresentOptions,
  PresentationClaims,
  RequestBody,
  RequestBodySource,
  VerifiedPresentation,
  VerifyPresentationOptions,
} from "./presentation.js";
export { MemoryReplayCache } from "./replay.js";
export type { MemoryReplayCacheOptions, ReplayCache } from "./replay.js";
export { MemoryRevocationStore } from "./revocation.js";
export type { RevocationStore } from "./revocation.js";
export { AllowanceError, ERROR_CODES, isAllowanceError } from "@allowance/core";
export type { ErrorCode, Violation } from "@allowance/core";
export {
  AUTH_SCHEME,
  allowanceMiddleware,
  createAuthorizer,
  rejectionResponse,
  withAllowance,
} from "./middleware.js";
export { TOOL_CALL_CODES } from "./tool-calls.js";
export type {
  ToolCall,
  ToolCallAnswer,
  ToolCallCode,
  ToolCallExtractor,
  ToolCallRequest,
  ToolCallSource,
} from "./tool-calls.js";
export type {
  AllowanceContext,
  AuthorizeOptions,
  AuthorizeResult,
  Authorizer,
  FetchHandler,
  NodeMiddleware,
  ProblemBody,
  Rejection,
} from "./middleware.js";
