/**
 * Checks of a public function's options, shared by the meter's modules: an option that is not what
 * it should be is a TypeError or a RangeError that names it, never read as its default (null
 * included) and never skipped (NaN compares false with every bound).
 */

/** How a value is shown in an error message: strings quoted, objects by their type. */
export function shown(value: unknown): string {
  if (typeof value === "string")
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (typeof value === "function") return "a function";
  if (value === null || typeof value !== "object") return String(value);
  if (value instanceof Date) return `Date(${String(value.getTime())})`;
  return Array.isArray(value) ? "an array" : "an object";
}

/** `options` as an object with only `keys` (undefined is `{}`); a misspelt key is a TypeError. */
export function optionsOf<T extends object>(
  options: T | undefined,
  name: string,
  keys: readonly (keyof T & string)[],
): T {
  if (options === undefined) return {} as T;
  if (options === null || typeof options !== "object" || Array.isArray(options))
    throw new TypeError(`"${name}" expected an object, got ${shown(options)}`);
  for (const key of Object.keys(options))
    if (!(keys as readonly string[]).includes(key))
      throw new TypeError(`"${name}" takes ${keys.join(", ")}, got ${shown(key)}`);
  return options;
}

/** An integer option from `min` to `max`, or its default when undefined. */
export function integerOption(
  value: unknown,
  name: string,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number")
    throw new TypeError(`"${name}" expected an integer, got ${shown(value)}`);
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new RangeError(`"${name}" expected an integer from ${min} to ${max}, got ${value}`);
  return value;
}

/** A function option, or undefined. */
export function functionOption<F extends (...args: never[]) => unknown>(
  value: F | undefined,
  name: string,
): F | undefined {
  if (value !== undefined && typeof value !== "function")
    throw new TypeError(`"${name}" expected a function, got ${shown(value)}`);
  return value;
}

/** A time in epoch milliseconds: a finite number (an invalid Date, NaN or ±Infinity is not one). */
export function timeOption(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number")
    throw new TypeError(`"${name}" expected epoch milliseconds, got ${shown(value)}`);
  if (!Number.isFinite(value))
    throw new RangeError(`"${name}" expected epoch milliseconds, got ${value}`);
  return value;
}
