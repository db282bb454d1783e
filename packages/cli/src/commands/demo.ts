import type { Command } from "commander";
import { emit, exampleHelp } from "../output.js";

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("Run the delegation story on the embedded default")
    .option("--json", "machine-readable output")
    .addHelpText("after", exampleHelp("allowance demo --json"))
    .action(async (options: { json?: boolean }) => {
      // Loaded on use, so that other commands start without the demo's servers and ledgers.
      const { describeDemo, runDemo, styleFor } = await import("../demo.js");
      const result = await runDemo();
      const colour = process.stdout.isTTY === true && process.env["NO_COLOR"] === undefined;
      emit(options, result, () => describeDemo(result, styleFor(colour)));
    });
}
