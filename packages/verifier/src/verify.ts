/**
 * Offline chain verification (spec/format.md §8). Every step runs in the order the spec gives, so
 * that a token with several faults always fails with the same code at the same link.
 */
import {
  AllowanceError,
  DEFAULT_LIMITS,
  checkPublicKey,
  decodePayload,
  getDefaultBackend,
  linkIdBytes,
  narrow,
  narrowingError,
  parentDigest,
  parseToken,
  resolveLimits,
  rootEffective,
  signingInput,
  toBase64url,
  verifySignature,
  type EffectiveGrant,
  type Ed25519Backend,
  type LinkGrant,
  type Limits,
  type Token,
  type TrustedRoots,
} from "@allowance/core";

/** Anything that can answer "is this link id revoked?" synchronously: a `Set<string>` will do. */
export interface RevocationCheck {
  has(linkId: string): boolean;
}

export interface VerifyOptions {
  /** Trusted root keys by kid (`importJwks` or `trustedRoots`). */
  readonly roots: TrustedRoots;
  /** The verifier's clock, in seconds since the epoch (or a Date); defaults to the system clock. */
  readonly now?: number | Date;
  /** Tolerated clock difference in seconds, applied to `exp` and `nbf`. Default 60. */
  readonly skew?: number;
  /** This endpoint's audience; if the token restricts `aud`, this must be in it. */
  readonly audience?: string;
  /** Revoked link ids; a revoked link rejects every chain that contains it. */
  readonly revocations?: RevocationCheck;
  readonly limits?: Partial<Limits>;
  readonly backend?: Ed25519Backend;
}

export const DEFAULT_SKEW_SECONDS = 60;

declare const verified: unique symbol;

/** One link of a verified chain. */
export interface VerifiedLink {
  readonly index: number;
  /** The link id (base64url): the revocation handle and the ledger account name. */
  readonly id: string;
  /** What this link itself states. */
  readonly grant: LinkGrant;
  /** What is in force at this link, folded from the root. */
  readonly effective: EffectiveGrant;
}

/**
 * A chain that passed `verify`. Only `verify` makes these (the brand cannot be forged without a
 * cast), so code that accepts a `VerifiedChain`, such as the enforcer, never sees an unchecked grant.
 */
export interface VerifiedChain {
  readonly [verified]: true;
  readonly token: Token;
  /** The kid of the trusted root that signed link 0. */
  readonly rootKid: string;
  readonly links: readonly VerifiedLink[];
  /** The leaf's effective grant: what the token's holder may do. */
  readonly grant: EffectiveGrant;
  /** Link ids, root first. */
  readonly linkIds: readonly string[];
  /** The leaf holder's public key. */
  readonly holder: Uint8Array;
}

export type VerifyResult = { readonly ok: true; readonly chain: VerifiedChain } | { readonly ok: false; readonly error: AllowanceError };

/** Verifies a token, throwing an AllowanceError (with `code` and `linkIndex`) if it is not valid. */
export function verify(token: string | Uint8Array | Token, options: VerifyOptions): VerifiedChain {
  if (!(options?.roots instanceof Map)) throw new TypeError('"roots" expected a Map of trusted keys (importJwks or trustedRoots)');
  const limits = options.limits === undefined ? DEFAULT_LIMITS : resolveLimits(options.limits);
  const now = toSeconds(options.now);
  const skew = options.skew ?? DEFAULT_SKEW_SECONDS;
  if (!Number.isSafeInteger(skew) || skew < 0) throw new RangeError(`"skew" expected a non-negative integer, got ${skew}`);
  const backend = options.backend ?? getDefaultBackend();
  const parsed = typeof token === "string" || token instanceof Uint8Array ? parseToken(token, limits) : token;

  const rootKid = toBase64url(parsed.rootKid);
  const root = options.roots.get(rootKid);
  if (root === undefined) throw new AllowanceError("ERR_UNKNOWN_ROOT", `no trusted root has kid ${rootKid}`, { linkIndex: 0 });

  const links: VerifiedLink[] = [];
  let signer = root.bytes;
  let digest = parsed.rootKid;
  let parentId = parsed.rootKid;
  let parent: EffectiveGrant | undefined;
  for (let index = 0; index < parsed.links.length; index++) {
    const link = parsed.links[index] as (typeof parsed.links)[number];
    // 1. The signature, over the bytes as received, before any field of the payload is read.
    const signature = verifySignature(signer, signingInput(digest, link.payload), link.signature, backend);
    if (signature !== "ok") {
      const message =
        signature === "non-canonical-s" ? "signature S is not below the group order L" : signature === "bad-key" ? "signer key is unusable" : "signature does not verify";
      throw new AllowanceError(signature === "bad-key" ? "ERR_KEY" : "ERR_SIGNATURE", message, { linkIndex: index });
    }
    // 2. The payload: canonical, well-formed, within limits.
    const grant = decodePayload(link.payload, limits, index);
    if (checkPublicKey(grant.sub) !== "ok") {
      throw new AllowanceError("ERR_KEY", "holder key (sub) is not canonical or has small order", { linkIndex: index, field: "sub" });
    }
    // 3. Narrowing against the parent's effective grant.
    let effective: EffectiveGrant;
    if (parent === undefined) {
      const rootGrant = rootEffective(grant);
      if (rootGrant === undefined) throw new AllowanceError("ERR_MALFORMED", 'the root link must state "exp"', { linkIndex: 0, field: "exp" });
      effective = rootGrant;
    } else {
      const result = narrow(parent, grant);
      if (!result.ok) throw narrowingError(result.violations, index);
      effective = result.effective;
    }
    // 4. Revocation, by the link id.
    const idBytes = linkIdBytes(parentId, link.payload);
    const id = toBase64url(idBytes);
    if (options.revocations?.has(id) === true) throw new AllowanceError("ERR_REVOKED", `link ${id} is revoked`, { linkIndex: index });
    // 5. The validity window this link states.
    if (grant.exp !== undefined && now - skew >= grant.exp) {
      throw new AllowanceError("ERR_EXPIRED", `expired at ${grant.exp}`, { linkIndex: index, field: "exp" });
    }
    if (grant.nbf !== undefined && now + skew < grant.nbf) {
      throw new AllowanceError("ERR_NOT_YET_VALID", `not valid before ${grant.nbf}`, { linkIndex: index, field: "nbf" });
    }
    links.push(Object.freeze({ index, id, grant, effective }));
    signer = grant.sub;
    digest = parentDigest(link);
    parentId = idBytes;
    parent = effective;
  }

  const leaf = links[links.length - 1] as VerifiedLink;
  if (options.audience !== undefined && leaf.effective.aud !== undefined && !leaf.effective.aud.includes(options.audience)) {
    const stating = links.findLast((l) => l.grant.aud !== undefined) as VerifiedLink;
    throw new AllowanceError("ERR_AUDIENCE", `audience ${options.audience} is not in the token's aud`, {
      linkIndex: stating.index,
      field: "aud",
    });
  }
  return Object.freeze({
    token: parsed,
    rootKid,
    links,
    grant: leaf.effective,
    linkIds: links.map((l) => l.id),
    holder: leaf.effective.holder,
  }) as unknown as VerifiedChain;
}

/** `verify` returning a result value instead of throwing for token problems. */
export function safeVerify(token: string | Uint8Array | Token, options: VerifyOptions): VerifyResult {
  try {
    return { ok: true, chain: verify(token, options) };
  } catch (error) {
    if (error instanceof AllowanceError) return { ok: false, error };
    throw error;
  }
}

function toSeconds(now: number | Date | undefined): number {
  if (now === undefined) return Math.floor(Date.now() / 1000);
  if (now instanceof Date) return Math.floor(now.getTime() / 1000);
  if (!Number.isFinite(now)) throw new RangeError(`"now" expected seconds since the epoch, got ${now}`);
  return Math.floor(now);
}
