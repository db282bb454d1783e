/** The grant flags shared by `mint` and `attenuate`; values stay strings until units.ts parses them. */
import type { Command } from "commander";
import type { GrantInput } from "./grant-input.js";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function addGrantOptions(command: Command): Command {
  return command
    .option("--tokens <count>", "total LLM tokens (input + output), e.g. 1M, 100k, 250000")
    .option("--usd <dollars>", "total spend in dollars, e.g. 50 or 2.50 (stored as micro-dollars)")
    .option(
      "--providers <list>",
      "allowed providers, each with optional caps: openai,anthropic:usd=20:tokens=100k",
    )
    .option("--models <list>", "allowed model ids, comma-separated")
    .option(
      "--tools <list>",
      "allowed tools: names and patterns such as 'search.*' or '*', comma-separated",
    )
    .option("--risk <points>", "risk points for consequential tool actions")
    .option("--depth <n>", "how many further delegations are allowed")
    .option(
      "--nbf <time>",
      "not valid before: a duration from now (1h), an ISO date, or epoch seconds",
    )
    .option(
      "--rate <window>",
      "a rate window, repeatable: 100k-tokens/1h, 60-requests/1m, 5-usd/1d",
      collect,
      [],
    )
    .option("--aud <list>", "endpoints that may accept the token, comma-separated")
    .option("--label <text>", "free text for cost attribution, e.g. run-42");
}

/** The grant part of a command's parsed options, as units.ts takes it. */
export function grantInputOf(options: GrantInput & Record<string, unknown>): GrantInput {
  const keys = [
    "tokens",
    "usd",
    "providers",
    "models",
    "tools",
    "risk",
    "depth",
    "expires",
    "nbf",
    "rate",
    "aud",
    "label",
  ] as const;
  const input: Record<string, unknown> = {};
  for (const key of keys) if (options[key] !== undefined) input[key] = options[key];
  return input as GrantInput;
}
