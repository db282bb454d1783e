/** `--policy FILE`: the risk policy of `check` and `mcp`, loaded only by those commands. */
import { parseStrictJson } from "@allowance/core/format";
import { parseRiskPolicy, type RiskPolicy } from "@allowance/enforcer";
import { UsageError } from "./errors.js";
import { messageOf, readStrictUtf8 } from "./io.js";

/** No file: every tool costs 0 risk points. */
const NO_POLICY: RiskPolicy = Object.freeze({ tools: Object.freeze({}) });

/**
 * Read strictly: `JSON.parse` keeps the last of a tool named twice (`{"send_email": 30,
 * "send_email": 0}` would price it at 0), so a name given twice is refused, as in `--args`; so are bytes that are not UTF-8.
 */
export function readPolicy(path: string | undefined): RiskPolicy {
  if (path === undefined) return NO_POLICY;
  const text = readStrictUtf8(path, "--policy file");
  const parsed = parseStrictJson(text);
  if (!parsed.ok)
    throw new UsageError(`--policy file ${path} is not valid JSON: ${parsed.message}`);
  try {
    return parseRiskPolicy(parsed.value);
  } catch (error) {
    throw new UsageError(`--policy file ${path}: ${messageOf(error)}`);
  }
}
