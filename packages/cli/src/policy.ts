/** `--policy FILE`: the risk policy of `check` and `mcp`, loaded only by those commands. */
import { parseStrictJson } from "@allowance/core/format";
import { parseRiskPolicy, type RiskPolicy } from "@allowance/enforcer";
import { UsageError } from "./errors.js";
import { messageOf, readBytes } from "./io.js";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** No file: every tool costs 0 risk points. */
export const NO_POLICY: RiskPolicy = Object.freeze({ tools: Object.freeze({}) });

/**
 * Read strictly: `JSON.parse` keeps the last of a tool named twice (`{"send_email": 30,
 * "send_email": 0}` would price it at 0), so a name given twice is refused, as in `--args`.
 */
export function readPolicy(path: string | undefined): RiskPolicy {
  if (path === undefined) return NO_POLICY;
  // As --args: bytes that are not UTF-8 are refused, not read as U+FFFD (a tool's name would
  // change, and with it the cost it is priced at).
  let text: string;
  try {
    text = strictUtf8.decode(readBytes(path, "--policy file"));
  } catch {
    throw new UsageError(`--policy file ${path} is not UTF-8`);
  }
  const parsed = parseStrictJson(text);
  if (!parsed.ok)
    throw new UsageError(`--policy file ${path} is not valid JSON: ${parsed.message}`);
  try {
    return parseRiskPolicy(parsed.value);
  } catch (error) {
    throw new UsageError(`--policy file ${path}: ${messageOf(error)}`);
  }
}
