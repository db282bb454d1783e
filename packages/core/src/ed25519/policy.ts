import * as ed from "@noble/ed25519";
import { bytesKey } from "../bytes.js";
import type { Ed25519Backend } from "./backend.js";
import { nobleBackend } from "./noble.js";
import { platform } from "#platform";

// RFC 8032 §5.1: L, little-endian, for the S < L check.
const L_BYTES = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
]);

/** Policy: S must be canonical, 0 <= S < L (RFC 8032 §5.1.7); S + L is the classic malleation. */
export function isCanonicalScalar(s: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const a = s[i] as number;
    const b = L_BYTES[i] as number;
    if (a !== b) return a < b;
  }
  return false;
}

// The eight points of small order, each in its canonical encoding, plus the two encodings with
// x = 0 and the sign bit set (RFC 8032 §5.1.3 rejects those; listed so the table stands alone).
const SMALL_ORDER = new Set(
  [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
  ].map((hex) => hex.replace(/../g, (pair) => String.fromCharCode(Number.parseInt(pair, 16)))),
);

const SMALL_ORDER_FIRST_BYTES = new Set([...SMALL_ORDER].map((key) => key.charCodeAt(0)));

/**
 * Policy: a public key must be 32 bytes, encode y < p canonically, and not be a point of small
 * order (a small-order key lets one signature verify for many messages). Whether the bytes decode
 * to a curve point at all is left to the equation, which fails for non-points in both backends.
 */
export function checkPublicKey(
  publicKey: Uint8Array,
): "ok" | "length" | "non-canonical" | "small-order" {
  if (publicKey.length !== 32) return "length";
  // y is the low 255 bits; y >= p = 2^255 - 19 is non-canonical.
  const top = (publicKey[31] as number) & 0x7f;
  if (top === 0x7f && (publicKey[0] as number) >= 0xed) {
    let allOnes = true;
    for (let i = 1; i < 31; i++) if (publicKey[i] !== 0xff) allOnes = false;
    if (allOnes) return "non-canonical";
  }
  // Every small-order encoding starts with one of these bytes; most keys stop at this test.
  if (SMALL_ORDER_FIRST_BYTES.has(publicKey[0] as number) && SMALL_ORDER.has(bytesKey(publicKey)))
    return "small-order";
  return "ok";
}

/**
 * Whether the bytes decode to a curve point at all (RFC 8032 §5.1.3). It costs a square root in
 * pure JavaScript, so it runs where keys are made or imported (mint, attenuate, JWK import), not
 * in verification, where a non-point key simply fails every signature made with it.
 */
export function isCurvePoint(publicKey: Uint8Array): boolean {
  try {
    ed.Point.fromBytes(publicKey, false);
    return true;
  } catch {
    return false;
  }
}

let defaultBackend: Ed25519Backend = platform.defaultBackend;

/**
 * The backend used when a call names none: node:crypto on Node, @noble/ed25519 elsewhere (the
 * package's `#platform` import decides), unless changed here.
 */
export function setDefaultBackend(backend: Ed25519Backend): void {
  // Checked here: a null or partial backend would make every later call fail deep inside.
  defaultBackend = checkedBackend(backend, ["publicKey", "sign", "verifyEquation"]);
}

/**
 * A backend given to a call (or set as the default), with the methods that call uses: a null or
 * partial one is a TypeError naming "backend", not a crash deep inside.
 */
export function checkedBackend(
  backend: unknown,
  methods: readonly (keyof Ed25519Backend)[],
): Ed25519Backend {
  if (
    typeof backend !== "object" ||
    backend === null ||
    methods.some((m) => typeof (backend as Partial<Ed25519Backend>)[m] !== "function")
  )
    throw new TypeError(
      `"backend" expected an Ed25519 backend with ${methods.map((m) => `${m}()`).join(", ")}, got ${backend === null ? "null" : typeof backend}`,
    );
  return backend as Ed25519Backend;
}
export function getDefaultBackend(): Ed25519Backend {
  return defaultBackend;
}

/** Whether `backend` is one of the library's own (node:crypto, @noble/ed25519). */
export function isBuiltInBackend(backend: Ed25519Backend): boolean {
  return backend === platform.defaultBackend || backend === nobleBackend;
}

/**
 * The full verification rule of spec/format.md §5: policy checks, then the cofactorless equation.
 * Returns a reason instead of throwing, so callers choose the error to raise.
 */
export function verifySignature(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  backend: Ed25519Backend = defaultBackend,
): "ok" | "bad-key" | "non-canonical-s" | "invalid" {
  if (checkPublicKey(publicKey) !== "ok") return "bad-key";
  if (signature.length !== 64) return "invalid";
  if (!isCanonicalScalar(signature.subarray(32))) return "non-canonical-s";
  return backend.verifyEquation(publicKey, message, signature) ? "ok" : "invalid";
}
