import { Command } from "commander";
import { describeDemo, runDemo, styleFor } from "./demo.js";

/** Exit codes (documented in README.md): 0 ok, 1 rejected or denied, 2 usage error. */
export const EXIT = Object.freeze({ ok: 0, rejected: 1, usage: 2 });

export function buildProgram(): Command {
  const program = new Command("allowance")
    .description("Signed, strictly narrower budgets for AI agents")
    .showHelpAfterError()
    .exitOverride();
  program
    .command("demo")
    .description("Run the delegation story on the embedded default")
    .option("--json", "machine-readable output")
    .addHelpText("after", "\nExample:\n  allowance demo --json")
    .action(async (options: { json?: boolean }) => {
      const result = await runDemo();
      if (options.json === true) {
        process.stdout.write(JSON.stringify(result, null, 2) + "\n");
      } else {
        const colour = process.stdout.isTTY === true && process.env["NO_COLOR"] === undefined;
        process.stdout.write(describeDemo(result, styleFor(colour)) + "\n");
      }
    });
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: "user" });
    return EXIT.ok;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("commander.")) {
      return code === "commander.helpDisplayed" || code === "commander.version" ? EXIT.ok : EXIT.usage;
    }
    process.stderr.write(`allowance: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.rejected;
  }
}
