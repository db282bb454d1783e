/** Risk policy (spec/enforcement.md §5): what each tool action costs in risk points. */
import { toolCovered } from "@allowance/core/format";
import { z } from "zod";

export interface RiskPolicy {
  /** Cost per tool name or pattern (`name`, `prefix.*`, `*`); the most specific match wins. */
  readonly tools: Readonly<Record<string, number>>;
  /** Cost of a tool no entry matches. Default 0. */
  readonly default?: number;
}

const points = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const riskPolicySchema = z.strictObject({
  tools: z.record(
    z
      .string()
      .regex(
        /^(?:\*|[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*(?:\.\*)?)$/,
        "is not a tool name or pattern",
      ),
    points,
  ),
  default: points.optional(),
});

/** Parses a policy from JSON or an object, throwing a TypeError that names the bad entry. */
export function parseRiskPolicy(input: unknown): RiskPolicy {
  const parsed = riskPolicySchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TypeError(
      `invalid risk policy: ${issue?.path.join(".") || "policy"} ${issue?.message ?? ""}`.trim(),
    );
  }
  return parsed.data as RiskPolicy;
}

/** The cost of one action of `tool`: exact name first, then the longest matching pattern. */
export function riskOf(policy: RiskPolicy, tool: string): number {
  const exact = policy.tools[tool];
  if (exact !== undefined && Object.hasOwn(policy.tools, tool)) return exact;
  let best: { length: number; cost: number } | undefined;
  for (const [pattern, cost] of Object.entries(policy.tools)) {
    if (
      pattern !== tool &&
      toolCovered(pattern, tool) &&
      (best === undefined || pattern.length > best.length)
    )
      best = { length: pattern.length, cost };
  }
  return best?.cost ?? policy.default ?? 0;
}
