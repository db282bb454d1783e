/**
 * Loop detection: an agent that sends the same request again and again (same provider, model,
 * tool and arguments) is stuck, and every repeat costs money. More than `maxRepeats` identical
 * fingerprints within `windowMs` are denied with `LOOP_DETECTED` until the oldest leaves the window.
 *
 * The fingerprint is a SHA-256 over the provider, model, tool and the request's arguments
 * (messages or input, system prompt or instructions), normalised so that formatting does not hide
 * a repeat: runs of whitespace in every string collapse to one space and are trimmed, and object
 * keys are sorted. Every request that reaches this check is counted, whether or not it is later
 * allowed by the budget.
 */
import { hash } from "node:crypto";
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
  readonly #seen = new Map<string, number[]>();

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

  /** Counts one more request with this fingerprint, unless it is one too many. */
  check(fingerprint: string): LoopVerdict {
    // A Map compares objects by identity: two equal fingerprints that are not strings would never
    // be seen as a repeat.
    if (typeof fingerprint !== "string")
      throw new TypeError(`"fingerprint" expected a string, got ${shown(fingerprint)}`);
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
}): string {
  return fingerprintOf(parts.provider, parts.model, parts.tool, parts.input);
}

/** fingerprint() with its parts as arguments (the meter's call: no object per request). */
export function fingerprintOf(
  provider: string,
  model: string,
  tool: string | undefined,
  input: unknown,
): string {
  // One-shot hash (Node ≥ 20.12): no Hash object per call.
  return hash(
    "sha256",
    `[${normalisedKey(provider)},${normalisedKey(model)},${normalisedKey(tool ?? null)},${normalisedKey(input)}]`,
    "base64url",
  );
}

/**
 * An unambiguous encoding of normalise(value), written directly: no normalised copy is built (that
 * was most of the loop check's cost). Strings are length-prefixed (`"5:hello`), so nothing is
 * escaped; other scalars are their JSON; undefined object members are left out and undefined in
 * arrays is null, as in JSON.
 */
function normalisedKey(value: unknown): string {
  if (typeof value === "string") {
    const s = normaliseText(value);
    return `"${s.length}:${s}`;
  }
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++)
      out += (i === 0 ? "" : ",") + (value[i] === undefined ? "null" : normalisedKey(value[i]));
    return `${out}]`;
  }
  if (value !== null && typeof value === "object") {
    let out = "{";
    let first = true;
    for (const key of sortedKeys(value)) {
      const x = (value as Record<string, unknown>)[key];
      if (x === undefined) continue;
      out += `${first ? "" : ","}"${key.length}:${key}:${normalisedKey(x)}`;
      first = false;
    }
    return `${out}}`;
  }
  return JSON.stringify(value) ?? "null";
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
 * Most strings have neither (single spaces only), and are returned as they are or only trimmed.
 */
function normaliseText(value: string): string {
  let s = value;
  if (OTHER_WHITESPACE.test(s)) s = s.replace(EVERY_OTHER_WHITESPACE, " ");
  if (SPACE_RUN.test(s)) s = s.replace(EVERY_SPACE_RUN, " ");
  // Only spaces are left: trimming is needed only when one ends the string.
  return s.charCodeAt(0) === 32 || s.charCodeAt(s.length - 1) === 32 ? s.trim() : s;
}

/** Whitespace-collapsed strings and sorted keys, so equal arguments have equal JSON. */
export function normalise(value: unknown): unknown {
  if (typeof value === "string") return normaliseText(value);
  if (Array.isArray(value)) return value.map(normalise);
  if (value !== null && typeof value === "object") {
    // A null prototype, so that a "__proto__" key stays an ordinary key.
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const key of sortedKeys(value)) {
      const x = (value as Record<string, unknown>)[key];
      if (x !== undefined) out[key] = normalise(x);
    }
    return out;
  }
  return value;
}
