/**
 * Offline chain verification (spec/format.md §8). Every step runs in the order the spec gives, so
 * that a token with several faults always fails with the same code at the same link.
 */
import {
  AllowanceError,
  getDefaultBackend,
  parseToken,
  type EffectiveGrant,
  type Ed25519Backend,
  type Link,
  type LinkGrant,
  type Limits,
  type Token,
  type TrustedRoots,
} from "@allowance/core";
import {
  checkPublicKey,
  concatBytes,
  decodePayload,
  encodeToken,
  equalBytes,
  fromBase64url,
  linkIdBytes,
  narrow,
  narrowingError,
  rootEffective,
  sha256,
  signingInputs,
  thumbprint,
  toBase64url,
  verifySignature,
} from "@allowance/core/format";
import { LruPrefixCache, type PrefixCache } from "./cache.js";
import {
  MAX_SKEW_SECONDS,
  checkedClock,
  checkedInteger,
  checkedKnownOptions,
  checkedLimits,
  checkedMethods,
  checkedNow,
  checkedOptions,
  checkedString,
  optionNames,
  shown,
} from "./inputs.js";
import { freezeLink, isVerifiedLink, registerChain, registerLink } from "./verified.js";

/** Anything that can answer "is this link id revoked?" synchronously: a `Set<string>` will do. */
export interface RevocationCheck {
  has(linkId: string): boolean;
}

export interface VerifyOptions {
  /** Trusted root keys by kid (`importJwks` or `trustedRoots`). */
  readonly roots: TrustedRoots;
  /**
   * The verifier's clock: a function returning epoch milliseconds, as `Date.now` (the default)
   * does. Read once per call; the time is its answer rounded down to a second. Anything but a
   * function is a TypeError; an answer that is not an integer from 10^11 (1973) to 2^53 − 1, a
   * RangeError (spec/format.md §8).
   */
  readonly now?: () => number;
  /** Tolerated clock difference in whole seconds (0 to 3600), applied to `exp` and `nbf`. Default 60. */
  readonly skewSeconds?: number;
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

export type VerifyResult =
  | { readonly ok: true; readonly chain: VerifiedChain }
  | { readonly ok: false; readonly error: AllowanceError };

/**
 * Verifies a token, throwing an AllowanceError (with `code` and `linkIndex`) if it is not valid, and
 * a TypeError or RangeError for a bad option (spec/format.md §8).
 */
export function verify(token: string | Uint8Array | Token, options: VerifyOptions): VerifiedChain {
  const settings = resolveSettings(
    checkedKnownOptions(checkedOptions(options, "options", false), "options", VERIFY_OPTIONS),
  );
  return verifyWithSettings(token, settings, checkedCall(options), options.revocations, undefined);
}

/** `verify` returning a result value instead of throwing for token problems. */
export function safeVerify(
  token: string | Uint8Array | Token,
  options: VerifyOptions,
): VerifyResult {
  try {
    return { ok: true, chain: verify(token, options) };
  } catch (error) {
    if (error instanceof AllowanceError) return { ok: false, error };
    throw error;
  }
}

export interface VerifierOptions extends Omit<VerifyOptions, "audience" | "revocations"> {
  /** Entries in the verified-prefix cache; default 10,000. */
  readonly cacheSize?: number;
  /** A cache of your own (for instance, one shared by several verifiers with the same roots). */
  readonly cache?: PrefixCache;
  /** Checked on every call. */
  readonly revocations?: RevocationCheck;
}

export type VerifyCallOptions = Pick<VerifyOptions, "now" | "audience" | "revocations">;

/** The members of each options object (spec/format.md §8): any other is a TypeError. */
const VERIFY_OPTIONS = optionNames<VerifyOptions>()([
  "roots",
  "now",
  "skewSeconds",
  "audience",
  "revocations",
  "limits",
  "backend",
]);
const VERIFIER_OPTIONS = optionNames<VerifierOptions>()([
  "roots",
  "now",
  "skewSeconds",
  "limits",
  "backend",
  "cacheSize",
  "cache",
  "revocations",
]);
const CALL_OPTIONS = optionNames<VerifyCallOptions>()(["now", "audience", "revocations"]);

/** A verifier with fixed roots and limits and a verified-prefix cache. */
export interface Verifier {
  verify(token: string | Uint8Array | Token, options?: VerifyCallOptions): VerifiedChain;
  readonly cache: PrefixCache;
}

export function createVerifier(options: VerifierOptions): Verifier {
  const { cacheSize, cache, now, ...rest } = checkedKnownOptions(
    checkedOptions(options, "options", false),
    "options",
    VERIFIER_OPTIONS,
  );
  // Roots, limits, skew and backend are fixed for the verifier's life, as its cache assumes.
  const settings = resolveSettings(rest);
  // The verifier's clock, unless a call brings its own.
  const clock = checkedClock(now);
  const fixedRevocations = checkedRevocations(rest.revocations);
  if (cache !== undefined && cacheSize !== undefined)
    throw new TypeError('give "cache" or "cacheSize", not both');
  const prefixes =
    cache === undefined
      ? new LruPrefixCache(
          checkedInteger(cacheSize, "cacheSize", 10_000, Number.MAX_SAFE_INTEGER, 1),
        )
      : checkedMethods(cache, "cache", ["get", "set"]);
  return {
    cache: prefixes,
    verify: (token, call) => {
      // Roots, skew, limits and backend are the verifier's: given per call, they would be unused.
      const known = checkedKnownOptions(
        checkedOptions(call, "options", true),
        "options",
        CALL_OPTIONS,
        "; roots, skewSeconds, limits and backend are fixed by createVerifier",
      );
      const checked = checkedCall(known.now === undefined ? { ...known, now: clock } : known);
      return verifyWithSettings(
        token,
        settings,
        checked,
        checked.revocations ?? fixedRevocations,
        prefixes,
      );
    },
  };
}

/** The per-call options, checked: `now` as whole seconds. */
interface CallSettings {
  readonly now: number;
  readonly audience: string | undefined;
  readonly revocations: RevocationCheck | undefined;
}

function checkedCall(options: VerifyCallOptions): CallSettings {
  const now = checkedNow(options.now);
  const audience = checkedString(options.audience, "audience");
  // No token can list the empty audience (spec/format.md §8.4): it is a setting never made, and
  // reading it as "no audience" would skip the check.
  if (audience === "") throw new RangeError('"audience" must not be empty');
  return { now, audience, revocations: checkedRevocations(options.revocations) };
}

function checkedRevocations(revocations: RevocationCheck | undefined): RevocationCheck | undefined {
  return checkedMethods(revocations, "revocations", ["has"]);
}

/** What stays the same across calls: validated once per verifier, or once per `verify` call. */
interface Settings {
  readonly roots: TrustedRoots;
  readonly limits: Limits;
  readonly skew: number;
  readonly backend: Ed25519Backend;
}

function resolveSettings(
  options: Omit<VerifyOptions, "now" | "audience" | "revocations">,
): Settings {
  assertRoots(options?.roots);
  const limits = checkedLimits(options.limits);
  const skew = checkedInteger(
    options.skewSeconds,
    "skewSeconds",
    DEFAULT_SKEW_SECONDS,
    MAX_SKEW_SECONDS,
  );
  const backend =
    options.backend === undefined
      ? getDefaultBackend()
      : checkedMethods(options.backend, "backend", ["verifyEquation"]);
  return { roots: options.roots, limits, skew, backend };
}

const PREFIX_KEY_CONTEXT = new TextEncoder().encode("allowance-prefix-v1\0");

/**
 * The cache key of each prefix (spec/presentation.md §7): SHA-256 over the context, the settings
 * digest, the root kid and key, then for each link of the prefix its payload length (4 bytes,
 * big-endian), payload and signature. Length prefixes keep the encoding injective. Keys are
 * computed lazily, longest first, so a hit on a long prefix costs one hash.
 */
class PrefixKeys {
  readonly #material: Uint8Array;
  readonly #ends: number[] = [];
  readonly #keys: (Uint8Array | undefined)[] = [];

  constructor(token: Token, rootKey: Uint8Array, settings: Uint8Array) {
    const parts: Uint8Array[] = [PREFIX_KEY_CONTEXT, settings, token.rootKid, rootKey];
    let end = PREFIX_KEY_CONTEXT.length + settings.length + token.rootKid.length + rootKey.length;
    for (const link of token.links) {
      const size = link.payload.length;
      const length = Uint8Array.of(size >>> 24, (size >>> 16) & 0xff, (size >>> 8) & 0xff, size);
      parts.push(length, link.payload, link.signature);
      end += 4 + link.payload.length + link.signature.length;
      this.#ends.push(end);
    }
    this.#material = concatBytes(...parts);
  }

  key(index: number): Uint8Array {
    let key = this.#keys[index];
    if (key === undefined) {
      key = sha256(this.#material.subarray(0, this.#ends[index]));
      this.#keys[index] = key;
    }
    return key;
  }
}

/** Verification in the order of spec/format.md §8: each step a function of its own below. */
function verifyWithSettings(
  token: string | Uint8Array | Token,
  settings: Settings,
  options: CallSettings,
  revocations: RevocationCheck | undefined,
  cache: PrefixCache | undefined,
): VerifiedChain {
  const { limits, skew } = settings;
  const { now } = options;
  // A Token object gets the same structural and limit checks as the bytes it stands for.
  const parsed = parseToken(
    typeof token === "string" || token instanceof Uint8Array ? token : tokenBytes(token),
    limits,
  );
  const { rootKid, root } = trustedRoot(parsed, settings);
  // Read once: a roots map built by hand may hold an object whose `bytes` differs on each read.
  const rootKey: unknown = root.bytes;
  const { cached, prefixes } = cachedPrefix(parsed, rootKid, rootKey, settings, cache);
  if (cached.length === 0) checkRootBinding(rootKey, rootKid);

  const links: VerifiedLink[] = [];
  for (const link of cached) {
    checkPerCall(link, revocations, now, skew);
    links.push(link);
  }
  const { grants, failure } = signaturesAndPayloads(parsed, cached, rootKey, settings);
  narrowAndCheck(parsed, cached, grants, links, revocations, now, skew);
  if (failure !== undefined) throw failure;
  if (cache !== undefined && prefixes !== undefined) {
    // Each link is registered before the first entry that holds it is stored.
    for (let i = cached.length; i < links.length; i++) {
      registerLink(links[i] as VerifiedLink);
      cache.set({ key: prefixes.key(i), rootKid, links: links.slice(0, i + 1) });
    }
  }
  const leaf = links[links.length - 1] as VerifiedLink;
  checkAudience(links, leaf, options.audience);
  return registerChain({
    token: parsed,
    rootKid,
    links,
    grant: leaf.effective,
    linkIds: links.map((l) => l.id),
    holder: leaf.effective.holder,
  } as unknown as VerifiedChain);
}

type TrustedRoot = Settings["roots"] extends ReadonlyMap<string, infer R> ? R : never;

/** The trusted root the token names (§8.2), or ERR_UNKNOWN_ROOT. */
function trustedRoot(parsed: Token, settings: Settings): { rootKid: string; root: TrustedRoot } {
  const rootKid = toBase64url(parsed.rootKid);
  const root = settings.roots.get(rootKid);
  if (root === undefined)
    throw new AllowanceError("ERR_UNKNOWN_ROOT", `no trusted root has kid ${rootKid}`, {
      linkIndex: 0,
    });
  return { rootKid, root };
}

/** The longest prefix verified before, if a cache is in use. */
function cachedPrefix(
  parsed: Token,
  rootKid: string,
  rootKey: unknown,
  settings: Settings,
  cache: PrefixCache | undefined,
): { cached: readonly VerifiedLink[]; prefixes: PrefixKeys | undefined } {
  if (cache === undefined) return { cached: [], prefixes: undefined };
  const prefixes = new PrefixKeys(
    parsed,
    rootKey as Uint8Array,
    settingsDigest(settings.limits, settings.backend),
  );
  for (let i = parsed.links.length - 1; i >= 0; i--) {
    const k = prefixes.key(i);
    const entry = cache.get(k);
    // Trust an entry only if it is for exactly this prefix (a cache may return anything),
    // and only links this module verified: a cache may return anything, even hand-built links.
    if (
      entry !== undefined &&
      equalBytes(entry.key, k) &&
      entry.rootKid === rootKid &&
      entry.links.length === i + 1 &&
      entry.links.every(isVerifiedLink)
    )
      return { cached: entry.links, prefixes };
  }
  return { cached: [], prefixes };
}

/**
 * Root keys found to be the key their kid names, with a copy of the bytes checked (the array
 * itself can be changed in place). Roots are configured once and used for every call, and a
 * thumbprint costs a hash and two encodings, so the answer is kept per key array.
 */
const boundRootKeys = new WeakMap<
  Uint8Array,
  { readonly kid: string; readonly bytes: Uint8Array }
>();

/**
 * A roots map built by hand can bind a kid to any key; the key must be the one the kid names
 * (spec/format.md §8.2). Not asked for a cached prefix: it was verified under this same kid and
 * key, and its cache key commits to both.
 */
function checkRootBinding(rootKey: unknown, rootKid: string): asserts rootKey is Uint8Array {
  if (!(rootKey instanceof Uint8Array) || rootKey.length !== 32) throw unboundRoot(rootKid);
  const known = boundRootKeys.get(rootKey);
  if (known !== undefined && known.kid === rootKid && equalBytes(known.bytes, rootKey)) return;
  if (thumbprint(rootKey) !== rootKid) throw unboundRoot(rootKid);
  boundRootKeys.set(rootKey, { kid: rootKid, bytes: Uint8Array.from(rootKey) });
}

function unboundRoot(rootKid: string): AllowanceError {
  return new AllowanceError(
    "ERR_UNKNOWN_ROOT",
    `the trusted key bound to kid ${rootKid} is not the key that kid names`,
    { linkIndex: 0 },
  );
}

/**
 * Steps 1 and 2 for every new link, before steps 3 to 5 for any: the signature checks run back to
 * back, which is measurably faster, and the outcome is the same as taking all steps link by link. A
 * failure here at link j is returned, to be raised only after links before j pass the later steps,
 * so the error reported is still that of the first failing link, at its first failing step.
 */
function signaturesAndPayloads(
  parsed: Token,
  cached: readonly VerifiedLink[],
  rootKey: unknown,
  settings: Settings,
): { grants: LinkGrant[]; failure: unknown } {
  const { limits, backend } = settings;
  const messages = signingInputs(parsed, cached.length);
  const grants: LinkGrant[] = [];
  for (let index = cached.length; index < parsed.links.length; index++) {
    const link = parsed.links[index] as Link;
    const previousGrant =
      index === cached.length ? cached[index - 1]?.grant : grants[grants.length - 1];
    // Link 0 with nothing cached: checkRootBinding has passed this key.
    const signer = previousGrant === undefined ? (rootKey as Uint8Array) : previousGrant.sub;
    try {
      // 1. The signature, over the bytes as received, before any field of the payload is read.
      checkSignature(signer, messages[index - cached.length] as Uint8Array, link, index, backend);
      // 2. The payload: canonical, well-formed, within limits; its holder key usable.
      const grant = decodePayload(link.payload, limits, index);
      if (checkPublicKey(grant.sub) !== "ok") {
        throw new AllowanceError(
          "ERR_KEY",
          "holder key (sub) is not canonical or has small order",
          { linkIndex: index, field: "sub" },
        );
      }
      grants.push(grant);
    } catch (error) {
      return { grants, failure: error };
    }
  }
  return { grants, failure: undefined };
}

/** Step 1 for one link: ERR_SIGNATURE, or ERR_KEY for an unusable signer key. */
function checkSignature(
  signer: Uint8Array,
  message: Uint8Array,
  link: Link,
  index: number,
  backend: Settings["backend"],
): void {
  const signature = verifySignature(signer, message, link.signature, backend);
  if (signature === "ok") return;
  const text =
    signature === "non-canonical-s"
      ? "signature S is not below the group order L"
      : signature === "bad-key"
        ? "signer key is unusable"
        : "signature does not verify";
  throw new AllowanceError(signature === "bad-key" ? "ERR_KEY" : "ERR_SIGNATURE", text, {
    linkIndex: index,
  });
}

/**
 * Steps 3 to 5 for each new link whose signature and payload passed: narrowing against the
 * parent's effective grant, the link id, then revocation and the validity window (per call, never
 * cached). Appends each verified link to `links`.
 */
function narrowAndCheck(
  parsed: Token,
  cached: readonly VerifiedLink[],
  grants: readonly LinkGrant[],
  links: VerifiedLink[],
  revocations: RevocationCheck | undefined,
  now: CallSettings["now"],
  skew: Settings["skew"],
): void {
  // The raw id of the link before the first new one; each new link's id is hashed from it.
  const lastCached = cached[cached.length - 1];
  let parentId = lastCached === undefined ? parsed.rootKid : fromBase64url(lastCached.id);
  if (parentId === undefined)
    throw new TypeError("the prefix cache returned a link whose id is not base64url");
  for (let index = cached.length; index < cached.length + grants.length; index++) {
    const grant = grants[index - cached.length] as LinkGrant;
    const link = parsed.links[index] as Link;
    const previous = links[index - 1];
    let effective: EffectiveGrant;
    if (previous === undefined) {
      const rootGrant = rootEffective(grant);
      if (rootGrant === undefined)
        throw new AllowanceError("ERR_MALFORMED", 'the root link must state "exp"', {
          linkIndex: 0,
          field: "exp",
        });
      effective = rootGrant;
    } else {
      const result = narrow(previous.effective, grant);
      if (!result.ok) throw narrowingError(result.violations, index);
      effective = result.effective;
    }
    parentId = linkIdBytes(parentId, link.payload);
    const verifiedLink = freezeLink({ index, id: toBase64url(parentId), grant, effective });
    checkPerCall(verifiedLink, revocations, now, skew);
    links.push(verifiedLink);
  }
}

/** The audience the caller names must be in the leaf's effective `aud`, when it states one. */
function checkAudience(
  links: readonly VerifiedLink[],
  leaf: VerifiedLink,
  audience: string | undefined,
): void {
  if (audience === undefined || leaf.effective.aud === undefined) return;
  if (leaf.effective.aud.includes(audience)) return;
  const stating = links.findLast((l) => l.grant.aud !== undefined) as VerifiedLink;
  throw new AllowanceError("ERR_AUDIENCE", `audience ${audience} is not in the token's aud`, {
    linkIndex: stating.index,
    field: "aud",
  });
}

/**
 * What a cached prefix was checked under: a prefix that passed looser limits or another backend
 * must not be reused by a stricter verifier sharing the cache.
 */
const settingsDigests = new WeakMap<Limits, Map<string, Uint8Array>>();
function settingsDigest(limits: Limits, backend: Ed25519Backend): Uint8Array {
  let byBackend = settingsDigests.get(limits);
  if (byBackend === undefined) settingsDigests.set(limits, (byBackend = new Map()));
  let digest = byBackend.get(backend.name);
  if (digest === undefined) {
    digest = sha256(new TextEncoder().encode(JSON.stringify([backend.name, limits])));
    byBackend.set(backend.name, digest);
  }
  return digest;
}

/** A Token object's bytes. Its links are checked by encodeToken; this names what else verify takes. */
function tokenBytes(token: Token): Uint8Array {
  if (typeof token !== "object" || token === null)
    throw new TypeError('"token" expected a string, bytes, or a Token from parseToken');
  return encodeToken(token);
}

function checkPerCall(
  link: VerifiedLink,
  revocations: RevocationCheck | undefined,
  now: number,
  skew: number,
): void {
  const { index, id, grant } = link;
  if (revocations !== undefined) {
    // Only `false` lets a link through: a store answering a Promise (an asynchronous store) or
    // anything else that is not a boolean would otherwise read as "not revoked".
    const revoked: unknown = revocations.has(id);
    if (typeof revoked !== "boolean")
      throw new TypeError(
        `"revocations.has" must answer synchronously with a boolean, got ${shown(revoked)}`,
      );
    if (revoked)
      throw new AllowanceError("ERR_REVOKED", `link ${id} is revoked`, { linkIndex: index });
  }
  if (grant.exp !== undefined && now - skew >= grant.exp) {
    throw new AllowanceError("ERR_EXPIRED", `expired at ${grant.exp}`, {
      linkIndex: index,
      field: "exp",
    });
  }
  if (grant.nbf !== undefined && now + skew < grant.nbf) {
    throw new AllowanceError("ERR_NOT_YET_VALID", `not valid before ${grant.nbf}`, {
      linkIndex: index,
      field: "nbf",
    });
  }
}

function assertRoots(roots: unknown): asserts roots is TrustedRoots {
  if (!(roots instanceof Map))
    throw new TypeError('"roots" expected a Map of trusted keys (importJwks or trustedRoots)');
}
