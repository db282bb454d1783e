/**
 * Byte helpers on plain Uint8Arrays. Hashing and base64url come from the runtime's platform
 * module (./platform: node:crypto and Buffer on Node, portable JavaScript elsewhere).
 */
import { platform } from "#platform";

export function toBase64url(bytes: Uint8Array): string {
  return platform.toBase64url(bytes);
}

/**
 * Strict base64url (RFC 4648 §5, no padding): returns undefined for any other alphabet, padding,
 * an impossible length, or non-zero unused bits in the last character (RFC 4648 §3.5), so every
 * byte string has exactly one text form.
 */
export function fromBase64url(text: string): Uint8Array | undefined {
  return platform.fromBase64url(text);
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

// Where the parts of a multi-part hash input are joined. The hash reads its input synchronously and
// keeps nothing, so one buffer serves every call; it grows to the largest input seen.
let scratch = new Uint8Array(4096);

export function sha256(...parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return platform.sha256(parts[0] as Uint8Array);
  let length = 0;
  for (const part of parts) length += part.length;
  if (length > scratch.length) scratch = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    scratch.set(part, offset);
    offset += part.length;
  }
  return platform.sha256(scratch.subarray(0, length));
}

/** `count` bytes from the runtime's CSPRNG (Web Crypto, in Node and in browsers). */
export function randomBytes(count: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(count));
}

const encoder = new TextEncoder();

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** UTF-8 byte length without encoding; a lone surrogate counts as the 3 bytes of U+FFFD. */
export function utf8Length(text: string): number {
  return platform.utf8Length(text);
}

/** The bytes as a string of one character per byte: a Map key for byte strings. */
export function bytesKey(bytes: Uint8Array): string {
  let key = "";
  for (let i = 0; i < bytes.length; i++) key += String.fromCharCode(bytes[i] as number);
  return key;
}
