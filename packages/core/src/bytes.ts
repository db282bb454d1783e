import { hash } from "node:crypto";

const B64URL = /^[A-Za-z0-9_-]*$/;

export function toBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}

const B64URL_VALUES = new Int8Array(128).fill(-1);
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".split("").forEach((c, i) => (B64URL_VALUES[c.charCodeAt(0)] = i));

/**
 * Strict base64url (RFC 4648 §5, no padding): returns undefined for any other alphabet, an
 * impossible length, or non-zero unused bits in the last character (RFC 4648 §3.5), so every byte
 * string has exactly one text form.
 */
export function fromBase64url(text: string): Uint8Array | undefined {
  if (text.length % 4 === 1 || !B64URL.test(text)) return undefined;
  const tail = text.length % 4;
  if (tail !== 0) {
    const last = B64URL_VALUES[text.charCodeAt(text.length - 1)] as number;
    // 2 characters carry 1 byte (4 unused bits), 3 characters carry 2 bytes (2 unused bits).
    if ((last & (tail === 2 ? 0x0f : 0x03)) !== 0) return undefined;
  }
  const bytes = Buffer.from(text, "base64url");
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

export function sha256(...parts: readonly Uint8Array[]): Uint8Array {
  // One-shot hashing of one buffer is much cheaper than createHash() for inputs this small.
  const digest = hash("sha256", parts.length === 1 ? (parts[0] as Uint8Array) : concatBytes(...parts), "buffer");
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
