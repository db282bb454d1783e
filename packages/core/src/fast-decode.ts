/**
 * One-pass decoders for the common case of the token container (spec/format.md §2) and of link
 * payloads (§4): they read the bytes once and build the result directly, with no generic CBOR
 * decoding, schema run or re-encoding.
 *
 * Each accepts only what it can prove its reference path accepts with the same result: canonical
 * heads, known keys in canonical order, every field in range and pattern, sets sorted and unique,
 * every limit respected. For anything else, including the merely unusual (a non-ASCII label, say),
 * it returns undefined and the caller runs the reference path, which decides and names the error.
 * So these can make verification cheaper but never more permissive; test/fast-decode.test.ts
 * states that as a property.
 */
import { ARGUMENT_NAME, trustedArguments, type ToolArguments } from "./arguments.js";
import { parseGlob, parseHostPattern, parseUrlPrefix } from "./argument-syntax.js";
import type { LinkGrant, ProviderGrant, RateWindow } from "./grant.js";
import type { Limits } from "./limits.js";
import type { Link, Token } from "./token.js";
import {
  AUDIENCE,
  MAX_DEPTH,
  MAX_RATE_SECONDS,
  MODEL_ID,
  PROVIDER_NAME,
  TOOL_PATTERN,
} from "./patterns.js";

const LAST_KEY = 15;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Signals "not provably valid here": the caller falls back to the reference path. */
const NO = -1;

/** Cursor over CBOR bytes. Methods return NO (or undefined) rather than throwing. */
class Reader {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}

  /** The argument of a canonical head of `major` (RFC 8949 §4.2.1 shortest form), or NO. */
  head(major: number): number {
    const bytes = this.bytes;
    const initial = bytes[this.pos];
    if (initial === undefined || initial >> 5 !== major) return NO;
    const info = initial & 0x1f;
    if (info < 24) {
      this.pos += 1;
      return info;
    }
    if (info > 27) return NO;
    const size = 1 << (info - 24);
    if (this.pos + 1 + size > bytes.length) return NO;
    let argument = 0;
    for (let i = 1; i <= size; i++) argument = argument * 256 + (bytes[this.pos + i] as number);
    const minimum = size === 1 ? 24 : size === 2 ? 0x100 : size === 4 ? 0x10000 : 0x1_0000_0000;
    if (argument < minimum || argument > Number.MAX_SAFE_INTEGER) return NO;
    this.pos += 1 + size;
    return argument;
  }

  /** A byte string of `min` to `max` bytes: a view of the input, or a copy of its own. */
  byteString(min: number, max: number, copy: boolean): Uint8Array | undefined {
    const length = this.head(2);
    if (length < min || length > max || this.pos + length > this.bytes.length) return undefined;
    const start = this.pos;
    this.pos += length;
    return copy ? this.bytes.slice(start, this.pos) : this.bytes.subarray(start, this.pos);
  }

  /** A text string of ASCII from `lowest` to 0x7e, of at most `max` bytes; else undefined. */
  ascii(max: number, lowest = 0x21): string | undefined {
    const length = this.head(3);
    if (length < 0 || length > max || this.pos + length > this.bytes.length) return undefined;
    const bytes = this.bytes;
    let text = "";
    for (let i = this.pos, end = this.pos + length; i < end; i++) {
      const byte = bytes[i] as number;
      if (byte < lowest || byte > 0x7e) return undefined;
      text += String.fromCharCode(byte);
    }
    this.pos += length;
    return text;
  }

  /** A set of strings (models, tools, aud): an array sorted by length then bytes, no repeats. */
  set(pattern: RegExp, limits: Limits): string[] | undefined {
    const count = this.head(4);
    if (count < 0 || count > limits.maxListLength) return undefined;
    const out: string[] = [];
    let previous = "";
    for (let i = 0; i < count; i++) {
      const text = this.ascii(limits.maxStringBytes);
      if (text === undefined || !pattern.test(text)) return undefined;
      // ASCII: UTF-16 length and order are the UTF-8 length and byte order (spec/format.md §3).
      if (
        i > 0 &&
        !(previous.length < text.length || (previous.length === text.length && previous < text))
      )
        return undefined;
      out.push(text);
      previous = text;
    }
    return out;
  }

  /** Keys of a small integer-keyed map, strictly increasing, each at most `last`; NO on anything else. */
  key(previous: number, last: number): number {
    const key = this.head(0);
    return key > previous && key <= last ? key : NO;
  }

  providers(limits: Limits): ProviderGrant[] | undefined {
    const count = this.head(5);
    if (count < 0 || count > limits.maxListLength) return undefined;
    const out: ProviderGrant[] = [];
    let previous = "";
    for (let i = 0; i < count; i++) {
      const name = this.ascii(limits.maxStringBytes);
      if (name === undefined || !PROVIDER_NAME.test(name)) return undefined;
      // Map keys in the bytewise order of their encodings: for short ASCII text, length then bytes.
      if (
        i > 0 &&
        !(previous.length < name.length || (previous.length === name.length && previous < name))
      )
        return undefined;
      previous = name;
      const caps = this.head(5);
      if (caps < 0 || caps > 2) return undefined;
      let tokens: number | undefined;
      let usdMicros: number | undefined;
      let key = 0;
      for (let c = 0; c < caps; c++) {
        key = this.key(key, 2);
        const value = this.head(0);
        if (key === NO || value === NO) return undefined;
        if (key === 1) tokens = value;
        else usdMicros = value;
      }
      const provider: { name: string; tokens?: number; usdMicros?: number } = { name };
      if (tokens !== undefined) provider.tokens = tokens;
      if (usdMicros !== undefined) provider.usdMicros = usdMicros;
      out.push(provider);
    }
    return out;
  }

  rate(limits: Limits): RateWindow[] | undefined {
    const count = this.head(4);
    if (count < 0 || count > limits.maxListLength) return undefined;
    const out: RateWindow[] = [];
    let previousStart = 0;
    let previousEnd = 0;
    for (let i = 0; i < count; i++) {
      const start = this.pos;
      const entries = this.head(5);
      // `seconds` (key 1) is required and sorts first; at least one amount follows it.
      if (entries < 2 || entries > 4 || this.key(0, 1) !== 1) return undefined;
      const seconds = this.head(0);
      if (seconds < 1 || seconds > MAX_RATE_SECONDS) return undefined;
      const window: { seconds: number; tokens?: number; usdMicros?: number; requests?: number } = {
        seconds,
      };
      let key = 1;
      for (let e = 1; e < entries; e++) {
        key = this.key(key, 4);
        const value = this.head(0);
        if (key === NO || value === NO) return undefined;
        if (key === 2) window.tokens = value;
        else if (key === 3) window.usdMicros = value;
        else window.requests = value;
      }
      // Windows sorted by their encodings, strictly: sorted and without repeats.
      if (i > 0 && compareSpans(this.bytes, previousStart, previousEnd, start, this.pos) >= 0)
        return undefined;
      previousStart = start;
      previousEnd = this.pos;
      out.push(window);
    }
    return out;
  }
}

/** A scalar this reader cannot vouch for. */
const DECLINE = Symbol("decline");

/** A constraint kind's parameter count (spec/arguments.md §3.1), by kind number 1–9. */
const ARITY = [0, 1, 1, 2, 1, 1, 1, 1, 1, 0];

/**
 * Reads the `args` field (spec/arguments.md §3.1) into what `readArguments` would return: every
 * map key and set element strictly increasing in the order of its encoding, text printable ASCII
 * (or with spaces where the format allows them), each rule of §3.2 checked; anything else is left
 * to the reference decoder.
 */
class ArgumentsReader extends Reader {
  /** The span of the previous item, for strictly increasing order; a fresh start per map or set. */
  private ordered(previous: { start: number; end: number }, start: number): boolean {
    const ok =
      previous.end === 0 ||
      compareSpans(this.bytes, previous.start, previous.end, start, this.pos) < 0;
    previous.start = start;
    previous.end = this.pos;
    return ok;
  }

  private scalar(limits: Limits): unknown {
    const major = (this.bytes[this.pos] ?? 0xff) >> 5;
    if (major === 0) {
      const value = this.head(0);
      return value === NO ? DECLINE : value;
    }
    if (major === 3) return this.ascii(limits.maxStringBytes, 0x20) ?? DECLINE;
    if (this.head(4) !== 1) return DECLINE;
    const flag = this.head(0);
    return flag === 0 ? false : flag === 1 ? true : DECLINE;
  }

  /** A set of scalars (or of text only): at least one element, strictly increasing. */
  private elements(limits: Limits, textOnly: boolean): unknown[] | undefined {
    const count = this.head(4);
    if (count < 1 || count > limits.maxListLength) return undefined;
    const out: unknown[] = [];
    const previous = { start: 0, end: 0 };
    for (let i = 0; i < count; i++) {
      const start = this.pos;
      const value = textOnly ? (this.ascii(limits.maxStringBytes) ?? DECLINE) : this.scalar(limits);
      if (value === DECLINE || !this.ordered(previous, start)) return undefined;
      out.push(value);
    }
    return out;
  }

  private constraint(name: string, limits: Limits): Record<string, unknown> | undefined {
    const length = this.head(4);
    const number = this.head(0);
    const arity = ARITY[number];
    if (number < 1 || arity === undefined || length !== arity + 1) return undefined;
    let c: Record<string, unknown> | undefined;
    switch (number) {
      case 1: {
        const value = this.scalar(limits);
        c = value === DECLINE ? undefined : { name, kind: "exact", value };
        break;
      }
      case 2: {
        const values = this.elements(limits, false);
        c = values && { name, kind: "oneOf", values };
        break;
      }
      case 3: {
        const min = this.head(0);
        const max = this.head(0);
        c = min === NO || max === NO || min > max ? undefined : { name, kind: "range", min, max };
        break;
      }
      case 4: {
        const prefix = this.ascii(limits.maxStringBytes, 0x20);
        c = prefix === undefined ? undefined : { name, kind: "prefix", prefix };
        break;
      }
      case 5: {
        const glob = this.ascii(limits.maxStringBytes, 0x20);
        c =
          glob === undefined || parseGlob(glob) === undefined
            ? undefined
            : { name, kind: "glob", glob };
        break;
      }
      case 6: {
        const urls = this.elements(limits, true) as string[] | undefined;
        c =
          urls === undefined || urls.some((u) => parseUrlPrefix(u) === undefined)
            ? undefined
            : { name, kind: "url", urls };
        break;
      }
      case 7: {
        const domains = this.elements(limits, true) as string[] | undefined;
        c =
          domains === undefined || domains.some((d) => parseHostPattern(d, false) === undefined)
            ? undefined
            : { name, kind: "emailDomain", domains };
        break;
      }
      case 8: {
        const max = this.head(0);
        c = max === NO ? undefined : { name, kind: "maxLength", max };
        break;
      }
      default:
        c = { name, kind: "forbidden" };
    }
    return c;
  }

  args(limits: Limits): ToolArguments[] | undefined {
    const count = this.head(5);
    if (count < 0 || count > limits.maxListLength) return undefined;
    const entries: unknown[] = [];
    const tools = { start: 0, end: 0 };
    for (let i = 0; i < count; i++) {
      const toolStart = this.pos;
      const tool = this.ascii(limits.maxStringBytes);
      if (tool === undefined || !this.ordered(tools, toolStart) || !TOOL_PATTERN.test(tool))
        return undefined;
      const size = this.head(5);
      if (size < 0 || size > limits.maxListLength + 2) return undefined;
      const names = { start: 0, end: 0 };
      const constraints: Record<string, unknown>[] = [];
      let allowUnnamed = false;
      let optional: unknown[] = [];
      let lastInteger = 0;
      for (let k = 0; k < size; k++) {
        const keyStart = this.pos;
        if ((this.bytes[this.pos] ?? 0xff) >> 5 === 0) {
          // Keys 1 (allowUnnamed) and 2 (optional names), before every text key.
          const key = this.key(lastInteger, 2);
          if (key === NO || names.end !== 0) return undefined;
          lastInteger = key;
          if (key === 1) {
            if (this.head(0) !== 1) return undefined;
            allowUnnamed = true;
          } else {
            const set = this.elements(limits, true);
            if (set === undefined) return undefined;
            optional = set;
          }
          continue;
        }
        const name = this.ascii(limits.maxStringBytes);
        if (name === undefined || !this.ordered(names, keyStart) || !ARGUMENT_NAME.test(name))
          return undefined;
        const c = this.constraint(name, limits);
        if (c === undefined) return undefined;
        constraints.push(c);
      }
      if (constraints.length > limits.maxListLength) return undefined;
      for (const name of optional) {
        const target = constraints.find((c) => c["name"] === name);
        if (target === undefined || target["kind"] === "forbidden") return undefined;
        // Last, as `readArguments` sets it: one property order for every constraint.
        target["optional"] = true;
      }
      entries.push(allowUnnamed ? { tool, constraints, allowUnnamed } : { tool, constraints });
    }
    // Each rule of spec/arguments.md §3.2 and each limit of §3.4 was checked above, in the order
    // and shape `readArguments` produces (strictly increasing encodings: sorted, no repeats).
    // packages/core/test/arguments.test.ts holds this reader to the reference decoder.
    return trustedArguments(entries as ToolArguments[]);
  }
}

function compareSpans(
  bytes: Uint8Array,
  aStart: number,
  aEnd: number,
  bStart: number,
  bEnd: number,
): number {
  const n = Math.min(aEnd - aStart, bEnd - bStart);
  for (let i = 0; i < n; i++) {
    const d = (bytes[aStart + i] as number) - (bytes[bStart + i] as number);
    if (d !== 0) return d;
  }
  return aEnd - aStart - (bEnd - bStart);
}

/** The grant in `payload` if this fast path can vouch for it, else undefined (never throws). */
export function decodePayloadFast(payload: Uint8Array, limits: Limits): LinkGrant | undefined {
  const r = new ArgumentsReader(payload);
  const entries = r.head(5);
  // sub and nonce are required, and their keys (1 and 2) sort first.
  if (entries < 2 || entries > LAST_KEY || r.key(0, 1) !== 1) return undefined;
  const sub = r.byteString(32, 32, true);
  if (sub === undefined || r.key(1, 2) !== 2) return undefined;
  const nonce = r.byteString(8, 32, true);
  if (nonce === undefined) return undefined;

  // The plain unsigned integers, by payload key.
  let exp: number | undefined;
  let nbf: number | undefined;
  let depth: number | undefined;
  let tokens: number | undefined;
  let usdMicros: number | undefined;
  let risk: number | undefined;
  let providers: ProviderGrant[] | undefined;
  let models: string[] | undefined;
  let tools: string[] | undefined;
  let rate: RateWindow[] | undefined;
  let aud: string[] | undefined;
  let label: string | undefined;
  let args: ToolArguments[] | undefined;
  let key = 2;
  for (let i = 2; i < entries; i++) {
    key = r.key(key, LAST_KEY);
    switch (key) {
      case 3:
      case 4:
      case 5:
      case 6:
      case 7:
      case 11: {
        const value = r.head(0);
        if (value === NO || (key === 5 && value > MAX_DEPTH)) return undefined;
        if (key === 3) exp = value;
        else if (key === 4) nbf = value;
        else if (key === 5) depth = value;
        else if (key === 6) tokens = value;
        else if (key === 7) usdMicros = value;
        else risk = value;
        break;
      }
      case 8:
        providers = r.providers(limits);
        if (providers === undefined) return undefined;
        break;
      case 9:
        models = r.set(MODEL_ID, limits);
        if (models === undefined) return undefined;
        break;
      case 10:
        tools = r.set(TOOL_PATTERN, limits);
        if (tools === undefined) return undefined;
        break;
      case 12:
        rate = r.rate(limits);
        if (rate === undefined) return undefined;
        break;
      case 13:
        aud = r.set(AUDIENCE, limits);
        if (aud === undefined) return undefined;
        break;
      case 14:
        // Printable ASCII and spaces only here; any other label goes to the reference decoder.
        label = r.ascii(limits.maxStringBytes, 0x20);
        if (label === undefined) return undefined;
        break;
      case 15:
        args = r.args(limits);
        if (args === undefined) return undefined;
        break;
      default:
        return undefined;
    }
  }
  if (r.pos !== payload.length) return undefined;

  // Properties in the order the reference decoder's schema produces them.
  const grant: Partial<Mutable<LinkGrant>> = {};
  if (exp !== undefined) grant.exp = exp;
  if (nbf !== undefined) grant.nbf = nbf;
  if (depth !== undefined) grant.depth = depth;
  if (tokens !== undefined) grant.tokens = tokens;
  if (usdMicros !== undefined) grant.usdMicros = usdMicros;
  if (providers !== undefined) grant.providers = providers;
  if (models !== undefined) grant.models = models;
  if (tools !== undefined) grant.tools = tools;
  if (risk !== undefined) grant.risk = risk;
  if (rate !== undefined) grant.rate = rate;
  if (aud !== undefined) grant.aud = aud;
  if (label !== undefined) grant.label = label;
  if (args !== undefined) grant.args = args;
  grant.sub = sub;
  grant.nonce = nonce;
  return grant as LinkGrant;
}

/**
 * The token container from its binary form, if it is the plain case: a canonical array of the
 * 32-byte root kid and 1 to `maxLinks` links, each an array of a payload within `maxPayloadBytes`
 * and a 64-byte signature, and nothing after it. Payloads and signatures are views of `bytes`.
 */
export function parseTokenFast(bytes: Uint8Array, limits: Limits): Token | undefined {
  const r = new Reader(bytes);
  const items = r.head(4);
  if (items < 2 || items - 1 > limits.maxLinks) return undefined;
  const rootKid = r.byteString(32, 32, false);
  if (rootKid === undefined) return undefined;
  const links: Link[] = [];
  for (let i = 1; i < items; i++) {
    if (r.head(4) !== 2) return undefined;
    const payload = r.byteString(0, limits.maxPayloadBytes, false);
    const signature = r.byteString(64, 64, false);
    if (payload === undefined || signature === undefined) return undefined;
    links.push({ payload, signature });
  }
  return r.pos === bytes.length ? { rootKid, links } : undefined;
}
