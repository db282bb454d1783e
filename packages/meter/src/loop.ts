/**
 * Loop detection: an agent that sends the same request again and again (same provider, model,
 * tool and arguments) is stuck, and every repeat costs money. More than `maxRepeats` identical
 * fingerprints within `windowMs` are denied with `LOOP_DETECTED` until the oldest leaves the window.
 *
 * The fingerprint is a 53-bit hash of the provider, model, tool and the request's arguments
 * (messages or input, system prompt or instructions), normalised so that formatting does not hide
 * a repeat: runs of whitespace in every string collapse to one space and are trimmed, and object
 * keys are sorted. Every request that reaches this check is counted, whether or not it is later
 * allowed by the budget.
 *
 * Not a cryptographic hash, and it need not be: identical requests always share a fingerprint, so
 * no input can hide a repeat; two different requests that happen to share one only add up their
 * counts, which can deny early (fail closed) but never let a loop through. By chance that happens
 * about once in 2^53 / 10,000 requests with a full window. A number rather than a string: a Map
 * finds a number key without building or hashing a string.
 */
import { functionOption, integerOption, optionsOf, shown } from "./options.js";

export interface LoopOptions {
  /** Identical requests allowed within the window; the next one is denied. Default 5. */
  readonly maxRepeats?: number;
  /** Default 60,000. */
  readonly windowMs?: number;
  /** Fingerprints remembered at most; the oldest are forgotten first. Default 10,000. */
  readonly maxFingerprints?: number;
  /** The clock in epoch milliseconds. */
  readonly now?: () => number;
}

export type LoopVerdict =
  | { readonly ok: true; readonly count: number }
  | { readonly ok: false; readonly count: number; readonly retryAfterMs: number };

const FIRST: LoopVerdict = Object.freeze({ ok: true, count: 1 });

export class LoopDetector {
  readonly maxRepeats: number;
  readonly windowMs: number;
  readonly #maxFingerprints: number;
  readonly #now: () => number;
  /** Fingerprint → times seen within the window, oldest first. Map order: least recently seen first. */
  readonly #seen = new Map<string | number, number[]>();

  constructor(options?: LoopOptions) {
    const o = optionsOf(options, "loop options", [
      "maxRepeats",
      "windowMs",
      "maxFingerprints",
      "now",
    ]);
    this.maxRepeats = integerOption(o.maxRepeats, "maxRepeats", 5, 1);
    this.windowMs = integerOption(o.windowMs, "windowMs", 60_000, 1);
    this.#maxFingerprints = integerOption(o.maxFingerprints, "maxFingerprints", 10_000, 1);
    this.#now = functionOption(o.now, "now") ?? Date.now;
  }

  /**
   * Counts one more request with this fingerprint, unless it is one too many. A fingerprint is a
   * string, or a safe integer (the meter's); a string and a number are never the same fingerprint.
   */
  check(fingerprint: string | number): LoopVerdict {
    // A Map compares objects by identity: two equal fingerprints that are not strings or numbers
    // would never be seen as a repeat; nor would NaN, and 0.1 + 0.2 is no one's fingerprint.
    if (typeof fingerprint !== "string" && !Number.isSafeInteger(fingerprint))
      throw new TypeError(
        `"fingerprint" expected a string or a safe integer, got ${shown(fingerprint)}`,
      );
    const now = this.#now();
    // A clock that returns NaN would make every window empty: no repeat would ever be seen.
    if (typeof now !== "number" || !Number.isFinite(now))
      throw new RangeError(`the loop detector's clock returned ${String(now)}, not a time`);
    const seen = this.#seen.get(fingerprint);
    if (seen === undefined) {
      // Most requests are new: nothing to look up twice or to move.
      this.#seen.set(fingerprint, [now]);
      if (this.#seen.size > this.#maxFingerprints) this.#evict();
      return FIRST;
    }
    const since = now - this.windowMs;
    // Usually nothing has left the window: keep the array rather than copy it.
    const times = (seen[0] as number) > since ? seen : seen.filter((t) => t > since);
    // Seen again: it moves to the end of the Map (least recently seen first).
    this.#seen.delete(fingerprint);
    this.#seen.set(fingerprint, times);
    if (times.length >= this.maxRepeats)
      return {
        ok: false,
        count: times.length,
        retryAfterMs: (times[0] as number) + this.windowMs - now,
      };
    times.push(now);
    return { ok: true, count: times.length };
  }

  /**
   * Forgets the oldest eighth at once: deleting one at a time from the front of a Map makes each
   * next eviction skip the holes left behind, which cost microseconds per call at the limit.
   */
  #evict(): void {
    let drop = Math.max(1, this.#maxFingerprints >> 3);
    for (const key of this.#seen.keys()) {
      this.#seen.delete(key);
      if (--drop === 0) break;
    }
  }

  /** Forgets every fingerprint (for example after a human has looked at a stuck agent). */
  clear(): void {
    this.#seen.clear();
  }
}

/** The fingerprint of the module comment. */
export function fingerprint(parts: {
  provider: string;
  model: string;
  tool?: string;
  input: unknown;
}): number {
  return fingerprintOf(parts.provider, parts.model, parts.tool, parts.input);
}

/** fingerprint() with its parts as arguments (the meter's call: no object per request). */
export function fingerprintOf(
  provider: string,
  model: string,
  tool: string | undefined,
  input: unknown,
): number {
  a = SEED_A;
  b = SEED_B;
  name(provider);
  name(model);
  if (tool === undefined) value(null);
  else name(tool);
  value(input);
  const high = finish(a);
  const low = finish(b ^ high);
  // 21 bits of one lane and 32 of the other: a safe integer.
  return (high & 0x1fffff) * 0x1_0000_0000 + (low >>> 0);
}

/*
 * The hash reads the normalised value as a sequence of 32-bit symbols and folds each into two
 * 32-bit lanes (multiply, rotate; different constants), finished by MurmurHash3's mix. In
 * JavaScript rather than a native hash of a normalised copy: inside a call, building that copy and
 * the UTF-8 text a native hash needs cost more than this whole walk.
 *
 * The sequence is unambiguous: every value is a block that ends with its kind's tag, preceded by
 * its length. A string's block is its digest, then STRING: the digest is the two lanes of the same
 * hash, from their own seeds, over its characters (normalised), one to a symbol, then their number.
 * A digest depends on the string alone, so the digests of long strings are remembered (below): a
 * conversation's history, sent again with every call, is then hashed once, not at every call. An
 * array's, its elements' blocks, then their number and ARRAY; an object's, its
 * members in key order, each a KEY block (the key as written) then the value's block, then their
 * number and OBJECT; any other value's, its JSON's characters, their number and SCALAR. The
 * provider, model and tool are KEY blocks (no tool: null). Read from the end, each tag says what
 * its block is and where the block starts, so two different values never give the same sequence.
 */
const SEED_A = 0x811c9dc5;
const SEED_B = 0x27d4eb2f;
const DIGEST_SEED_A = 0x6a09e667;
const DIGEST_SEED_B = 0x3c6ef373;
const STRING = 0x3c6ef372;
const KEY = 0x5851f42d;
const ARRAY = 0x4c957f2d;
const OBJECT = 0x14057b7e;
const SCALAR = 0x1b873593;
/** The lanes, between a fingerprint's start and finish (the walk is synchronous). */
let a = SEED_A;
let b = SEED_B;

function mix(symbol: number): void {
  const x = Math.imul(a ^ symbol, 0x01000193);
  a = (x << 7) | (x >>> 25);
  const y = Math.imul(b ^ symbol, 0x5bd1e995);
  b = (y << 13) | (y >>> 19);
}

function finish(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Whether `c` is one of the characters of \s (which trim() also removes). */
const isSpace = (c: number): boolean =>
  c < 0xa0
    ? c === 32 || (c >= 9 && c <= 13)
    : c === 0xa0 ||
      c === 0x1680 ||
      (c >= 0x2000 && c <= 0x200a) ||
      c === 0x2028 ||
      c === 0x2029 ||
      c === 0x202f ||
      c === 0x205f ||
      c === 0x3000 ||
      c === 0xfeff;

/** A key or a name: its characters as written, their number, KEY. */
function name(s: string): void {
  characters(s, false);
  mix(KEY);
}

/**
 * A string's characters and their number: as written, or (`normalise`) as
 * `s.replace(/\s+/g, " ").trim()` would have them — whitespace before the first other character
 * and after the last is dropped, a run between two is one space — read in one pass, without the
 * copy (native scans and replaces cost more inside a call than this loop).
 */
function characters(s: string, normalise: boolean): void {
  // A long string is normalised by native scans first, then read as written: per character
  // that costs about half as much as this loop's whitespace branches. Both ways give the same
  // characters, so the same fingerprint.
  if (!normalise || s.length > LONG_TEXT) {
    written(normalise ? normaliseText(s) : s);
    return;
  }
  let x = a;
  let y = b;
  let count = 0;
  /** Whitespace seen since the last character kept, after at least one. */
  let space = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c <= 32 || c >= 0xa0) && isSpace(c)) {
      space = count > 0;
      continue;
    }
    if (space) {
      const p = Math.imul(x ^ 32, 0x01000193);
      x = (p << 7) | (p >>> 25);
      const q = Math.imul(y ^ 32, 0x5bd1e995);
      y = (q << 13) | (q >>> 19);
      count++;
      space = false;
    }
    const p = Math.imul(x ^ c, 0x01000193);
    x = (p << 7) | (p >>> 25);
    const q = Math.imul(y ^ c, 0x5bd1e995);
    y = (q << 13) | (q >>> 19);
    count++;
  }
  a = x;
  b = y;
  mix(count);
}

/** A string's digest, as the module comment says: set in digestX and digestY. */
let digestX = 0;
let digestY = 0;

/**
 * Strings from which a digest is remembered: shorter ones cost less to hash than to look up. Longer
 * than DIGEST_MAX, one is hashed every time rather than kept.
 */
const DIGEST_MIN = 256;
const DIGEST_MAX = 1 << 20;
/**
 * Characters of remembered strings per generation: a generation that would pass it becomes the
 * previous one, and the one before is forgotten, so at most twice this many are kept (the strings
 * themselves; 4 MiB of one-byte text at most).
 */
const DIGEST_BUDGET = 1 << 21;
/** A remembered string and its digest. */
interface Digest {
  readonly text: string;
  readonly x: number;
  readonly y: number;
}
/**
 * Remembered digests, by a probe of their string (its length, first 32 and last 16 characters, and
 * 32 spread over it): a Map keyed by the string itself would hash all of it natively, at about the
 * cost of its digest. Strings that share a probe (messages made from one template often do) share its list; a
 * digest is used only for the very string it was made from (a native comparison, which stops at
 * the first character that differs).
 */
let digests = new Map<number, Digest[]>();
let olderDigests = new Map<number, Digest[]>();
let digestChars = 0;
/** Probes of long strings seen once and not remembered; forgotten all at once when full. */
const seenOnce = new Set<number>();
const SEEN_ONCE_MAX = 1 << 14;
/** Strings kept per probe, the latest first. */
const PER_PROBE = 8;

function digest(s: string): void {
  const n = s.length;
  if (n < DIGEST_MIN || n > DIGEST_MAX) {
    digestOf(s);
    return;
  }
  let p = Math.imul(n, 0x9e3779b1);
  // Its first 32 and last 16 characters, where messages made from one template usually differ,
  // and 32 spread over the rest.
  for (let i = 0; i < 32; i++) p = Math.imul(p ^ s.charCodeAt(i), 0x01000193);
  for (let i = n - 16; i < n; i++) p = Math.imul(p ^ s.charCodeAt(i), 0x01000193);
  const step = n >>> 5;
  for (let i = 32; i < n; i += step) p = Math.imul(p ^ s.charCodeAt(i), 0x01000193);
  const probe = p & 0x3fffffff;
  let known = find(digests.get(probe), s);
  if (known === undefined) {
    known = find(olderDigests.get(probe), s);
    if (known === undefined) {
      digestOf(s);
      // Kept from its second sighting: a string seen once (most new messages) is not held.
      if (!seenOnce.has(probe)) {
        if (seenOnce.size >= SEEN_ONCE_MAX) seenOnce.clear();
        seenOnce.add(probe);
        return;
      }
      known = { text: s, x: digestX, y: digestY };
    }
    if (digestChars + n > DIGEST_BUDGET) {
      olderDigests = digests;
      digests = new Map();
      digestChars = 0;
    }
    const list = digests.get(probe);
    if (list === undefined) digests.set(probe, [known]);
    else {
      list.unshift(known);
      if (list.length > PER_PROBE) list.pop();
    }
    digestChars += n;
  }
  digestX = known.x;
  digestY = known.y;
}

function find(list: readonly Digest[] | undefined, s: string): Digest | undefined {
  if (list === undefined) return undefined;
  for (const known of list) if (known.text === s) return known;
  return undefined;
}

/** Hashes a string's characters (normalised) and their number from the digest's own seeds. */
function digestOf(s: string): void {
  const outerA = a;
  const outerB = b;
  a = DIGEST_SEED_A;
  b = DIGEST_SEED_B;
  characters(s, true);
  digestX = a;
  digestY = b;
  a = outerA;
  b = outerB;
}

/** characters() of a string as written. */
function written(s: string): void {
  let x = a;
  let y = b;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const p = Math.imul(x ^ c, 0x01000193);
    x = (p << 7) | (p >>> 25);
    const q = Math.imul(y ^ c, 0x5bd1e995);
    y = (q << 13) | (q >>> 19);
  }
  a = x;
  b = y;
  mix(s.length);
}

function value(v: unknown): void {
  if (typeof v === "string") {
    digest(v);
    mix(digestX);
    mix(digestY);
    mix(STRING);
  } else if (Array.isArray(v)) {
    // undefined in an array is null, as in JSON.
    for (let i = 0; i < v.length; i++) value(v[i] === undefined ? null : v[i]);
    mix(v.length);
    mix(ARRAY);
  } else if (v !== null && typeof v === "object") {
    let members = 0;
    for (const key of sortedKeys(v)) {
      const x = (v as Record<string, unknown>)[key];
      // Left out, as in JSON.
      if (x === undefined) continue;
      name(key);
      value(x);
      members++;
    }
    mix(members);
    mix(OBJECT);
  } else {
    characters(JSON.stringify(v) ?? "null", false);
    mix(SCALAR);
  }
}

/**
 * An object's own keys in code unit order, as `Object.keys(o).sort()` orders them. The objects of
 * a request have a few keys each, for which an insertion sort is several times faster than
 * Array.prototype.sort's setup.
 */
function sortedKeys(object: object): string[] {
  const keys = Object.keys(object);
  if (keys.length > 16) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i] as string;
    let j = i - 1;
    for (; j >= 0 && (keys[j] as string) > key; j--) keys[j + 1] = keys[j] as string;
    keys[j + 1] = key;
  }
  return keys;
}

/** Characters from which a string is normalised natively rather than in the hash's loop. */
const LONG_TEXT = 2048;

/**
 * Whitespace other than a plain space (the set of \s), and a space followed by any whitespace.
 * Searched for separately: each is a fast scan on its own, while an alternation of the two in one
 * expression is several times slower.
 */
const OTHER_WHITESPACE =
  /[\t\n\v\f\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/;
const EVERY_OTHER_WHITESPACE =
  /[\t\n\v\f\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/g;
const SPACE_RUN = / \s/;
const EVERY_SPACE_RUN = / \s+/g;

/**
 * `value.replace(/\s+/g, " ").trim()`, in steps that each cost little: every whitespace character
 * other than a space becomes a space, then runs of spaces become one, then the ends are trimmed.
 */
function normaliseText(value: string): string {
  let s = value;
  if (OTHER_WHITESPACE.test(s)) s = s.replace(EVERY_OTHER_WHITESPACE, " ");
  if (SPACE_RUN.test(s)) s = s.replace(EVERY_SPACE_RUN, " ");
  // Only spaces are left: trimming is needed only when one ends the string.
  return s.charCodeAt(0) === 32 || s.charCodeAt(s.length - 1) === 32 ? s.trim() : s;
}
