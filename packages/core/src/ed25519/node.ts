import {
  createPrivateKey,
  createPublicKey,
  sign,
  verify,
  type JsonWebKeyInput,
  type KeyObject,
} from "node:crypto";
import { base64urlOf, bytesOfBase64url, withoutBufferPool } from "../platform/node-buffer.js";
import type { Ed25519Backend } from "./backend.js";

// Keys are imported as JWKs: OpenSSL 3's DER decoders make an SPKI import cost several times a
// JWK import (and a PKCS#8 import several signatures), while the key object is the same.
const MAX_CACHED_KEYS = 4096;

/**
 * The last `size` names recorded, oldest first out. A Map or Set knows its oldest entry too, but
 * finding it walks past every entry deleted since the table was last rebuilt: with keys churning
 * through a full cache (chains never seen), that walk cost about 1.5 µs per new key, against
 * 0.5 µs for all of this bookkeeping with a ring.
 */
class Ring {
  readonly #names: (string | undefined)[];
  #next = 0;
  constructor(size: number) {
    this.#names = new Array<string | undefined>(size).fill(undefined);
  }
  /** Records `name` as the newest; returns the name recorded `size` pushes ago, if any. */
  push(name: string): string | undefined {
    const oldest = this.#names[this.#next];
    this.#names[this.#next] = name;
    this.#next = (this.#next + 1) % this.#names.length;
    return oldest;
  }
}

/** Key objects of keys seen at least twice, by base64url public key; the oldest leave first. */
const publicKeyObjects = new Map<string, KeyObject>();
const publicKeyOrder = new Ring(MAX_CACHED_KEYS);
/**
 * Keys seen once and not (yet) cached. A key is cached on its second use only: a key object kept
 * for a key never used again (a chain's fresh leaves) costs the collector more than its import
 * saves, so a key seen once is verified from its JWK and only its name is kept. A name's slot in
 * the ring can outlive its entry (the key was cached, then evicted and seen anew); the slot then
 * ends that later entry early, which only makes the key look unseen once more.
 */
const seenOnce = new Set<string>();
const seenOrder = new Ring(MAX_CACHED_KEYS);

function publicKeyInput(publicKey: Uint8Array): KeyObject | JsonWebKeyInput {
  const x = base64urlOf(publicKey);
  const cached = publicKeyObjects.get(x);
  if (cached !== undefined) return cached;
  const jwk: JsonWebKeyInput = { key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" };
  if (!seenOnce.delete(x)) {
    const oldest = seenOrder.push(x);
    if (oldest !== undefined) seenOnce.delete(oldest);
    seenOnce.add(x);
    return jwk;
  }
  const key = createPublicKey(jwk);
  // Names enter the map only here, and only when absent: the ring holds its names, in order.
  const oldest = publicKeyOrder.push(x);
  if (oldest !== undefined) publicKeyObjects.delete(oldest);
  publicKeyObjects.set(x, key);
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
  const d = base64urlOf(seed);
  // Node requires "x" to be a string but derives the public key from "d" alone (RFC 8032 §5.1.5);
  // the tests check that signatures match noble's byte for byte.
  // Node decodes "d" into a Buffer: not one from the pool, which other Buffers share.
  const key = withoutBufferPool(() =>
    createPrivateKey({ key: { kty: "OKP", crv: "Ed25519", d, x: "" }, format: "jwk" }),
  );
  privateKeyObjects.set(seed, { copy: Uint8Array.from(seed), key });
  return key;
}

/** node:crypto (OpenSSL): the fast path on Node. OpenSSL verifies with the cofactorless equation. */
export const nodeBackend: Ed25519Backend = {
  name: "node",
  publicKey(seed) {
    const { x } = createPublicKey(privateKeyObject(seed)).export({ format: "jwk" });
    return bytesOfBase64url(x as string) as Uint8Array;
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
