import { AllowanceError } from "@allowance/core";
import { Command, CommanderError } from "commander";
import { registerAttenuate } from "./commands/attenuate.js";
import { registerDemo } from "./commands/demo.js";
import { registerInspect } from "./commands/inspect.js";
import { registerKeygen } from "./commands/keygen.js";
import { registerLedger } from "./commands/ledger.js";
import { registerMcp } from "./commands/mcp.js";
import { registerMint } from "./commands/mint.js";
import { registerPresent } from "./commands/present.js";
import { registerRevoke } from "./commands/revoke.js";
import { asCliError } from "./commands/shared.js";
import { registerVerify } from "./commands/verify.js";
import { CliError, EXIT } from "./errors.js";
import { messageOf } from "./io.js";

/** Exit codes (documented in README.md): 0 ok, 1 rejected or denied, 2 usage error. */
export { EXIT };

export function buildProgram(helpHint = "allowance --help"): Command {
  const program = new Command("allowance")
    .description("Signed, strictly narrower budgets for AI agents")
    .exitOverride()
    // Commander's own errors (unknown option, missing argument) as one line with the way out.
    .configureOutput({
      outputError: (text, write) => write(`allowance: ${oneLine(text).replace(/^error: /, "")} (see '${helpHint}')\n`),
    })
    .addHelpText("after", "\nExit codes: 0 ok, 1 rejected or denied, 2 usage error.\nEvery command has --help with an example and --json for machine output.");
  registerKeygen(program);
  registerMint(program);
  registerAttenuate(program);
  registerInspect(program);
  registerVerify(program);
  registerPresent(program);
  registerRevoke(program);
  registerLedger(program);
  registerMcp(program);
  registerDemo(program);
  return program;
}

/** Runs the CLI; returns the exit code. Writes exactly one line to stderr on failure, never a stack. */
export async function main(argv: readonly string[]): Promise<number> {
  const command = argv.slice(0, 2).filter((word) => !word.startsWith("-"));
  const program = buildProgram(`allowance ${command.length > 0 && COMMANDS.has(command[0] as string) ? `${command[0] === "ledger" ? command.join(" ") : command[0]} ` : ""}--help`);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return EXIT.ok;
  } catch (thrown) {
    if (thrown instanceof CommanderError) {
      // "commander.help" is help shown because no command was given: a usage error.
      return thrown.code === "commander.helpDisplayed" || thrown.code === "commander.version" ? EXIT.ok : EXIT.usage;
    }
    const error = asCliError(thrown);
    const json = argv.includes("--json");
    if (error instanceof CliError) {
      if (json) process.stdout.write(JSON.stringify({ ok: false, message: error.message, ...error.details }, null, 2) + "\n");
      process.stderr.write(`allowance: ${oneLine(error.message)}\n`);
      return error.exitCode;
    }
    // Not the user's input: still one line, never a stack trace.
    const message = thrown instanceof AllowanceError ? `${thrown.code}: ${thrown.message}` : messageOf(thrown);
    if (json) process.stdout.write(JSON.stringify({ ok: false, message }, null, 2) + "\n");
    process.stderr.write(`allowance: unexpected error: ${oneLine(message)}\n`);
    return EXIT.rejected;
  }
}

const COMMANDS = new Set(["keygen", "mint", "attenuate", "inspect", "verify", "present", "revoke", "ledger", "mcp", "demo"]);

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}
