/** The Node platform (see ./types.ts): node:crypto's one-shot hash and Buffer's base64. */
import { hash } from "node:crypto";
import { nodeBackend } from "../ed25519/node.js";
import { base64urlOf, bytesOfBase64url } from "./node-buffer.js";
import type { Platform } from "./types.js";

export const platform: Platform = {
  name: "node",
  sha256(input) {
    // One-shot hashing is much cheaper than createHash() for inputs this small. The digest comes
    // back as "binary" (latin1) text, one character per byte exactly, copied into a plain array:
    // a "buffer" digest costs twice as much (the encoding name takes a slow path, and each result
    // is a separately allocated Buffer for the collector to track).
    const digest = hash("sha256", input, "binary");
    const bytes = new Uint8Array(32);
    for (let i = 0; i < 32; i++) bytes[i] = digest.charCodeAt(i);
    return bytes;
  },
  toBase64url(bytes) {
    return base64urlOf(bytes);
  },
  fromBase64url(text) {
    return bytesOfBase64url(text);
  },
  utf8Length(text) {
    return Buffer.byteLength(text, "utf8");
  },
  defaultBackend: nodeBackend,
};
