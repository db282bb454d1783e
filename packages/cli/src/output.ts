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
 * `Enforcer.remaining`'s report as the CLI (`ledger remaining --json`) and the MCP server
 * (`get_budget`) both print it — one shape, described once in packages/cli/README.md. Every time is
 * in epoch seconds, named so (`atSeconds`, `resetsAtSeconds`, `openUntilSeconds`): the enforcer
 * counts milliseconds, the README and every flag count seconds. A line with no cap on which nothing
 * was spent or held says nothing and is left out. `providers` (circuit-breaker state) appears only
 * when this process saw provider failures.
 */
export function remainingToJSON(report: RemainingReport): Record<string, unknown> {
  const seconds = (ms: number) => Math.floor(ms / 1000);
  const providers = Object.entries(report.providers);
  return {
    atSeconds: seconds(report.at),
    leaf: report.leaf,
    links: report.links.map((link) => ({
      index: link.index,
      id: link.id,
      ...(link.label === undefined ? {} : { label: link.label }),
      limits: link.limits
        .filter((l) => l.cap !== null || l.spent > 0 || l.held > 0)
        .map(({ resetsAt, overBy, field, kind, cap, spent, held, remaining }) => ({
          field,
          kind,
          cap,
          spent,
          held,
          remaining,
          ...(overBy === undefined ? {} : { overBy }),
          ...(resetsAt === undefined ? {} : { resetsAtSeconds: seconds(resetsAt) }),
        })),
    })),
    ...(providers.length === 0
      ? {}
      : {
          providers: Object.fromEntries(
            providers.map(([name, { breaker, openUntil }]) => [
              name,
              {
                breaker,
                ...(openUntil === undefined ? {} : { openUntilSeconds: seconds(openUntil) }),
              },
            ]),
          ),
        }),
  };
}
