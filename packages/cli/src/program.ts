import { readFileSync } from "node:fs";
import { AllowanceError } from "@allowance/core";
import { Command, CommanderError, type Option } from "commander";
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

/** The package's version, read on start (a JSON file, no module graph behind it). */
export const VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

export function buildProgram(helpHint = "allowance --help"): Command {
  const program = new Command("allowance")
    .description("Signed, strictly narrower budgets for AI agents")
    .version(VERSION, "-V, --version", "print the version")
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
  checkRequiredAfterUnknown(program);
  return program;
}

/**
 * Commander checks required options before unknown ones, so `mint --bogus` said "--key required"
 * and hid the typo. Required options are checked here instead, in the pre-action hook that runs
 * after the unknown-option check.
 */
function checkRequiredAfterUnknown(program: Command): void {
  const required = new Map<Command, Option[]>();
  const walk = (command: Command): void => {
    const mandatory = command.options.filter((option) => option.mandatory);
    for (const option of mandatory) option.makeOptionMandatory(false);
    if (mandatory.length > 0) required.set(command, mandatory);
    command.commands.forEach(walk);
  };
  walk(program);
  program.hook("preAction", (_program, action) => {
    for (const option of required.get(action) ?? []) {
      if (action.getOptionValue(option.attributeName()) === undefined) {
        action.error(`required option '${option.flags}' not specified`, { code: "commander.missingMandatoryOptionValue" });
      }
    }
  });
}

/** Runs the CLI; returns the exit code. Writes exactly one line to stderr on failure, never a stack. */
export async function main(argv: readonly string[]): Promise<number> {
  const command = argv.slice(0, 2).filter((word) => !word.startsWith("-"));
  const hint = `allowance ${command.length > 0 && COMMANDS.has(command[0] as string) ? `${command[0] === "ledger" ? command.join(" ") : command[0]} ` : ""}--help`;
  const program = buildProgram(hint);
  const json = argv.includes("--json");
  try {
    await program.parseAsync([...argv], { from: "user" });
    return EXIT.ok;
  } catch (thrown) {
    if (thrown instanceof CommanderError) {
      // Help asked for (`--help`, `help mint`) and --version exit 0; help shown because no command
      // was given has exit code 1 from commander, and is a usage error here.
      if (thrown.exitCode === 0) return EXIT.ok;
      if (json) writeJson({ ok: false, code: "USAGE", message: `${oneLine(thrown.message).replace(/^error: /, "")} (see '${hint}')` });
      return EXIT.usage;
    }
    const error = asCliError(thrown);
    if (error instanceof CliError) {
      if (json) writeJson(error.toJSON());
      process.stderr.write(`allowance: ${oneLine(error.message)}\n`);
      return error.exitCode;
    }
    // Not the user's input: still one line, never a stack trace.
    const message = thrown instanceof AllowanceError ? `${thrown.code}: ${thrown.message}` : messageOf(thrown);
    if (json) writeJson({ ok: false, code: thrown instanceof AllowanceError ? thrown.code : "INTERNAL", message });
    process.stderr.write(`allowance: unexpected error: ${oneLine(message)}\n`);
    return EXIT.rejected;
  }
}

const COMMANDS = new Set(["keygen", "mint", "attenuate", "inspect", "verify", "present", "revoke", "ledger", "mcp", "demo"]);

function writeJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}
