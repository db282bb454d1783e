/**
 * The duplicate-key guard (wrap-fetch.ts `ambiguous`): a request whose text gives a bound key twice,
 * or holds any \u escape, is sent as the meter parsed it. The guard walks the text from string to
 * string; these tests hold it to a reference that reads the parsed value instead, on random JSON
 * with keys and strings full of quotes, backslashes and colons, in any layout.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ambiguous, BOUND_KEYS } from "../src/wrap-fetch.js";

const BOUND = new Set(BOUND_KEYS);

/** Every key of every object in `value`, counted. */
function keyCounts(value: unknown, counts = new Map<string, number>()): Map<string, number> {
  if (Array.isArray(value)) for (const v of value) keyCounts(v, counts);
  else if (value !== null && typeof value === "object")
    for (const [k, v] of Object.entries(value)) {
      counts.set(k, (counts.get(k) ?? 0) + 1);
      keyCounts(v, counts);
    }
  return counts;
}

/** What the guard must answer for JSON.stringify's text of `value`, which never repeats a key in one object. */
function expected(text: string, value: unknown): boolean {
  if (text.includes("\\u")) return true;
  for (const [k, n] of keyCounts(value)) if (n > 1 && BOUND.has(k)) return true;
  return false;
}

/** Strings that make the walk work: quotes, backslashes, colons, bound keys as values. */
const tricky = fc.oneof(
  fc.constantFrom(...BOUND_KEYS),
  fc.constantFrom('"', "\\", '\\"', ":", '":', '"max_tokens":', "\\\\", "", " ", "\n", "\t"),
  fc.string({ maxLength: 8 }),
  fc
    .array(fc.constantFrom('"', "\\", ":", "a", "max_tokens", " ", "{", "}", ","), {
      maxLength: 6,
    })
    .map((parts) => parts.join("")),
);
/** Keys adapters read in the request's own object only: bound there, not where they nest. */
const TOP_ONLY = ["content", "text", "requests", "web_search_options", "stream", "stream_options"];
const keyArb = fc.oneof(fc.constantFrom(...BOUND_KEYS), fc.constantFrom(...TOP_ONLY), tricky);
const jsonValue = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    tricky,
    fc.integer(),
    fc.constantFrom(null, true, false, 1.5),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(keyArb, tie("value"), { maxKeys: 5 }),
  ),
})).value;
const layout = fc.constantFrom<undefined | number | string>(undefined, 0, 1, 2, "\t", " \n ");

describe("the duplicate-key guard", () => {
  it("agrees with a count of the parsed value's keys, on any JSON and any layout", () => {
    fc.assert(
      fc.property(fc.dictionary(keyArb, jsonValue, { maxKeys: 6 }), layout, (value, space) => {
        const text = JSON.stringify(value, null, space);
        expect(ambiguous(text)).toBe(expected(text, value));
      }),
      { numRuns: 3000 },
    );
  });

  it("finds a bound key given twice in one object, at any depth and after any string", () => {
    fc.assert(
      fc.property(
        jsonValue,
        fc.constantFrom(...BOUND_KEYS),
        jsonValue,
        layout,
        (around, key, inner, space) => {
          // The marker is no bound key, has no character JSON escapes, and is replaced by the pair.
          const value = { before: around, nested: [{ x: around, MARKER: inner }], after: around };
          const text = JSON.stringify(value, null, space).replace(
            /"MARKER":/,
            `${JSON.stringify(key)} :0, ${JSON.stringify(key)}:`,
          );
          expect(() => JSON.parse(text)).not.toThrow();
          expect(ambiguous(text)).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("finds any key given twice in the request's own object, and no other key twice below it", () => {
    const name = fc.oneof(fc.constantFrom(...TOP_ONLY), fc.string({ maxLength: 12 }));
    fc.assert(
      fc.property(
        fc.dictionary(keyArb, jsonValue, { maxKeys: 4 }),
        name,
        jsonValue,
        layout,
        (rest, key, value, space) => {
          const member = `${JSON.stringify(key)}: ${JSON.stringify(value) ?? "null"}`;
          const body = JSON.stringify(rest, null, space);
          const twice =
            body === "{}" ? `{${member}, ${member}}` : `{${member}, ${member}, ${body.slice(1)}`;
          expect(() => JSON.parse(twice)).not.toThrow();
          expect(ambiguous(twice)).toBe(true);
          // One object down, the member twice is ambiguous only by its bound keys (the key, and
          // each in its value, now twice) or a \u escape, counted as a reference would.
          const nested = `{"wrapper": ${twice}}`;
          const counts = keyCounts(rest);
          for (const k of [key, key]) counts.set(k, (counts.get(k) ?? 0) + 1);
          keyCounts(value, counts);
          keyCounts(value, counts);
          const boundTwice = [...counts].some(([k, n]) => n > 1 && BOUND.has(k));
          expect(ambiguous(nested)).toBe(nested.includes("\\u") || boundTwice);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it.each([
    [
      "a value equal to a bound key, twice",
      '{"messages":[{"role":"system"},{"role":"system"}]}',
      false,
    ],
    [
      "a key after a string ending in an escaped backslash",
      '{"a":"x\\\\","n":1,"b":"\\\\\\"n\\":2","n":3}',
      true,
    ],
    ["a bound key inside a string, twice", '{"a":"\\"n\\":1, \\"n\\":2"}', false],
    ["whitespace before the colon", '{"model" \n\t: "a", "model"\r: "b"}', true],
    ["a bound key in two objects", '{"a":{"input":1},"b":{"input":2}}', true],
    [
      "web_search_options twice",
      '{"model":"m","web_search_options":{},"web_search_options":null}',
      true,
    ],
    [
      "content twice at the top",
      '{"content":{"parts":[]},"content":{"parts":[{"text":"x"}]}}',
      true,
    ],
    [
      "content in every message, once each",
      '{"messages":[{"content":"a"},{"content":"b"}]}',
      false,
    ],
    ["any key twice at the top", '{"x":1,"y":2,"x":3}', true],
    ["a key twice in an array of objects", '{"m":[{"x":1},{"x":2}]}', false],
    ["a \\u escape anywhere", '{"a":"\\u0041"}', true],
    ["no key twice", '{"model":"a","max_tokens":10,"messages":[]}', false],
  ])("%s", (_name, text, answer) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(ambiguous(text)).toBe(answer);
  });
});
