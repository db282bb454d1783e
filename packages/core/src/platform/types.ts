import type { Ed25519Backend } from "../ed25519/backend.js";

/**
 * What differs between runtimes, chosen once by the package's `#platform` import (package.json
 * `imports`): on Node ("node" condition) node:crypto and Buffer, elsewhere (a browser bundle, the
 * "default" condition) portable JavaScript. Both give the same bytes for every input; the tests
 * hold them to that.
 */
export interface Platform {
  readonly name: "node" | "portable";
  /** SHA-256 of one byte string (FIPS 180-4). The result is a fresh Uint8Array. */
  sha256(input: Uint8Array): Uint8Array;
  /** base64url without padding (RFC 4648 §5). */
  toBase64url(bytes: Uint8Array): string;
  /**
   * Strict base64url: undefined unless `text` is exactly the canonical form of some bytes. The
   * result is a fresh Uint8Array whose buffer holds those bytes and nothing else: token parts are
   * handed out as views of it, so it must share memory with nobody.
   */
  fromBase64url(text: string): Uint8Array | undefined;
  /** UTF-8 byte length without encoding; a lone surrogate counts as the 3 bytes of U+FFFD. */
  utf8Length(text: string): number;
  /** The Ed25519 backend used when a call names none. */
  readonly defaultBackend: Ed25519Backend;
}
