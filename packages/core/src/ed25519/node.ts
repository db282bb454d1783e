import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import type { Ed25519Backend } from "./backend.js";

// Keys are imported as JWKs: OpenSSL 3's DER decoders make an SPKI import cost several times a
// JWK import (and a PKCS#8 import several signatures), while the key object is the same.
const MAX_CACHED_KEYS = 4096;
const publicKeyObjects = new Map<string, KeyObject>();

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const bytes = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength);
  const cacheKey = bytes.toString("latin1");
  let key = publicKeyObjects.get(cacheKey);
  if (key === undefined) {
    key = createPublicKey({
      key: { kty: "OKP", crv: "Ed25519", x: bytes.toString("base64url") },
      format: "jwk",
    });
    if (publicKeyObjects.size >= MAX_CACHED_KEYS) {
      const oldest = publicKeyObjects.keys().next();
      if (oldest.done !== true) publicKeyObjects.delete(oldest.value);
    }
    publicKeyObjects.set(cacheKey, key);
  }
  return key;
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
      return verify(null, message, publicKeyObject(publicKey), signature);
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
