/**
 * The loop check's fast paths keep its meaning: normalise collapses whitespace exactly as
 * `replace(/\s+/g, " ").trim()`, and two inputs share a fingerprint exactly when their normalised
 * JSON is equal. The fingerprint is a 53-bit hash written in JavaScript: the tests below also ask
 * it to tell apart inputs that differ in one character of a long text, and many near-identical
 * requests, which a weak mix would merge.
 */
import fc from "fast-check";
import { fingerprint } from "../src/loop.js";
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

/**
 * What the fingerprint must agree with, written plainly: whitespace-collapsed strings and sorted
 * keys (a null prototype keeps a "__proto__" key an ordinary key), so equal arguments have equal JSON.
 */
function normalise(value: unknown): unknown {
  if (typeof value === "string") return value.replace(/\s+/g, " ").trim();
  if (Array.isArray(value)) return value.map(normalise);
  if (value !== null && typeof value === "object") {
    const out = Object.create(null) as Record<string, unknown>;
    for (const key of Object.keys(value).sort()) {
      const x = (value as Record<string, unknown>)[key];
      if (x !== undefined) out[key] = normalise(x);
    }
    return out;
  }
  return value;
}

describe("the loop fingerprint", () => {
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

  it("law: one character changed anywhere in a long text changes the fingerprint", () => {
    const long = fc.string({ minLength: 200, maxLength: 3000, unit: "binary" });
    fc.assert(
      fc.property(long, fc.nat(), fc.integer({ min: 1, max: 0xffff }), (s, at, delta) => {
        const i = at % s.length;
        const c = String.fromCharCode((s.charCodeAt(i) + delta) % 0x10000);
        const t = s.slice(0, i) + c + s.slice(i + 1);
        const same = JSON.stringify(normalise(s)) === JSON.stringify(normalise(t));
        const f = (text: string) => fingerprint({ provider: "p", model: "m", input: [text] });
        expect(f(s) === f(t)).toBe(same);
      }),
      { numRuns: 2000 },
    );
  });

  it("law: long texts (normalised another way) agree with short ones: only the normalised text counts", () => {
    // Words and whitespace runs, about 1,000 to 6,000 characters: around the length from which
    // the fingerprint normalises natively. Respaced: the same words, other whitespace.
    const word = fc
      .string({ minLength: 1, maxLength: 12, unit: "grapheme-ascii" })
      .filter((w) => !/\s/.test(w));
    const words = fc.array(word, { minLength: 150, maxLength: 700 });
    const gap = fc.array(whitespace, { minLength: 1, maxLength: 3 }).map((g) => g.join(""));
    fc.assert(
      fc.property(
        words,
        fc.array(gap, { minLength: 701, maxLength: 701 }),
        fc.array(gap, { minLength: 701, maxLength: 701 }),
        (ws, gaps, others) => {
          const spaced = (g: string[]) =>
            (g[700] as string) + ws.map((w, i) => w + (g[i] as string)).join("");
          const a = spaced(gaps);
          const b = spaced(others);
          const plain = ws.join(" ");
          const f = (text: string) =>
            fingerprint({ provider: "p", model: "m", input: { content: text } });
          expect(f(a)).toBe(f(plain));
          expect(f(b)).toBe(f(plain));
          expect(f(a)).not.toBe(f(`${plain}x`));
        },
      ),
      // Shrinking texts this long takes minutes: the first counterexample is reported as found.
      { numRuns: 200, endOnFailure: true },
    );
  });

  it("gives 200,000 near-identical requests 200,000 fingerprints", () => {
    const seen = new Set<number>();
    const base = "Summarise the following note for a colleague: the figures are in. ".repeat(3);
    for (let i = 0; i < 200_000; i++) {
      const messages = [
        { role: "system", content: "You are terse." },
        { role: "user", content: `${base}${i}` },
      ];
      seen.add(fingerprint({ provider: "openai", model: "gpt-4o-mini", input: { messages } }));
    }
    expect(seen.size).toBe(200_000);
  });

  it("remembers long strings' digests without changing any fingerprint, across forgetting", () => {
    const f = (content: string) =>
      fingerprint({ provider: "p", model: "m", input: [{ role: "user", content }] });
    const history = Array.from(
      { length: 40 },
      (_, i) => `${"The figures are in;\n  revenue is up. ".repeat(30)}(turn ${i})`,
    );
    const first = history.map(f);
    expect(new Set(first).size).toBe(40);
    // Seen again: remembered.
    expect(history.map(f)).toEqual(first);
    // Respaced copies are other strings with the same normalised text.
    expect(history.map((h) => f(h.replace(/ {2}/g, "\t ")))).toEqual(first);
    // A digest is kept from a string's second sighting. More than twice what is kept goes by
    // (about 5 million characters, each string seen twice): forgotten, then computed again, alike.
    const filler = "x".repeat(50_000);
    for (let i = 0; i < 100; i++) expect(f(`${filler}${i}`)).toBe(f(`${filler}${i}`));
    expect(history.map(f)).toEqual(first);
    expect(history.map(f)).toEqual(first);
  });

  it("keeps apart long strings that look alike where the memory of digests looks", () => {
    // The same length, first 32 and last 16 characters, and every 40th from the 32nd: all the
    // memory of digests looks at. They differ only in between.
    const n = 32 * 40;
    const at = (i: number, c: string) => "a".repeat(i) + c + "a".repeat(n - i - 1);
    fc.assert(
      fc.property(
        fc.integer({ min: 33, max: n - 17 }).filter((i) => (i - 32) % 40 !== 0),
        fc.constantFrom("b", "c", " ", "\u3000"),
        fc.boolean(),
        (i, c, order) => {
          const s = at(i, c);
          const t = "a".repeat(n);
          const f = (text: string) => fingerprint({ provider: "p", model: "m", input: text });
          const [x, y] = order ? [f(s), f(t)] : [f(t), f(s)].reverse();
          expect(x).not.toBe(y);
          expect(f(s)).toBe(x);
          expect(f(t)).toBe(y);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("takes as whitespace exactly the code units that \\s matches", () => {
    const f = (input: string) => fingerprint({ provider: "p", model: "m", input });
    const spaced = f("x y");
    const wrong: number[] = [];
    for (let c = 0; c <= 0xffff; c++) {
      const ch = String.fromCharCode(c);
      if ((f(`x${ch}y`) === spaced) !== /\s/.test(ch)) wrong.push(c);
    }
    expect(wrong).toEqual([]);
  });

  it("tells apart what UTF-8 would merge: lone surrogates", () => {
    const f = (input: unknown) => fingerprint({ provider: "p", model: "m", input });
    expect(f("\ud800")).not.toBe(f("\udc00"));
    expect(f("\ud800")).not.toBe(f("\ufffd"));
  });
});
