/**
 * A Buffer over `bytes`, to encode them. V8 keeps a small typed array (up to 64 bytes: keys,
 * digests) inside its object, and reading its `.buffer` moves the bytes to an allocation of their
 * own; copying them into Buffer's pool costs half as much. Larger arrays are viewed, not copied.
 */
export function bufferOf(bytes: Uint8Array): Buffer {
  return bytes.byteLength <= 64
    ? Buffer.from(bytes)
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
