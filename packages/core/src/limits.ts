/**
 * Resource limits applied while parsing, before any signature or decoding work (spec/format.md §7).
 * Every field can be lowered (or raised) per call; the defaults fit any realistic delegation tree
 * with a wide margin while keeping the worst-case work per token small.
 */
export interface Limits {
  /** Characters in the string form, prefix included. */
  readonly maxTokenChars: number;
  /** Bytes of the binary form. */
  readonly maxTokenBytes: number;
  /** Links in one chain, root included. */
  readonly maxLinks: number;
  /** Bytes of one link's payload. */
  readonly maxPayloadBytes: number;
  /** Entries in any list or map of a grant (providers, models, tools, rate, aud). */
  readonly maxListLength: number;
  /** UTF-8 bytes of any string in a grant. */
  readonly maxStringBytes: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxTokenChars: 24_000,
  maxTokenBytes: 16_384,
  maxLinks: 32,
  maxPayloadBytes: 4_096,
  maxListLength: 64,
  maxStringBytes: 256,
});

const resolved = new WeakSet<Limits>([DEFAULT_LIMITS]);

/** Defaults merged with `overrides`, validated; a result passed in again comes back unchanged. */
export function resolveLimits(overrides: Partial<Limits> | undefined): Limits {
  if (overrides === undefined) return DEFAULT_LIMITS;
  if (resolved.has(overrides as Limits)) return overrides as Limits;
  const merged = { ...DEFAULT_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(merged)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`limits.${name} must be a positive integer, got ${String(value)}`);
    }
  }
  const limits = Object.freeze(merged);
  resolved.add(limits);
  return limits;
}
