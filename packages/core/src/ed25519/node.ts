import {
  createPrivateKey,
  createPublicKey,
  sign,
  verify,
  type JsonWebKeyInput,
  type KeyObject,
} from "node:crypto";
import type { Ed25519Backend } from "./backend.js";

// Keys are imported as JWKs: OpenSSL 3's DER decoders make an SPKI import cost several times a
// JWK import (and a PKCS#8 import several signatures), while the key object is the same.
const MAX_CACHED_KEYS = 4096;
/** Key objects of keys seen at least twice, by base64url public key; the oldest leave first. */
const publicKeyObjects = new Map<string, KeyObject>();
/**
 * Keys seen once and not (yet) cached. A key is cached on its second use only: a key object kept
 * for a key never used again (a chain's fresh leaves) costs the collector more than its import
 * saves, so a key seen once is verified from its JWK and only its name is kept.
 */
const seenOnce = new Set<string>();

function publicKeyInput(publicKey: Uint8Array): KeyObject | JsonWebKeyInput {
  const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString(
    "base64url",
  );
  const cached = publicKeyObjects.get(x);
  if (cached !== undefined) return cached;
  const jwk: JsonWebKeyInput = { key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" };
  if (!seenOnce.delete(x)) {
    if (seenOnce.size >= MAX_CACHED_KEYS) evictOldest(seenOnce);
    seenOnce.add(x);
    return jwk;
  }
  const key = createPublicKey(jwk);
  if (publicKeyObjects.size >= MAX_CACHED_KEYS) evictOldest(publicKeyObjects);
  publicKeyObjects.set(x, key);
  return key;
}

function evictOldest(collection: Map<string, unknown> | Set<string>): void {
  const oldest = collection.keys().next();
  if (oldest.done !== true) collection.delete(oldest.value);
}

// Importing a private key costs about a signature. Keyed by the seed array itself (a KeyPair keeps
// one), so no secret-derived map key is ever built, and the entry goes with the KeyPair.
const privateKeyObjects = new WeakMap<
  Uint8Array,
  { readonly copy: Uint8Array; readonly key: KeyObject }
>();

function privateKeyObject(seed: Uint8Array): KeyObject {
  const cached = privateKeyObjects.get(seed);
  // The copy guards against a caller who changes the seed bytes in place.
  if (cached !== undefined && sameBytes(cached.copy, seed)) return cached.key;
  const d = Buffer.from(seed.buffer, seed.byteOffset, seed.byteLength).toString("base64url");
  // Node requires "x" to be a string but derives the public key from "d" alone (RFC 8032 §5.1.5);
  // the tests check that signatures match noble's byte for byte.
  const key = createPrivateKey({ key: { kty: "OKP", crv: "Ed25519", d, x: "" }, format: "jwk" });
  privateKeyObjects.set(seed, { copy: Uint8Array.from(seed), key });
  return key;
}

/** node:crypto (OpenSSL): the fast path on Node. OpenSSL verifies with the cofactorless equation. */
export const nodeBackend: Ed25519Backend = {
  name: "node",
  publicKey(seed) {
    const { x } = createPublicKey(privateKeyObject(seed)).export({ format: "jwk" });
    return new Uint8Array(Buffer.from(x as string, "base64url"));
  },
  sign(seed, message) {
    return new Uint8Array(sign(null, message, privateKeyObject(seed)));
  },
  verifyEquation(publicKey, message, signature) {
    try {
      return verify(null, message, publicKeyInput(publicKey), signature);
    } catch {
      return false;
    }
  },
};

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
