/**
 * Canonical CBOR for payloads and tokens (spec/format.md §3).
 *
 * cbor-x does the encoding and decoding, but it has no canonical mode: it keeps map keys in
 * insertion order, accepts duplicate keys, indefinite lengths, non-shortest integers and tags, and
 * writes integers of 2^32 and above as floats. So this module (1) builds every map in canonical
 * key order and passes large integers as BigInt, which cbor-x writes as 8-byte integers, and
 * (2) checks every input byte against the canonical rules itself *before* cbor-x sees it.
 */
import { Encoder, type Options } from "cbor-x";
import { compareBytes } from "./bytes.js";
import { AllowanceError } from "./errors.js";

export type CborValue = number | string | Uint8Array | readonly CborValue[] | CborMap;
export type CborMap = ReadonlyMap<number | string, CborValue>;

// `useTag259ForMaps` and `int64AsNumber` are read by cbor-x but missing from its typings.
const options: Options & { useTag259ForMaps: boolean; int64AsNumber: boolean } = {
  useRecords: false,
  mapsAsObjects: false,
  tagUint8Array: false,
  variableMapSize: true,
  useTag259ForMaps: false,
  int64AsNumber: true,
  pack: false,
};
const encoder = new Encoder(options);

const MAX_NESTING = 8;
const TWO_POW_32 = 2 ** 32;

/** Encodes a value in the one canonical form: sorted map keys, shortest integers, definite lengths. */
export function encodeCanonical(value: CborValue): Uint8Array {
  const encoded = encoder.encode(prepare(value));
  // cbor-x may hand back a view of a buffer it reuses: keep our own copy, as a plain Uint8Array
  // (a sliced Buffer stays a Buffer, whose slice() would alias instead of copy).
  return new Uint8Array(encoded);
}

function prepare(value: CborValue): unknown {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`CBOR integers must be safe non-negative integers, got ${value}`);
    }
    // cbor-x writes numbers >= 2^32 as float64 but BigInts as 8-byte integers, which is the
    // shortest integer form for that range (RFC 8949 §4.2.1).
    return value >= TWO_POW_32 ? BigInt(value) : value;
  }
  if (typeof value === "string" || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(prepare);
  const map = value as CborMap;
  const out = new Map<number | bigint | string, unknown>();
  const keys: Uint8Array[] = [];
  let sorted = true;
  for (const [key, item] of map) {
    const encoded = encodeKey(key);
    const previous = keys[keys.length - 1];
    if (previous !== undefined && compareBytes(previous, encoded) >= 0) sorted = false;
    keys.push(encoded);
    // A key is an integer like any other: 2^32 and above as a BigInt, or cbor-x writes a float.
    out.set(typeof key === "number" ? (prepare(key) as number | bigint) : key, prepare(item));
  }
  if (sorted) return out;
  const entries = [...out.entries()].map((entry, i) => ({ entry, key: keys[i] as Uint8Array }));
  entries.sort((a, b) => compareBytes(a.key, b.key));
  return new Map(entries.map((e) => e.entry));
}

const keyCache = new Map<number | string, Uint8Array>();
function encodeKey(key: number | string): Uint8Array {
  let bytes = keyCache.get(key);
  if (bytes === undefined) {
    bytes = Uint8Array.prototype.slice.call(
      encoder.encode(typeof key === "number" ? prepare(key) : key),
    );
    if (keyCache.size < 1024) keyCache.set(key, bytes);
  }
  return bytes;
}

/**
 * Checks that `bytes` is exactly one canonical CBOR item of our data model, then decodes it.
 * Maps come back as `Map`, byte strings as `Uint8Array`.
 */
export function decodeCanonical(bytes: Uint8Array, linkIndex?: number): unknown {
  const end = checkItem(bytes, 0, 0, linkIndex);
  if (end !== bytes.length) {
    throw fail(
      "ERR_MALFORMED",
      `${bytes.length - end} trailing bytes after the CBOR item`,
      linkIndex,
    );
  }
  return encoder.decode(bytes);
}

function fail(code: "ERR_MALFORMED" | "ERR_NON_CANONICAL", message: string, linkIndex?: number) {
  return new AllowanceError(code, message, linkIndex === undefined ? {} : { linkIndex });
}

const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Returns the offset just past the item at `pos`. */
function checkItem(bytes: Uint8Array, pos: number, nesting: number, linkIndex?: number): number {
  if (nesting > MAX_NESTING) throw fail("ERR_MALFORMED", "CBOR nested too deeply", linkIndex);
  const head = readHead(bytes, pos, linkIndex);
  const { major, argument } = head;
  pos = head.next;
  switch (major) {
    case 0:
      return pos;
    case 2:
    case 3: {
      const end = pos + argument;
      if (end > bytes.length)
        throw fail("ERR_MALFORMED", "CBOR string runs past the end", linkIndex);
      if (major === 3) {
        try {
          utf8Decoder.decode(bytes.subarray(pos, end));
        } catch {
          throw fail("ERR_MALFORMED", "CBOR text string is not valid UTF-8", linkIndex);
        }
      }
      return end;
    }
    case 4:
      for (let i = 0; i < argument; i++) pos = checkItem(bytes, pos, nesting + 1, linkIndex);
      return pos;
    case 5: {
      let previousKey: Uint8Array | undefined;
      for (let i = 0; i < argument; i++) {
        const keyStart = pos;
        const keyMajor = (bytes[pos] ?? 0) >> 5;
        if (keyMajor !== 0 && keyMajor !== 3) {
          throw fail("ERR_MALFORMED", "CBOR map keys must be unsigned integers or text", linkIndex);
        }
        pos = checkItem(bytes, pos, nesting + 1, linkIndex);
        const key = bytes.subarray(keyStart, pos);
        // RFC 8949 §4.2.1: keys sorted by the bytewise order of their encodings; equal means duplicate.
        if (previousKey !== undefined && compareBytes(previousKey, key) >= 0) {
          throw fail(
            "ERR_NON_CANONICAL",
            "CBOR map keys are not in canonical order or repeat",
            linkIndex,
          );
        }
        previousKey = key;
        pos = checkItem(bytes, pos, nesting + 1, linkIndex);
      }
      return pos;
    }
    default:
      // readHead has already refused major types 1, 6 and 7.
      throw fail("ERR_MALFORMED", "unexpected CBOR major type", linkIndex);
  }
}

interface Head {
  readonly major: number;
  readonly argument: number;
  readonly next: number;
}

function readHead(bytes: Uint8Array, pos: number, linkIndex?: number): Head {
  const initial = bytes[pos];
  if (initial === undefined) throw fail("ERR_MALFORMED", "CBOR ends early", linkIndex);
  const major = initial >> 5;
  const info = initial & 0x1f;
  if (major === 7) {
    const kind = info >= 25 && info <= 27 ? "ERR_NON_CANONICAL" : "ERR_MALFORMED";
    throw fail(kind, "CBOR floats and simple values are not allowed", linkIndex);
  }
  if (major === 6) throw fail("ERR_MALFORMED", "CBOR tags are not allowed", linkIndex);
  if (major === 1)
    throw fail("ERR_MALFORMED", "negative integers are not used in this format", linkIndex);
  if (info < 24) return { major, argument: info, next: pos + 1 };
  if (info === 31) {
    // Indefinite length is an alternative encoding of strings, arrays and maps; for integers it is no encoding at all.
    if (major === 0) throw fail("ERR_MALFORMED", "reserved CBOR additional information", linkIndex);
    throw fail("ERR_NON_CANONICAL", "indefinite-length CBOR is not allowed", linkIndex);
  }
  if (info > 27) throw fail("ERR_MALFORMED", "reserved CBOR additional information", linkIndex);
  const size = 1 << (info - 24);
  if (pos + 1 + size > bytes.length) throw fail("ERR_MALFORMED", "CBOR ends early", linkIndex);
  let argument = 0;
  for (let i = 1; i <= size; i++) argument = argument * 256 + (bytes[pos + i] as number);
  if (argument > Number.MAX_SAFE_INTEGER) {
    throw fail("ERR_MALFORMED", "CBOR integer or length beyond 2^53 - 1", linkIndex);
  }
  // RFC 8949 §4.2.1: the argument must use the shortest form that holds it.
  const minimum = size === 1 ? 24 : size === 2 ? 0x100 : size === 4 ? 0x10000 : 0x1_0000_0000;
  if (argument < minimum)
    throw fail("ERR_NON_CANONICAL", "CBOR integer not in shortest form", linkIndex);
  return { major, argument, next: pos + 1 + size };
}
