/**
 * Checks for the time, amount and limit arguments of every public function of this package
 * (spec/format.md §8, spec/presentation.md §4, §5.4, §6.3, §8.1). A caller's mistake is a
 * `TypeError` (wrong type) or a `RangeError` (wrong range) naming the argument and the value
 * received, never a check that silently passes: every comparison with NaN is false, so an invalid
 * `now` once made expired tokens valid and presentations replayable.
 */
import type { Limits } from "@allowance/core";
import { resolveLimits } from "@allowance/core/format";

/** The largest `skewSeconds` accepted: a clock that is off by more is broken, not skewed. */
export const MAX_SKEW_SECONDS = 3600;
/** The largest presentation `maxAgeSeconds` accepted: a presentation is a per-request proof. */
export const MAX_PRESENTATION_MAX_AGE_SECONDS = 3600;
/** The largest `checkIntervalMs` of a file revocation store: a revocation takes effect within it. */
export const MAX_CHECK_INTERVAL_MS = 3_600_000;
/**
 * The smallest clock reading accepted, in epoch milliseconds: 10^11 ms is 1973-03-03. Every
 * reading below it is what a clock in seconds returns (until the year 5138), and a seconds clock
 * read as milliseconds would put "now" in January 1970, where every token is unexpired.
 */
export const MIN_CLOCK_MS = 100_000_000_000;

/** The value as a message shows it: strings quoted, objects by their kind, never thrown on. */
export function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof Date)
    return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
  if (value === null) return "null";
  if (typeof value === "object") return Array.isArray(value) ? "an array" : "an object";
  if (typeof value === "function") return "a function";
  return String(value);
}

/** A clock option (spec/format.md §8): a function returning epoch milliseconds; `Date.now` if absent. */
export function checkedClock(now: unknown, name = "now"): () => number {
  if (now === undefined) return Date.now;
  if (typeof now !== "function") {
    throw new TypeError(
      `"${name}" expected a clock, a function returning epoch milliseconds like Date.now, got ${shown(now)}`,
    );
  }
  return now as () => number;
}

/**
 * Reads `clock` once: its answer must be an integer of epoch milliseconds from MIN_CLOCK_MS to
 * 2^53 − 1. Returns the time in whole seconds, rounded down, which is what tokens state.
 */
export function readClock(clock: () => number, name = "now"): number {
  const ms: unknown = clock();
  if (typeof ms !== "number")
    throw new TypeError(`"${name}" returned ${shown(ms)}, expected epoch milliseconds (a number)`);
  // NaN fails every comparison, so it is refused by name rather than by a range test.
  if (!Number.isSafeInteger(ms) || ms < MIN_CLOCK_MS) {
    const seconds = Number.isSafeInteger(ms) && ms >= 0 && ms < MIN_CLOCK_MS;
    throw new RangeError(
      `"${name}" returned ${shown(ms)}, expected epoch milliseconds, an integer from ${MIN_CLOCK_MS} to ${Number.MAX_SAFE_INTEGER}${seconds ? " (is it a clock in seconds?)" : ""}`,
    );
  }
  return Math.floor(ms / 1000);
}

/** The clock option `now` read once, in whole seconds (see `readClock`). */
export function checkedNow(now: unknown, name = "now"): number {
  return readClock(checkedClock(now, name), name);
}

/** An integer option from 0 (or `min`) to `max`; `fallback` when absent (undefined, never null). */
export function checkedInteger(
  value: unknown,
  name: string,
  fallback: number,
  max: number,
  min = 0,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number")
    throw new TypeError(`"${name}" expected an integer, got ${shown(value)}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `"${name}" expected an integer from ${min} to ${max}, got ${shown(value)}`,
    );
  }
  return value;
}

/** An optional string option. */
export function checkedString(value: unknown, name: string): string | undefined {
  if (value !== undefined && typeof value !== "string")
    throw new TypeError(`"${name}" expected a string, got ${shown(value)}`);
  return value;
}

/** An options object: absent is `{}` only where the argument is optional. */
export function checkedOptions<T extends object>(
  value: T | undefined,
  name: string,
  optional: boolean,
): T {
  if (value === undefined && optional) return {} as T;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`"${name}" expected an options object, got ${shown(value)}`);
  }
  return value;
}

/**
 * An options object with only the members `known` lists: an unknown one (a misspelt option, or one
 * given where it is not used, such as a per-call `skew`) would otherwise be ignored without a word.
 * `hint` says where the refused option belongs, when that helps.
 */
export function checkedKnownOptions<T extends object>(
  options: T,
  name: string,
  known: ReadonlySet<string>,
  hint = "",
): T {
  for (const key of Object.keys(options)) {
    if (!known.has(key))
      throw new TypeError(
        `"${name}" has no option named ${JSON.stringify(key)} (known: ${[...known].join(", ")})${hint}`,
      );
  }
  return options;
}

/** An object that must have the named methods (a store, a cache, a backend). */
export function checkedMethods<T>(value: T, name: string, methods: readonly string[]): T {
  if (value === undefined) return value;
  const target = value as Record<string, unknown> | null;
  if (
    (typeof target !== "object" && typeof target !== "function") ||
    target === null ||
    methods.some((m) => typeof target[m] !== "function")
  ) {
    throw new TypeError(
      `"${name}" expected an object with ${methods.map((m) => `${m}()`).join(" and ")}, got ${shown(value)}`,
    );
  }
  return value;
}

/** `limits` (spec/format.md §7), by the one check in @allowance/core: `resolveLimits`. */
export function checkedLimits(limits: Partial<Limits> | undefined): Limits {
  return resolveLimits(limits);
}

/** An optional function option. */
export function checkedFunction<T>(value: T, name: string): T {
  if (value !== undefined && typeof value !== "function")
    throw new TypeError(`"${name}" expected a function, got ${shown(value)}`);
  return value;
}

/** Whether `K` names every member of `T`: if not, the type that names the missing ones. */
type Complete<T, K extends readonly unknown[]> = [Exclude<keyof T, K[number]>] extends [never]
  ? unknown
  : { readonly missing: Exclude<keyof T, K[number]> };

/**
 * The member names of an options interface as a set for `checkedKnownOptions`, written once: the
 * compiler checks the list against the interface both ways (no name it lacks, none it has missing).
 */
export function optionNames<T>() {
  return <const K extends readonly (keyof T & string)[]>(names: K & Complete<T, K>) =>
    new Set<string>(names) as ReadonlySet<string>;
}
