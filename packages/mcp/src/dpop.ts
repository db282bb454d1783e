/**
 * RFC 9449 DPoP proofs as the proof of possession of an Allowance token (spec/presentation.md §12):
 * the token is the access token, the leaf holder's Ed25519 key signs the proof. Made and checked
 * with jose; the signature is checked under the holder key of the verified chain, never under the
 * key the proof carries (which must merely be that key).
 */
import { SignJWT, decodeProtectedHeader, errors, importJWK, jwtVerify, type JWK } from "jose";
import { AllowanceError, type KeyPair } from "@allowance/core";
import { randomBytes, sha256, thumbprint, toBase64url, utf8 } from "@allowance/core/format";
import type { ReplayCache } from "@allowance/verifier";

/** The JWS algorithms accepted for a proof: Ed25519 under its RFC 8037 name and its RFC 9864 name. */
export const DPOP_ALGORITHMS = Object.freeze(["EdDSA", "Ed25519"] as const);
export const DPOP_TYPE = "dpop+jwt";
/** A proof is three base64url parts; anything longer than this is not one of ours. */
const MAX_PROOF_CHARS = 8192;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** `jti` length: 16 characters at least, so a one-time id cannot be a counter by accident. */
const MIN_JTI_CHARS = 16;
const MAX_JTI_CHARS = 256;

/** What a verified proof states. */
export interface DpopClaims {
  readonly jti: string;
  readonly iat: number;
  readonly htm: string;
  readonly htu: string;
  /** RFC 7638 thumbprint of the proof key: the chain's leaf holder. */
  readonly jkt: string;
}

/** The checks of one proof; every value here is already validated by the caller. */
export interface DpopCheck {
  readonly proof: string;
  /** The access token exactly as sent after `DPoP `. */
  readonly accessToken: string;
  /** The request's method, as received. */
  readonly method: string;
  /** The resource's URL: `htu` must name it (origin and path; no query, no fragment). */
  readonly url: URL;
  /** The leaf holder's public key from the verified chain. */
  readonly holder: Uint8Array;
  readonly nowSeconds: number;
  readonly skewSeconds: number;
  readonly maxAgeSeconds: number;
  readonly replay: ReplayCache;
}

/** `ath` (RFC 9449 §4.2): base64url SHA-256 of the ASCII access token. */
export function accessTokenHash(accessToken: string): string {
  return toBase64url(sha256(utf8(accessToken)));
}

/**
 * Verifies a proof in the order of spec/presentation.md §12.3: shape and header; holder (the
 * header's `jwk` is the chain's leaf holder); signature under that holder key; claims; `htm`,
 * `htu`, `ath`; the `iat` window; the replay claim last, so only a proof that passed everything
 * else can write to the replay cache. Throws `AllowanceError` (`ERR_PRESENTATION`, `ERR_STALE`,
 * `ERR_REPLAY`); a replay cache that fails or answers a non-boolean throws something else.
 */
export async function verifyDpopProof(check: DpopCheck): Promise<DpopClaims> {
  const { proof } = check;
  if (proof.length > MAX_PROOF_CHARS || !COMPACT_JWS.test(proof))
    throw proofError("the DPoP proof is not a compact JWS of at most 8192 characters");
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    throw proofError("the DPoP proof's header is not a JSON object");
  }
  if (header.typ !== DPOP_TYPE) throw proofError(`the DPoP proof's typ must be "${DPOP_TYPE}"`);
  // No extension is understood (spec/presentation.md §12.2): jose would take crit ["b64"].
  if (header.crit !== undefined) throw proofError("the DPoP proof's header names crit extensions");
  if (
    typeof header.alg !== "string" ||
    !(DPOP_ALGORITHMS as readonly string[]).includes(header.alg)
  )
    throw proofError(`the DPoP proof's alg must be one of ${DPOP_ALGORITHMS.join(", ")}`);
  const jwk = header.jwk as Record<string, unknown> | undefined;
  if (
    typeof jwk !== "object" ||
    jwk === null ||
    Array.isArray(jwk) ||
    jwk.kty !== "OKP" ||
    jwk.crv !== "Ed25519" ||
    typeof jwk.x !== "string" ||
    "d" in jwk
  )
    throw proofError("the DPoP proof's jwk must be a public Ed25519 key (OKP, Ed25519, x)");
  // With kty and crv fixed, the key is its x: compared as text, so that an x that is no key (empty,
  // not base64url) is this refusal rather than an error of the thumbprint's parser.
  if (jwk.x !== toBase64url(check.holder))
    throw proofError("the DPoP proof is signed by a key that does not hold this token");
  const jkt = thumbprint(check.holder);

  let payload: Record<string, unknown>;
  try {
    const key = await importJWK(
      { kty: "OKP", crv: "Ed25519", x: toBase64url(check.holder) },
      "EdDSA",
    );
    ({ payload } = await jwtVerify(proof, key, {
      algorithms: [...DPOP_ALGORITHMS],
      typ: DPOP_TYPE,
      currentDate: new Date(check.nowSeconds * 1000),
      clockTolerance: check.skewSeconds,
      requiredClaims: ["jti", "iat", "htm", "htu", "ath"],
    }));
  } catch (error) {
    if (error instanceof errors.JOSEError)
      throw proofError(`the DPoP proof was refused: ${error.message}`);
    throw error;
  }

  const { jti, iat, htm, htu, ath } = payload;
  if (typeof jti !== "string" || jti.length < MIN_JTI_CHARS || jti.length > MAX_JTI_CHARS)
    throw proofError(
      `the DPoP proof's jti must be ${MIN_JTI_CHARS} to ${MAX_JTI_CHARS} characters`,
    );
  if (typeof iat !== "number" || !Number.isSafeInteger(iat) || iat < 0)
    throw proofError("the DPoP proof's iat must be whole seconds since the epoch");
  if (typeof htm !== "string" || htm !== check.method)
    throw proofError("the DPoP proof is for another HTTP method");
  if (typeof htu !== "string" || !sameResource(htu, check.url))
    throw proofError("the DPoP proof is for another URL");
  if (typeof ath !== "string" || ath !== accessTokenHash(check.accessToken))
    throw proofError("the DPoP proof is for another access token");

  // The window of spec/presentation.md §4 step 9, in the same seconds, skew and maxAge.
  const { nowSeconds, skewSeconds, maxAgeSeconds } = check;
  const expiresAt = iat + maxAgeSeconds + skewSeconds;
  if (
    iat <= nowSeconds - skewSeconds - maxAgeSeconds ||
    iat > nowSeconds + skewSeconds ||
    expiresAt > Number.MAX_SAFE_INTEGER
  )
    throw new AllowanceError("ERR_STALE", "the DPoP proof is outside its time window", {
      field: "iat",
    });
  // Namespaced by holder like a presentation's id (spec/presentation.md §5.2), and apart from it:
  // base64url has no ".", so "dpop" cannot be a presentation's jti. The jti is hashed to a fixed
  // length whatever the client sent.
  const id = `${toBase64url(check.holder)}.dpop.${toBase64url(sha256(utf8(jti)))}`;
  const claimed: unknown = await check.replay.claim(id, expiresAt, nowSeconds);
  if (typeof claimed !== "boolean")
    throw new TypeError(`the replay cache's claim answered ${typeof claimed}, not a boolean`);
  if (!claimed) throw new AllowanceError("ERR_REPLAY", "this DPoP proof was already used");
  return { jti, iat, htm, htu, jkt };
}

/**
 * `scheme://authority` and the rest, with no `/`, `\\`, `?` or `#` in the authority, nor `@`: user
 * info, even empty (`https://@host/`), is refused (spec/presentation.md §12.2).
 */
const HTU = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/\\?#@]*(.*)$/s;

/**
 * RFC 9449 §4.3 check 9: `htu` is the request URI without query and fragment. Scheme, host and
 * port compare as the URL parser normalises them (RFC 3986 §6.2.2–6.2.3: case, default port);
 * the path is compared exactly as written, as the request's own path is (spec/presentation.md
 * §8.1), so `/x/../mcp` does not name `/mcp`. A query or fragment is refused, never stripped.
 */
function sameResource(htu: string, resource: URL): boolean {
  if (htu.includes("?") || htu.includes("#")) return false;
  const rawPath = HTU.exec(htu)?.[1];
  if (rawPath === undefined) return false;
  let parsed: URL;
  try {
    parsed = new URL(htu);
  } catch {
    return false;
  }
  return (
    parsed.username === "" &&
    parsed.password === "" &&
    parsed.origin === resource.origin &&
    (rawPath === "" ? "/" : rawPath) === resource.pathname
  );
}

function proofError(message: string): AllowanceError {
  return new AllowanceError("ERR_PRESENTATION", message);
}

/** Options of `createDpopProof`. */
export interface DpopProofOptions {
  /** The request's method, as it will be sent. */
  readonly method: string;
  /** The request's URL; its query and fragment are left out of `htu`. */
  readonly url: string | URL;
  /** The access token: the Allowance token string, sent as `Authorization: DPoP <token>`. */
  readonly accessToken: string;
  /** Issue time in epoch milliseconds (rounded down to seconds); default `Date.now()`. */
  readonly nowMs?: number;
  /** The one-time id; 32 random bytes (base64url) by default. */
  readonly jti?: string;
}

const signingKeys = new WeakMap<KeyPair, ReturnType<typeof importJWK>>();

/** `options` is an object with only the `names` given: a misspelt option is not left unread. */
export function knownOptions(options: unknown, names: readonly string[]): void {
  if (typeof options !== "object" || options === null || Array.isArray(options))
    throw new TypeError(`"options" expected an object, got ${typeof options}`);
  for (const name of Object.keys(options))
    if (!names.includes(name))
      throw new TypeError(`"options" takes ${names.join(", ")}, got ${JSON.stringify(name)}`);
}

/** Makes a DPoP proof (RFC 9449 §4.2) signed by the token's leaf holder, for the `DPoP` header. */
export async function createDpopProof(
  holderKey: KeyPair,
  options: DpopProofOptions,
): Promise<string> {
  knownOptions(options, ["method", "url", "accessToken", "nowMs", "jti"]);
  if (typeof options.method !== "string" || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(options.method))
    throw new TypeError(`"method" expected an HTTP method, got ${String(options.method)}`);
  if (typeof options.accessToken !== "string" || options.accessToken.length === 0)
    throw new TypeError('"accessToken" expected the token string');
  const url = new URL(options.url);
  const nowMs = options.nowMs ?? Date.now();
  if (typeof nowMs !== "number")
    throw new TypeError(`"nowMs" expected epoch milliseconds, got ${typeof nowMs}`);
  // From 10^11 ms (1973), as the guard's clock: seconds given for milliseconds are refused here.
  if (!(nowMs >= 1e11 && nowMs <= 8.64e15))
    throw new RangeError(`"nowMs" expected epoch milliseconds, got ${String(nowMs)}`);
  const jti = options.jti ?? toBase64url(randomBytes(32));
  if (typeof jti !== "string") throw new TypeError(`"jti" expected a string, got ${typeof jti}`);
  // The guard's bounds (spec/presentation.md §12.2): a proof it would refuse is not made.
  if (jti.length < MIN_JTI_CHARS || jti.length > MAX_JTI_CHARS)
    throw new RangeError(
      `"jti" expected ${MIN_JTI_CHARS} to ${MAX_JTI_CHARS} characters, got ${jti.length}`,
    );
  let key = signingKeys.get(holderKey);
  if (key === undefined) {
    key = importJWK(
      {
        kty: "OKP",
        crv: "Ed25519",
        x: toBase64url(holderKey.publicKey),
        d: toBase64url(holderKey.privateKey),
      } satisfies JWK,
      "EdDSA",
    );
    signingKeys.set(holderKey, key);
  }
  return new SignJWT({
    htm: options.method,
    htu: url.origin + url.pathname,
    ath: accessTokenHash(options.accessToken),
  })
    .setProtectedHeader({
      alg: "EdDSA",
      typ: DPOP_TYPE,
      jwk: { kty: "OKP", crv: "Ed25519", x: toBase64url(holderKey.publicKey) },
    })
    .setJti(jti)
    .setIssuedAt(Math.floor(nowMs / 1000))
    .sign(await key);
}
