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

export class LoopDetector {
  readonly maxRepeats: number;
  readonly windowMs: number;
  readonly #maxFingerprints: number;
  readonly #now: () => number;
  /** Fingerprint → times seen within the window, oldest first. Map order: least recently seen first. */
  readonly #seen = new Map<string, number[]>();

  constructor(options: LoopOptions = {}) {
    this.maxRepeats = positive(options.maxRepeats ?? 5, "maxRepeats");
    this.windowMs = positive(options.windowMs ?? 60_000, "windowMs");
    this.#maxFingerprints = positive(options.maxFingerprints ?? 10_000, "maxFingerprints");
    this.#now = options.now ?? Date.now;
  }

  /** Counts one more request with this fingerprint, unless it is one too many. */
  check(fingerprint: string): LoopVerdict {
    const now = this.#now();
    const since = now - this.windowMs;
    const seen = this.#seen.get(fingerprint);
    // Usually nothing has left the window: keep the array rather than copy it.
    const times =
      seen === undefined ? [] : (seen[0] as number) > since ? seen : seen.filter((t) => t > since);
    this.#seen.delete(fingerprint);
    if (times.length >= this.maxRepeats) {
      this.#seen.set(fingerprint, times);
      return {
        ok: false,
        count: times.length,
        retryAfterMs: (times[0] as number) + this.windowMs - now,
      };
    }
    times.push(now);
    this.#seen.set(fingerprint, times);
    // Forget the oldest eighth at once: deleting one at a time from the front of a Map makes each
    // next eviction skip the holes left behind, which cost microseconds per call at the limit.
    if (this.#seen.size > this.#maxFingerprints) {
      let drop = Math.max(1, this.#maxFingerprints >> 3);
      for (const key of this.#seen.keys()) {
        this.#seen.delete(key);
        if (--drop === 0) break;
      }
    }
    return { ok: true, count: times.length };
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
  // One-shot hash (Node ≥ 20.12): no Hash object per call.
  return hash(
    "sha256",
    `[${normalisedKey(parts.provider)},${normalisedKey(parts.model)},${normalisedKey(parts.tool ?? null)},${normalisedKey(parts.input)}]`,
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
    const s = normalise(value) as string;
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
    for (const key of Object.keys(value).sort()) {
      const x = (value as Record<string, unknown>)[key];
      if (x === undefined) continue;
      out += `${first ? "" : ","}"${key.length}:${key}:${normalisedKey(x)}`;
      first = false;
    }
    return `${out}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** A whitespace character other than a plain space (the set of \s), or a space followed by any. */
const COLLAPSIBLE = /[\t\n\v\f\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]| \s/;

/** Whitespace-collapsed strings and sorted keys, so equal arguments have equal JSON. */
export function normalise(value: unknown): unknown {
  // Most strings have no run to collapse (single spaces only): then trimming alone is the same.
  // Otherwise only runs and non-space whitespace are replaced: a lone space already is " ".
  if (typeof value === "string")
    return COLLAPSIBLE.test(value) ? value.replace(/\s{2,}|[^\S ]/g, " ").trim() : value.trim();
  if (Array.isArray(value)) return value.map(normalise);
  if (value !== null && typeof value === "object") {
    // A null prototype, so that a "__proto__" key stays an ordinary key.
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const key of Object.keys(value).sort()) {
      const x = (value as Record<string, unknown>)[key];
      if (x !== undefined) out[key] = normalise(x);
    }
    return out;
  }
  return value;
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new RangeError(`"${name}" expected a positive integer, got ${value}`);
  return value;
}
