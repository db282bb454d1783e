/** Writing results: JSON on stdout with `--json`, text otherwise. Errors go through `main`. */
import type { RemainingReport } from "@allowance/enforcer";

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

/** What a reading command read, for its header line and the `ledger` field of its `--json`. */
export interface LedgerSource {
  readonly kind: "memory" | "sqlite" | "redis";
  readonly where: string;
}

/** "sqlite ledger.db", and for memory that it is empty: nothing else ever wrote to it. */
export function describeSource(source: LedgerSource): string {
  return source.kind === "memory"
    ? "memory (empty: a fresh ledger in this process)"
    : `${source.kind} ${source.where}`;
}

/**
 * `Enforcer.remaining`'s report as the CLI and the MCP server print it: every time in epoch
 * seconds, named so (`atSeconds`, `resetsAtSeconds`, `openUntilSeconds`) — the enforcer counts
 * milliseconds, the README and every flag count seconds. `providers` is the circuit-breaker state
 * by provider (empty unless this process saw provider failures).
 */
export function remainingToJSON(report: RemainingReport): Record<string, unknown> {
  const seconds = (ms: number) => Math.floor(ms / 1000);
  return {
    atSeconds: seconds(report.at),
    links: report.links.map((link) => ({
      ...link,
      limits: link.limits.map(({ resetsAt, ...limit }) => ({
        ...limit,
        ...(resetsAt === undefined ? {} : { resetsAtSeconds: seconds(resetsAt) }),
      })),
    })),
    leaf: report.leaf,
    providers: Object.fromEntries(
      Object.entries(report.providers).map(([name, { openUntil, ...status }]) => [
        name,
        { ...status, ...(openUntil === undefined ? {} : { openUntilSeconds: seconds(openUntil) }) },
      ]),
    ),
  };
}
