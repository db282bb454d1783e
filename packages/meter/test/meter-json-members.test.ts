/**
 * The usage of a JSON answer is read without parsing the whole answer (json-members.ts). Its
 * meaning must be JSON.parse's exactly: the same texts accepted, the same values read, the last of
 * duplicate keys, escaped keys unescaped; anything JSON.parse refuses is refused, so a malformed
 * answer is charged the whole hold, never a usage read out of it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { jsonMembers } from "../src/json-members.js";

const KEYS = ["usage", "output", "candidates"] as const;

/** JSON.parse's reading: the wanted own members of an object, or undefined for anything else. */
function oracle(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const out: Record<string, unknown> = {};
  for (const key of KEYS) if (Object.hasOwn(value, key)) out[key] = (value as never)[key];
  return out;
}

const plain = (members: Record<string, unknown> | undefined) =>
  members === undefined ? undefined : { ...members };

const key = fc.oneof(fc.constantFrom(...KEYS, "usag", "usages", "Usage", ""), fc.string());
const object = fc.dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 });
/** A JSON text of an object, with the layout varied: indentation, escaped keys, a duplicate key. */
const text = fc
  .tuple(
    object,
    fc.constantFrom(undefined, 0, 1, 2, "\t", "\r\n"),
    fc.boolean(),
    fc.option(fc.tuple(fc.constantFrom(...KEYS), fc.jsonValue({ maxDepth: 2 }))),
  )
  .map(([value, indent, escape, duplicate]) => {
    let t = JSON.stringify(value, null, indent as never);
    if (escape)
      t = t.replaceAll('"usage"', '"usag\\u0065"').replaceAll('"output"', '"\\u006futput"');
    if (duplicate !== null) {
      const [k, v] = duplicate;
      const member = `${JSON.stringify(k)}:${JSON.stringify(v)}`;
      t = t === "{}" ? `{${member}}` : `${t.slice(0, -1)},${member}}`;
    }
    return t;
  });

/** One edit of a text: a character removed, inserted or replaced, from those JSON gives meaning. */
const edited = fc
  .tuple(
    text,
    fc.nat(),
    fc.constantFrom("del", "ins", "rep"),
    fc.constantFrom(...'{}[],:"\\ \t\n0123456789.eE+-tfnulx\u0001'),
  )
  .map(([t, at, how, c]) => {
    const i = t.length === 0 ? 0 : at % t.length;
    if (how === "del") return t.slice(0, i) + t.slice(i + 1);
    if (how === "ins") return t.slice(0, i) + c + t.slice(i);
    return t.slice(0, i) + c + t.slice(i + 1);
  });

describe("reading top-level members of a JSON text", () => {
  it("law: reads what JSON.parse reads, from any object's JSON laid out any way", () => {
    fc.assert(
      fc.property(text, (t) => {
        expect(plain(jsonMembers(t, KEYS))).toEqual(oracle(t));
      }),
      { numRuns: 3000 },
    );
  });

  it("law: accepts exactly the texts JSON.parse accepts as an object, after any one edit", () => {
    fc.assert(
      fc.property(edited, (t) => {
        expect(plain(jsonMembers(t, KEYS))).toEqual(oracle(t));
      }),
      { numRuns: 10000 },
    );
  });

  it("law: any JSON value that is not an object, and any string at all, is read as JSON.parse reads it", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue().map((v) => JSON.stringify(v)),
          fc.string(),
          fc.string({ unit: "binary" }),
        ),
        (t) => {
          expect(plain(jsonMembers(t, KEYS))).toEqual(oracle(t));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("keeps the last of duplicate keys, reads escaped keys, and never takes a nested member", () => {
    expect(plain(jsonMembers('{"usage":1,"usage":2}', KEYS))).toEqual({ usage: 2 });
    expect(plain(jsonMembers('{"usag\\u0065":{"a":1}}', KEYS))).toEqual({ usage: { a: 1 } });
    expect(plain(jsonMembers('{"x":{"usage":1},"y":["usage",{"usage":2}]}', KEYS))).toEqual({});
    expect(plain(jsonMembers(' \r\n\t{ "usage" : [ 1 , 2 ] } \n', KEYS))).toEqual({
      usage: [1, 2],
    });
  });

  it("refuses what JSON.parse refuses: bad numbers, literals, escapes, control characters, trailing text", () => {
    for (const bad of [
      '{"usage":01}',
      '{"usage":1.}',
      '{"usage":.5}',
      '{"usage":-}',
      '{"usage":1e}',
      '{"usage":+1}',
      '{"usage":tru}',
      '{"usage":nul}',
      '{"usage":"\\x"}',
      '{"usage":"\\u12g4"}',
      '{"usage":"a\u0001b"}',
      '{"usage":1,}',
      '{"usage":[1,]}',
      '{"usage":{"a":1,}}',
      '{"usage" 1}',
      "{usage:1}",
      "{'usage':1}",
      '{"usage":1}x',
      '{"usage":1}{}',
      '\ufeff{"usage":1}',
      '{"usage":[1}',
      '{"usage":{"a":1]}',
      '{"usage":"unterminated}',
      "",
      "{",
    ]) {
      expect(() => JSON.parse(bad)).toThrow();
      expect(jsonMembers(bad, KEYS)).toBeUndefined();
    }
    for (const good of ['{"usage":-0.0e-0}', '{"usage":1E+2}', '{"usage":"\\ud800\\/"}', "{}"])
      expect(plain(jsonMembers(good, KEYS))).toEqual(oracle(good));
  });

  it("follows deep nesting without recursion", () => {
    const deep = `{"usage":${"[".repeat(100_000)}${"]".repeat(100_000)},"output":1}`;
    expect(jsonMembers(deep, ["output"])?.output).toBe(1);
    expect(jsonMembers(`{"usage":${"[".repeat(100_000)}}`, KEYS)).toBeUndefined();
  });
});
