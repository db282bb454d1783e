/** Writing results: JSON on stdout with `--json`, text otherwise. Errors go through `main`. */
import type { RemainingReport } from "@allowance/enforcer";
import { formatAmount } from "./units.js";

export interface OutputOptions {
  readonly json?: boolean;
}

/**
 * A result: with `--json`, one object that starts with `ok: true`, as every error object starts
 * with `ok: false` and as the MCP server's results do, so `ok` alone tells an answer from a refusal.
 */
export function emit(options: OutputOptions, value: object, human: () => string): void {
  if (options.json === true)
    process.stdout.write(JSON.stringify({ ok: true, ...value }, null, 2) + "\n");
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
 * "What is left": `ledger remaining --json` and the MCP tool `get_budget` print exactly this, the
 * ledger read, the report, and the same in words (`summary`, overruns included).
 */
export function remainingResult(
  report: RemainingReport,
  source: LedgerSource,
): { ok: true; ledger: LedgerSource } & Record<string, unknown> {
  return { ok: true, ledger: source, ...remainingToJSON(report), summary: summaryOf(report) };
}

/** What is left per kind, then every overrun (spend past a cap, spec/enforcement.md §3.4) in words. */
function summaryOf(report: RemainingReport): string[] {
  const summary = Object.entries(report.leaf)
    .filter(([, left]) => left !== null && left !== undefined)
    .map(
      ([kind, left]) =>
        `${kind === "usdMicros" ? "usd" : kind} ${formatAmount(kind, left as number)} left`,
    );
  for (const link of report.links) {
    for (const limit of link.limits) {
      if (limit.overBy !== undefined && limit.cap !== null)
        summary.push(
          `${limit.field} on link ${link.index} over by ${formatAmount(limit.kind, limit.overBy)} of ${formatAmount(limit.kind, limit.cap)}`,
        );
    }
  }
  return summary;
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
        .map(
          ({ resetsAt, overBy, settled, blocked, field, kind, cap, spent, held, remaining }) => ({
            field,
            kind,
            cap,
            spent,
            held,
            remaining,
            ...(overBy === undefined ? {} : { overBy }),
            ...(settled === undefined ? {} : { settled }),
            ...(blocked === undefined ? {} : { blocked }),
            ...(resetsAt === undefined ? {} : { resetsAtSeconds: seconds(resetsAt) }),
          }),
        ),
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
