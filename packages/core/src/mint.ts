/** Minting a root link and attenuating a token by appending a narrower link (spec/format.md §6). */
import { equalBytes, fromBase64url, randomBytes } from "./bytes.js";
import type { Ed25519Backend } from "./ed25519/backend.js";
import {
  checkPublicKey,
  checkedBackend,
  getDefaultBackend,
  isBuiltInBackend,
  isCurvePoint,
} from "./ed25519/policy.js";
import { AllowanceError, type Violation } from "./errors.js";
import {
  checkGrantLimits,
  encodePayload,
  parseGrantFields,
  type EffectiveGrant,
  type GrantFields,
  type LinkGrant,
} from "./grant.js";
import { signingKeyOf, type KeyPair, type PublicKey } from "./keys.js";
import { membersOf } from "./members.js";
import { resolveLimits, type Limits } from "./limits.js";
import { narrow, rootEffective } from "./narrow.js";
import {
  TOKEN_PREFIX,
  encodeToken,
  parentDigest,
  parseToken,
  readUnverifiedGrants,
  signingInput,
  type Link,
  type Token,
} from "./token.js";

/** Nonce length used when minting; the format accepts 8 to 32 bytes. */
export const NONCE_BYTES = 8;

export interface MintOptions {
  /** The root key pair; its kid names the root in the token. */
  readonly rootKey: KeyPair;
  /** The holder: the key that may use the grant and sign the next link. */
  readonly holder: PublicKey | Uint8Array;
  /** The grant; `exp` is required on a root. */
  readonly grant: GrantFields;
  readonly backend?: Ed25519Backend;
  readonly limits?: Partial<Limits>;
  /** Fixed nonce, for reproducible test vectors; random by default. */
  readonly nonce?: Uint8Array;
  /**
   * Lets `exp` or `nbf` be 10^11 or later (after the year 5000), which is refused by default: such
   * a time is almost always epoch milliseconds given where seconds are meant (`Date.now()`), and
   * would make a grant last for ever. The format allows any time to 2^53 − 1.
   */
  readonly allowFarFuture?: boolean;
}

export interface AttenuateOptions {
  /** The current holder's key pair: the holder named by the token's last link. */
  readonly holderKey: KeyPair;
  /** The new holder. */
  readonly holder: PublicKey | Uint8Array;
  /** What the child states; absent fields inherit the parent's. */
  readonly grant: GrantFields;
  readonly backend?: Ed25519Backend;
  readonly limits?: Partial<Limits>;
  readonly nonce?: Uint8Array;
  /** As MintOptions.allowFarFuture. */
  readonly allowFarFuture?: boolean;
}

/** The members of each options object: any other (a misspelt `nonce` or `limits`) is a TypeError. */
const MINT_OPTIONS: ReadonlySet<string> = new Set<keyof MintOptions>([
  "rootKey",
  "holder",
  "grant",
  "backend",
  "limits",
  "nonce",
  "allowFarFuture",
]);
const ATTENUATE_OPTIONS: ReadonlySet<string> = new Set<keyof AttenuateOptions>([
  "holderKey",
  "holder",
  "grant",
  "backend",
  "limits",
  "nonce",
  "allowFarFuture",
]);

/**
 * The options object, read once (membersOf: getters answer once) and checked before anything
 * else: an object with only the members `known` lists, its signing key a key pair whose halves
 * match (read once too: the signer signs with that copy, signingKeyOf), its limits resolved, its
 * backend (when given, and never null) one that signs, `allowFarFuture` a boolean when given.
 */
function checkedOptions<T extends MintOptions | AttenuateOptions>(
  given: T,
  known: ReadonlySet<string>,
  keyName: "rootKey" | "holderKey",
): { readonly options: T; readonly key: KeyPair } {
  if (typeof given !== "object" || given === null || Array.isArray(given))
    throw new TypeError(`"options" expected an options object, got ${kindOf(given)}`);
  // The limits resolved once here, so that none of them is read again.
  const copy = membersOf(given, known, "options", (name) => {
    throw new TypeError(
      `"options" has no option named ${JSON.stringify(name)} (known: ${[...known].join(", ")})`,
    );
  });
  if (copy["limits"] !== undefined) copy["limits"] = resolveLimits(copy["limits"] as Limits);
  const options = copy as unknown as T;
  const key = signingKeyOf(
    (options as Partial<Record<typeof keyName, unknown>>)[keyName],
    keyName,
    keyName === "rootKey",
  );
  if (options.backend !== undefined) checkedBackend(options.backend, ["sign"]);
  const far: unknown = options.allowFarFuture;
  if (far !== undefined && typeof far !== "boolean")
    throw new TypeError(`"allowFarFuture" expected a boolean, got ${kindOf(far)}`);
  return { options, key };
}

/**
 * The first time, in epoch seconds, that a grant may state only with `allowFarFuture`: 10^11 s is
 * in the year 5138, and `Date.now()` has been past it since 1973. The verifier's clock refuses
 * answers below the same number read as milliseconds (spec/format.md §8.1).
 */
export const FAR_FUTURE_SECONDS = 100_000_000_000;

/** Refuses an `exp` or `nbf` from FAR_FUTURE_SECONDS on, unless the caller allowed it. */
function checkTimes(fields: GrantFields, options: MintOptions | AttenuateOptions): void {
  if (options.allowFarFuture === true) return;
  for (const name of ["exp", "nbf"] as const) {
    const time = fields[name];
    if (time !== undefined && time >= FAR_FUTURE_SECONDS)
      throw new RangeError(
        `"${name}" ${time} is after the year 5000: epoch seconds expected (is it milliseconds? divide by 1000); pass allowFarFuture: true to mean it`,
      );
  }
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : typeof value;
}

export function mint(given: MintOptions): Token {
  const { options, key } = checkedOptions(given, MINT_OPTIONS, "rootKey");
  const fields = parseGrantFields(options.grant);
  if (fields.exp === undefined) throw new TypeError('a root grant must state "exp"');
  checkTimes(fields, options);
  const grant = buildLinkGrant(fields, options);
  const effective = rootEffective(grant) as EffectiveGrant;
  assertSatisfiable(effective);
  // The kid of the key's own bytes: a stale kid would name another root (spec/format.md §2.1).
  const rootKid = fromBase64url(key.kid) as Uint8Array;
  const link = signLink(key, rootKid, grant, options.backend);
  return withinLimits({ rootKid, links: [link] }, resolveLimits(options.limits));
}

/**
 * Appends a link for a new holder. Refuses (ERR_WIDENED or ERR_DEPTH, listing every violation)
 * unless the child is within the parent on every field.
 */
export function attenuate(token: Token | string, given: AttenuateOptions): Token {
  const { options, key } = checkedOptions(given, ATTENUATE_OPTIONS, "holderKey");
  const limits = resolveLimits(options.limits);
  // A Token object gets the same structural and limit checks as the string it stands for.
  const parsed = parseToken(typeof token === "string" ? token : encodeToken(token), limits);
  const grants = readUnverifiedGrants(parsed, limits);
  let parent = rootEffective(grants[0] as LinkGrant);
  if (parent === undefined)
    throw new AllowanceError("ERR_MALFORMED", 'the root link states no "exp"', { linkIndex: 0 });
  for (let i = 1; i < grants.length; i++) {
    const result = narrow(parent, grants[i] as LinkGrant);
    if (!result.ok) throw narrowingError(result.violations, i);
    parent = result.effective;
  }
  if (!equalBytes(parent.holder, key.publicKey)) {
    throw new AllowanceError(
      "ERR_KEY",
      "holderKey is not the holder named by the token's last link",
      {
        linkIndex: grants.length - 1,
      },
    );
  }
  const linkIndex = parsed.links.length;
  if (linkIndex + 1 > limits.maxLinks) {
    throw new AllowanceError(
      "ERR_LIMIT",
      `the token would have ${linkIndex + 1} links, the limit is ${limits.maxLinks}`,
      {
        linkIndex,
        limit: limits.maxLinks,
        actual: linkIndex + 1,
      },
    );
  }
  const fields = parseGrantFields(options.grant);
  checkTimes(fields, options);
  const child = buildLinkGrant(fields, options);
  const result = narrow(parent, child);
  if (!result.ok) throw narrowingError(result.violations, linkIndex);
  assertSatisfiable(result.effective);
  const last = parsed.links[linkIndex - 1] as Link;
  const link = signLink(key, parentDigest(last), child, options.backend);
  return withinLimits({ rootKid: parsed.rootKid, links: [...parsed.links, link] }, limits);
}

/** The error for a failed narrowing: ERR_DEPTH if the parent may not be extended, else ERR_WIDENED. */
export function narrowingError(
  violations: readonly Violation[],
  linkIndex: number,
): AllowanceError {
  const exhausted = violations.find((v) => v.reason === "exhausted");
  if (exhausted !== undefined) {
    return new AllowanceError(
      "ERR_DEPTH",
      "the parent link's depth is exhausted: it may not be extended",
      {
        linkIndex,
        field: "depth",
        violations,
      },
    );
  }
  const fields = violations.map((v) => v.field);
  return new AllowanceError(
    "ERR_WIDENED",
    `link grants more than its parent: ${fields.join(", ")}`,
    {
      linkIndex,
      field: fields[0] ?? "",
      violations,
    },
  );
}

function buildLinkGrant(fields: GrantFields, options: MintOptions | AttenuateOptions): LinkGrant {
  const sub: unknown =
    options.holder instanceof Uint8Array ? options.holder : options.holder?.bytes;
  if (!(sub instanceof Uint8Array))
    throw new TypeError('"holder" expected a PublicKey or 32 bytes');
  const check = checkPublicKey(sub);
  if (check !== "ok") throw new RangeError(`"holder" is not a usable Ed25519 public key: ${check}`);
  if (!isCurvePoint(sub))
    throw new RangeError('"holder" is not an Ed25519 public key: not a curve point');
  // Bytes only: `Uint8Array.from` would read a string's characters as zeros, and null is no default.
  const nonce: unknown = options.nonce === undefined ? randomBytes(NONCE_BYTES) : options.nonce;
  if (!(nonce instanceof Uint8Array))
    throw new TypeError(`"nonce" expected 8 to 32 bytes (a Uint8Array), got ${kindOf(nonce)}`);
  if (nonce.length < 8 || nonce.length > 32)
    throw new RangeError(`"nonce" expected 8 to 32 bytes, got ${nonce.length}`);
  const grant: LinkGrant = { ...fields, sub: Uint8Array.from(sub), nonce: Uint8Array.from(nonce) };
  checkGrantLimits(grant, resolveLimits(options.limits));
  return grant;
}

/** A token that verifiers would refuse for its size is not handed out. */
function withinLimits(token: Token, limits: Limits): Token {
  const last = token.links.length - 1;
  const payload = token.links[last]?.payload.length ?? 0;
  if (payload > limits.maxPayloadBytes) {
    throw new AllowanceError(
      "ERR_LIMIT",
      `payload has ${payload} bytes, the limit is ${limits.maxPayloadBytes}`,
      {
        linkIndex: last,
        limit: limits.maxPayloadBytes,
        actual: payload,
      },
    );
  }
  const size = encodeToken(token).length;
  const chars = TOKEN_PREFIX.length + Math.ceil((size * 4) / 3);
  if (chars > limits.maxTokenChars) {
    throw new AllowanceError(
      "ERR_LIMIT",
      `token would have ${chars} characters, the limit is ${limits.maxTokenChars}`,
      {
        linkIndex: last,
        limit: limits.maxTokenChars,
        actual: chars,
      },
    );
  }
  if (size > limits.maxTokenBytes) {
    throw new AllowanceError(
      "ERR_LIMIT",
      `token would have ${size} bytes, the limit is ${limits.maxTokenBytes}`,
      {
        linkIndex: last,
        limit: limits.maxTokenBytes,
        actual: size,
      },
    );
  }
  return token;
}

function assertSatisfiable(grant: EffectiveGrant): void {
  if (grant.nbf !== undefined && grant.nbf >= grant.exp) {
    throw new RangeError(
      `the grant would never be valid: nbf ${grant.nbf} is not before exp ${grant.exp}`,
    );
  }
}

function signLink(
  key: KeyPair,
  parent: Uint8Array,
  grant: LinkGrant,
  backend: Ed25519Backend = getDefaultBackend(),
): Link {
  const payload = encodePayload(grant);
  // The checked seed is kept for the next call with this key pair (signingKeyOf): only a built-in
  // backend, which keeps no array it is given, gets it; any other gets a copy.
  const seed = isBuiltInBackend(backend) ? key.privateKey : Uint8Array.from(key.privateKey);
  return { payload, signature: backend.sign(seed, signingInput(parent, payload)) };
}
