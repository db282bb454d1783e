/**
 * Proof of possession (spec/presentation.md): the leaf holder signs the token's hash, the audience,
 * optionally the HTTP method and path, a time and a one-time id. A stolen token is useless at an
 * endpoint that requires presentations, because the thief lacks the holder's private key.
 */
import {
  AllowanceError,
  getDefaultBackend,
  parseToken,
  type Ed25519Backend,
  type KeyPair,
  type Limits,
  type Token,
} from "@allowance/core";
import {
  AUDIENCE,
  concatBytes,
  decodeCanonical,
  encodeCanonical,
  encodeToken,
  equalBytes,
  fromBase64url,
  randomBytes,
  sha256,
  toBase64url,
  utf8Length,
  verifySignature,
  type CborValue,
} from "@allowance/core/format";
import {
  MAX_PRESENTATION_MAX_AGE_SECONDS,
  MAX_SKEW_SECONDS,
  checkedFunction,
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
import { MemoryReplayCache, type ReplayCache } from "./replay.js";
import { isVerifiedChain } from "./verified.js";
import { DEFAULT_SKEW_SECONDS, verify, type VerifiedChain, type VerifyOptions } from "./verify.js";

export const PRESENTATION_PREFIX = "alwp1_";
export const PRESENTATION_CONTEXT = new TextEncoder().encode("allowance-presentation-v1\0");
/** Default lifetime of a presentation after its `iat`, in seconds. */
export const DEFAULT_PRESENTATION_MAX_AGE_SECONDS = 60;

const KEYS = { th: 1, aud: 2, iat: 3, jti: 4, method: 5, path: 6, bh: 7 } as const;

/** A request body as the presenter sent it and the endpoint received it: bytes, or text as UTF-8. */
export type RequestBody = Uint8Array | string;

/**
 * The request body for a presentation's binding (spec/presentation.md §3.4), given as it is or
 * read on demand: the reader is called only when the presentation binds a body.
 */
export type RequestBodySource = RequestBody | (() => RequestBody | Promise<RequestBody>);

export interface PresentOptions {
  /** The endpoint the presentation is for. */
  readonly aud: string;
  /** HTTP method, bound when given (compared case-insensitively). */
  readonly method?: string;
  /** HTTP path (without query), bound when given. */
  readonly path?: string;
  /**
   * The request body, bound when given: the presentation then carries its SHA-256 (`bh`), and is
   * good for this body only, so a captured presentation cannot carry other arguments.
   */
  readonly body?: RequestBody;
  /**
   * The clock that gives the issue time `iat`: a function returning epoch milliseconds, as
   * `Date.now` (the default) does, rounded down to a second. Anything but a function is a
   * TypeError; an answer that is not an integer from 10^11 (1973) to 2^53 − 1, a RangeError.
   */
  readonly now?: () => number;
  /** The one-time id (16 to 32 bytes); random by default. Fix it only for test vectors. */
  readonly jti?: Uint8Array;
  readonly backend?: Ed25519Backend;
}

/** What a verified presentation states. */
export interface PresentationClaims {
  readonly aud: string;
  readonly iat: number;
  /** The one-time id, base64url. */
  readonly jti: string;
  readonly method?: string;
  readonly path?: string;
  /** The SHA-256 of the bound request body, base64url; absent when no body is bound. */
  readonly bodyHash?: string;
}

/** The claims of a presentation payload (spec/presentation.md §3), as read from its CBOR map. */
interface Claims {
  readonly th: Uint8Array;
  readonly aud: string;
  readonly iat: number;
  readonly jti: Uint8Array;
  readonly method?: string;
  readonly path?: string;
  readonly bh?: Uint8Array;
}

const METHOD = /^[A-Z]{1,16}$/;
const PATH = /^\/[\x21-\x7e]{0,1023}$/;

/**
 * The claims, each by its rule (spec/presentation.md §3), or the first problem as "field: why".
 * Only the six keys: any other key is a problem.
 */
function readClaims(raw: Record<string, unknown>): Claims | string {
  for (const key of Object.keys(raw)) if (!Object.hasOwn(KEYS, key)) return `${key}: not a claim`;
  const { th, aud, iat, jti, method, path, bh } = raw;
  if (!(th instanceof Uint8Array) || th.length !== 32) return "th: must be 32 bytes";
  if (typeof aud !== "string" || !AUDIENCE.test(aud)) return "aud: is not a valid audience";
  if (typeof iat !== "number" || !Number.isSafeInteger(iat) || iat < 0)
    return "iat: must be an integer from 0 to 2^53 - 1";
  if (!(jti instanceof Uint8Array) || jti.length < 16 || jti.length > 32)
    return "jti: must be 16 to 32 bytes";
  if (method !== undefined && (typeof method !== "string" || !METHOD.test(method)))
    return "method: must be 1 to 16 letters A-Z";
  if (path !== undefined && (typeof path !== "string" || !PATH.test(path)))
    return "path: must be / and up to 1023 printable ASCII characters";
  if (bh !== undefined && (!(bh instanceof Uint8Array) || bh.length !== 32))
    return "bh: must be 32 bytes";
  return {
    th,
    aud,
    iat,
    jti,
    ...(method === undefined ? {} : { method }),
    ...(path === undefined ? {} : { path }),
    ...(bh === undefined ? {} : { bh }),
  };
}

/** Makes a presentation: the string to send as `Authorization: Allowance <value>`. */
export function present(
  token: Token | string,
  holderKey: KeyPair,
  options: PresentOptions,
): string {
  checkedKnownOptions(checkedOptions(options, "options", false), "options", PRESENT_OPTIONS);
  const iat = checkedNow(options.now);
  checkedString(options.method, "method");
  const privateKey: unknown = (holderKey as Partial<KeyPair> | null)?.privateKey;
  if (!(privateKey instanceof Uint8Array) || privateKey.length !== 32)
    throw new TypeError(
      `"holderKey" expected the holder's key pair (generateKeyPair), got ${shown(holderKey)}`,
    );
  // Null is not "absent": a null `backend` or `jti` is refused, not replaced by the default.
  const backend =
    options.backend === undefined
      ? getDefaultBackend()
      : checkedMethods(options.backend, "backend", ["sign"]);
  // A Token object gets the same structural checks as the string it stands for, as `attenuate`
  // gives it: a presentation is never made for a chain no verifier could read.
  const parsed = parseToken(typeof token === "string" ? token : encodeToken(token));
  const tokenBytes = encodeToken(parsed);
  const map = new Map<number, CborValue>([
    [KEYS.th, sha256(tokenBytes)],
    [KEYS.aud, options.aud],
    [KEYS.iat, iat],
    [KEYS.jti, options.jti === undefined ? randomBytes(16) : options.jti],
  ]);
  if (options.method !== undefined) map.set(KEYS.method, asciiUpperCase(options.method));
  if (options.path !== undefined) map.set(KEYS.path, options.path);
  if (options.body !== undefined) map.set(KEYS.bh, bodyHash(options.body, "body"));
  const claims = readClaims(decodeClaimsMap(map));
  if (typeof claims === "string") throw new TypeError(`invalid presentation option: ${claims}`);
  const payload = encodeCanonical(map);
  const signature = backend.sign(privateKey, concatBytes(PRESENTATION_CONTEXT, payload));
  return PRESENTATION_PREFIX + toBase64url(encodeCanonical([tokenBytes, payload, signature]));
}

export interface VerifyPresentationOptions extends Omit<VerifyOptions, "audience"> {
  /** This endpoint: the presentation's `aud` must equal it, and the token's `aud` must allow it. */
  readonly audience: string;
  /** The request's method; required to match when the presentation binds one. */
  readonly method?: string;
  /** The request's path; required to match when the presentation binds one. */
  readonly path?: string;
  /**
   * The request's body, or a function that reads it (called only for a presentation that binds a
   * body); required to hash to the presentation's `bh` when it has one.
   */
  readonly body?: RequestBodySource;
  /** Refuse presentations that do not bind the request body (default false). */
  readonly requireBodyBinding?: boolean;
  /** Whole seconds a presentation stays usable after its `iat`, 0 to 3600. Default 60. */
  readonly maxAgeSeconds?: number;
  /** Where one-time ids are remembered. Default: one process-wide in-memory cache. */
  readonly replay?: ReplayCache;
  /** Verifies the token; defaults to `verify`, or a caching verifier's `verify`. */
  readonly verifyToken?: (token: Token, options: VerifyOptions) => VerifiedChain;
}

/**
 * The members of each options object: any other is a TypeError (a misspelt `path` would leave the
 * path unbound).
 */
const PRESENT_OPTIONS = optionNames<PresentOptions>()([
  "aud",
  "method",
  "path",
  "now",
  "jti",
  "backend",
  "body",
]);
const VERIFY_PRESENTATION_OPTIONS = optionNames<VerifyPresentationOptions>()([
  "roots",
  "now",
  "skewSeconds",
  "revocations",
  "limits",
  "backend",
  "audience",
  "method",
  "path",
  "maxAgeSeconds",
  "replay",
  "verifyToken",
  "body",
  "requireBodyBinding",
]);

export interface VerifiedPresentation {
  readonly chain: VerifiedChain;
  readonly claims: PresentationClaims;
}

/**
 * The process's replay cache, for every verifier given none. Verifiers sharing a cache must hold
 * an id for the same window (spec/presentation.md §5.3), and these may be configured with
 * different ones: ids in it are held for the widest window any verifier can have.
 */
const defaultReplay = new MemoryReplayCache();
const DEFAULT_REPLAY_WINDOW_SECONDS = MAX_PRESENTATION_MAX_AGE_SECONDS + MAX_SKEW_SECONDS;

/**
 * Verifies a presentation: the token chain, the holder's signature, the binding to this token,
 * audience, method and path, the time window, and finally the one-time id (spec/presentation.md §4).
 */
export async function verifyPresentation(
  presentation: string,
  options: VerifyPresentationOptions,
): Promise<VerifiedPresentation> {
  checkedKnownOptions(
    checkedOptions(options, "options", false),
    "options",
    VERIFY_PRESENTATION_OPTIONS,
  );
  if (typeof options.audience !== "string")
    throw new TypeError('"audience" is required to verify a presentation');
  // No presentation can name the empty audience (spec/format.md §8.4): it is a missing setting.
  if (options.audience === "") throw new RangeError('"audience" must not be empty');
  // Every option is checked before any work, whatever the presentation (spec/presentation.md §4).
  const now = checkedNow(options.now);
  const skew = checkedInteger(
    options.skewSeconds,
    "skewSeconds",
    DEFAULT_SKEW_SECONDS,
    MAX_SKEW_SECONDS,
  );
  const maxAge = checkedInteger(
    options.maxAgeSeconds,
    "maxAgeSeconds",
    DEFAULT_PRESENTATION_MAX_AGE_SECONDS,
    MAX_PRESENTATION_MAX_AGE_SECONDS,
  );
  const method = checkedString(options.method, "method");
  const path = checkedString(options.path, "path");
  const body = options.body;
  if (
    body !== undefined &&
    typeof body !== "string" &&
    !(body instanceof Uint8Array) &&
    typeof body !== "function"
  )
    throw new TypeError(`"body" expected bytes, a string or a function, got ${shown(body)}`);
  const requireBody = options.requireBodyBinding === undefined ? false : options.requireBodyBinding;
  if (typeof requireBody !== "boolean")
    throw new TypeError(`"requireBodyBinding" expected a boolean, got ${shown(requireBody)}`);
  const replay =
    options.replay === undefined
      ? defaultReplay
      : checkedMethods(options.replay, "replay", ["claim"]);
  const verifyToken = checkedFunction(options.verifyToken, "verifyToken") ?? verify;
  const backend =
    options.backend === undefined
      ? getDefaultBackend()
      : checkedMethods(options.backend, "backend", ["verifyEquation"]);
  const limits = checkedLimits(options.limits);
  const { token, tokenBytes, payload, signature } = parsePresentation(presentation, limits);
  const {
    audience,
    method: _method,
    path: _path,
    maxAgeSeconds: _maxAge,
    replay: _replay,
    verifyToken: _verifyToken,
    body: _body,
    requireBodyBinding: _requireBodyBinding,
    ...rest
  } = options;
  // The token is verified at the same checked second as the window below.
  const chain = verifyToken(token, { ...rest, now: () => now * 1000, audience });
  // The holder key below is trusted only from a chain that `verify` made: a `verifyToken` answering
  // anything else (a copy, a result object, a chain it built) would skip the token's checks.
  if (!isVerifiedChain(chain))
    throw new TypeError(
      `"verifyToken" must answer a chain from verify or createVerifier().verify, got ${shown(chain)}`,
    );
  if (
    verifySignature(
      chain.holder,
      concatBytes(PRESENTATION_CONTEXT, payload),
      signature,
      backend,
    ) !== "ok"
  ) {
    throw presentationError("the presentation is not signed by the token's holder");
  }
  const claims = decodeClaims(payload);
  if (!equalBytes(claims.th, sha256(tokenBytes)))
    throw presentationError("the presentation is for another token");
  if (claims.aud !== audience) {
    throw new AllowanceError(
      "ERR_AUDIENCE",
      `the presentation is for ${claims.aud}, not ${audience}`,
      { field: "aud" },
    );
  }
  if (
    claims.method !== undefined &&
    (method === undefined || claims.method !== asciiUpperCase(method))
  )
    throw presentationError("the presentation is for another HTTP method");
  if (claims.path !== undefined && claims.path !== path)
    throw presentationError("the presentation is for another path");
  // The body (spec/presentation.md §3.4): read only when bound, so unbound requests cost nothing.
  if (claims.bh === undefined) {
    if (requireBody)
      throw presentationError("this endpoint requires a presentation bound to the request body");
  } else {
    if (body === undefined)
      throw presentationError(
        "the presentation binds a request body, and none was given to check it",
      );
    const received = typeof body === "function" ? await body() : body;
    if (!equalBytes(claims.bh, bodyHash(received, "the body read")))
      throw presentationError("the presentation is for another request body");
  }
  // The id's expiry must stay an exact integer (spec/presentation.md §5.3), so an `iat` so late that
  // it would pass 2^53 − 1 is refused with the window, rather than rounded.
  const expiresAt = claims.iat + maxAge + skew;
  if (
    claims.iat > now + skew ||
    now - skew - maxAge >= claims.iat ||
    expiresAt > Number.MAX_SAFE_INTEGER
  ) {
    throw new AllowanceError(
      "ERR_STALE",
      `the presentation was issued at ${claims.iat}, outside the accepted window`,
      { field: "iat" },
    );
  }
  const jti = toBase64url(claims.jti);
  // The id is claimed last, so a presentation refused for any other reason does not use it up. A
  // body-bound presentation's id also names the body (spec/presentation.md §5.2).
  const id =
    claims.bh === undefined
      ? `${toBase64url(chain.holder)}.${jti}`
      : `${toBase64url(chain.holder)}.${jti}.${toBase64url(claims.bh)}`;
  const first: unknown = await replay.claim(
    id,
    replay === defaultReplay ? claims.iat + DEFAULT_REPLAY_WINDOW_SECONDS : expiresAt,
    now,
  );
  // Only `true` is a first use: a cache answering anything else is broken, and is not trusted.
  if (typeof first !== "boolean")
    throw new TypeError(`"replay.claim" must answer a boolean, got ${shown(first)}`);
  if (!first) throw new AllowanceError("ERR_REPLAY", "this presentation was already used");
  return {
    chain,
    claims: {
      aud: claims.aud,
      iat: claims.iat,
      jti,
      ...(claims.method === undefined ? {} : { method: claims.method }),
      ...(claims.path === undefined ? {} : { path: claims.path }),
      ...(claims.bh === undefined ? {} : { bodyHash: toBase64url(claims.bh) }),
    },
  };
}

const utf8Encoder = new TextEncoder();

/** SHA-256 of a request body: its bytes, or a string's UTF-8 (spec/presentation.md §3.4). */
function bodyHash(body: unknown, name: string): Uint8Array {
  if (body instanceof Uint8Array) return sha256(body);
  if (typeof body !== "string")
    throw new TypeError(`${JSON.stringify(name)} expected bytes or a string, got ${shown(body)}`);
  if (!body.isWellFormed())
    throw new TypeError(`${JSON.stringify(name)} is not well-formed Unicode (a lone surrogate)`);
  return sha256(utf8Encoder.encode(body));
}

interface ParsedPresentation {
  readonly token: Token;
  readonly tokenBytes: Uint8Array;
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
}

function parsePresentation(text: string, limits: Limits): ParsedPresentation {
  if (typeof text !== "string")
    throw new TypeError(`"presentation" expected a string, got ${typeof text}`);
  // In UTF-8 bytes, as the token's limit (spec/presentation.md §2.3); never below the UTF-16 length.
  const maxChars = limits.maxTokenChars + 512;
  const over = text.length > maxChars;
  const size = over ? text.length : utf8Length(text);
  if (over || size > maxChars) {
    throw new AllowanceError(
      "ERR_LIMIT",
      `presentation text has ${over ? "at least " : ""}${size} UTF-8 bytes, the limit is ${maxChars}`,
      { limit: maxChars, actual: size },
    );
  }
  if (!text.startsWith(PRESENTATION_PREFIX))
    throw new AllowanceError("ERR_MALFORMED", `a presentation starts with ${PRESENTATION_PREFIX}`);
  const bytes = fromBase64url(text.slice(PRESENTATION_PREFIX.length));
  if (bytes === undefined)
    throw new AllowanceError(
      "ERR_MALFORMED",
      "presentation body is not canonical unpadded base64url",
    );
  const value = decodeCanonical(bytes);
  if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => v instanceof Uint8Array)) {
    throw new AllowanceError(
      "ERR_MALFORMED",
      "a presentation is an array of token, payload and signature bytes",
    );
  }
  const [tokenBytes, payload, signature] = value as [Uint8Array, Uint8Array, Uint8Array];
  if (signature.length !== 64) throw presentationError("a presentation signature is 64 bytes");
  if (payload.length > 2048) throw presentationError("presentation payload too large");
  return { token: parseToken(tokenBytes, limits), tokenBytes, payload, signature };
}

function decodeClaimsMap(map: ReadonlyMap<unknown, unknown>): Record<string, unknown> {
  const names = new Map<unknown, string>(Object.entries(KEYS).map(([name, key]) => [key, name]));
  const out: Record<string, unknown> = {};
  for (const [key, value] of map)
    out[names.get(key) ?? `unknown key ${String(key)}`] =
      value instanceof Uint8Array ? Uint8Array.from(value) : value;
  return out;
}

function decodeClaims(payload: Uint8Array): Claims {
  let value: unknown;
  try {
    value = decodeCanonical(payload);
  } catch (error) {
    if (error instanceof AllowanceError)
      throw presentationError(`presentation payload: ${error.message}`);
    throw error;
  }
  if (!(value instanceof Map)) throw presentationError("presentation payload must be a map");
  const claims = readClaims(decodeClaimsMap(value));
  if (typeof claims === "string") throw presentationError(`presentation field ${claims}`);
  return claims;
}

/**
 * ASCII-only upper case (spec/presentation.md §4 step 7): `toUpperCase` maps "ſ" (U+017F) to "S",
 * so it would match a presentation bound to POST with the method "poſt", which servers treat as
 * another method.
 */
function asciiUpperCase(text: string): string {
  return text.replace(/[a-z]+/g, (run) => run.toUpperCase());
}

function presentationError(message: string): AllowanceError {
  return new AllowanceError("ERR_PRESENTATION", message);
}
