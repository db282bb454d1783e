/**
 * The answer to "would this action be allowed?": the enforcer's dry run (Enforcer.check) for one
 * tool or model call, against every link of a verified chain and the ledger's balances, holding
 * nothing. `allowance check` prints it and the MCP tool `check_action` returns it: one shape
 * (packages/cli/README.md, "check").
 */
import type { ArgumentDenial } from "@allowance/core";
import { riskOf, type CheckResult, type Enforcer, type RiskPolicy } from "@allowance/enforcer";
import type { VerifiedChain } from "@allowance/verifier";
import { parseCount, parseUsd } from "./units.js";

/** What `check` and `check_action` answer: the enforcer's dry run, and what was asked. */
export type CheckActionResult = {
  readonly ok: true;
  readonly allowed: boolean;
  readonly decision: CheckResult["decision"];
  readonly request: Requested;
  /** What each kind could still take on the lines this action touches (null: no cap); absent for a denial by the grant itself. */
  readonly fits?: Readonly<Record<"tokens" | "usdMicros" | "risk" | "requests", number | null>>;
  readonly reason?: string;
  readonly linkIndex?: number;
  readonly linkId?: string;
  readonly field?: string;
  readonly available?: number;
  readonly limit?: number;
  readonly requested?: number;
  readonly retryAfterSeconds?: number;
  /** For DEBT_OUTSTANDING (an overage policy that blocks, spec/enforcement.md §3.9). */
  readonly debt?: number;
  readonly debtLimit?: number;
  readonly detail?: string;
  /** For ARGUMENT_NOT_ALLOWED: the tool, entry pattern, argument and constraint that refused. */
  readonly argumentDenial?: ArgumentDenial;
};

interface Requested {
  readonly tokens: number;
  readonly usdMicros: number;
  readonly risk: number;
}

/** What an amount's error calls it: the MCP tool's argument names, or the CLI's flags. */
export type AmountNames = Readonly<Record<"tokens" | "usd" | "risk", string>>;

const TOOL_ARGUMENT_NAMES: AmountNames = { tokens: "tokens", usd: "usd", risk: "risk" };

/** The enforcer's dry run for one action (Enforcer.check): nothing is held. */
export async function checkAction(
  enforcer: Enforcer,
  chain: VerifiedChain,
  policy: RiskPolicy,
  input: {
    tool?: string | undefined;
    provider?: string | undefined;
    model?: string | undefined;
    tokens?: number | string | undefined;
    usd?: number | string | undefined;
    risk?: number | string | undefined;
    arguments?: unknown;
  },
  names: AmountNames = TOOL_ARGUMENT_NAMES,
): Promise<CheckActionResult> {
  // A question that names no tool, provider or model is about nothing, and "allowed" would be read
  // as an answer about whatever the caller meant: it is an error, never ALLOW.
  if (input.tool === undefined && input.provider === undefined && input.model === undefined) {
    throw new TypeError("name at least one of tool, provider or model");
  }
  const amount = (value: number | string | undefined, what: string) =>
    value === undefined ? undefined : toCount(value, what);
  let tokens = amount(input.tokens, names.tokens);
  let usdMicros = input.usd === undefined ? undefined : parseUsd(String(input.usd), names.usd);
  const risk = amount(input.risk, names.risk);
  // A model call is asked as at least the smallest call there is (1 token, $0.000001): asked as
  // nothing in either kind, it would fit a budget spent to its last cent in that kind, and
  // "allowed" would be read as room for the call the caller has in mind.
  if (input.provider !== undefined || input.model !== undefined) {
    tokens = Math.max(1, tokens ?? 0);
    usdMicros = Math.max(1, usdMicros ?? 0);
  }
  // The enforcer checks the names and amounts again, with reserve's own rules.
  const checked = await enforcer.check({
    chain,
    ...(input.tool === undefined ? {} : { tool: input.tool }),
    ...(input.provider === undefined ? {} : { provider: input.provider }),
    ...(input.model === undefined ? {} : { model: input.model }),
    ...(tokens === undefined ? {} : { tokens }),
    ...(usdMicros === undefined ? {} : { usdMicros }),
    ...(risk === undefined ? {} : { risk }),
    ...(input.arguments === undefined ? {} : { arguments: input.arguments }),
  });
  // What was asked, as the enforcer priced it (risk by the policy when not given).
  const request: Requested = {
    tokens: tokens ?? 0,
    usdMicros: usdMicros ?? 0,
    risk: risk ?? (input.tool === undefined ? 0 : riskOf(policy, input.tool)),
  };
  if (checked.decision !== "DENY")
    return { ok: true, allowed: true, decision: checked.decision, request, fits: checked.fits };
  const { decision: _decision, fits, retryAfter, ...denial } = checked;
  return {
    ok: true,
    allowed: false,
    decision: "DENY",
    request,
    ...(fits === undefined ? {} : { fits }),
    ...denial,
    ...(retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter }),
  };
}

function toCount(value: number | string, what: string): number {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0)
      throw new RangeError(`${what}: expected a non-negative whole number, got ${value}`);
    return value;
  }
  return parseCount(value, what);
}
