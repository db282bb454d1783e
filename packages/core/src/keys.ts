import { randomBytes } from "node:crypto";
import { calculateJwkThumbprint } from "jose";
import { z } from "zod";
import { equalBytes, fromBase64url, toBase64url } from "./bytes.js";
import type { Ed25519Backend } from "./ed25519/backend.js";
import { checkPublicKey, getDefaultBackend, isCurvePoint } from "./ed25519/policy.js";

/** An Ed25519 public key and its id: the RFC 7638 JWK thumbprint (SHA-256, base64url). */
export interface PublicKey {
  readonly kid: string;
  readonly bytes: Uint8Array;
}

/** An Ed25519 key pair. `privateKey` is the 32-byte RFC 8032 seed; keep it secret. */
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
}

export interface Jwks {
  keys: Ed25519Jwk[];
}

/** Trusted root keys by kid, as `verify` takes them. */
export type TrustedRoots = ReadonlyMap<string, PublicKey>;

const key32 = z
  .string()
  .refine((text) => fromBase64url(text)?.length === 32, "must be 32 bytes in base64url");

const jwkSchema = z.looseObject({
  kty: z.literal("OKP"),
  crv: z.literal("Ed25519"),
  x: key32,
  d: key32.optional(),
  kid: z.string().optional(),
  alg: z.string().optional(),
  use: z.string().optional(),
});

const jwksSchema = z.object({ keys: z.array(z.looseObject({ kty: z.string() })).max(256) });

/** The RFC 7638 thumbprint of an Ed25519 public key, computed by jose. */
export async function kidOf(publicKey: Uint8Array): Promise<string> {
  assertKeyBytes(publicKey, "publicKey");
  return calculateJwkThumbprint(
    { kty: "OKP", crv: "Ed25519", x: toBase64url(publicKey) },
    "sha256",
  );
}

export async function publicKeyFromBytes(bytes: Uint8Array): Promise<PublicKey> {
  assertUsablePublicKey(bytes);
  return Object.freeze({ kid: await kidOf(bytes), bytes: Uint8Array.from(bytes) });
}

export async function keyPairFromSeed(
  seed: Uint8Array,
  backend: Ed25519Backend = getDefaultBackend(),
): Promise<KeyPair> {
  assertKeyBytes(seed, "seed");
  const publicKey = backend.publicKey(seed);
  return Object.freeze({
    kid: await kidOf(publicKey),
    publicKey,
    privateKey: Uint8Array.from(seed),
  });
}

/** A fresh key pair from the platform's CSPRNG. */
export async function generateKeyPair(): Promise<KeyPair> {
  return keyPairFromSeed(new Uint8Array(randomBytes(32)));
}

export function publicKeyOf(keyPair: KeyPair): PublicKey {
  return Object.freeze({ kid: keyPair.kid, bytes: keyPair.publicKey });
}

export function exportPublicJwk(key: PublicKey | KeyPair): Ed25519Jwk {
  const bytes = "bytes" in key ? key.bytes : key.publicKey;
  return {
    kty: "OKP",
    crv: "Ed25519",
    x: toBase64url(bytes),
    kid: key.kid,
    alg: "EdDSA",
    use: "sig",
  };
}

export function exportPrivateJwk(keyPair: KeyPair): Ed25519Jwk {
  return { ...exportPublicJwk(keyPair), d: toBase64url(keyPair.privateKey) };
}

export function exportJwks(keys: readonly (PublicKey | KeyPair)[]): Jwks {
  return { keys: keys.map(exportPublicJwk) };
}

/**
 * Reads a public JWK. A `kid` in the JWK, if any, must equal the thumbprint: keys are named by
 * thumbprint everywhere in a token, so a JWK that claims another name is refused.
 */
export async function importPublicJwk(jwk: unknown): Promise<PublicKey> {
  const parsed = parseJwk(jwk);
  const key = await publicKeyFromBytes(fromBase64url(parsed.x) as Uint8Array);
  assertKid(parsed, key.kid);
  return key;
}

/** Reads a private JWK (with `d`), checking that `x` is the public key of `d`. */
export async function importPrivateJwk(
  jwk: unknown,
  backend: Ed25519Backend = getDefaultBackend(),
): Promise<KeyPair> {
  const parsed = parseJwk(jwk);
  if (parsed.d === undefined) throw new TypeError('JWK has no "d": it is not a private key');
  const keyPair = await keyPairFromSeed(fromBase64url(parsed.d) as Uint8Array, backend);
  if (!equalBytes(keyPair.publicKey, fromBase64url(parsed.x) as Uint8Array)) {
    throw new TypeError('JWK "x" is not the public key of its "d"');
  }
  assertKid(parsed, keyPair.kid);
  return keyPair;
}

/**
 * Reads a JWKS of trusted root keys. Keys of other types are skipped (a JWKS may serve several
 * algorithms); an Ed25519 entry that is malformed, weak, or carries a private part is an error.
 */
export async function importJwks(jwks: unknown): Promise<TrustedRoots> {
  const parsed = jwksSchema.safeParse(jwks);
  if (!parsed.success)
    throw new TypeError(`JWKS must be {"keys": [...]}: ${parsed.error.issues[0]?.message ?? ""}`);
  const roots = new Map<string, PublicKey>();
  for (const entry of parsed.data.keys) {
    if (entry.kty !== "OKP" || (entry as { crv?: unknown }).crv !== "Ed25519") continue;
    if ("d" in entry) throw new TypeError("a JWKS of trusted roots must not contain private keys");
    const key = await importPublicJwk(entry);
    roots.set(key.kid, key);
  }
  return roots;
}

/** Trusted roots from key objects already in hand. */
export function trustedRoots(keys: readonly (PublicKey | KeyPair)[]): TrustedRoots {
  return new Map(
    keys.map((key) => {
      const publicKey = "bytes" in key ? key : publicKeyOf(key);
      return [publicKey.kid, publicKey] as const;
    }),
  );
}

function parseJwk(jwk: unknown): z.infer<typeof jwkSchema> {
  const parsed = jwkSchema.safeParse(jwk);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TypeError(
      `not an Ed25519 JWK: ${issue?.path.join(".") || "value"} ${issue?.message ?? ""}`.trim(),
    );
  }
  return parsed.data;
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

function assertUsablePublicKey(bytes: Uint8Array): void {
  assertKeyBytes(bytes, "publicKey");
  const check = checkPublicKey(bytes);
  if (check !== "ok") throw new RangeError(`"publicKey" is not usable: ${check}`);
  if (!isCurvePoint(bytes)) throw new RangeError('"publicKey" is not a curve point');
}
