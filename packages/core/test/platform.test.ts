/**
 * The two platform modules behind `#platform` (packages/core/src/platform): node:crypto and Buffer
 * on Node, portable JavaScript in a browser bundle. They must give the same bytes for every input,
 * or a token would verify on one runtime and not on the other.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { getDefaultBackend } from "@allowance/core";
import { platform as nodePlatform } from "../src/platform/node.js";
import { platform as portablePlatform } from "../src/platform/portable.js";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const platforms = [nodePlatform, portablePlatform] as const;

describe.each(platforms.map((p) => [p.name, p] as const))("the %s platform", (_name, platform) => {
  it('hashes as FIPS 180-4 SHA-256 (the "abc" example and arbitrary input)', () => {
    const abc = platform.sha256(new TextEncoder().encode("abc"));
    expect(Buffer.from(abc).toString("hex")).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        expect(Buffer.from(platform.sha256(bytes))).toEqual(
          createHash("sha256").update(bytes).digest(),
        );
      }),
      { numRuns: 500 },
    );
  });

  it("returns a plain Uint8Array digest of its own", () => {
    const first = platform.sha256(new Uint8Array([1]));
    platform.sha256(new Uint8Array([2]));
    expect(Buffer.from(first).toString("hex")).toBe(
      createHash("sha256")
        .update(new Uint8Array([1]))
        .digest("hex"),
    );
  });

  it("writes base64url as RFC 4648 §5 without padding", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(platform.toBase64url(bytes)).toBe(Buffer.from(bytes).toString("base64url"));
        expect(platform.fromBase64url(platform.toBase64url(bytes))).toEqual(bytes);
      }),
      { numRuns: 1000 },
    );
  });

  it("reads subarrays at their offset, not their buffer's start", () => {
    const whole = Uint8Array.from([9, 8, 7, 6, 5]);
    expect(platform.toBase64url(whole.subarray(2, 4))).toBe(
      Buffer.from([7, 6]).toString("base64url"),
    );
  });
});

describe("the two platforms agree", () => {
  it("on which base64url texts they accept, and on the bytes", () => {
    const unit = fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...ALPHABET) },
      fc.constantFrom("+", "/", "=", " ", "\n", ".", "é", "\u0000", "\ud800", "\u{1f600}"),
    );
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 40 }), (text) => {
        expect(portablePlatform.fromBase64url(text)).toEqual(nodePlatform.fromBase64url(text));
      }),
      { numRuns: 10_000 },
    );
  });

  it("use node:crypto by default on Node and @noble/ed25519 elsewhere", () => {
    expect(nodePlatform.defaultBackend.name).toBe("node");
    expect(portablePlatform.defaultBackend.name).toBe("noble");
    // Vitest resolves `#platform` with Node's conditions.
    expect(getDefaultBackend().name).toBe("node");
  });
});

describe.each(platforms.map((p) => [p.name, p] as const))(
  "utf8Length, %s",
  (_name, { utf8Length }) => {
    it("counts as Buffer.byteLength does, lone surrogates as the 3 bytes of U+FFFD", () => {
      fc.assert(
        fc.property(
          fc.string({ unit: "binary", maxLength: 40 }),
          fc.string({
            unit: fc.integer({ min: 0xd7f0, max: 0xe010 }).map((c) => String.fromCharCode(c)),
            maxLength: 8,
          }),
          (a, b) => {
            const text = a + b;
            expect(utf8Length(text)).toBe(Buffer.byteLength(text, "utf8"));
          },
        ),
        { numRuns: 2000 },
      );
    });
  },
);
