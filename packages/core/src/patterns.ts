/** The value rules of the grant fields (spec/format.md §4), shared by both payload decoders. */

export const PROVIDER_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
export const MODEL_ID = /^[\x21-\x7e]{1,128}$/;
export const TOOL_PATTERN = /^(?:\*|[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*(?:\.\*)?)$/;
export const AUDIENCE = /^[\x21-\x7e]{1,256}$/;
export const MAX_DEPTH = 255;
/** Longest rate window: 366 days. */
export const MAX_RATE_SECONDS = 31_622_400;

/**
 * Does `pattern` (`*`, `name` or `prefix.*`) cover the tool name or pattern `tool`?
 * (spec/format.md §6.3, tool coverage; also which `args` entry applies, spec/arguments.md §2.)
 */
export function toolCovered(pattern: string, tool: string): boolean {
  if (pattern === "*" || pattern === tool) return true;
  if (!pattern.endsWith(".*")) return false;
  const prefix = pattern.slice(0, -1);
  return tool.length > prefix.length && tool.startsWith(prefix);
}
