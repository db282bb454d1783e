import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { concatBytes, equalBytes } from "../bytes.js";
import type { Ed25519Backend } from "./backend.js";

// DER prefixes of PKCS#8 and SPKI for Ed25519 (RFC 8410): importing DER is the cheapest way to
// turn raw key bytes into a KeyObject.
const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
const SPKI_PREFIX = Uint8Array.from([
  0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
]);

// Importing a key costs about a sixth of a verification, so public keys are imported once.
const MAX_CACHED_KEYS = 4096;
const publicKeyObjects = new Map<string, KeyObject>();

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const cacheKey = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString("latin1");
  let key = publicKeyObjects.get(cacheKey);
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.from(concatBytes(SPKI_PREFIX, publicKey)), format: "der", type: "spki" });
    if (publicKeyObjects.size >= MAX_CACHED_KEYS) {
      const oldest = publicKeyObjects.keys().next();
      if (oldest.done !== true) publicKeyObjects.delete(oldest.value);
    }
    publicKeyObjects.set(cacheKey, key);
  }
  return key;
}

// Importing a private key costs several signatures. Keyed by the seed array itself (a KeyPair keeps
// one), so no secret-derived map key is ever built, and the entry goes with the KeyPair.
const privateKeyObjects = new WeakMap<Uint8Array, { readonly copy: Uint8Array; readonly key: KeyObject }>();

function privateKeyObject(seed: Uint8Array): KeyObject {
  const cached = privateKeyObjects.get(seed);
  // The copy guards against a caller who changes the seed bytes in place.
  if (cached !== undefined && equalBytes(cached.copy, seed)) return cached.key;
  const key = createPrivateKey({ key: Buffer.from(concatBytes(PKCS8_PREFIX, seed)), format: "der", type: "pkcs8" });
  privateKeyObjects.set(seed, { copy: Uint8Array.from(seed), key });
  return key;
}

/** node:crypto (OpenSSL): the fast path on Node. OpenSSL verifies with the cofactorless equation. */
export const nodeBackend: Ed25519Backend = {
  name: "node",
  publicKey(seed) {
    const spki = createPublicKey(privateKeyObject(seed)).export({ format: "der", type: "spki" });
    return new Uint8Array(spki.subarray(SPKI_PREFIX.length));
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
