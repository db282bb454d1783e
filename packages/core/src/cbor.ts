/**
 * Canonical CBOR for payloads and tokens (spec/format.md §3): the small data model of this format
 * (unsigned integers up to 2^53 − 1, byte and text strings, arrays, maps keyed by integers or
 * text) in its one canonical form (RFC 8949 §4.2.1: shortest heads, definite lengths, map keys in
 * the bytewise order of their encodings).
 *
 * Written here rather than taken from a general CBOR library: the data model is five types, the
 * general libraries have no canonical mode (so every input had to be checked here anyway), and
 * this keeps the verify path free of a dependency that costs more to load than the whole check.
 * test/cbor.test.ts holds the encoder to cbor-x's output for the same values.
 */
import { compareBytes } from "./bytes.js";
import { AllowanceError } from "./errors.js";
import { kindOf } from "./kind.js";

export type CborValue = number | string | Uint8Array | readonly CborValue[] | CborMap;
export type CborMap = ReadonlyMap<number | string, CborValue>;

const MAX_NESTING = 8;
const TWO_POW_32 = 2 ** 32;

const textEncoder = new TextEncoder();

/** A growable byte buffer for one encoding. */
class Writer {
  bytes = new Uint8Array(256);
  length = 0;

  reserve(extra: number): void {
    if (this.length + extra <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + extra));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  /** A head of `major` with its argument in the shortest form (RFC 8949 §4.2.1). */
  head(major: number, argument: number): void {
    this.reserve(9);
    const b = this.bytes;
    let at = this.length;
    const type = major << 5;
    if (argument < 24) {
      b[at++] = type | argument;
    } else if (argument < 0x100) {
      b[at++] = type | 24;
      b[at++] = argument;
    } else if (argument < 0x10000) {
      b[at++] = type | 25;
      b[at++] = argument >>> 8;
      b[at++] = argument & 0xff;
    } else if (argument < TWO_POW_32) {
      b[at++] = type | 26;
      b[at++] = argument >>> 24;
      b[at++] = (argument >>> 16) & 0xff;
      b[at++] = (argument >>> 8) & 0xff;
      b[at++] = argument & 0xff;
    } else {
      // Up to 2^53 − 1: the high word is below 2^21, both halves are exact.
      const high = Math.floor(argument / TWO_POW_32);
      const low = argument - high * TWO_POW_32;
      b[at++] = type | 27;
      for (const word of [high, low]) {
        b[at++] = word >>> 24;
        b[at++] = (word >>> 16) & 0xff;
        b[at++] = (word >>> 8) & 0xff;
        b[at++] = word & 0xff;
      }
    }
    this.length = at;
  }

  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.bytes.set(bytes, this.length);
    this.length += bytes.length;
  }
}

/** Encodes a value in the canonical form: sorted map keys, shortest integers, definite lengths. */
export function encodeCanonical(value: CborValue): Uint8Array {
  const writer = new Writer();
  write(writer, value, 0);
  return writer.bytes.slice(0, writer.length);
}

function checkedInteger(value: number): number {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new RangeError(`CBOR integers must be safe non-negative integers, got ${value}`);
  return value;
}

function textBytes(text: string): Uint8Array {
  // A lone surrogate has no UTF-8 encoding: TextEncoder would write U+FFFD in its place.
  if (!text.isWellFormed())
    throw new RangeError("CBOR text must be well-formed Unicode (no lone surrogates)");
  return textEncoder.encode(text);
}

function write(writer: Writer, value: CborValue, nesting: number): void {
  if (nesting > MAX_NESTING) throw new RangeError("CBOR value nested too deeply");
  if (typeof value === "number") {
    writer.head(0, checkedInteger(value));
  } else if (typeof value === "string") {
    const bytes = textBytes(value);
    writer.head(3, bytes.length);
    writer.raw(bytes);
  } else if (value instanceof Uint8Array) {
    writer.head(2, value.length);
    writer.raw(value);
  } else if (Array.isArray(value)) {
    writer.head(4, value.length);
    for (const item of value as readonly CborValue[]) write(writer, item, nesting + 1);
  } else if (value instanceof Map) {
    const entries: { key: Uint8Array; item: CborValue }[] = [];
    for (const [key, item] of value as CborMap) entries.push({ key: encodeKey(key), item });
    entries.sort((a, b) => compareBytes(a.key, b.key));
    writer.head(5, entries.length);
    for (const { key, item } of entries) {
      writer.raw(key);
      write(writer, item, nesting + 1);
    }
  } else {
    throw new TypeError(
      `CBOR values are integers, strings, byte strings, arrays and Maps, got ${typeof value}`,
    );
  }
}

const keyCache = new Map<number | string, Uint8Array>();
function encodeKey(key: number | string): Uint8Array {
  let bytes = keyCache.get(key);
  if (bytes === undefined) {
    if (typeof key !== "number" && typeof key !== "string")
      throw new TypeError(`CBOR map keys are integers or text, got ${typeof key}`);
    const writer = new Writer();
    write(writer, key, 0);
    bytes = writer.bytes.slice(0, writer.length);
    if (keyCache.size < 1024) keyCache.set(key, bytes);
  }
  return bytes;
}

/**
 * Checks that `bytes` is exactly one canonical CBOR item of our data model, and decodes it. Maps
 * come back as `Map`, byte strings as `Uint8Array`s of their own (never views of `bytes`).
 */
export function decodeCanonical(bytes: Uint8Array, linkIndex?: number): unknown {
  // A string or a plain array has a length and indexes too, and would be read as bytes.
  if (!(bytes instanceof Uint8Array))
    throw new TypeError(`"bytes" expected a Uint8Array, got ${kindOf(bytes)}`);
  const reader = { bytes, pos: 0, linkIndex };
  const value = readItem(reader, 0);
  if (reader.pos !== bytes.length) {
    throw fail(
      "ERR_MALFORMED",
      `${bytes.length - reader.pos} trailing bytes after the CBOR item`,
      linkIndex,
    );
  }
  return value;
}

interface Reader {
  readonly bytes: Uint8Array;
  pos: number;
  readonly linkIndex: number | undefined;
}

function fail(code: "ERR_MALFORMED" | "ERR_NON_CANONICAL", message: string, linkIndex?: number) {
  return new AllowanceError(code, message, linkIndex === undefined ? {} : { linkIndex });
}

const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The item at `reader.pos`, which is left just past it. */
function readItem(reader: Reader, nesting: number): unknown {
  const { bytes, linkIndex } = reader;
  if (nesting > MAX_NESTING) throw fail("ERR_MALFORMED", "CBOR nested too deeply", linkIndex);
  const { major, argument } = readHead(reader);
  switch (major) {
    case 0:
      return argument;
    case 2:
    case 3: {
      const start = reader.pos;
      const end = start + argument;
      if (end > bytes.length)
        throw fail("ERR_MALFORMED", "CBOR string runs past the end", linkIndex);
      reader.pos = end;
      if (major === 2) return new Uint8Array(bytes.subarray(start, end));
      try {
        return utf8Decoder.decode(bytes.subarray(start, end));
      } catch {
        throw fail("ERR_MALFORMED", "CBOR text string is not valid UTF-8", linkIndex);
      }
    }
    case 4: {
      // Each item takes at least one byte: a length beyond what is left is refused before any work.
      if (argument > bytes.length - reader.pos)
        throw fail("ERR_MALFORMED", "CBOR ends early", linkIndex);
      const items: unknown[] = [];
      for (let i = 0; i < argument; i++) items.push(readItem(reader, nesting + 1));
      return items;
    }
    case 5: {
      if (argument > bytes.length - reader.pos)
        throw fail("ERR_MALFORMED", "CBOR ends early", linkIndex);
      const map = new Map<unknown, unknown>();
      let previousStart = -1;
      let previousEnd = -1;
      for (let i = 0; i < argument; i++) {
        const keyStart = reader.pos;
        const keyMajor = (bytes[keyStart] ?? 0) >> 5;
        if (keyMajor !== 0 && keyMajor !== 3) {
          throw fail("ERR_MALFORMED", "CBOR map keys must be unsigned integers or text", linkIndex);
        }
        const key = readItem(reader, nesting + 1);
        const keyEnd = reader.pos;
        // RFC 8949 §4.2.1: keys in the bytewise order of their encodings; equal means duplicate.
        if (
          previousStart >= 0 &&
          compareBytes(
            bytes.subarray(previousStart, previousEnd),
            bytes.subarray(keyStart, keyEnd),
          ) >= 0
        ) {
          throw fail(
            "ERR_NON_CANONICAL",
            "CBOR map keys are not in canonical order or repeat",
            linkIndex,
          );
        }
        previousStart = keyStart;
        previousEnd = keyEnd;
        map.set(key, readItem(reader, nesting + 1));
      }
      return map;
    }
    default:
      // readHead has already refused major types 1, 6 and 7.
      throw fail("ERR_MALFORMED", "unexpected CBOR major type", linkIndex);
  }
}

interface Head {
  readonly major: number;
  readonly argument: number;
}

function readHead(reader: Reader): Head {
  const { bytes, pos, linkIndex } = reader;
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
  if (info < 24) {
    reader.pos = pos + 1;
    return { major, argument: info };
  }
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
  reader.pos = pos + 1 + size;
  return { major, argument };
}
