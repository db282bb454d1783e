/**
 * @allowance/core: what a user calls to make, read and hand on tokens. The wire-level pieces
 * (canonical CBOR, payload and token encodings, hashes and contexts, key ids, the signature rule)
 * are `@allowance/core/format`; the node:crypto backend is `@allowance/core/node`.
 */
export { AllowanceError, ERROR_CODES, isAllowanceError } from "./errors.js";
export type { AllowanceErrorJSON, AllowanceErrorOptions, ErrorCode, Violation } from "./errors.js";
export { DEFAULT_LIMITS } from "./limits.js";
export type { Limits } from "./limits.js";
export type { Ed25519Backend } from "./ed25519/backend.js";
export { nobleBackend } from "./ed25519/noble.js";
export { getDefaultBackend, setDefaultBackend } from "./ed25519/policy.js";
export {
  exportJwks,
  exportPrivateJwk,
  exportPublicJwk,
  generateKeyPair,
  importJwks,
  importPrivateJwk,
  importPublicJwk,
  keyPairFromSeed,
  kidOf,
  publicKeyFromBytes,
  publicKeyOf,
  trustedRoots,
} from "./keys.js";
export type { Ed25519Jwk, Jwks, KeyPair, PublicKey, TrustedRoots } from "./keys.js";
export type { EffectiveGrant, GrantFields, LinkGrant, ProviderGrant, RateWindow } from "./grant.js";
export { formatToken, linkIds, parseToken, readUnverifiedGrants, tokenHash } from "./token.js";
export type { Link, Token } from "./token.js";
export { attenuate, mint } from "./mint.js";
export type { AttenuateOptions, MintOptions } from "./mint.js";
export { checkArguments, checkArgumentsJson } from "./arguments.js";
export type {
  ArgumentConstraint,
  ArgumentDenial,
  ArgumentDenialReason,
  ArgumentScalar,
  ToolArguments,
} from "./arguments.js";
export { effectiveToJSON, grantToJSON } from "./json.js";
export type { EffectiveGrantJSON, GrantJSON } from "./json.js";
