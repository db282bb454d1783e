/**
 * The command line. Start-up matters (an agent may run a command per step): this module loads only
 * commander and the one command being run. Every command is listed here by name and description;
 * its module — and the libraries behind it (the verifier, the enforcer, SQLite, Redis, the MCP
 * SDK) — is imported only when that command runs or shows its help.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, type Option } from "commander";
import { COMMANDS, DESCRIPTION, HELP_AFTER, LINK_ID } from "./commands/table.js";
import { CliError, DeniedAnswer, EXIT, UsageError } from "./errors.js";

/** Exit codes (documented in README.md): 0 ok, 1 rejected or denied, 2 usage error. */
export { EXIT };

/** The package's version, read on start (a JSON file, no module graph behind it). */
export const VERSION = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

/**
 * The program with `load` commands fully registered ("all", or the names of the commands to run)
 * and the others as name and description only, enough for the top-level help and for commander to
 * tell a known command from an unknown one.
 */
export async function buildProgram(
  helpHint = "allowance --help",
  load: "all" | readonly string[] = "all",
): Promise<Command> {
  const program = new Command("allowance")
    .description(DESCRIPTION)
    .version(VERSION, "-V, --version", "print the version")
    .exitOverride()
    // Commander's own errors (unknown option, missing argument) as one line with the way out.
    .configureOutput({
      outputError: (text, write) =>
        write(`allowance: ${oneLine(text).replace(/^error: /, "")} (see '${helpHint}')\n`),
    })
    .addHelpText("after", HELP_AFTER);
  const entries = Object.entries(COMMANDS);
  const registers = await Promise.all(
    entries.map(([name, entry]) =>
      load === "all" || load.includes(name) ? entry.load() : undefined,
    ),
  );
  for (const [index, [name, entry]] of entries.entries()) {
    const register = registers[index];
    if (register !== undefined) {
      register(program);
      continue;
    }
    const stub = program.command(name).description(entry.description);
    if (entry.argument !== undefined) stub.argument(entry.argument);
    if (entry.options) stub.option("--json", "machine-readable output");
  }
  checkRequiredAfterUnknown(program);
  refuseRepeatedValues(program);
  return program;
}

/**
 * Commander keeps the last of a value flag given twice, silently: `verify --revocations a.json
 * --revocations b.json` would check b alone, and a token revoked in a would verify. A value flag is
 * therefore taken once; one meant to repeat (`--rate`) says so with its own parser.
 */
function refuseRepeatedValues(program: Command): void {
  for (const command of commandsOf(program))
    for (const option of command.options) {
      if (!(option.required || option.optional) || option.variadic) continue;
      if (option.parseArg !== undefined) continue;
      let given = false;
      option.argParser((value: string) => {
        if (given) throw new UsageError(`${option.long ?? option.flags} given twice; give it once`);
        given = true;
        return value;
      });
    }
}

/** `program` and every command under it. */
function commandsOf(program: Command): Command[] {
  return [program, ...program.commands.flatMap(commandsOf)];
}

/**
 * Commander checks required options before unknown ones, so `mint --bogus` said "--key required"
 * and hid the typo. Required options are checked here instead, in the pre-action hook that runs
 * after the unknown-option check.
 */
function checkRequiredAfterUnknown(program: Command): void {
  const required = new Map<Command, Option[]>();
  for (const command of commandsOf(program)) {
    const mandatory = command.options.filter((option) => option.mandatory);
    for (const option of mandatory) option.makeOptionMandatory(false);
    if (mandatory.length > 0) required.set(command, mandatory);
  }
  program.hook("preAction", (_program, action) => {
    for (const option of required.get(action) ?? []) {
      if (action.getOptionValue(option.attributeName()) === undefined) {
        action.error(`required option '${option.flags}' not specified`, {
          code: "commander.missingMandatoryOptionValue",
        });
      }
    }
  });
}

/**
 * `revoke`'s link id, when it starts with "-" (one id in 64 does: base64url), moved after "--" at
 * the end: as it was, the parser took it for an unknown option, and an id copied from `inspect`
 * could not be revoked as written.
 */
function linkIdsLast(argv: readonly string[]): string[] {
  if (argv[0] !== "revoke" || argv.includes("--")) return [...argv];
  // Not the value of --store (a file so named is its own business): by position, not by value.
  const isId = (word: string, i: number) =>
    i > 0 && argv[i - 1] !== "--store" && word.startsWith("-") && LINK_ID.test(word);
  const ids = argv.filter(isId);
  if (ids.length === 0) return [...argv];
  return [...argv.filter((word, i) => !isId(word, i)), "--", ...ids];
}

/** Runs the CLI; returns the exit code. Writes exactly one line to stderr on failure, never a stack. */
export async function main(argv: readonly string[]): Promise<number> {
  const command = argv.slice(0, 2).filter((word) => !word.startsWith("-"));
  const hint = `allowance ${isCommand(command[0]) ? `${command[0] === "ledger" && LEDGER_COMMANDS.includes(command[1] ?? "") ? command.join(" ") : command[0]} ` : ""}--help`;
  const json = argv.includes("--json");
  try {
    // Top-level flags take no values: the first word that is not a flag names the command.
    const words = argv.filter((word) => !word.startsWith("-"));
    // Commander answers `help <unknown>` with the whole help and exit 2, and says nothing wrong.
    if (words[0] === "help" && words[1] !== undefined && !isCommand(words[1])) {
      const message = `unknown command '${words[1]}' (see '${hint}')`;
      if (json) writeJson({ ok: false, code: "USAGE", message });
      process.stderr.write(`allowance: ${message}\n`);
      return EXIT.usage;
    }
    const running = words[0] === "help" ? words.slice(1, 2) : words.slice(0, 1);
    const program = await buildProgram(hint, running.filter(isCommand));
    await program.parseAsync(linkIdsLast(argv), { from: "user" });
    return EXIT.ok;
  } catch (thrown) {
    // The answer, "denied", is printed already.
    if (thrown instanceof DeniedAnswer) return EXIT.rejected;
    if (thrown instanceof CommanderError) {
      // Help asked for (`--help`, `help mint`) and --version exit 0; help shown because no command
      // was given has exit code 1 from commander, and is a usage error here.
      if (thrown.exitCode === 0) return EXIT.ok;
      const message =
        thrown.code === "commander.help"
          ? "no command given"
          : oneLine(thrown.message).replace(/^error: /, "");
      if (json) writeJson({ ok: false, code: "USAGE", message: `${message} (see '${hint}')` });
      return EXIT.usage;
    }
    // Library errors on user input become CLI errors; loaded only on this path.
    const { asCliError, isAllowanceError } = await import("./commands/shared.js");
    const error = asCliError(thrown);
    if (error instanceof CliError) {
      if (json) writeJson(error.toJSON());
      process.stderr.write(`allowance: ${oneLine(error.message)}\n`);
      return error.exitCode;
    }
    // Not the user's input: still one line, never a stack trace.
    const message = isAllowanceError(thrown)
      ? `${thrown.code}: ${thrown.message}`
      : oneLine(thrown instanceof Error ? thrown.message : String(thrown));
    if (json)
      writeJson({ ok: false, code: isAllowanceError(thrown) ? thrown.code : "INTERNAL", message });
    process.stderr.write(`allowance: unexpected error: ${oneLine(message)}\n`);
    return EXIT.rejected;
  }
}

/** The subcommands of `ledger`, whose own help a usage error points to. */
const LEDGER_COMMANDS: readonly string[] = ["remaining", "show", "report", "receipts"];

function isCommand(word: string | undefined): word is string {
  return word !== undefined && Object.hasOwn(COMMANDS, word);
}

function writeJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}
