/**
 * `allowance mcp`: the holder's budget served to an MCP client over stdio. The server holds one
 * verified chain and the holder's key; it reads the ledger but never reserves or spends: checking
 * an action is a question, not a hold.
 */
import { AllowanceError, attenuate, effectiveToJSON, formatToken, importPublicJwk, kidOf, linkIds, toolAllowed, type KeyPair } from "@allowance/core";
import { Enforcer, describeBudgetDenial, riskOf, type Decision, type DenyReason, type Ledger, type LimitRemaining, type RiskPolicy } from "@allowance/enforcer";
import type { VerifiedChain } from "@allowance/verifier";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { describeGrant, describeViolation, unrestricted } from "./describe.js";
import { CliError, UsageError } from "./errors.js";
import { messageOf } from "./io.js";
import { formatAmount, grantInputSchema, parseCount as parseCountText, parseGrantInput, parseUsd } from "./units.js";

export interface McpContext {
  readonly chain: VerifiedChain;
  /** The token as a string: `delegate` appends to it. */
  readonly token: string;
  readonly holderKey: KeyPair;
  readonly ledger: Ledger;
  readonly policy: RiskPolicy;
  readonly version: string;
}

/** What `check_action` answers. */
export type CheckResult =
  | { readonly allowed: true; readonly decision: "ALLOW"; readonly request: Requested; readonly fits: Fits }
  | (Omit<Extract<Decision, { decision: "DENY" }>, "retryAfter"> & { readonly allowed: false; readonly request: Requested; readonly fits: Fits });

interface Requested {
  readonly tokens: number;
  readonly usdMicros: number;
  readonly risk: number;
  readonly requests: number;
}

/** The most of each amount the action could still use (null: no cap applies). */
type Fits = Readonly<Record<"tokens" | "usdMicros" | "risk", number | null>>;

/** A whole number up to 2^53 − 1, or text in human units ("3k") that `parseCount` reads exactly. */
const amountInput = z.union([z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), z.string().max(64)]);

/**
 * Every tool's input is a strict object: an unknown key is an error, never ignored, so a misspelt
 * field ("tool_name") cannot turn a question about a forbidden tool into one about nothing.
 */
export const checkActionSchema = z.strictObject({
  tool: z.string().min(1).max(256).optional().describe("the tool the agent wants to call, e.g. search.web"),
  provider: z.string().min(1).max(64).optional().describe("the LLM provider, e.g. openai"),
  model: z.string().min(1).max(128).optional().describe("the model id"),
  tokens: amountInput.optional().describe('estimated tokens (input + output), e.g. 3000 or "3k"'),
  usd: z.union([z.number().min(0).max(Number.MAX_SAFE_INTEGER / 1_000_000), z.string().max(64)]).optional().describe('estimated cost in dollars, e.g. "0.02"'),
  risk: amountInput.optional().describe("risk points; by default the policy's cost of the tool"),
});

export const delegateSchema = z.strictObject({
  publicJwk: z.union([z.record(z.string(), z.unknown()), z.string()]).describe("the sub-agent's Ed25519 public JWK (object or JSON text)"),
  ...grantInputSchema.shape,
});

const noInput = z.strictObject({});

function json(value: unknown, isError = false): CallToolResult {
  return { content: [{ type: "text", text: JSON.stringify(value, null, 2) }], ...(isError ? { isError: true } : {}) };
}

export function createMcpServer(context: McpContext): McpServer {
  const { chain, policy } = context;
  const enforcer = new Enforcer({ ledger: context.ledger, policy });
  const server = new McpServer({ name: "allowance", version: context.version });

  server.registerTool(
    "get_budget",
    {
      title: "Remaining budget",
      description: "Spent, held and left per link of the delegation chain and per field (tokens, usd in micro-dollars, risk, rate windows). Free: reserves nothing.",
      inputSchema: noInput,
      annotations: { readOnlyHint: true },
    },
    async () => {
      const report = await enforcer.remaining(chain);
      const summary = Object.entries(report.leaf)
        .filter(([, left]) => left !== null && left !== undefined)
        .map(([kind, left]) => `${kind === "usdMicros" ? "usd" : kind} ${formatAmount(kind, left as number)} left`);
      // An overrun (spend past a cap, spec/enforcement.md §3.4) is said, not shown as "0 left".
      for (const link of report.links) {
        for (const limit of link.limits) {
          if (limit.overBy !== undefined && limit.cap !== null) {
            summary.push(`${limit.field} on link ${link.index} over by ${formatAmount(limit.kind, limit.overBy)} of ${formatAmount(limit.kind, limit.cap)}`);
          }
        }
      }
      return json({ ...report, summary });
    },
  );

  server.registerTool(
    "list_limits",
    {
      title: "Limits of this grant",
      description: "The effective grant this agent holds, in human units and exact integers: expiry, tokens, usd, providers, models, tools, risk, rate windows, audience, delegation depth.",
      inputSchema: noInput,
      annotations: { readOnlyHint: true },
    },
    async () =>
      json({
        rootKid: chain.rootKid,
        holderKid: context.holderKey.kid,
        linkIds: chain.linkIds,
        limits: describeGrant(chain.grant, Math.floor(Date.now() / 1000)),
        unrestricted: unrestricted(chain.grant),
        grant: effectiveToJSON(chain.grant),
      }),
  );

  server.registerTool(
    "check_action",
    {
      title: "Would this action be allowed?",
      description:
        "Checks a tool call or model call against every link of the chain and the current ledger balances, without reserving anything. Name at least one of tool, provider or model.",
      inputSchema: checkActionSchema,
      annotations: { readOnlyHint: true },
    },
    async (input) => {
      try {
        return json(await checkAction(enforcer, chain, policy, input));
      } catch (error) {
        return json({ error: messageOf(error) }, true);
      }
    },
  );

  server.registerTool(
    "delegate",
    {
      title: "Delegate a narrower grant",
      description:
        "Mints a strictly narrower grant for a sub-agent's public key by appending one signed link. Amounts in human units (tokens \"50k\", usd \"2.50\", expires \"1h\"). Returns the token, or every violation if the grant would be wider than this one.",
      inputSchema: delegateSchema,
    },
    async (input) => {
      const { publicJwk, ...grantInput } = input;
      try {
        const holder = await importPublicJwk(typeof publicJwk === "string" ? (JSON.parse(publicJwk) as unknown) : publicJwk);
        const grant = parseGrantInput(grantInput, Math.floor(Date.now() / 1000));
        const token = attenuate(context.token, { holderKey: context.holderKey, holder, grant });
        const ids = linkIds(token);
        return json({ ok: true, token: formatToken(token), linkId: ids.at(-1), holderKid: await kidOf(holder.bytes), grant });
      } catch (error) {
        if (error instanceof AllowanceError) {
          return json(
            {
              ok: false,
              code: error.code,
              message: error.message,
              violations: error.violations.map((v) => ({ ...v, text: describeViolation(v) })),
            },
            true,
          );
        }
        return json({ ok: false, code: error instanceof CliError ? "USAGE" : "INVALID_INPUT", message: messageOf(error) }, true);
      }
    },
  );
  return server;
}

/** The enforcer's checks for one action, answered from `remaining`: nothing is held. */
export async function checkAction(
  enforcer: Enforcer,
  chain: VerifiedChain,
  policy: RiskPolicy,
  input: { tool?: string | undefined; provider?: string | undefined; model?: string | undefined; tokens?: number | string | undefined; usd?: number | string | undefined; risk?: number | string | undefined },
): Promise<CheckResult> {
  // A question that names no tool, provider or model is about nothing, and "allowed" would be read
  // as an answer about whatever the caller meant: it is an error, never ALLOW.
  if (input.tool === undefined && input.provider === undefined && input.model === undefined) {
    throw new UsageError("check_action: name at least one of tool, provider or model");
  }
  for (const key of ["tool", "provider", "model"] as const) {
    if (input[key] !== undefined && typeof input[key] !== "string") throw new TypeError(`check_action: ${key} expected a string, got ${typeof input[key]}`);
  }
  const count = (value: number | string | undefined, what: string) => (value === undefined ? 0 : toCount(value, what));
  const request: Requested = {
    tokens: count(input.tokens, "tokens"),
    usdMicros: input.usd === undefined ? 0 : parseUsd(String(input.usd), "usd"),
    risk: input.risk === undefined ? (input.tool === undefined ? 0 : riskOf(policy, input.tool)) : count(input.risk, "risk"),
    requests: 1,
  };
  const report = await enforcer.remaining(chain);
  const applies = (limit: LimitRemaining) => !limit.field.startsWith("providers.") || (input.provider !== undefined && limit.field.startsWith(`providers.${input.provider}.`));
  const fits: Record<"tokens" | "usdMicros" | "risk", number | null> = { tokens: null, usdMicros: null, risk: null };
  for (const link of report.links) {
    for (const limit of link.limits) {
      if (!applies(limit) || limit.remaining === null || limit.kind === "requests") continue;
      const kind = limit.kind;
      fits[kind] = Math.min(fits[kind] ?? Number.POSITIVE_INFINITY, limit.remaining);
    }
  }
  const deny = (reason: DenyReason, linkIndex: number, field: string, detail: string, amounts?: { available: number; limit?: number; requested: number }): CheckResult => ({
    allowed: false,
    decision: "DENY",
    reason,
    linkIndex,
    linkId: chain.linkIds[linkIndex] as string,
    field,
    ...(amounts === undefined ? {} : amounts),
    detail,
    request,
    fits,
  });

  // The same order as Enforcer.reserve: validity, then provider, model, tool, then amounts.
  const seconds = Math.floor(report.at / 1000);
  for (const link of chain.links) {
    const g = link.grant;
    if (g.exp !== undefined && seconds >= g.exp) return deny("EXPIRED", link.index, "exp", `link ${link.index} expired`);
    if (g.nbf !== undefined && seconds < g.nbf) return deny("NOT_YET_VALID", link.index, "nbf", `link ${link.index} is not valid yet`);
  }
  const first = (test: (link: VerifiedChain["links"][number]) => boolean) => chain.links.find(test);
  if (input.provider !== undefined) {
    const provider = input.provider;
    const link = first((l) => l.effective.providers !== undefined && !l.effective.providers.some((p) => p.name === provider));
    if (link !== undefined) return deny("PROVIDER_NOT_ALLOWED", link.index, "providers", `provider ${provider} is not allowed by link ${link.index}'s grant`);
  }
  if (input.model !== undefined) {
    const model = input.model;
    const link = first((l) => l.effective.models !== undefined && !l.effective.models.includes(model));
    if (link !== undefined) return deny("MODEL_NOT_ALLOWED", link.index, "models", `model ${model} is not allowed by link ${link.index}'s grant`);
  }
  if (input.tool !== undefined) {
    const tool = input.tool;
    const link = first((l) => !toolAllowed(l.effective.tools, tool));
    if (link !== undefined) return deny("TOOL_NOT_ALLOWED", link.index, "tools", `tool ${tool} is not allowed by link ${link.index}'s grant`);
  }
  for (const link of report.links) {
    for (const limit of link.limits) {
      if (!applies(limit) || limit.remaining === null) continue;
      if (request[limit.kind] > limit.remaining) {
        const reason: DenyReason = limit.field.startsWith("rate.") ? "RATE_LIMITED" : limit.kind === "tokens" ? "BUDGET_TOKENS" : limit.kind === "usdMicros" ? "BUDGET_USD" : "BUDGET_RISK";
        const facts = { kind: limit.kind, field: limit.field, linkIndex: link.index, leafIndex: chain.links.length - 1, requested: request[limit.kind], available: limit.remaining, limit: limit.cap };
        return deny(reason, link.index, limit.field, describeBudgetDenial(facts), { available: limit.remaining, ...(limit.cap === null ? {} : { limit: limit.cap }), requested: request[limit.kind] });
      }
    }
  }
  return { allowed: true, decision: "ALLOW", request, fits };
}

function toCount(value: number | string, what: string): number {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${what}: expected a non-negative whole number, got ${value}`);
    return value;
  }
  return parseCountText(value, what);
}
