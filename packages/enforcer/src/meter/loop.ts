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
import { createHash } from "node:crypto";

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

export type LoopVerdict = { readonly ok: true; readonly count: number } | { readonly ok: false; readonly count: number; readonly retryAfterMs: number };

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
    const times = (this.#seen.get(fingerprint) ?? []).filter((t) => t > since);
    this.#seen.delete(fingerprint);
    if (times.length >= this.maxRepeats) {
      this.#seen.set(fingerprint, times);
      return { ok: false, count: times.length, retryAfterMs: (times[0] as number) + this.windowMs - now };
    }
    times.push(now);
    this.#seen.set(fingerprint, times);
    if (this.#seen.size > this.#maxFingerprints) this.#seen.delete(this.#seen.keys().next().value as string);
    return { ok: true, count: times.length };
  }

  /** Forgets every fingerprint (for example after a human has looked at a stuck agent). */
  clear(): void {
    this.#seen.clear();
  }
}

/** The fingerprint of the module comment. */
export function fingerprint(parts: { provider: string; model: string; tool?: string; input: unknown }): string {
  return createHash("sha256")
    .update(JSON.stringify([parts.provider, parts.model, parts.tool ?? null, normalise(parts.input)]))
    .digest("base64url");
}

/** Whitespace-collapsed strings and sorted keys, so equal arguments have equal JSON. */
export function normalise(value: unknown): unknown {
  if (typeof value === "string") return value.replace(/\s+/g, " ").trim();
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
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`"${name}" expected a positive integer, got ${value}`);
  return value;
}
