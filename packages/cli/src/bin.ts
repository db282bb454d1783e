#!/usr/bin/env node
import { readFileSync } from "node:fs";

// A reader that goes away (`allowance … | head`) is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw error;
  });
}

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
  // The cheapest answer there is: no command line parser, no library.
  process.stdout.write(
    `${(JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version}\n`,
  );
} else if (argv.length === 1 && (argv[0] === "--help" || argv[0] === "-h")) {
  // The top-level help from the command table alone; commander renders the same (test/startup.test.ts).
  const { renderTopHelp } = await import("./commands/table.js");
  process.stdout.write(renderTopHelp(process.stdout.isTTY ? process.stdout.columns : 80));
} else {
  const { main } = await import("./program.js");
  process.exitCode = await main(argv);
}
