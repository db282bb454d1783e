/**
 * `@allowance/core/format`: the wire level of spec/format.md, for verifiers, tools and second
 * implementations. Canonical CBOR (§3), the payload and its keys and value rules (§4), the token's
 * binary form, domain-separation contexts, signed message, parent digests and link ids (§2, §5),
 * key ids (RFC 7638 thumbprints, §2.1), the Ed25519 verification rule (§5.4), the narrowing rule
 * (§6), limits (§7), and byte helpers. Everything here is portable: no Node built-in is imported.
 */
export {
  bytesKey,
  compareBytes,
  concatBytes,
  equalBytes,
  fromBase64url,
  randomBytes,
  sha256,
  toBase64url,
  utf8,
  utf8Length,
} from "./bytes.js";
export { ARGUMENT_DENIAL_REASONS, ARGUMENT_KINDS, ARGUMENT_NAME, TOOL_NAME } from "./arguments.js";
export type { ArgumentKind } from "./arguments.js";
export { parseStrictJson } from "./strict-json.js";
export type { StrictJsonResult } from "./strict-json.js";
export { decodeCanonical, encodeCanonical } from "./cbor.js";
export type { CborMap, CborValue } from "./cbor.js";
export { checkPublicKey, isCanonicalScalar, verifySignature } from "./ed25519/policy.js";
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
export { signingKeyOf, thumbprint } from "./keys.js";
export { resolveLimits } from "./limits.js";
export { FAR_FUTURE_SECONDS, NONCE_BYTES, narrowingError } from "./mint.js";
export { narrow, rootEffective, toolAllowed, toolCovered } from "./narrow.js";
export type { NarrowResult } from "./narrow.js";
export {
  LINK_ID_CONTEXT,
  LINK_SIGNATURE_CONTEXT,
  PARENT_HASH_CONTEXT,
  TOKEN_PREFIX,
  encodeToken,
  linkIdBytes,
  parentDigest,
  signingInput,
  signingInputs,
} from "./token.js";
