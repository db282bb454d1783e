/**
 * The loop check's fast paths keep its meaning: normalise collapses whitespace exactly as
 * `replace(/\s+/g, " ").trim()`, and two inputs share a fingerprint exactly when their normalised
 * JSON is equal.
 */
import fc from "fast-check";
import { fingerprint, normalise } from "../src/loop.js";
import { describe, expect, it } from "vitest";

const whitespace = fc.constantFrom(
  " ",
  "  ",
  "\t",
  "\n",
  "\r\n",
  "\u00a0",
  "\u2003",
  "\u3000",
  "\ufeff",
  "\u2028",
  "\v",
  "\f",
);
const text = fc
  .array(fc.oneof(fc.string({ maxLength: 5 }), whitespace), { maxLength: 12 })
  .map((parts) => parts.join(""));
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    text,
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(text, tie("value"), { maxKeys: 4 }),
  ),
})).value;

describe("the loop fingerprint", () => {
  it("law: normalise(string) is the whitespace collapse and trim, exactly", () => {
    fc.assert(
      fc.property(text, (s) => {
        expect(normalise(s)).toBe(s.replace(/\s+/g, " ").trim());
      }),
      { numRuns: 2000 },
    );
  });

  it("law: equal fingerprints exactly when the normalised JSON is equal", () => {
    fc.assert(
      fc.property(json, json, (a, b) => {
        const same = JSON.stringify(normalise(a)) === JSON.stringify(normalise(b));
        expect(
          fingerprint({ provider: "p", model: "m", input: a }) ===
            fingerprint({ provider: "p", model: "m", input: b }),
        ).toBe(same);
        expect(fingerprint({ provider: "p", model: "m", input: a })).toBe(
          fingerprint({ provider: "p", model: "m", input: structuredClone(a) }),
        );
      }),
      { numRuns: 1000 },
    );
  });

  it("tells strings from numbers, keys from values, and a tool from none", () => {
    const f = (input: unknown, tool?: string) =>
      fingerprint({ provider: "p", model: "m", input, ...(tool === undefined ? {} : { tool }) });
    expect(f("1")).not.toBe(f(1));
    expect(f({ a: "b" })).not.toBe(f({ b: "a" }));
    expect(f(['a",b'])).not.toBe(f(["a", "b"]));
    expect(f(null, "null")).not.toBe(f(null));
  });
});
