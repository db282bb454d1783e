/**
 * The signing backends behind one small interface. Both implement exactly the verification rule
 * of spec/format.md §5: RFC 8032 §5.1.7 with the cofactorless equation, the encoding of
 * [S]B - [k]A compared byte for byte with R. The policy checks that come before it (S < L, the
 * public key canonical and not of small order) live in ./policy.ts and are shared by both.
 */
export interface Ed25519Backend {
  readonly name: "node" | "noble";
  /** The 32-byte public key of a 32-byte seed (RFC 8032 §5.1.5). */
  publicKey(seed: Uint8Array): Uint8Array;
  /** A 64-byte signature (RFC 8032 §5.1.6); deterministic, so every backend returns the same bytes. */
  sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** The raw equation only; callers must apply the policy checks first. Never throws. */
  verifyEquation(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}
