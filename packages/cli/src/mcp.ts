/**
 * `allowance mcp`: the holder's budget served to an MCP client over stdio. The server holds one
 * verified chain and the holder's key; it reads the ledger but never reserves or spends: checking
 * an action is a question (Enforcer.check), not a hold.
 *
 * Every result carries its JSON twice, as the MCP spec asks: compact text in `content` and the same
 * object in `structuredContent`, described by the tool's `outputSchema`. `ok` tells the two shapes
 * apart: `ok: true` and the tool's fields, or `ok: false` with `isError: true` and
 * `{ code, message, linkIndex?, field?, limit?, actual?, violations? }` for every tool and every
 * failure, argument errors included. Each shape is the CLI's `--json` for the same thing
 * (packages/cli/README.md): get_budget is `ledger remaining`, list_limits is `verify`, delegate is
 * `attenuate`, and an error is a CLI error.
 */
import {
  AllowanceError,
  ERROR_CODES,
  attenuate,
  formatToken,
  importPublicJwk,
  kidOf,
  linkIds,
  type KeyPair,
} from "@allowance/core";
import { Enforcer, type Ledger, type RiskPolicy } from "@allowance/enforcer";
import type { VerifiedChain } from "@allowance/verifier";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { checkAction } from "./check.js";
import { chainResult } from "./commands/verify.js";
import { describeViolation, errorDetails, type ViolationJSON } from "./describe.js";
import { UsageError } from "./errors.js";
import { messageOf } from "./io.js";
import { remainingResult, type LedgerSource } from "./output.js";
import { FAR_TIMES_PARSED, formatInstant } from "./units.js";
import { grantInputSchema, parseGrantInput } from "./grant-input.js";

export interface McpContext {
  readonly chain: VerifiedChain;
  /** The token as a string: `delegate` appends to it. */
  readonly token: string;
  readonly holderKey: KeyPair;
  readonly ledger: Ledger;
  /** What `ledger` is, as `get_budget` names it (the `ledger` field of `ledger remaining --json`). */
  readonly ledgerSource: LedgerSource;
  readonly policy: RiskPolicy;
  readonly version: string;
  /**
   * Revoked link ids (a FileRevocationStore): asked on every call, so a token revoked while the
   * server runs is refused from then on, not only at start (spec/presentation.md §6).
   */
  readonly revocations?: { has(linkId: string): boolean };
}

/** Why a tool failed: the token format's codes (ERR_WIDENED, …), or one of the server's own. */
export type McpErrorCode =
  "INVALID_INPUT" | "UNKNOWN_TOOL" | "INTERNAL" | (typeof ERROR_CODES)[number];

/**
 * The one error shape of every tool (with `isError: true`), and of the CLI's `--json` errors
 * (CliError.toJSON): `ok`, `code`, `message`, and what a token error names (errorDetails).
 */
export interface McpError {
  readonly ok: false;
  readonly code: McpErrorCode;
  /** One sentence; names arguments as the tool's schema does (`usd`), never CLI flags. */
  readonly message: string;
  /** The link the token error is about, root = 0. */
  readonly linkIndex?: number;
  /** The grant field it is about (`exp`, `usdMicros`, …). */
  readonly field?: string;
  /** For ERR_LIMIT: the format's limit and the size found. */
  readonly limit?: number;
  readonly actual?: number;
  /** For ERR_WIDENED and the like: every field of the grant that is wider than this one. */
  readonly violations?: readonly ViolationJSON[];
}

/** A whole number up to 2^53 − 1, or text in human units ("3k") that `parseCount` reads exactly. */
const amountInput = z.union([
  z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  z.string().max(64),
]);

/**
 * Every tool's input is a strict object: an unknown key is an error, never ignored, so a misspelt
 * field ("tool_name") cannot turn a question about a forbidden tool into one about nothing.
 */
export const checkActionSchema = z.strictObject({
  tool: z
    .string()
    .min(1)
    .max(256)
    .optional()
    .describe("the tool the agent wants to call, e.g. search.web"),
  provider: z.string().min(1).max(64).optional().describe("the LLM provider, e.g. openai"),
  model: z.string().min(1).max(128).optional().describe("the model id"),
  tokens: amountInput.optional().describe('estimated tokens (input + output), e.g. 3000 or "3k"'),
  usd: z
    .union([
      z
        .number()
        .min(0)
        .max(Number.MAX_SAFE_INTEGER / 1_000_000),
      z.string().max(64),
    ])
    .optional()
    .describe('estimated cost in dollars, e.g. "0.02"'),
  risk: amountInput.optional().describe("risk points; by default the policy's cost of the tool"),
  // Passed on as received, not parsed into a copy: a record schema would drop a `__proto__`
  // member, and the grant's args must judge the object the tool would run with.
  arguments: z
    .unknown()
    .optional()
    .meta({ type: "object", additionalProperties: {} })
    .describe(
      'the tool call\'s arguments, checked against the grant\'s argument constraints, e.g. {"to": "ops@example.com"}; absent counts as {}',
    ),
});

/** A list argument: an array of strings, one entry each (as `rate` is). */
const listInput = (example: string) =>
  z.array(z.string().min(1).max(256)).max(256).optional().describe(example);

/** The CLI's grant options, with every list an array: the CLI's comma strings are for a shell, not JSON. */
export const delegateSchema = z.strictObject({
  publicJwk: z
    .union([z.record(z.string(), z.unknown()), z.string()])
    .describe("the sub-agent's Ed25519 public JWK (object or JSON text)"),
  ...grantInputSchema.shape,
  providers: listInput('allowed providers with optional caps, e.g. ["openai", "anthropic:usd=20"]'),
  models: listInput('allowed model ids, e.g. ["gpt-4o-mini"]'),
  tools: listInput('allowed tools and patterns, e.g. ["search.*", "send_email"]'),
  aud: listInput('endpoints that may accept the token, e.g. ["https://api.example.com"]'),
});

const LIST_KEYS = ["providers", "models", "tools", "aud"] as const;

const noInput = z.strictObject({});

const count = z.number().int().min(0);
const errorShape = {
  code: z
    .string()
    .optional()
    .describe(
      "on ok: false: INVALID_INPUT, UNKNOWN_TOOL, INTERNAL, or a token error code such as ERR_WIDENED",
    ),
  message: z.string().optional().describe("on ok: false: what went wrong, in one sentence"),
  linkIndex: count.optional().describe("on ok: false: the link a token error is about, root = 0"),
  field: z.string().optional().describe("on ok: false: the grant field a token error is about"),
  limit: count.optional(),
  actual: count.optional(),
  violations: z
    .array(
      z.object({
        field: z.string(),
        reason: z.string(),
        parent: z.unknown(),
        child: z.unknown(),
        text: z.string(),
      }),
    )
    .optional(),
};

/**
 * A tool's output schema: `ok`, the error fields, and the tool's own fields. An object, as MCP
 * requires, whose properties are all optional but `ok` (the client validates error results against
 * it too); a `oneOf` then says which fields each value of `ok` requires.
 */
function outputSchema<T extends z.ZodRawShape>(shape: T) {
  const required = Object.entries(shape)
    .filter(([, field]) => !(field as z.ZodType).safeParse(undefined).success)
    .map(([key]) => key);
  return z
    .object({
      ok: z.boolean().describe("true: the tool's fields follow; false: an error (code, message)"),
      ...errorShape,
      ...z.object(shape).partial().shape,
    })
    .meta({
      oneOf: [
        { properties: { ok: { const: true } }, required: ["ok", ...required] },
        { properties: { ok: { const: false } }, required: ["ok", "code", "message"] },
      ],
    });
}

const limitOutput = z.object({
  field: z.string(),
  kind: z.string(),
  cap: count.nullable(),
  spent: count,
  held: count,
  remaining: count.nullable(),
  overBy: count.optional(),
  settled: count.optional(),
  blocked: z.literal(true).optional(),
  resetsAtSeconds: count.optional(),
});
const leafOutput = z
  .object({
    tokens: count.nullable(),
    usdMicros: count.nullable(),
    risk: count.nullable(),
    requests: count.nullable(),
  })
  .partial();

const budgetOutput = outputSchema({
  ledger: z
    .object({ kind: z.enum(["memory", "sqlite", "redis"]), where: z.string() })
    .describe("the ledger read"),
  atSeconds: count,
  leaf: leafOutput.describe(
    "what the holder can still spend per kind: the least left over every link (null: no cap)",
  ),
  links: z.array(
    z.object({
      index: count,
      id: z.string(),
      label: z.string().optional(),
      limits: z.array(limitOutput),
    }),
  ),
  summary: z.array(z.string()).describe("the same in words, overruns included"),
  providers: z
    .record(z.string(), z.object({ breaker: z.string(), openUntilSeconds: count.optional() }))
    .optional()
    .describe(
      "only when a provider's circuit is reported: open means calls to it are denied for now",
    ),
});

const limitsOutput = outputSchema({
  rootKid: z.string(),
  holderKid: z.string(),
  linkIds: z.array(z.string()),
  limits: z.array(z.string()).describe("the effective grant in words"),
  unrestricted: z.array(z.string()),
  grant: z.record(z.string(), z.unknown()),
});

const checkOutput = outputSchema({
  allowed: z.boolean(),
  decision: z.enum(["ALLOW", "ALLOW_WITH_CAPS", "DENY"]),
  request: z.object({ tokens: count, usdMicros: count, risk: count }),
  // Absent when the grant itself denies: the ledger was not read.
  fits: z
    .object({
      tokens: count.nullable(),
      usdMicros: count.nullable(),
      risk: count.nullable(),
      requests: count.nullable(),
    })
    .optional(),
  // On DENY only; the amounts for budget and rate denials only.
  reason: z.string().optional(),
  linkIndex: count.optional(),
  linkId: z.string().optional(),
  field: z.string().optional(),
  available: count.optional(),
  limit: count.optional(),
  requested: count.optional(),
  retryAfterSeconds: count.optional(),
  // On DEBT_OUTSTANDING only: the result schema admits no other keys, so every one is listed.
  debt: count.optional(),
  debtLimit: count.optional(),
  detail: z.string().optional(),
  // On ARGUMENT_NOT_ALLOWED only (spec/arguments.md §6.3).
  argumentDenial: z
    .object({
      tool: z.string(),
      pattern: z.string().nullable(),
      argument: z.string().nullable(),
      constraint: z.record(z.string(), z.unknown()).nullable(),
      reason: z.string(),
      message: z.string(),
    })
    .optional(),
});

const delegateOutput = outputSchema({
  token: z.string(),
  holderKid: z.string(),
  linkIds: z.array(z.string()),
  linkId: z.string(),
  grant: z.record(z.string(), z.unknown()),
});

/** A result: compact JSON text and the same object as structured content. */
function result<T extends { readonly ok: boolean }>(value: T): CallToolResult {
  return {
    content: [{ type: "text", text: JSON.stringify(value) }],
    structuredContent: value as unknown as Record<string, unknown>,
    ...(value.ok ? {} : { isError: true }),
  };
}

function failure(
  code: McpErrorCode,
  message: string,
  extra: Omit<McpError, "ok" | "code" | "message"> = {},
): CallToolResult {
  const error: McpError = { ok: false, code, message: withoutFlags(message), ...extra };
  return result(error);
}

/** The shared grant parser names CLI flags ("--usd: …"); a tool's caller knows arguments ("usd: …"). */
function withoutFlags(message: string): string {
  return message.replace(/(^|[\s(])--([a-z][a-z-]*)/g, "$1$2");
}

/**
 * Any failure as the one error shape: a token error keeps its code; a value refused by a parser or
 * by the enforcer's argument checks is the input's fault; anything else (a ledger that cannot be
 * reached) is the server's, never reported as the caller's mistake.
 */
function failureOf(error: unknown): CallToolResult {
  if (error instanceof AllowanceError) {
    // A widening in the argument's units ("usd: asks $60, the parent has $2"), as the CLI says it.
    const message =
      error.violations.length === 0
        ? error.message
        : `the grant is wider than this token's: ${error.violations.map(describeViolation).join("; ")}`;
    return failure(error.code, message, errorDetails(error));
  }
  const input =
    error instanceof UsageError ||
    error instanceof TypeError ||
    error instanceof RangeError ||
    error instanceof SyntaxError;
  return failure(input ? "INVALID_INPUT" : "INTERNAL", messageOf(error));
}

/**
 * The SDK answers an argument that fails the input schema, or an unknown tool, with a bare text
 * error; this server answers them in its one error shape. The SDK routes every such failure
 * through its (TypeScript-private) `createToolError`, so that is where the shape is set.
 */
function shapeSdkErrors(server: McpServer): void {
  const target = server as unknown as { createToolError?: (message: string) => CallToolResult };
  if (typeof target.createToolError !== "function")
    throw new Error(
      "@modelcontextprotocol/sdk no longer has McpServer.createToolError: update shapeSdkErrors",
    );
  target.createToolError = (message: string) => {
    const input = /Input validation error: Invalid arguments for tool [^:]+: ([\s\S]*)$/.exec(
      message,
    );
    if (input !== null) return failure("INVALID_INPUT", schemaMessage(input[1] ?? ""));
    const unknown = /Tool (\S+) not found/.exec(message);
    if (unknown !== null)
      return failure(
        "UNKNOWN_TOOL",
        `no tool named ${unknown[1] ?? ""}; the tools are get_budget, list_limits, check_action and delegate`,
      );
    return failure("INTERNAL", message.replace(/^MCP error -?\d+: /, ""));
  };
}

/**
 * The SDK's schema errors, one per line as "Invalid input: expected array, received string at
 * tools", put as every other error of the server is: the argument first ("tools: expected array,
 * received string"), several joined by "; ".
 */
function schemaMessage(text: string): string {
  return text
    .split("\n")
    .map((line) => {
      const at = /^(.*) at (\S+)$/.exec(line);
      if (at === null) return line;
      return `${at[2]}: ${(at[1] ?? "").replace(/^Invalid input: /, "")}`;
    })
    .join("; ");
}

export function createMcpServer(context: McpContext): McpServer {
  const { chain, policy } = context;
  const enforcer = new Enforcer({ ledger: context.ledger, policy });
  const server = new McpServer({ name: "allowance", version: context.version });
  shapeSdkErrors(server);
  /** The refusal for a chain with a revoked link, asked before every tool runs. */
  const revoked = (): CallToolResult | undefined => {
    const index =
      context.revocations === undefined
        ? -1
        : chain.linkIds.findIndex((id) => context.revocations?.has(id) === true);
    return index < 0
      ? undefined
      : failure(
          "ERR_REVOKED",
          `link ${index} of this token (${chain.linkIds[index] ?? ""}) is revoked: this token grants nothing`,
          // As verify reports a revoked link: which one.
          { linkIndex: index },
        );
  };

  /**
   * The refusal for a chain past its expiry (the least `exp` of its links), by the enforcer's rule
   * (no clock allowance): it grants nothing any more, so no budget is left to report and a child
   * could never verify. check_action answers EXPIRED through the enforcer; list_limits shows it.
   */
  const expired = (): CallToolResult | undefined => {
    const seconds = Math.floor(Date.now() / 1000);
    const index = chain.links.findIndex(
      (link) => link.grant.exp !== undefined && seconds >= link.grant.exp,
    );
    if (index < 0) return undefined;
    const exp = chain.links[index]?.grant.exp as number;
    return failure(
      "ERR_EXPIRED",
      `link ${index} of this token expired at ${formatInstant(exp)}: this token grants nothing`,
      { linkIndex: index, field: "exp" },
    );
  };

  server.registerTool(
    "get_budget",
    {
      title: "Remaining budget",
      description:
        "Spent, held, left (remaining) and cap per link of the delegation chain and per field (tokens, usdMicros in micro-dollars, risk, rate windows); leaf is what this agent can still spend. Free: reserves nothing.",
      inputSchema: noInput,
      outputSchema: budgetOutput,
      annotations: { readOnlyHint: true },
    },
    async () => {
      try {
        return (
          revoked() ??
          expired() ??
          result(remainingResult(await enforcer.remaining(chain), context.ledgerSource))
        );
      } catch (error) {
        return failureOf(error);
      }
    },
  );

  server.registerTool(
    "list_limits",
    {
      title: "Limits of this grant",
      description:
        "The effective grant this agent holds, in human units and exact integers: expiry, tokens, usd, providers, models, tools, risk, rate windows, audience, delegation depth.",
      inputSchema: noInput,
      outputSchema: limitsOutput,
      annotations: { readOnlyHint: true },
    },
    async () =>
      revoked() ?? result(chainResult(chain, context.holderKey.kid, Math.floor(Date.now() / 1000))),
  );

  server.registerTool(
    "check_action",
    {
      title: "Would this action be allowed?",
      description:
        "Asks the enforcer what it would decide for a tool call or model call, against every link of the chain (its argument constraints included) and the current ledger balances, without reserving anything. Name at least one of tool, provider or model; give a tool call's arguments as an object.",
      inputSchema: checkActionSchema,
      outputSchema: checkOutput,
      annotations: { readOnlyHint: true },
    },
    async (input) => {
      try {
        return revoked() ?? result(await checkAction(enforcer, chain, policy, input));
      } catch (error) {
        return failureOf(error);
      }
    },
  );

  server.registerTool(
    "delegate",
    {
      title: "Delegate a narrower grant",
      description:
        'Mints a strictly narrower grant for a sub-agent\'s public key by appending one signed link. Amounts in human units (tokens "50k", usd "2.50", expires "1h"); lists as arrays (tools ["search.*"]). Returns the token, or every violation if the grant would be wider than this one.',
      inputSchema: delegateSchema,
      outputSchema: delegateOutput,
    },
    async (input) => {
      try {
        const refused = revoked() ?? expired();
        if (refused !== undefined) return refused;
        const { publicJwk, ...fields } = input;
        const holder = await importPublicJwk(
          typeof publicJwk === "string" ? (JSON.parse(publicJwk) as unknown) : publicJwk,
        );
        const grant = grantOf(fields, Math.floor(Date.now() / 1000));
        const token = attenuate(context.token, {
          holderKey: context.holderKey,
          holder,
          grant,
          allowFarFuture: FAR_TIMES_PARSED,
        });
        // As `attenuate --json` prints it.
        const ids = linkIds(token);
        return result({
          ok: true,
          token: formatToken(token),
          holderKid: await kidOf(holder.bytes),
          linkIds: ids,
          linkId: ids.at(-1) as string,
          grant,
        });
      } catch (error) {
        return failureOf(error);
      }
    },
  );
  return server;
}

/** The grant of a `delegate` call: lists as arrays, read by the CLI's parser one entry per element. */
function grantOf(
  fields: Omit<z.output<typeof delegateSchema>, "publicJwk">,
  nowSeconds: number,
): Record<string, unknown> {
  const { providers, models, tools, aud, ...rest } = fields;
  const lists = { providers, models, tools, aud };
  const joined: Record<string, unknown> = { ...rest };
  const empty: string[] = [];
  for (const key of LIST_KEYS) {
    const items = lists[key];
    if (items === undefined) continue;
    // The parser splits on commas: an entry holding one would become two entries.
    const bad = items.find((item) => item.includes(","));
    if (bad !== undefined)
      throw new TypeError(
        `${key}: ${JSON.stringify(bad)} holds a comma; give one entry per array element`,
      );
    // An empty list allows nothing: the parser has no comma form for it.
    if (items.length === 0) empty.push(key);
    else joined[key] = items.join(",");
  }
  const grant: Record<string, unknown> = { ...parseGrantInput(joined, nowSeconds) };
  for (const key of empty) grant[key] = [];
  return grant;
}
