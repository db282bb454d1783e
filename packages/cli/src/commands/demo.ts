import type { Command } from "commander";
import { exampleHelp } from "../output.js";

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
      if (options.json === true) {
        process.stdout.write(JSON.stringify(result, null, 2) + "\n");
      } else {
        const colour = process.stdout.isTTY === true && process.env["NO_COLOR"] === undefined;
        process.stdout.write(describeDemo(result, styleFor(colour)) + "\n");
      }
    });
}
