/**
 * A sub-agent: an OpenAI Agents SDK agent that holds one token and its key. Its model calls go
 * through an OpenAI client whose fetch is metered against the token's chain, and its tools are
 * function tools that check the grant first (`args`, then `tools` on the enforcer, which holds
 * the call), and then call the tool server with a fresh presentation made by the holder's key and
 * bound to the request's body.
 */
import OpenAI from "openai";
import { Agent, OpenAIProvider, Runner, tool, type FunctionTool } from "@openai/agents";
import { checkArguments, type KeyPair } from "@allowance/core";
import type { Enforcer } from "@allowance/enforcer";
import { wrapFetch } from "@allowance/meter";
import { present, type VerifiedChain } from "@allowance/verifier";
import { TOOLS_AUDIENCE } from "./tool-server.js";

/** One tool call a sub-agent attempted, and who decided it. */
export interface Action {
  readonly agent: string;
  readonly tool: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly outcome: "allowed" | "denied";
  /** Who refused: the agent's own check of its grant, the enforcer, or the tool server. */
  readonly deniedBy?: "grant" | "enforcer" | "tool server";
  /** The refusal's reason or code. */
  readonly reason?: string;
}

export interface SubAgentOptions {
  readonly name: string;
  readonly instructions: string;
  /** The sub-agent's token, verified: what its model calls and tool calls are held to. */
  readonly chain: VerifiedChain;
  /** The key of the token's holder, which signs every presentation. */
  readonly key: KeyPair;
  readonly enforcer: Enforcer;
  readonly model: string;
  /** The mock provider's base URL (`…/v1`). */
  readonly baseURL: string;
  /** Responses API (true) or Chat Completions (false). */
  readonly useResponses: boolean;
  readonly toolServer: string;
  /** Every tool call is recorded here. */
  readonly actions: Action[];
}

/** The JSON schemas of the tools the tool server offers, as the model sees them. */
const TOOL_SCHEMAS = {
  search_web: {
    description: "Search the web; answers titles and URLs.",
    properties: { query: { type: "string" } },
  },
  send_email: {
    description: "Send an e-mail.",
    properties: { to: { type: "string" }, subject: { type: "string" }, body: { type: "string" } },
  },
} as const;

export type ToolName = keyof typeof TOOL_SCHEMAS;

/** Runs the sub-agent on one request and answers its final output. */
export async function runSubAgent(
  options: SubAgentOptions,
  tools: readonly ToolName[],
  request: string,
): Promise<string> {
  const openAIClient = new OpenAI({
    apiKey: "sk-example", // the mock provider ignores it
    baseURL: options.baseURL,
    // Every model call is reserved against each link of the chain before it is sent, and charged
    // what the provider reports.
    fetch: wrapFetch(globalThis.fetch, { enforcer: options.enforcer, chain: options.chain }),
    maxRetries: 0,
  });
  const runner = new Runner({
    modelProvider: new OpenAIProvider({ openAIClient, useResponses: options.useResponses }),
    // Tracing would export to OpenAI with the global fetch.
    tracingDisabled: true,
  });
  const agent = new Agent({
    name: options.name,
    instructions: options.instructions,
    model: options.model,
    tools: tools.map((name) => grantedTool(options, name)),
  });
  const result = await runner.run(agent, request);
  return String(result.finalOutput ?? "");
}

function grantedTool(options: SubAgentOptions, name: ToolName): FunctionTool {
  const schema = TOOL_SCHEMAS[name];
  return tool({
    name,
    description: schema.description,
    parameters: {
      type: "object",
      properties: schema.properties,
      required: Object.keys(schema.properties),
      additionalProperties: false,
    },
    strict: true,
    execute: (input) => callTool(options, name, input),
  });
}

/** What the model gets back from a tool call: the tool's answer, or why it was refused. */
async function callTool(options: SubAgentOptions, name: ToolName, input: unknown): Promise<string> {
  const { chain, enforcer, actions } = options;
  // The SDK hands over the model's arguments as parsed JSON: anything but an object is refused.
  if (typeof input !== "object" || input === null || Array.isArray(input))
    return "refused: the arguments must be a JSON object";
  const args = input as Record<string, unknown>;
  const record = (action: Omit<Action, "agent" | "tool" | "arguments">) =>
    actions.push({ agent: options.name, tool: name, arguments: args, ...action });
  // The arguments against the grant's `args` first: a refused call costs nothing and sends nothing.
  const refused = checkArguments(chain.grant.args, name, args);
  if (refused !== null) {
    record({
      outcome: "denied",
      deniedBy: "grant",
      reason: `${refused.argument}: ${refused.reason}`,
    });
    return `refused by the grant: ${refused.message}`;
  }
  // The tool against `tools`, expiry and rate windows of every link, held until the call ends;
  // the enforcer checks the arguments again (absent arguments would count as {}).
  const hold = await enforcer.reserve({ chain, tool: name, arguments: args });
  if (hold.decision === "DENY") {
    record({ outcome: "denied", deniedBy: "enforcer", reason: hold.reason });
    return `refused: ${hold.detail}`;
  }
  const path = `/tools/${name}`;
  const body = JSON.stringify(args);
  // A presentation is good for one request: this audience, method, path and body, once, for a
  // minute (spec/presentation.md §3).
  const presentation = present(chain.token, options.key, {
    aud: TOOLS_AUDIENCE,
    method: "POST",
    path,
    body,
  });
  let response: Response;
  let answer: string;
  try {
    response = await fetch(`${options.toolServer}${path}`, {
      method: "POST",
      headers: { authorization: `Allowance ${presentation}`, "content-type": "application/json" },
      body,
    });
    answer = await response.text();
  } catch (error) {
    await enforcer.release(hold.reservationId);
    throw error;
  }
  if (!response.ok) {
    await enforcer.release(hold.reservationId);
    record({ outcome: "denied", deniedBy: "tool server", reason: problemCode(answer) });
    return `refused by the tool server: ${answer}`;
  }
  await enforcer.commit(hold.reservationId, {});
  record({ outcome: "allowed" });
  return answer;
}

/** The `code` of a problem body (spec/presentation.md §8), or "refused" if there is none. */
function problemCode(body: string): string {
  try {
    const code: unknown = (JSON.parse(body) as { code?: unknown }).code;
    if (typeof code === "string") return code;
  } catch {
    // not a problem body
  }
  return "refused";
}
