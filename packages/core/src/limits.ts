import { membersOf } from "./members.js";

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
const LIMIT_NAMES: ReadonlySet<string> = new Set(Object.keys(DEFAULT_LIMITS));

/**
 * Defaults merged with `overrides`, validated (spec/format.md §7); a result passed in again comes
 * back unchanged. Each limit is read once, as a property read finds it (membersOf). A non-object,
 * an unknown name (a misspelt limit would otherwise stay at its default without a word) or a
 * non-number value is a TypeError; a value that is not an integer from 1 to 2^53 − 1 is a
 * RangeError. A member set to `undefined` is absent.
 */
export function resolveLimits(overrides: Partial<Limits> | undefined): Limits {
  if (overrides === undefined) return DEFAULT_LIMITS;
  if (typeof overrides !== "object" || overrides === null || Array.isArray(overrides)) {
    throw new TypeError(`"limits" expected an object, got ${shown(overrides)}`);
  }
  if (resolved.has(overrides as Limits)) return overrides as Limits;
  const given = membersOf(overrides, LIMIT_NAMES, "limits", (name) => {
    throw new TypeError(`"limits" has no limit named ${JSON.stringify(name)}`);
  });
  const merged: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const name of LIMIT_NAMES) {
    const value = given[name];
    if (value === undefined) continue;
    if (typeof value !== "number")
      throw new TypeError(`"limits.${name}" expected an integer, got ${shown(value)}`);
    // NaN fails every comparison, so it must not reach one: refused here with every other non-integer.
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(
        `"limits.${name}" expected an integer from 1 to ${Number.MAX_SAFE_INTEGER}, got ${shown(value)}`,
      );
    }
    merged[name] = value;
  }
  const limits = Object.freeze(merged) as unknown as Limits;
  resolved.add(limits);
  return limits;
}

function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (value === null) return "null";
  if (typeof value === "object") return Array.isArray(value) ? "an array" : "an object";
  if (typeof value === "function") return "a function";
  return String(value);
}
