export { DEFAULT_SKEW_SECONDS, safeVerify, verify } from "./verify.js";
export type { RevocationCheck, VerifiedChain, VerifiedLink, VerifyOptions, VerifyResult } from "./verify.js";
export { AllowanceError, isAllowanceError } from "@allowance/core";
export type { ErrorCode, Violation } from "@allowance/core";
