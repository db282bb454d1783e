import { hash } from "node:crypto";

export function toBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}

/**
 * Strict base64url (RFC 4648 §5, no padding): returns undefined for any other alphabet, padding,
 * an impossible length, or non-zero unused bits in the last character (RFC 4648 §3.5), so every
 * byte string has exactly one text form. Node's decoder is lenient, so the test is that the text
 * is exactly the canonical encoding of what it decodes to; that is cheaper than a pattern scan.
 */
export function fromBase64url(text: string): Uint8Array | undefined {
  const bytes = Buffer.from(text, "base64url");
  if (bytes.toString("base64url") !== text) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Bytewise lexicographic order (RFC 8949 §4.2.1 uses it on encoded map keys). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

// Where the parts of a multi-part hash input are joined. hash() reads its input synchronously and
// keeps nothing, so one buffer serves every call; it grows to the largest input seen.
let scratch = new Uint8Array(4096);

export function sha256(...parts: readonly Uint8Array[]): Uint8Array {
  let input: Uint8Array;
  if (parts.length === 1) {
    input = parts[0] as Uint8Array;
  } else {
    let length = 0;
    for (const part of parts) length += part.length;
    if (length > scratch.length) scratch = new Uint8Array(length);
    let offset = 0;
    for (const part of parts) {
      scratch.set(part, offset);
      offset += part.length;
    }
    input = scratch.subarray(0, length);
  }
  // One-shot hashing is much cheaper than createHash() for inputs this small.
  const digest = hash("sha256", input, "buffer");
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}

const encoder = new TextEncoder();

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** UTF-8 byte length without encoding. */
export function utf8Length(text: string): number {
  return Buffer.byteLength(text, "utf8");
}
