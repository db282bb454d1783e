import { equalBytes, fromBase64url, randomBytes, sha256, toBase64url, utf8 } from "./bytes.js";
import type { Ed25519Backend } from "./ed25519/backend.js";
import {
  checkPublicKey,
  checkedBackend,
  getDefaultBackend,
  isCurvePoint,
} from "./ed25519/policy.js";
import { kindOf } from "./kind.js";

/** An Ed25519 public key and its id: the RFC 7638 JWK thumbprint (SHA-256, base64url). */
export interface PublicKey {
  readonly kid: string;
  readonly bytes: Uint8Array;
}

/**
 * An Ed25519 key pair. `privateKey` is the 32-byte RFC 8032 seed; keep it secret. On the key pairs
 * this module makes it is not enumerable, and `JSON.stringify` and `util.inspect` show the kid
 * only, so that logging a key pair does not log its seed; read it by name. A copy made by spread
 * (`{ ...keyPair }`) or `structuredClone` has no seed, and signs nothing.
 */
export interface KeyPair {
  readonly kid: string;
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/** The JWK form of an Ed25519 key (RFC 8037). `d` is present only on private keys. */
export interface Ed25519Jwk {
  kty: "OKP";
  crv: "Ed25519";
  x: string;
  d?: string;
  kid?: string;
  alg?: string;
  use?: string;
  key_ops?: string[];
}

export interface Jwks {
  keys: Ed25519Jwk[];
}

/** Trusted root keys by kid, as `verify` takes them. */
export type TrustedRoots = ReadonlyMap<string, PublicKey>;

/** The largest JWKS read: a set of trusted roots is a handful of keys, not thousands. */
const MAX_JWKS_KEYS = 256;

/**
 * The RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the JWK's required members in
 * lexicographic order with no whitespace (RFC 7638 §3.2, RFC 8037 §2), base64url. The key id of
 * the format (spec/format.md §2.1).
 */
export function thumbprint(publicKey: Uint8Array): string {
  assertKeyBytes(publicKey, "publicKey");
  return toBase64url(sha256(utf8(`{"crv":"Ed25519","kty":"OKP","x":"${toBase64url(publicKey)}"}`)));
}

/** The RFC 7638 thumbprint of an Ed25519 public key, as a promise (see `thumbprint`). */
export async function kidOf(publicKey: Uint8Array): Promise<string> {
  return thumbprint(publicKey);
}

/**
 * Thumbprints already computed, by the key array they were computed from, with a copy of its bytes
 * then: a key object's kid is checked against its bytes wherever it is used (`keyKid`), and a
 * caller may have changed the bytes in place since.
 */
const thumbprints = new WeakMap<Uint8Array, { readonly copy: Uint8Array; readonly kid: string }>();

function thumbprintOf(bytes: Uint8Array): string {
  const known = thumbprints.get(bytes);
  if (known !== undefined && equalBytes(known.copy, bytes)) return known.kid;
  const kid = thumbprint(bytes);
  thumbprints.set(bytes, { copy: Uint8Array.from(bytes), kid });
  return kid;
}

/**
 * The kid of a PublicKey or KeyPair, which must be the thumbprint of its key bytes (spec/format.md
 * §2.1: the kid IS the thumbprint). A key object rebuilt by hand with new bytes and an old kid
 * would otherwise name the old key in roots, JWKs and minted tokens: it is a TypeError instead.
 */
function keyKid(key: PublicKey | KeyPair, name: string): string {
  assertKeyObject(key, name);
  const kid = thumbprintOf("bytes" in key ? key.bytes : key.publicKey);
  if (key.kid !== kid) throw notItsKid(name, key.kid, kid);
  return kid;
}

function notItsKid(name: string, stated: string, kid: string): TypeError {
  return new TypeError(
    `"${name}.kid" ${JSON.stringify(stated.slice(0, 64))} is not the RFC 7638 thumbprint of its key, ${kid}`,
  );
}

export async function publicKeyFromBytes(bytes: Uint8Array): Promise<PublicKey> {
  assertUsablePublicKey(bytes, "publicKey");
  const own = Uint8Array.from(bytes);
  return Object.freeze({ kid: thumbprintOf(own), bytes: own });
}

/**
 * Key pairs whose halves are known to match, with copies of both as they were and the kid: the
 * pairs made here, and hand-built ones once checked (signingKeyOf). A pair whose bytes differ from
 * the copies (changed in place) is checked again.
 */
const matchedPairs = new WeakMap<
  object,
  { readonly seed: Uint8Array; readonly publicKey: Uint8Array; readonly kid: string }
>();

/**
 * The key a signer signs with, read once from a caller's key pair: copies of its halves, checked
 * to match (a TypeError naming it otherwise: signed with one and named by the other, every link
 * it made would fail verification with no word at the signer), and its kid, the thumbprint. A
 * stated kid must be that thumbprint; `requireKid` says a kid must be stated. Whatever the pair
 * answers later (getters, bytes changed in place), the signer uses this. A pair made by
 * keyPairFromSeed or importPrivateJwk, or seen before with the same bytes, costs two comparisons;
 * another is copied and derived once.
 */
export function signingKeyOf(key: unknown, name: string, requireKid: boolean): KeyPair {
  const pair =
    typeof key === "object" && key !== null
      ? (key as Partial<Record<"kid" | "publicKey" | "privateKey", unknown>>)
      : undefined;
  const given = { kid: pair?.kid, publicKey: pair?.publicKey, privateKey: pair?.privateKey };
  if (
    pair === undefined ||
    !(given.publicKey instanceof Uint8Array) ||
    !(given.privateKey instanceof Uint8Array) ||
    (requireKid
      ? typeof given.kid !== "string"
      : given.kid !== undefined && typeof given.kid !== "string")
  )
    throw new TypeError(`"${name}" expected a key pair (generateKeyPair), got ${kindOf(key)}`);
  assertKeyBytes(given.privateKey, `${name}.privateKey`);
  assertKeyBytes(given.publicKey, `${name}.publicKey`);
  let checked = matchedPairs.get(pair);
  if (
    checked === undefined ||
    !equalBytes(checked.seed, given.privateKey) ||
    !equalBytes(checked.publicKey, given.publicKey)
  ) {
    const seed = Uint8Array.from(given.privateKey);
    const publicKey = Uint8Array.from(given.publicKey);
    if (!equalBytes(getDefaultBackend().publicKey(seed), publicKey))
      throw new TypeError(
        `"${name}.publicKey" is not the public key of its privateKey: a key pair's halves must match (generateKeyPair, importPrivateJwk)`,
      );
    checked = { seed, publicKey, kid: thumbprintOf(publicKey) };
    matchedPairs.set(pair, checked);
  }
  if (typeof given.kid === "string" && given.kid !== checked.kid)
    throw notItsKid(name, given.kid, checked.kid);
  // The copies, which no one else holds: the same arrays on every call with this pair (a backend
  // keeps its key objects by them).
  return { kid: checked.kid, publicKey: checked.publicKey, privateKey: checked.seed };
}

export async function keyPairFromSeed(
  seed: Uint8Array,
  backend: Ed25519Backend = getDefaultBackend(),
): Promise<KeyPair> {
  assertKeyBytes(seed, "seed");
  checkedBackend(backend, ["publicKey"]);
  const publicKey = backend.publicKey(seed);
  const kid = thumbprintOf(publicKey);
  const keyPair = { kid, publicKey };
  // The seed, and what logs show instead of it: nothing that lists or prints the object finds it.
  const shown = () => ({ kid });
  Object.defineProperties(keyPair, {
    privateKey: { value: Uint8Array.from(seed), enumerable: false },
    toJSON: { value: shown, enumerable: false },
    [Symbol.for("nodejs.util.inspect.custom")]: {
      value: () => `KeyPair { kid: ${JSON.stringify(kid)} }`,
      enumerable: false,
    },
  });
  const frozen = Object.freeze(keyPair as KeyPair);
  matchedPairs.set(frozen, {
    seed: Uint8Array.from(seed),
    publicKey: Uint8Array.from(publicKey),
    kid,
  });
  return frozen;
}

/** A fresh key pair from the platform's CSPRNG. */
export async function generateKeyPair(): Promise<KeyPair> {
  return keyPairFromSeed(randomBytes(32));
}

export function publicKeyOf(keyPair: KeyPair): PublicKey {
  assertKeyObject(keyPair, "keyPair");
  assertKeyBytes(keyPair.publicKey, "keyPair.publicKey");
  // The kid of the bytes handed out: a hand-built object with `bytes` too is judged by these.
  const kid = thumbprintOf(keyPair.publicKey);
  if (keyPair.kid !== kid) throw notItsKid("keyPair", keyPair.kid, kid);
  return Object.freeze({ kid, bytes: keyPair.publicKey });
}

/** Exports what `importPublicJwk` reads back: a usable key named by its own thumbprint. */
export function exportPublicJwk(key: PublicKey | KeyPair): Ed25519Jwk {
  return publicJwk(key, "key");
}

export function exportPrivateJwk(keyPair: KeyPair): Ed25519Jwk {
  assertKeyObject(keyPair, "keyPair");
  assertKeyBytes(keyPair.privateKey, "keyPair.privateKey");
  return { ...publicJwk(keyPair, "keyPair"), d: toBase64url(keyPair.privateKey) };
}

export function exportJwks(keys: readonly (PublicKey | KeyPair)[]): Jwks {
  assertKeyList(keys);
  return { keys: keys.map((key, i) => publicJwk(key, `keys[${i}]`)) };
}

function publicJwk(key: PublicKey | KeyPair, name: string): Ed25519Jwk {
  const kid = keyKid(key, name);
  const bytes = "bytes" in key ? key.bytes : key.publicKey;
  assertUsablePublicKey(bytes, name);
  return { kty: "OKP", crv: "Ed25519", x: toBase64url(bytes), kid, alg: "EdDSA", use: "sig" };
}

/**
 * Reads a public JWK, by the rules for trusted roots (spec/format.md §8.2): no private part `d`,
 * and `kid`, `use`, `alg` and `key_ops`, where present, those of an Ed25519 key that verifies. A
 * `kid` must equal the thumbprint: keys are named by thumbprint everywhere in a token, so a JWK
 * that claims another name is refused.
 */
export async function importPublicJwk(jwk: unknown): Promise<PublicKey> {
  const parsed = parseJwk(jwk, "verify");
  const key = await publicKeyFromBytes(parsed.x);
  assertKid(parsed, key.kid);
  return key;
}

/** Reads a private JWK (with `d`), checking that `x` is the public key of `d`. */
export async function importPrivateJwk(
  jwk: unknown,
  backend: Ed25519Backend = getDefaultBackend(),
): Promise<KeyPair> {
  const parsed = parseJwk(jwk, "sign");
  if (parsed.d === undefined) throw new TypeError('JWK has no "d": it is not a private key');
  try {
    const keyPair = await keyPairFromSeed(parsed.d, backend);
    if (!equalBytes(keyPair.publicKey, parsed.x)) {
      throw new TypeError('JWK "x" is not the public key of its "d"');
    }
    assertKid(parsed, keyPair.kid);
    return keyPair;
  } finally {
    // The key pair holds its own copy; this one is not left for the collector to keep.
    parsed.d.fill(0);
  }
}

/**
 * Reads a JWKS of trusted root keys (spec/format.md §8.2). Keys of other types are skipped (a JWKS
 * may serve several algorithms): an entry whose `kty` is a string other than "OKP", or an "OKP"
 * whose `crv` is a string other than "Ed25519". An entry that does not say what it is (no string
 * `kty`, or an "OKP" without a string `crv`) is malformed, and so is an Ed25519 entry that
 * `importPublicJwk` refuses (weak, a private part, another use): each refuses the whole set.
 */
export async function importJwks(jwks: unknown): Promise<TrustedRoots> {
  if (typeof jwks !== "object" || jwks === null || Array.isArray(jwks))
    throw new TypeError(`JWKS must be {"keys": [...]}: got ${kindOf(jwks)}`);
  const keys: unknown = (jwks as { keys?: unknown }).keys;
  if (!Array.isArray(keys))
    throw new TypeError(`JWKS must be {"keys": [...]}: "keys" is ${kindOf(keys)}`);
  if (keys.length > MAX_JWKS_KEYS)
    throw new TypeError(`JWKS must be {"keys": [...]}: more than ${MAX_JWKS_KEYS} keys`);
  for (const [i, entry] of keys.entries()) {
    if (
      typeof entry !== "object" ||
      entry === null ||
      Array.isArray(entry) ||
      typeof (entry as { kty?: unknown }).kty !== "string"
    )
      throw new TypeError(`JWKS must be {"keys": [...]}: keys.${i} is not a JWK with a "kty"`);
  }
  const roots = new Map<string, PublicKey>();
  for (const [i, entry] of (keys as { kty: string; crv?: unknown }[]).entries()) {
    if (entry.kty !== "OKP") continue;
    if (typeof entry.crv !== "string")
      throw new TypeError(`JWKS must be {"keys": [...]}: keys.${i} is an "OKP" JWK with no "crv"`);
    if (entry.crv !== "Ed25519") continue;
    if ("d" in entry) throw new TypeError("a JWKS of trusted roots must not contain private keys");
    const key = await importPublicJwk(entry);
    roots.set(key.kid, key);
  }
  return roots;
}

/**
 * Trusted roots from key objects already in hand, checked as `importJwks` checks a JWKS
 * (spec/format.md §8.2): each kid the thumbprint of its key, each key usable (key policy, curve
 * point). The map holds copies, which later changes to the given arrays do not reach.
 */
export function trustedRoots(keys: readonly (PublicKey | KeyPair)[]): TrustedRoots {
  assertKeyList(keys);
  return new Map(
    keys.map((key, i) => {
      const name = `keys[${i}]`;
      const bytes = "bytes" in key ? key.bytes : key.publicKey;
      assertUsablePublicKey(bytes, name);
      const kid = keyKid(key, name);
      return [kid, Object.freeze({ kid, bytes: Uint8Array.from(bytes) })] as const;
    }),
  );
}

interface ParsedJwk {
  readonly x: Uint8Array;
  readonly d: Uint8Array | undefined;
  readonly kid: string | undefined;
}

/** The `alg` values of an Ed25519 signing key: RFC 8037's "EdDSA" and RFC 9864's "Ed25519". */
const JWK_ALGS: ReadonlySet<unknown> = new Set(["EdDSA", "Ed25519"]);

/**
 * An Ed25519 JWK (RFC 8037 §2): `kty` "OKP", `crv` "Ed25519", `x` (and `d`, if present) 32 bytes
 * in base64url. Where present, `kid` is a string, `use` "sig", `alg` "EdDSA" or "Ed25519", and
 * `key_ops` (RFC 7517 §4.3) distinct strings that include `operation`: a key published for
 * something else is not taken as a signing key. A key read to verify (`operation` "verify") must
 * have no `d`. Other members are allowed and ignored.
 */
function parseJwk(jwk: unknown, operation: "verify" | "sign"): ParsedJwk {
  const fail = (member: string, message: string): never => {
    throw new TypeError(`not an Ed25519 JWK: ${member} ${message}`);
  };
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk))
    fail("value", `expected an object, got ${kindOf(jwk)}`);
  const value = jwk as Record<string, unknown>;
  if (value["kty"] !== "OKP") fail("kty", 'must be "OKP"');
  if (value["crv"] !== "Ed25519") fail("crv", 'must be "Ed25519"');
  // Checked before "d" is decoded: a public key's reader has no business holding a seed.
  if (operation === "verify" && "d" in value)
    throw new TypeError(
      'a public JWK must not contain a private key ("d"): export the public JWK and use that',
    );
  for (const member of ["kid", "alg", "use"] as const)
    if (value[member] !== undefined && typeof value[member] !== "string")
      fail(member, `expected a string, got ${kindOf(value[member])}`);
  if (value["use"] !== undefined && value["use"] !== "sig")
    fail("use", `must be "sig" for a signing key, got ${JSON.stringify(value["use"])}`);
  if (value["alg"] !== undefined && !JWK_ALGS.has(value["alg"]))
    fail("alg", `must be "EdDSA" or "Ed25519", got ${JSON.stringify(value["alg"])}`);
  const ops = value["key_ops"];
  if (ops !== undefined) {
    if (
      !Array.isArray(ops) ||
      !ops.every((op) => typeof op === "string") ||
      new Set(ops).size !== ops.length
    )
      fail("key_ops", "expected an array of distinct strings");
    if (!(ops as unknown[]).includes(operation))
      fail("key_ops", `must include "${operation}", got ${JSON.stringify(ops)}`);
  }
  const bytesOf = (member: "x" | "d"): Uint8Array => {
    const text = value[member];
    const bytes = typeof text === "string" ? fromBase64url(text) : undefined;
    if (bytes?.length !== 32) {
      bytes?.fill(0);
      return fail(member, "must be 32 bytes in base64url");
    }
    return bytes;
  };
  const x = bytesOf("x");
  return {
    x,
    d: value["d"] === undefined ? undefined : bytesOf("d"),
    kid: value["kid"] as string | undefined,
  };
}

function assertKid(jwk: { kid?: string | undefined }, thumbprint: string): void {
  if (jwk.kid !== undefined && jwk.kid !== thumbprint) {
    throw new TypeError(`JWK "kid" ${jwk.kid} is not its RFC 7638 thumbprint ${thumbprint}`);
  }
}

function assertKeyBytes(bytes: Uint8Array, name: string): void {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`"${name}" expected a Uint8Array`);
  if (bytes.length !== 32) throw new RangeError(`"${name}" expected 32 bytes, got ${bytes.length}`);
}

/**
 * A PublicKey (`kid` and `bytes`) or a KeyPair (`kid` and `publicKey`): a string kid and 32 key
 * bytes, so that nothing exports or trusts a key under a kid that is no string, or a key of
 * another length.
 */
function assertKeyObject(key: PublicKey | KeyPair, name: string): void {
  if (typeof key !== "object" || key === null)
    throw new TypeError(`"${name}" expected a PublicKey or a KeyPair, got ${kindOf(key)}`);
  if (typeof key.kid !== "string")
    throw new TypeError(`"${name}.kid" expected a string, got ${kindOf(key.kid)}`);
  if ("bytes" in key) assertKeyBytes(key.bytes, `${name}.bytes`);
  else assertKeyBytes(key.publicKey, `${name}.publicKey`);
}

function assertKeyList(keys: readonly (PublicKey | KeyPair)[]): void {
  if (!Array.isArray(keys))
    throw new TypeError(`"keys" expected an array of keys, got ${kindOf(keys)}`);
  keys.forEach((key, i) => assertKeyObject(key, `keys[${i}]`));
}

function assertUsablePublicKey(bytes: Uint8Array, name: string): void {
  assertKeyBytes(bytes, name);
  const check = checkPublicKey(bytes);
  if (check !== "ok") throw new RangeError(`"${name}" is not a usable public key: ${check}`);
  if (!isCurvePoint(bytes)) throw new RangeError(`"${name}" is not a curve point`);
}
