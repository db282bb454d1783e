/**
 * The grant options of `mint`, `attenuate` and the MCP `delegate` tool, checked by a zod schema
 * (the MCP server publishes it as the tool's input schema). A module of its own so that the
 * commands that take no grant (`verify`, `inspect`, `ledger`) do not load zod at start-up.
 */
import type { GrantFields } from "@allowance/core";
import { AUDIENCE, MAX_DEPTH, MODEL_ID, TOOL_PATTERN } from "@allowance/core/format";
import { z } from "zod";
import { UsageError } from "./errors.js";
import {
  mergeRates,
  parseCount,
  parseInstant,
  parseList,
  parseProviders,
  parseRate,
  parseUsd,
} from "./units.js";

/**
 * The grant options shared by `mint`, `attenuate` and the MCP `delegate` tool, as people type them.
 * Every value is a string in human units; numbers are accepted where a JSON client sends them.
 */
export const grantInputSchema = z.strictObject({
  tokens: z
    .union([z.string(), z.number()])
    .optional()
    .describe('total LLM tokens, e.g. "1M" or "50k"'),
  usd: z
    .union([z.string(), z.number()])
    .optional()
    .describe('total spend in dollars, e.g. "50" or "2.50"'),
  providers: z
    .string()
    .optional()
    .describe('allowed providers with optional caps, e.g. "openai,anthropic:usd=20"'),
  models: z.string().optional().describe("allowed model ids, comma-separated"),
  tools: z.string().optional().describe('allowed tools and patterns, e.g. "search.*,send_email"'),
  risk: z
    .union([z.string(), z.number()])
    .optional()
    .describe("risk points for consequential tool actions"),
  depth: z
    .union([z.string(), z.number()])
    .optional()
    .describe("how many further delegations are allowed"),
  expires: z.string().optional().describe('expiry: a duration from now ("24h") or a time'),
  nbf: z.string().optional().describe("not valid before: a duration from now or a time"),
  rate: z
    .array(z.string())
    .optional()
    .describe('rate windows, e.g. ["100k-tokens/1h", "60-requests/1m"]'),
  aud: z.string().optional().describe("endpoints that may accept the token, comma-separated"),
  label: z.string().optional().describe("free text for cost attribution (run id, agent name)"),
});

export type GrantInput = z.input<typeof grantInputSchema>;

/** Flag names as the CLI spells them, for messages. */
export const FLAG: Readonly<Record<keyof GrantInput, string>> = {
  tokens: "--tokens",
  usd: "--usd",
  providers: "--providers",
  models: "--models",
  tools: "--tools",
  risk: "--risk",
  depth: "--depth",
  expires: "--expires",
  nbf: "--nbf",
  rate: "--rate",
  aud: "--aud",
  label: "--label",
};

/** Turns human-unit grant options into exact grant fields. Absent options stay absent. */
export function parseGrantInput(input: unknown, nowSeconds: number): GrantFields {
  const parsed = grantInputSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? "");
    throw new UsageError(
      `${FLAG[key as keyof GrantInput] ?? (key || "grant")}: ${issue?.message ?? "invalid"}`,
    );
  }
  const o = parsed.data;
  const text = (value: string | number) => String(value);
  const grant: Record<string, unknown> = {};
  if (o.expires !== undefined) {
    grant["exp"] = parseInstant(o.expires, nowSeconds, FLAG.expires);
    // A token born expired is refused by every verifier: that is a typo, not a grant.
    if ((grant["exp"] as number) <= nowSeconds) {
      throw new UsageError(
        `${FLAG.expires}: ${JSON.stringify(o.expires)} is not in the future; give a later time, e.g. 24h from now`,
      );
    }
  }
  if (o.nbf !== undefined) grant["nbf"] = parseInstant(o.nbf, nowSeconds, FLAG.nbf);
  if (o.depth !== undefined) {
    const depth = parseCount(text(o.depth), FLAG.depth);
    if (depth > MAX_DEPTH) throw new UsageError(`--depth: at most ${MAX_DEPTH}, got ${depth}`);
    grant["depth"] = depth;
  }
  if (o.tokens !== undefined) grant["tokens"] = parseCount(text(o.tokens), FLAG.tokens);
  if (o.usd !== undefined) grant["usdMicros"] = parseUsd(text(o.usd), FLAG.usd);
  if (o.providers !== undefined) grant["providers"] = parseProviders(o.providers, FLAG.providers);
  if (o.models !== undefined)
    grant["models"] = parseList(o.models, MODEL_ID, "model id", FLAG.models);
  if (o.tools !== undefined)
    grant["tools"] = parseList(
      o.tools,
      TOOL_PATTERN,
      "tool name or pattern (name, prefix.*, *)",
      FLAG.tools,
    );
  if (o.risk !== undefined) grant["risk"] = parseCount(text(o.risk), FLAG.risk);
  if (o.rate !== undefined && o.rate.length > 0)
    grant["rate"] = mergeRates(o.rate.map((r) => parseRate(r, FLAG.rate)));
  if (o.aud !== undefined)
    grant["aud"] = parseList(o.aud, AUDIENCE, "audience (printable ASCII, no spaces)", FLAG.aud);
  if (o.label !== undefined) grant["label"] = o.label;
  if (
    grant["exp"] !== undefined &&
    grant["nbf"] !== undefined &&
    (grant["nbf"] as number) >= (grant["exp"] as number)
  ) {
    throw new UsageError("--nbf must be before --expires");
  }
  return grant as GrantFields;
}
