/** What a value is, as an error message names it: "null", "an array", or its typeof. */
export function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}
