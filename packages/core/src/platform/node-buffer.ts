/**
 * Buffer's base64url, kept away from Buffer's shared pool. `Buffer.from(text)` and
 * `Buffer.from(smallArray)` copy into an 8 KB slab that later allocations share, and a view of
 * that slab reaches all of it: other requests' tokens, a seed decoded from a JWK. So nothing here
 * allocates from the pool: bytes are encoded from memory of this module's or their own, and text
 * is decoded into a fresh array of exactly its length, which the caller then owns alone.
 */

// Where small arrays (keys, digests: up to 64 bytes) are copied to be encoded: V8 keeps such an
// array inside its object, and a view of its `.buffer` would first move the bytes to an allocation
// of their own, which costs more than this copy. Module-private, and zeroed after each use, so no
// key or seed stays in it.
const scratch = Buffer.alloc(64);

/** base64url (RFC 4648 §5, no padding) of `bytes`: a small array copied to `scratch`, else viewed. */
export function base64urlOf(bytes: Uint8Array): string {
  const length = bytes.byteLength;
  if (length > scratch.length)
    return Buffer.from(bytes.buffer, bytes.byteOffset, length).toString("base64url");
  scratch.set(bytes);
  const text = scratch.toString("base64url", 0, length);
  scratch.fill(0, 0, length);
  return text;
}

/**
 * The bytes `text` stands for, in a new Uint8Array whose buffer holds exactly them; undefined
 * unless `text` is the canonical unpadded base64url of those bytes. Node's decoder is lenient (it
 * skips characters outside the alphabet, accepts padding and non-zero unused bits), so the text
 * must be exactly the encoding of what it gives.
 */
export function bytesOfBase64url(text: string): Uint8Array | undefined {
  // Unpadded base64url has no length ≡ 1 (mod 4); every other length fixes the byte count.
  if (text.length % 4 === 1) return undefined;
  const length = Math.floor((text.length * 3) / 4);
  const bytes = new Uint8Array(length);
  const view = Buffer.from(bytes.buffer, 0, length);
  if (view.write(text, "base64url") !== length || view.toString("base64url") !== text)
    return undefined;
  return bytes;
}

/**
 * Runs `work` with Buffer's pool off. node:crypto's JWK import decodes `d` with a pooled
 * `Buffer.from(text, "base64")`, which would leave a seed in the slab other Buffers view; with
 * `Buffer.poolSize` (documented as settable) at 0 every Buffer gets memory of its own. `work` is
 * synchronous, so nothing else allocates while the pool is off.
 */
export function withoutBufferPool<T>(work: () => T): T {
  const poolSize = Buffer.poolSize;
  Buffer.poolSize = 0;
  try {
    return work();
  } finally {
    Buffer.poolSize = poolSize;
  }
}
