/** Writing results: JSON on stdout with `--json`, text otherwise. Errors go through `main`. */

export interface OutputOptions {
  readonly json?: boolean;
}

export function emit(options: OutputOptions, value: unknown, human: () => string): void {
  if (options.json === true) process.stdout.write(JSON.stringify(value, null, 2) + "\n");
  else process.stdout.write(human() + "\n");
}

/** The shared `--json` option and an "Example:" help section, on every command. */
export function exampleHelp(...lines: string[]): string {
  return `\nExample${lines.length > 1 ? "s" : ""}:\n${lines.map((line) => `  ${line}`).join("\n")}`;
}

/** A tree's branch prefixes: "└─ " for the last child at each depth. */
export function indent(depth: number): string {
  return depth === 0 ? "" : "   ".repeat(depth - 1) + "└─ ";
}
