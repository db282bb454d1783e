export { AllowanceError, ERROR_CODES, isAllowanceError } from "./errors.js";
export type { AllowanceErrorOptions, ErrorCode, Violation } from "./errors.js";
export { DEFAULT_LIMITS, resolveLimits } from "./limits.js";
export type { Limits } from "./limits.js";
export {
  compareBytes,
  concatBytes,
  equalBytes,
  fromBase64url,
  sha256,
  toBase64url,
} from "./bytes.js";
export { decodeCanonical, encodeCanonical } from "./cbor.js";
export type { CborMap, CborValue } from "./cbor.js";
export type { Ed25519Backend } from "./ed25519/backend.js";
export { nodeBackend } from "./ed25519/node.js";
export { nobleBackend } from "./ed25519/noble.js";
export {
  checkPublicKey,
  getDefaultBackend,
  isCanonicalScalar,
  setDefaultBackend,
  verifySignature,
} from "./ed25519/policy.js";
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
export {
  AUDIENCE,
  MAX_DEPTH,
  MAX_RATE_SECONDS,
  MODEL_ID,
  PAYLOAD_KEYS,
  PROVIDER_NAME,
  TOOL_PATTERN,
  checkGrantLimits,
  compareText,
  decodePayload,
  encodePayload,
  parseGrantFields,
} from "./grant.js";
export type { EffectiveGrant, GrantFields, LinkGrant, ProviderGrant, RateWindow } from "./grant.js";
export { narrow, rootEffective, toolAllowed, toolCovered } from "./narrow.js";
export type { NarrowResult } from "./narrow.js";
export {
  LINK_ID_CONTEXT,
  LINK_SIGNATURE_CONTEXT,
  PARENT_HASH_CONTEXT,
  TOKEN_PREFIX,
  encodeToken,
  formatToken,
  linkIdBytes,
  linkIds,
  parentDigest,
  parseToken,
  readUnverifiedGrants,
  signingInput,
  tokenHash,
} from "./token.js";
export type { Link, Token } from "./token.js";
export { NONCE_BYTES, attenuate, mint, narrowingError } from "./mint.js";
export type { AttenuateOptions, MintOptions } from "./mint.js";
export { grantToJSON, effectiveToJSON } from "./json.js";
export type { GrantJSON, EffectiveGrantJSON } from "./json.js";
