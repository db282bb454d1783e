import { parseStrictJson } from "@allowance/core/format";
import type { Command } from "commander";
import type { AmountNames, CheckActionResult } from "../check.js";
import { DeniedAnswer, UsageError } from "../errors.js";
import { readStrictUtf8 } from "../io.js";
import { emit, exampleHelp } from "../output.js";
import { formatCount, formatUsd } from "../units.js";
import { LEDGER_FORMS, POLICY_HELP, requireLedger } from "./shared.js";
import { verifyArgument } from "./verify.js";

interface CheckCommandOptions {
  readonly token: string;
  readonly roots: string;
  readonly ledger?: string;
  readonly policy?: string;
  readonly aud?: string;
  readonly revocations?: string;
  readonly tool?: string;
  readonly provider?: string;
  readonly model?: string;
  readonly tokens?: string;
  readonly usd?: string;
  readonly risk?: string;
  readonly args?: string;
  readonly json?: boolean;
}

/**
 * `allowance check`: would this action be allowed? The enforcer's dry run against every link of a
 * verified chain and the ledger's balances; nothing is reserved. The MCP tool `check_action`
 * answers the same question with the same shape. Exit 0 when allowed, 1 when denied.
 */
export function registerCheck(program: Command): void {
  program
    .command("check")
    .description(
      "Would this action be allowed? The enforcer's answer for a tool or model call against a verified chain and the ledger (reserves nothing)",
    )
    .requiredOption("--token <token>", "the token itself, @file, or - for stdin")
    .requiredOption("--roots <file>", "trusted root keys: a JWKS, or one public JWK")
    .option("--ledger <ledger>", `the ledger the enforcer writes to (required): ${LEDGER_FORMS}`)
    .option("--tool <name>", "the tool to be called")
    .option("--provider <name>", "the LLM provider to be called")
    .option("--model <id>", "the model to be called")
    .option("--tokens <count>", 'tokens the call may use, e.g. "4k"')
    .option("--usd <amount>", 'what the call may cost, e.g. "0.05"')
    .option("--risk <points>", "risk points (default: the policy's cost of --tool)")
    .option(
      "--args <json>",
      "the tool call's arguments: a JSON object, or @file (read strictly: a name given twice is refused)",
    )
    .option("--policy <file>", POLICY_HELP)
    .option("--aud <endpoint>", "verify the token for this audience")
    .option(
      "--revocations <file>",
      "a revocation list written by 'allowance revoke': a revoked token is refused",
    )
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      exampleHelp(
        "allowance check --token @agent.token --roots root.pub.jwk --ledger sqlite:ledger.db --tool send_email --usd 0.01",
        `allowance check --token @agent.token --roots root.pub.jwk --ledger sqlite:ledger.db --tool send_email --args '{"to":"ana@example.com"}' --json`,
      ),
    )
    .action(async (options: CheckCommandOptions) => {
      const spec = requireLedger(options.ledger, "check", "asks");
      if (
        options.tool === undefined &&
        options.provider === undefined &&
        options.model === undefined
      ) {
        throw new UsageError("check needs at least one of --tool, --provider or --model");
      }
      if (options.args !== undefined && options.tool === undefined)
        throw new UsageError("--args are a tool call's arguments: give --tool too");
      const callArguments = options.args === undefined ? undefined : readArguments(options.args);
      const { chain } = await verifyArgument(options.token, options, "--token");
      const [{ Enforcer }, { readPolicy }, { withLedger }, { checkAction }] = await Promise.all([
        import("@allowance/enforcer"),
        import("../policy.js"),
        import("../ledger-spec.js"),
        import("../check.js"),
      ]);
      const policy = readPolicy(options.policy);
      const answer = await withLedger(spec, (opened) =>
        checkAction(
          new Enforcer({ ledger: opened.ledger, policy }),
          chain,
          policy,
          {
            tool: options.tool,
            provider: options.provider,
            model: options.model,
            tokens: options.tokens,
            usd: options.usd,
            risk: options.risk,
            arguments: callArguments,
          },
          FLAG_NAMES,
        ),
      );
      emit(options, answer, () => describeCheck(answer, options));
      if (!answer.allowed) throw new DeniedAnswer();
    });
}

/** `--args`: JSON text or @file, read by the strict reader the enforcer's body check uses (spec/arguments.md §6.4). */
function readArguments(argument: string): unknown {
  const text = argument.startsWith("@")
    ? readStrictUtf8(argument.slice(1), "--args file")
    : argument;
  const parsed = parseStrictJson(text);
  if (!parsed.ok) throw new UsageError(`--args is not one JSON object: ${parsed.message}`);
  const value = parsed.value;
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new UsageError("--args must be a JSON object of argument names and values");
  return value;
}

/** An amount's error names the flag it came from. */
const FLAG_NAMES: AmountNames = { tokens: "--tokens", usd: "--usd", risk: "--risk" };

function describeCheck(answer: CheckActionResult, options: CheckCommandOptions): string {
  const asked = [
    options.tool === undefined ? undefined : `tool ${options.tool}`,
    options.provider === undefined ? undefined : `provider ${options.provider}`,
    options.model === undefined ? undefined : `model ${options.model}`,
  ].filter((part) => part !== undefined);
  const { request } = answer;
  const amounts = [
    request.usdMicros > 0 ? formatUsd(request.usdMicros) : undefined,
    request.tokens > 0
      ? `${formatCount(request.tokens)} ${request.tokens === 1 ? "token" : "tokens"}`
      : undefined,
    request.risk > 0
      ? `${request.risk} risk ${request.risk === 1 ? "point" : "points"}`
      : undefined,
  ].filter((part) => part !== undefined);
  const what = `${asked.join(", ")}${amounts.length === 0 ? "" : ` (${amounts.join(", ")})`}`;
  if (answer.allowed) return `allowed: ${what}`;
  const where = [
    answer.reason,
    answer.linkIndex === undefined ? undefined : `link ${answer.linkIndex}`,
    answer.field,
  ].filter((part) => part !== undefined);
  return `denied (${where.join(", ")}): ${what}: ${answer.detail ?? "the enforcer refused it"}`;
}
