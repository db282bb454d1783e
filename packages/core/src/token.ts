/**
 * The token container (spec/format.md §2 and §5): the chain of links, its binary and string forms,
 * the signature input, and the hashes that bind a link to its parent and name it.
 */
import { concatBytes, fromBase64url, sha256, toBase64url, utf8, utf8Length } from "./bytes.js";
import { decodeCanonical, encodeCanonical } from "./cbor.js";
import { AllowanceError } from "./errors.js";
import { parseTokenFast } from "./fast-decode.js";
import { decodePayload, type LinkGrant } from "./grant.js";
import { DEFAULT_LIMITS, resolveLimits, type Limits } from "./limits.js";

/** The prefix of the string form: versioned, and distinctive enough for secret scanners. */
export const TOKEN_PREFIX = "alw1_";

/** Domain-separation strings (spec/format.md §5), each ending in a zero byte. */
export const LINK_SIGNATURE_CONTEXT = utf8("allowance-link-v1\0");
export const PARENT_HASH_CONTEXT = utf8("allowance-parent-v1\0");
export const LINK_ID_CONTEXT = utf8("allowance-id-v1\0");

/** One signed link: canonical CBOR payload bytes and a 64-byte Ed25519 signature. */
export interface Link {
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
}

/**
 * A parsed token whose signatures have NOT been checked. Nothing in it is trustworthy until
 * `verify` (in @allowance/verifier) turns it into a verified chain.
 */
export interface Token {
  /** The RFC 7638 thumbprint of the root key, raw 32 bytes: which trusted root signed link 0. */
  readonly rootKid: Uint8Array;
  readonly links: readonly Link[];
}

/** The message that link `i`'s signature covers: context, parent digest, payload. */
export function signingInput(parentDigest: Uint8Array, payload: Uint8Array): Uint8Array {
  return concatBytes(LINK_SIGNATURE_CONTEXT, parentDigest, payload);
}

/**
 * signingInput (spec/format.md §5.2) of each link from `first` on, for a verifier: the context,
 * the parent's digest (the root kid for link 0), the payload. They depend on the bytes alone, so
 * they are all built before the first check, as views of one buffer: one allocation per chain,
 * not per link.
 */
export function signingInputs(parsed: Token, first: number): Uint8Array[] {
  const context = LINK_SIGNATURE_CONTEXT;
  let size = 0;
  for (let index = first; index < parsed.links.length; index++)
    size += context.length + 32 + (parsed.links[index] as Link).payload.length;
  const buffer = new Uint8Array(size);
  const messages: Uint8Array[] = [];
  let offset = 0;
  for (let index = first; index < parsed.links.length; index++) {
    const digest = index === 0 ? parsed.rootKid : parentDigest(parsed.links[index - 1] as Link);
    const { payload } = parsed.links[index] as Link;
    const start = offset;
    buffer.set(context, offset);
    offset += context.length;
    buffer.set(digest, offset);
    offset += digest.length;
    buffer.set(payload, offset);
    offset += payload.length;
    messages.push(buffer.subarray(start, offset));
  }
  return messages;
}

/** What the next link's signature is bound to: a hash of this whole link as received. */
export function parentDigest(link: Link): Uint8Array {
  return sha256(PARENT_HASH_CONTEXT, link.payload, link.signature);
}

/** A link's id: a hash over its parent's id (the root kid for link 0) and its payload. */
export function linkIdBytes(parentId: Uint8Array, payload: Uint8Array): Uint8Array {
  return sha256(LINK_ID_CONTEXT, parentId, payload);
}

/** Every link's id, root first, as base64url strings. */
export function linkIds(token: Token): string[] {
  checkedToken(token);
  let parentId = token.rootKid;
  return token.links.map((link) => {
    parentId = linkIdBytes(parentId, link.payload);
    return toBase64url(parentId);
  });
}

/**
 * A Token object, checked for its shape before it is read: a caller's `null` or stray object is a
 * TypeError naming "token", not a crash inside the encoder. What the bytes say is `parseToken`'s.
 */
function checkedToken(token: Token): Token {
  const value = token as Partial<Token> | null;
  if (
    typeof value !== "object" ||
    value === null ||
    !(value.rootKid instanceof Uint8Array) ||
    !Array.isArray(value.links) ||
    !value.links.every(
      (link: Partial<Link> | null) =>
        link?.payload instanceof Uint8Array && link.signature instanceof Uint8Array,
    )
  )
    throw new TypeError(
      '"token" expected a Token (parseToken, mint or attenuate): a root kid and links of bytes',
    );
  return token;
}

export function encodeToken(token: Token): Uint8Array {
  checkedToken(token);
  return encodeCanonical([
    token.rootKid,
    ...token.links.map((link) => [link.payload, link.signature]),
  ]);
}

export function formatToken(token: Token): string {
  return TOKEN_PREFIX + toBase64url(encodeToken(token));
}

/** SHA-256 of the token's binary form; presentations sign it. */
export function tokenHash(token: Token): Uint8Array {
  return sha256(encodeToken(token));
}

/**
 * Parses the string or binary form, bounded by `limits` at every step before the work it guards.
 * Checks structure only: no signature is verified and no payload is decoded here.
 */
export function parseToken(input: string | Uint8Array, limits: Limits = DEFAULT_LIMITS): Token {
  // A NaN or missing limit would fail every comparison below, and so pass every check.
  limits = resolveLimits(limits);
  let bytes: Uint8Array;
  if (typeof input === "string") {
    // UTF-8 bytes, not UTF-16 units, so that every implementation counts alike (spec/format.md §7).
    // A UTF-8 length is never below the UTF-16 length, so a string too long in units needs no
    // count; nor above three times it, so neither does one short enough for that to be within.
    const over = input.length > limits.maxTokenChars;
    const size = over
      ? input.length
      : input.length * 3 <= limits.maxTokenChars
        ? 0
        : utf8Length(input);
    if (over || size > limits.maxTokenChars) {
      throw new AllowanceError(
        "ERR_LIMIT",
        `token text has ${over ? "at least " : ""}${size} UTF-8 bytes, the limit is ${limits.maxTokenChars}`,
        { limit: limits.maxTokenChars, actual: size },
      );
    }
    if (!input.startsWith(TOKEN_PREFIX)) {
      throw new AllowanceError("ERR_MALFORMED", `token must start with ${TOKEN_PREFIX}`);
    }
    const decoded = fromBase64url(input.slice(TOKEN_PREFIX.length));
    if (decoded === undefined) {
      throw new AllowanceError("ERR_MALFORMED", "token body is not canonical unpadded base64url");
    }
    bytes = decoded;
  } else if (input instanceof Uint8Array) {
    // Our own copy: the caller's buffer could change between the checks and their use.
    bytes = Uint8Array.from(input);
  } else {
    throw new TypeError(`"token" expected a string or Uint8Array, got ${typeof input}`);
  }
  if (bytes.length > limits.maxTokenBytes) {
    throw new AllowanceError(
      "ERR_LIMIT",
      `token has ${bytes.length} bytes, the limit is ${limits.maxTokenBytes}`,
      {
        limit: limits.maxTokenBytes,
        actual: bytes.length,
      },
    );
  }
  // The plain case in one pass; anything else takes the reference path, which names the error.
  return parseTokenFast(bytes, limits) ?? parseTokenReference(bytes, limits);
}

/** The container's structure from bytes already within `maxTokenBytes`: the reference path. */
export function parseTokenReference(bytes: Uint8Array, limits: Limits): Token {
  const value = decodeCanonical(bytes);
  if (!Array.isArray(value) || value.length < 2) {
    throw new AllowanceError(
      "ERR_MALFORMED",
      "a token is an array of the root kid and at least one link",
    );
  }
  const count = value.length - 1;
  if (count > limits.maxLinks) {
    throw new AllowanceError(
      "ERR_LIMIT",
      `token has ${count} links, the limit is ${limits.maxLinks}`,
      {
        limit: limits.maxLinks,
        actual: count,
      },
    );
  }
  const [rootKid, ...rawLinks] = value as unknown[];
  if (!(rootKid instanceof Uint8Array) || rootKid.length !== 32) {
    throw new AllowanceError("ERR_MALFORMED", "the root kid must be 32 bytes");
  }
  const links = rawLinks.map((raw, linkIndex): Link => {
    if (
      !Array.isArray(raw) ||
      raw.length !== 2 ||
      !(raw[0] instanceof Uint8Array) ||
      !(raw[1] instanceof Uint8Array)
    ) {
      throw new AllowanceError(
        "ERR_MALFORMED",
        "a link is an array of payload bytes and signature bytes",
        { linkIndex },
      );
    }
    const [payload, signature] = raw as [Uint8Array, Uint8Array];
    if (payload.length > limits.maxPayloadBytes) {
      throw new AllowanceError(
        "ERR_LIMIT",
        `payload has ${payload.length} bytes, the limit is ${limits.maxPayloadBytes}`,
        {
          linkIndex,
          limit: limits.maxPayloadBytes,
          actual: payload.length,
        },
      );
    }
    if (signature.length !== 64) {
      throw new AllowanceError(
        "ERR_MALFORMED",
        `a signature is 64 bytes, got ${signature.length}`,
        { linkIndex },
      );
    }
    return { payload, signature };
  });
  return { rootKid, links };
}

/**
 * Decodes every payload WITHOUT checking any signature: for display (`allowance inspect`) and for
 * a holder appending to its own token. Never base a decision on what this returns.
 */
export function readUnverifiedGrants(token: Token, limits: Limits = DEFAULT_LIMITS): LinkGrant[] {
  limits = resolveLimits(limits);
  checkedToken(token);
  return token.links.map((link, linkIndex) => decodePayload(link.payload, limits, linkIndex));
}
