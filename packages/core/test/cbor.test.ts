/**
 * Canonical CBOR (spec/format.md §3; RFC 8949 §4.2.1): one value, one encoding. The decoder must
 * refuse every other encoding of the same value, and every construct outside our data model, with
 * an AllowanceError — never a generic exception.
 */
import { Encoder, type Options } from "cbor-x";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AllowanceError, type ErrorCode } from "@allowance/core";
import { decodeCanonical, encodeCanonical, type CborValue } from "@allowance/core/format";

const hex = (text: string): Uint8Array =>
  Uint8Array.from(Buffer.from(text.replace(/\s+/g, ""), "hex"));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

/** The code decodeCanonical raises for `bytes`, or a marker if it raised something else or nothing. */
function decodeError(bytes: Uint8Array): ErrorCode | "accepted" | "not an AllowanceError" {
  try {
    decodeCanonical(bytes);
    return "accepted";
  } catch (error) {
    return error instanceof AllowanceError ? error.code : "not an AllowanceError";
  }
}

/** A comparable, JSON-like picture of a decoded value: maps as sorted entries, bytes as hex. */
function shape(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: toHex(value) };
  if (Array.isArray(value)) return value.map(shape);
  if (value instanceof Map) {
    const entries = [...(value as Map<unknown, unknown>)].map(
      ([key, item]) => [typeof key + ":" + String(key), shape(item)] as const,
    );
    return { map: entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) };
  }
  return value;
}

const MAX_NESTING_DEPTH = 5;
const cborValue: fc.Arbitrary<CborValue> = fc.letrec<{ value: CborValue }>((tie) => ({
  value: fc.oneof(
    { maxDepth: MAX_NESTING_DEPTH, depthIdentifier: "cbor" },
    fc.oneof(
      fc.nat(30),
      fc.nat(70_000),
      fc.integer({ min: 2 ** 32 - 5, max: 2 ** 32 + 5 }),
      fc.maxSafeNat(),
    ),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie("value"), { maxLength: 4, depthIdentifier: "cbor" }),
    fc
      .uniqueArray(
        fc.tuple(fc.oneof(fc.nat(300), fc.string({ unit: "binary", maxLength: 8 })), tie("value")),
        {
          selector: ([key]) => key,
          maxLength: 4,
          depthIdentifier: "cbor",
        },
      )
      .map((entries): CborValue => new Map(entries)),
  ),
})).value;

describe("canonical encoding", () => {
  it.each([
    [0, "00"],
    [23, "17"],
    [24, "1818"],
    [255, "18ff"],
    [256, "190100"],
    [65_535, "19ffff"],
    [65_536, "1a00010000"],
    [2 ** 32 - 1, "1affffffff"],
  ])("writes the integer %d in its shortest form %s", (value, expected) => {
    expect(toHex(encodeCanonical(value))).toBe(expected);
  });

  it.each([
    [2 ** 32, "1b0000000100000000"],
    [2 ** 32 + 1, "1b0000000100000001"],
    [5_000_000_000, "1b000000012a05f200"],
    [2 ** 52 + 3, "1b0010000000000003"],
    [Number.MAX_SAFE_INTEGER, "1b001fffffffffffff"],
  ])("writes %d, at or above 2^32, as an 8-byte integer and not as a float", (value, expected) => {
    const bytes = encodeCanonical(value);
    expect(toHex(bytes)).toBe(expected);
    expect(decodeCanonical(bytes)).toBe(value);
  });

  it.each([-1, 1.5, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY])(
    "refuses to encode %d with a RangeError",
    (value) => {
      expect(() => encodeCanonical(value)).toThrow(RangeError);
    },
  );

  it("writes map keys in bytewise order of their encodings, whatever the insertion order", () => {
    const map = new Map<number | string, CborValue>([
      ["b", 1],
      [10, 2],
      ["aa", 3],
      [1, "x"],
      ["a", 4],
    ]);
    // 1, 10, "a", "b", "aa": integers first, then shorter text before longer text.
    expect(toHex(encodeCanonical(map))).toBe(
      "a5" + "016178" + "0a02" + "616104" + "616201" + "62616103",
    );
  });

  it("writes a map key of 2^32 or more as an 8-byte integer, not a float, and sorts it as one", () => {
    // Keys went to cbor-x unconverted: 2^32 came out as float64 (fb41f0…), so a map decodeCanonical
    // accepted re-encoded to other bytes (found by the re-encoding law).
    const map = new Map<number | string, CborValue>([
      [2 ** 32, 0],
      [2 ** 32 - 5, 1],
    ]);
    expect(toHex(encodeCanonical(map))).toBe("a2" + "1afffffffb01" + "1b000000010000000000");
    const bytes = Uint8Array.from(
      Buffer.from("a2" + "1afffffffb01" + "1b000000010000000000", "hex"),
    );
    expect(toHex(encodeCanonical(decodeCanonical(bytes) as CborValue))).toBe(toHex(bytes));
  });

  it("writes text and byte strings with definite, shortest lengths", () => {
    expect(toHex(encodeCanonical("a".repeat(23)))).toBe("77" + "61".repeat(23));
    expect(toHex(encodeCanonical("a".repeat(24)))).toBe("7818" + "61".repeat(24));
    expect(toHex(encodeCanonical(new Uint8Array(256)))).toBe("590100" + "00".repeat(256));
  });

  it("returns a plain Uint8Array, not a Node Buffer whose slice() would alias instead of copy", () => {
    const bytes = encodeCanonical(new Map([[1, new Uint8Array([1, 2])]]));
    expect(Object.getPrototypeOf(bytes)).toBe(Uint8Array.prototype);
    const copy = bytes.slice();
    copy[0] = 0;
    expect(bytes[0]).toBe(0xa1);
  });

  it("returns fresh bytes that a later encoding does not overwrite", () => {
    const first = encodeCanonical([1, 2, 3]);
    encodeCanonical([4, 5, 6]);
    expect(toHex(first)).toBe("83010203");
  });
});

describe("the encoder, against cbor-x", () => {
  // cbor-x as an oracle, configured and fed as the encoder used it before it was written here:
  // no records or tags, maps as Maps in canonical key order, integers of 2^32 and up as BigInt.
  const options: Options & { useTag259ForMaps: boolean; int64AsNumber: boolean } = {
    useRecords: false,
    mapsAsObjects: false,
    tagUint8Array: false,
    variableMapSize: true,
    useTag259ForMaps: false,
    int64AsNumber: true,
    pack: false,
  };
  const oracle = new Encoder(options);
  const compare = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b);
  function forOracle(value: CborValue): unknown {
    if (typeof value === "number") return value >= 2 ** 32 ? BigInt(value) : value;
    if (typeof value === "string" || value instanceof Uint8Array) return value;
    if (Array.isArray(value)) return value.map(forOracle);
    const entries = [...(value as ReadonlyMap<number | string, CborValue>)].map(
      ([key, item]) => [forOracle(key), forOracle(item), oracle.encode(forOracle(key))] as const,
    );
    entries.sort((a, b) => compare(a[2], b[2]));
    return new Map(entries.map(([key, item]) => [key, item]));
  }

  it("law: encodeCanonical writes the bytes cbor-x writes for the same value", () => {
    fc.assert(
      fc.property(cborValue, (value) => {
        expect(toHex(encodeCanonical(value))).toBe(toHex(oracle.encode(forOracle(value))));
      }),
      { numRuns: 2000 },
    );
  });

  it("law: decodeCanonical reads what cbor-x reads from canonical bytes", () => {
    fc.assert(
      fc.property(cborValue, (value) => {
        const bytes = encodeCanonical(value);
        expect(shape(decodeCanonical(bytes))).toEqual(shape(oracle.decode(bytes)));
      }),
      { numRuns: 2000 },
    );
  });

  it("refuses a lone surrogate in text with a RangeError rather than writing U+FFFD", () => {
    expect(() => encodeCanonical("a\ud800")).toThrow(RangeError);
    expect(() => encodeCanonical(new Map([["\udc00", 1]]))).toThrow(RangeError);
  });

  it("refuses values outside the data model with a TypeError", () => {
    for (const value of [null, true, 1n, {}, new Date(0), undefined])
      expect(() => encodeCanonical(value as unknown as CborValue)).toThrow(TypeError);
    expect(() => encodeCanonical(new Map([[true, 1]]) as unknown as CborValue)).toThrow(TypeError);
  });

  it("refuses values nested more than eight levels with a RangeError, as the decoder does", () => {
    let deep: CborValue = 0;
    for (let i = 0; i < 8; i++) deep = [deep];
    expect(decodeCanonical(encodeCanonical(deep))).toBeDefined();
    expect(() => encodeCanonical([deep])).toThrow(RangeError);
  });
});

describe("round trips", () => {
  it.each<[string, CborValue]>([
    ["an empty array", []],
    ["an empty map", new Map()],
    ["an empty text string", ""],
    ["an empty byte string", new Uint8Array()],
    ["non-ASCII text", "héllo — 日本語 🎉"],
    [
      "nested arrays and maps",
      [
        1,
        [2, [3]],
        new Map<number | string, CborValue>([[1, new Map([["k", [new Uint8Array([9])]]])]]),
      ],
    ],
  ])("decodes %s to the value it was encoded from", (_name, value) => {
    expect(shape(decodeCanonical(encodeCanonical(value)))).toEqual(shape(value));
  });

  it("decodes maps as Map and byte strings as Uint8Array", () => {
    const decoded = decodeCanonical(encodeCanonical(new Map([[1, new Uint8Array([1, 2])]])));
    expect(decoded).toBeInstanceOf(Map);
    expect((decoded as Map<number, unknown>).get(1)).toBeInstanceOf(Uint8Array);
  });

  it("law: decode(encode(v)) is v, and re-encoding gives the same bytes, for every value of the data model", () => {
    fc.assert(
      fc.property(cborValue, (value) => {
        const bytes = encodeCanonical(value);
        const decoded = decodeCanonical(bytes);
        expect(shape(decoded)).toEqual(shape(value));
        expect(toHex(encodeCanonical(decoded as CborValue))).toBe(toHex(bytes));
      }),
      { numRuns: 1000 },
    );
  });

  it("law: every proper prefix of a canonical encoding is refused as ERR_MALFORMED", () => {
    fc.assert(
      fc.property(cborValue, (value) => {
        const bytes = encodeCanonical(value);
        for (let end = 0; end < bytes.length; end++)
          expect(decodeError(bytes.subarray(0, end))).toBe("ERR_MALFORMED");
      }),
      { numRuns: 300 },
    );
  });
});

describe("refusals", () => {
  it.each([
    ["23 in one extra byte", "1817"],
    ["23 in two bytes", "190017"],
    ["23 in four bytes", "1a00000017"],
    ["23 in eight bytes", "1b0000000000000017"],
    ["255 in two bytes", "1900ff"],
    ["65535 in four bytes", "1a0000ffff"],
    ["2^32 - 1 in eight bytes", "1b00000000ffffffff"],
    ["a byte-string length in one extra byte", "5801ff"],
    ["a text-string length in two bytes", "79000161"],
    ["an array length in one extra byte", "980100"],
    ["a map size in one extra byte", "b8010102"],
  ])("refuses a non-shortest integer or length (%s) as ERR_NON_CANONICAL", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_NON_CANONICAL");
  });

  it.each([
    ["byte string", "5f41ffff"],
    ["text string", "7f6161ff"],
    ["array", "9f01ff"],
    ["map", "bf0102ff"],
  ])("refuses an indefinite-length %s as ERR_NON_CANONICAL", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_NON_CANONICAL");
  });

  it.each([
    ["integer keys", "a2020001 00"],
    ["text keys", "a2616200616100"],
    ["a longer text key before a shorter one", "a2626161006162 00"],
    ["a text key before an integer key", "a2616100 0100"],
    ["keys of a nested map", "a101a2020001 00"],
  ])("refuses unsorted map keys (%s) as ERR_NON_CANONICAL", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_NON_CANONICAL");
  });

  it.each([
    ["integer", "a2010001 01"],
    ["text", "a2616100616101"],
  ])("refuses a duplicate %s key as ERR_NON_CANONICAL", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_NON_CANONICAL");
  });

  it.each([
    ["a byte string", "a14000"],
    ["an array", "a18000"],
    ["a map", "a1a000"],
  ])("refuses %s as a map key with ERR_MALFORMED", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_MALFORMED");
  });

  it.each([
    ["tag 2, bignum", "c249010000000000000000"],
    ["tag 0, date string", "c06474657374"],
    ["tag 1, epoch time", "c11a5f5e1000"],
    ["tag 24, embedded CBOR", "d8184100"],
    ["tag 64, typed array", "d8404100"],
    ["tag 259, cbor-x map marker", "d90103a0"],
    ["cbor-x record definition tag 0xdfff", "d9dfff83190100816161 00"],
    ["cbor-x record tag 0xe000", "d9e0008101"],
    ["cbor-x shared structure tag 0xdffe", "d9dffe80"],
    ["a tag inside an array", "81c100"],
    ["a tag inside a map value", "a101c100"],
  ])("refuses %s with ERR_MALFORMED", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_MALFORMED");
  });

  it.each([
    ["half", "f93c00"],
    ["single", "fa3f800000"],
    ["double", "fb3ff0000000000000"],
    ["double inside a map", "a101fb3ff0000000000000"],
  ])("refuses a %s-precision float as ERR_NON_CANONICAL", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_NON_CANONICAL");
  });

  it.each([
    ["false", "f4"],
    ["true", "f5"],
    ["null", "f6"],
    ["undefined", "f7"],
    ["a one-byte simple value", "f820"],
    ["a lone break", "ff"],
  ])("refuses the simple value %s with ERR_MALFORMED", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_MALFORMED");
  });

  it.each([
    ["-1", "20"],
    ["-100", "3863"],
    ["-2^32", "3affffffff"],
    ["a negative map value", "a10120"],
  ])("refuses the negative integer %s with ERR_MALFORMED", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_MALFORMED");
  });

  it.each([
    ["2^53", "1b0020000000000000"],
    ["2^64 - 1", "1bffffffffffffffff"],
  ])("refuses the integer %s, beyond 2^53 - 1, with ERR_MALFORMED", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_MALFORMED");
  });

  it.each([
    ["one trailing zero", "0000"],
    ["a trailing item after a map", "a000"],
    ["a trailing break", "40ff"],
  ])("refuses trailing bytes (%s) with ERR_MALFORMED", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_MALFORMED");
  });

  it.each([
    ["empty input", ""],
    ["a missing one-byte argument", "18"],
    ["a short two-byte argument", "1901"],
    ["a short eight-byte argument", "1b000000"],
    ["a byte string shorter than its length", "4201"],
    ["a text string shorter than its length", "6261"],
    ["an array missing an item", "8201"],
    ["a map missing a value", "a101"],
    ["a map missing a key", "a2010203"],
    ["a huge byte-string length", "5b001fffffffffffff00"],
    ["a huge array length", "9b001fffffffffffff00"],
  ])("refuses truncated input (%s) with ERR_MALFORMED", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_MALFORMED");
  });

  it.each([
    ["a lone continuation byte", "6180"],
    ["0xff", "61ff"],
    ["a truncated two-byte sequence", "62c328"],
    ["an overlong encoding of NUL", "62c080"],
    ["an encoded surrogate", "63eda080"],
    ["a code point above U+10FFFF", "64f4908080"],
    ["invalid UTF-8 in a map key", "a162c32800"],
  ])("refuses invalid UTF-8 (%s) with ERR_MALFORMED", (_name, bytes) => {
    expect(decodeError(hex(bytes))).toBe("ERR_MALFORMED");
  });

  it("accepts items nested eight levels deep", () => {
    expect(decodeError(hex("81".repeat(8) + "00"))).toBe("accepted");
  });

  it("refuses items nested nine levels deep with ERR_MALFORMED", () => {
    expect(decodeError(hex("81".repeat(9) + "00"))).toBe("ERR_MALFORMED");
    expect(decodeError(hex("a101".repeat(9) + "00"))).toBe("ERR_MALFORMED");
  });

  it("refuses a hundred thousand nested arrays with ERR_MALFORMED, not a stack overflow", () => {
    expect(decodeError(hex("81".repeat(100_000) + "00"))).toBe("ERR_MALFORMED");
  });

  it("reports the link index it was given", () => {
    let caught: unknown;
    try {
      decodeCanonical(hex("f5"), 3);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(AllowanceError);
    expect((caught as AllowanceError).linkIndex).toBe(3);
  });
});

describe("what decodeCanonical takes", () => {
  it.each([
    ["a string", "a"],
    ["an empty string", ""],
    ["a plain array of byte values", [0x83, 1, 2, 3]],
    ["an array-like object", { 0: 0, length: 1 }],
    ["an ArrayBuffer", new ArrayBuffer(1)],
    ["a DataView", new DataView(new ArrayBuffer(1))],
    ["null", null],
    ["undefined", undefined],
    ["a number", 0],
  ])("refuses %s with a TypeError, never decoding it as bytes", (_name, value) => {
    expect(() => decodeCanonical(value as never)).toThrow(TypeError);
    expect(() => decodeCanonical(value as never)).toThrow(/"bytes" expected a Uint8Array/);
  });

  it("still decodes a Uint8Array, and a Buffer (a Uint8Array too)", () => {
    expect(decodeCanonical(Uint8Array.from([0x83, 1, 2, 3]))).toEqual([1, 2, 3]);
    expect(decodeCanonical(Buffer.from([0x00]))).toBe(0);
  });
});

describe("arbitrary input", () => {
  it("law: decodeCanonical throws nothing but AllowanceError on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(decodeError(bytes)).not.toBe("not an AllowanceError");
      }),
      { numRuns: 20_000 },
    );
  });

  it("law: whatever decodeCanonical accepts re-encodes to exactly the bytes it was given", () => {
    const mutated = fc
      .tuple(cborValue, fc.nat(), fc.integer({ min: 1, max: 255 }))
      .map(([value, at, xor]) => {
        const bytes = encodeCanonical(value);
        const copy = Uint8Array.from(bytes);
        if (copy.length > 0) copy[at % copy.length] = (copy[at % copy.length] as number) ^ xor;
        return copy;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 48 }), mutated), (bytes) => {
        const outcome = decodeError(bytes);
        expect(outcome).not.toBe("not an AllowanceError");
        if (outcome === "accepted") {
          expect(toHex(encodeCanonical(decodeCanonical(bytes) as CborValue))).toBe(toHex(bytes));
        }
      }),
      { numRuns: 20_000 },
    );
  });
});
