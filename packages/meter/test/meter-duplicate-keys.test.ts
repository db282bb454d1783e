/**
 * The duplicate-key guard (wrap-fetch.ts `ambiguous`): a request whose text gives a key twice in
 * one object (at any depth), spells a key with an escape, or holds any \u escape, is sent as the
 * meter parsed it. The guard walks the text from string to string; these tests hold it to a
 * reference that reads the parsed value instead, on random JSON with keys and strings full of
 * quotes, backslashes, brackets and colons, in any layout.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ambiguous } from "../src/wrap-fetch.js";

/** Whether any key in `value` is written with an escape by JSON.stringify (a quote, a backslash, a control character). */
function escapedKey(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(escapedKey);
  if (value !== null && typeof value === "object")
    return Object.entries(value).some(([k, v]) => JSON.stringify(k) !== `"${k}"` || escapedKey(v));
  return false;
}

/** What the guard must answer for JSON.stringify's text of `value`, which never repeats a key in one object. */
function expected(text: string, value: unknown): boolean {
  return text.includes("\\u") || escapedKey(value);
}

/** Strings that make the walk work: quotes, backslashes, colons and brackets, keys as values. */
const tricky = fc.oneof(
  fc.constantFrom("model", "max_tokens", "content", "messages", "input", "text"),
  fc.constantFrom('"', "\\", '\\"', ":", '":', '"max_tokens":', "\\\\", "", " ", "\n", "\t"),
  fc.constantFrom("{", "}", "[", "]", '{"a":', "}]", "[{"),
  fc.string({ maxLength: 8 }),
  fc
    .array(fc.constantFrom('"', "\\", ":", "a", "max_tokens", " ", "{", "}", "[", "]", ","), {
      maxLength: 6,
    })
    .map((parts) => parts.join("")),
);
const jsonValue = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    tricky,
    fc.integer(),
    fc.constantFrom(null, true, false, 1.5, 1e21, -0.5e-7),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(tricky, tie("value"), { maxKeys: 5 }),
  ),
})).value;
const layout = fc.constantFrom<undefined | number | string>(undefined, 0, 1, 2, "\t", " \n ");
/** A key JSON.stringify writes without an escape. */
const plainKey = fc.oneof(
  fc.constantFrom("content", "model", "max_tokens", "x", "web_search_options"),
  fc.string({ maxLength: 10 }).filter((k) => JSON.stringify(k) === `"${k}"`),
);

describe("the duplicate-key guard", () => {
  it("agrees with the parsed value's keys on any JSON and any layout", () => {
    fc.assert(
      fc.property(fc.dictionary(tricky, jsonValue, { maxKeys: 6 }), layout, (value, space) => {
        const text = JSON.stringify(value, null, space);
        expect(ambiguous(text)).toBe(expected(text, value));
      }),
      { numRuns: 3000 },
    );
  });

  it("finds a key given twice in one object, at any depth and after any string", () => {
    fc.assert(
      fc.property(jsonValue, plainKey, jsonValue, layout, (around, key, inner, space) => {
        // The marker has no character JSON escapes, and is replaced by the pair.
        const value = { before: around, nested: [{ x: around, MARKER: inner }], after: around };
        // A function, not a string: a key such as "$&" must not be read as a replacement pattern.
        const text = JSON.stringify(value, null, space).replace(
          /"MARKER":/,
          () => `${JSON.stringify(key)} :0, ${JSON.stringify(key)}:`,
        );
        expect(() => JSON.parse(text)).not.toThrow();
        expect(ambiguous(text)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("finds a member given twice in the request's own object or one inside it; a key in two objects is no repeat", () => {
    fc.assert(
      fc.property(
        fc.dictionary(plainKey, jsonValue, { maxKeys: 4 }),
        plainKey,
        jsonValue,
        layout,
        (others, key, value, space) => {
          const rest = Object.fromEntries(Object.entries(others).filter(([k]) => k !== key));
          const member = `${JSON.stringify(key)}: ${JSON.stringify(value) ?? "null"}`;
          const body = JSON.stringify(rest, null, space);
          const twice =
            body === "{}" ? `{${member}, ${member}}` : `{${member}, ${member}, ${body.slice(1)}`;
          expect(() => JSON.parse(twice)).not.toThrow();
          expect(ambiguous(twice)).toBe(true);
          expect(ambiguous(`{"wrapper": [${twice}]}`)).toBe(true);
          // The same member once in each of two objects: ambiguous only by what each holds.
          const once = body === "{}" ? `{${member}}` : `{${member}, ${body.slice(1)}`;
          const apart = `{"a": ${once}, "b": [${once}]}`;
          expect(() => JSON.parse(apart)).not.toThrow();
          expect(ambiguous(apart)).toBe(expected(apart, JSON.parse(apart)));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("stays linear: 80,000 keys in one object and 20,000 objects deep in arrays", () => {
    const wide = `{${Array.from({ length: 80_000 }, (_, i) => `"k${i}":${i}`).join(",")}}`;
    const deep = `{"a":${"[".repeat(20_000)}{"x":1}${"]".repeat(20_000)}}`;
    const started = performance.now();
    expect(ambiguous(wide)).toBe(false);
    expect(ambiguous(`${wide.slice(0, -1)},"k7":0}`)).toBe(true);
    expect(ambiguous(deep)).toBe(false);
    // Quadratic, the wide object alone took seconds; linear, a fraction of one.
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it.each([
    ["a value equal to a key, twice", '{"messages":[{"role":"system"},{"role":"system"}]}', false],
    [
      "a key after a string ending in an escaped backslash",
      '{"a":"x\\\\","n":1,"b":"\\\\\\"n\\":2","n":3}',
      true,
    ],
    ["a key inside a string, twice", '{"a":"\\"n\\":1, \\"n\\":2"}', false],
    ["whitespace before the colon", '{"model" \n\t: "a", "model"\r: "b"}', true],
    ["brackets inside strings", '{"a":"{[","b":{"c":"]}","c":1},"a":2}', true],
    ["a key in two objects", '{"a":{"input":1},"b":{"input":2}}', false],
    [
      "web_search_options twice",
      '{"model":"m","web_search_options":{},"web_search_options":null}',
      true,
    ],
    [
      "content twice in one message",
      '{"messages":[{"role":"user","content":"x","content":"hi"}]}',
      true,
    ],
    [
      "content in every message, once each",
      '{"messages":[{"content":"a"},{"content":"b"}]}',
      false,
    ],
    ["any key twice at the top", '{"x":1,"y":2,"x":3}', true],
    ["a key twice in an array of objects, one each", '{"m":[{"x":1},{"x":2}]}', false],
    ["a key spelt with an escape", '{"a\\/b":1,"a/b":2}', true],
    ["a \\u escape anywhere", '{"a":"\\u0041"}', true],
    ["no key twice", '{"model":"a","max_tokens":10,"messages":[]}', false],
  ])("%s", (_name, text, answer) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(ambiguous(text)).toBe(answer);
  });
});
