/** Strict base64url (RFC 4648 §5, no padding): one text form per byte string, nothing else accepted. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fromBase64url, toBase64url } from "@allowance/core/format";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** The rule written out from RFC 4648, independently of the implementation. */
function isCanonical(text: string): boolean {
  if (text.length % 4 === 1) return false;
  if ([...text].some((c) => !ALPHABET.includes(c))) return false;
  const tail = text.length % 4;
  if (tail === 0) return true;
  const last = ALPHABET.indexOf(text.at(-1) as string);
  // 2 characters carry 1 byte (4 unused bits), 3 characters carry 2 bytes (2 unused bits).
  return (last & (tail === 2 ? 0x0f : 0x03)) === 0;
}

describe("fromBase64url", () => {
  it("round-trips every byte string", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(fromBase64url(toBase64url(bytes))).toEqual(bytes);
      }),
      { numRuns: 1000 },
    );
  });

  it("accepts exactly the canonical texts, whatever characters they mix", () => {
    const unit = fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...ALPHABET) },
      fc.constantFrom("+", "/", "=", " ", "\n", ".", "é", "\u0000"),
    );
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 24 }), (text) => {
        const decoded = fromBase64url(text);
        expect(decoded !== undefined).toBe(isCanonical(text));
        if (decoded !== undefined) expect(toBase64url(decoded)).toBe(text);
      }),
      { numRuns: 5000 },
    );
  });

  it("refuses padding, the standard alphabet, whitespace and stray unused bits", () => {
    for (const text of ["AA==", "AA=", "+/8", "ab/c", "AAAA AAAA", "AAAA\n", "AB", "AAB", "A"])
      expect(fromBase64url(text)).toBeUndefined();
    for (const text of ["", "AA", "AAA", "AAAA", "-_8"]) expect(fromBase64url(text)).toBeDefined();
  });
});
