import * as ed from "@noble/ed25519";
import { sha512 } from "@noble/hashes/sha2.js";
import type { Ed25519Backend } from "./backend.js";

ed.hashes.sha512 = sha512;

// RFC 8032 §5.1: the order of the base point.
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function littleEndianToBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] as number);
  return value;
}

/**
 * @noble/ed25519: portable, pure JavaScript. noble's own `verify` uses the cofactored equation
 * (even with `zip215: false`), which can disagree with OpenSSL on keys or R values that carry a
 * torsion component; so verification here is written out with noble's point arithmetic using the
 * cofactorless equation that OpenSSL uses (spec/format.md §5).
 */
export const nobleBackend: Ed25519Backend = {
  name: "noble",
  publicKey(seed) {
    return ed.getPublicKey(seed);
  },
  sign(seed, message) {
    return ed.sign(message, seed);
  },
  verifyEquation(publicKey, message, signature) {
    try {
      if (signature.length !== 64 || publicKey.length !== 32) return false;
      const r = signature.subarray(0, 32);
      const s = littleEndianToBigInt(signature.subarray(32));
      if (s >= L) return false;
      // RFC 8032 §5.1.7 step 1: strict decoding (y < p, no x = 0 with the sign bit set).
      const A = ed.Point.fromBytes(publicKey, false);
      // Step 2: k = SHA-512(R || A || M) mod L.
      const k =
        littleEndianToBigInt(sha512.create().update(r).update(publicKey).update(message).digest()) %
        L;
      // Step 3, cofactorless: encode([S]B - [k]A) must equal the R bytes as received, which also
      // rejects any non-canonical encoding of R.
      const check = ed.Point.BASE.multiply(s, false).subtract(A.multiply(k, false));
      const encoded = check.toBytes();
      for (let i = 0; i < 32; i++) if (encoded[i] !== r[i]) return false;
      return true;
    } catch {
      return false;
    }
  },
};
