import type { LimitRemaining, ReceiptsReport, RemainingReport } from "@allowance/enforcer";
import type { VerifiedChain } from "@allowance/verifier";
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { quoted } from "../describe.js";
import { RejectedError, UsageError } from "../errors.js";
import { readRoots, readText } from "../io.js";
import { describeSource, emit, exampleHelp, remainingResult } from "../output.js";
import {
  formatAmount,
  formatInstant,
  isoSeconds,
  parseDuration,
  parseEpochSeconds,
} from "../units.js";
import { LEDGER_FORMS, requireLedger } from "./shared.js";
import { verifyArgument } from "./verify.js";

interface LedgerRemainingOptions {
  readonly token: string;
  readonly roots: string;
  readonly ledger?: string;
  readonly revocations?: string;
  readonly json?: boolean;
}

export function registerLedger(program: Command): void {
  const ledger = program
    .command("ledger")
    .description("Read a ledger's balances for a token's chain")
    .addHelpText(
      "after",
      exampleHelp(
        "allowance ledger remaining --token @researcher.token --roots root.pub.jwk --ledger sqlite:ledger.db",
      ),
    );
  registerReport(ledger);
  registerReceipts(ledger);
  ledger
    .command("remaining")
    .alias("show")
    .description("Spent, held and left per link and field of a verified chain (reserves nothing)")
    .requiredOption("--token <token>", "the token itself, @file, or - for stdin")
    .requiredOption("--roots <file>", "trusted root keys: a JWKS, or one public JWK")
    .option("--ledger <ledger>", `the ledger to read (required): ${LEDGER_FORMS}`)
    .option(
      "--revocations <file>",
      "a revocation list written by 'allowance revoke': a revoked token is refused",
    )
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      exampleHelp(
        "allowance ledger remaining --token @researcher.token --roots root.pub.jwk --ledger sqlite:ledger.db --json",
      ),
    )
    .action(async (options: LedgerRemainingOptions) => {
      const spec = requireLedger(options.ledger, "ledger remaining", "reads");
      const { chain } = await verifyArgument(options.token, options, "--token");
      const { withLedger } = await import("../ledger-spec.js");
      const { Enforcer } = await import("@allowance/enforcer");
      const { report, source } = await withLedger(spec, async (opened) => ({
        report: await new Enforcer({ ledger: opened.ledger }).remaining(chain),
        source: { kind: opened.kind, where: opened.where },
      }));
      emit(options, remainingResult(report, source), () =>
        describeRemaining(chain, report, describeSource(source)),
      );
    });
}

interface LedgerReportOptions {
  readonly log: string;
  readonly by: string;
  readonly since?: string;
  readonly rollup?: boolean;
  readonly json?: boolean;
}

function registerReport(ledger: Command): void {
  ledger
    .command("report")
    .description(
      "Spend grouped by label, link, provider and/or model, from a usage log written by the meter",
    )
    .requiredOption(
      "--log <path>",
      "the SQLite usage log (SqliteUsageLog; may share the ledger's file)",
    )
    .option("--by <dimensions>", "comma-separated: label, link, provider, model", "label")
    .option(
      "--since <time>",
      "only calls at or after this time: a duration before now (1h, 7d), an ISO date, or epoch seconds",
    )
    .option("--rollup", "count each call under every label and link of its chain")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      exampleHelp("allowance ledger report --log ledger.db --by label,provider --json"),
    )
    .action(async (options: LedgerReportOptions) => {
      const { USAGE_DIMENSIONS, renderUsageReport, usageReport } = await import("@allowance/meter");
      const { SqliteUsageLog } = await import("@allowance/meter/sqlite");
      const groupBy = options.by.split(",").map((d) => d.trim());
      const unknown = groupBy.filter((d) => !(USAGE_DIMENSIONS as readonly string[]).includes(d));
      if (unknown.length > 0 || groupBy.length === 0)
        throw new UsageError(`--by takes ${USAGE_DIMENSIONS.join(", ")}; got ${options.by}`);
      let since: number | undefined;
      if (options.since !== undefined) {
        const text = options.since.trim();
        // Refused from 10^11 on, as milliseconds (Date.now()) typed for seconds; below, times
        // 1000 stays far under 2^53 − 1, so the log's milliseconds never round.
        const epoch = /^\d+$/.test(options.since)
          ? parseEpochSeconds(options.since, "--since")
          : undefined;
        // A duration looks back: "--since 1h" is the last hour, as "-1h" is anywhere else.
        const ago = /^\d+[smhd]$/.test(text)
          ? Date.now() - parseDuration(text, "--since") * 1000
          : undefined;
        since = ago ?? (epoch !== undefined ? epoch * 1000 : (isoSeconds(text) ?? NaN) * 1000);
        if (!Number.isFinite(since))
          throw new UsageError(
            `--since expected a duration (1h), an ISO date (2030-01-01, or 2030-01-01T12:00:00Z with its zone) or epoch seconds, got ${options.since}`,
          );
      }
      if (!existsSync(options.log))
        throw new UsageError(
          `no usage log at ${options.log}: pass the SQLite file the meter writes to`,
        );
      let log: ReturnType<typeof SqliteUsageLog.open>;
      try {
        // Only a file that already holds a usage log: another database, or an empty file, would be
        // given a fresh table and report nothing spent.
        log = SqliteUsageLog.open(options.log, { existingOnly: true });
      } catch (error) {
        throw new UsageError(
          `cannot read the usage log ${options.log}: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      try {
        const report = await usageReport(log, {
          groupBy: groupBy as (typeof USAGE_DIMENSIONS)[number][],
          rollup: options.rollup === true,
          ...(since === undefined ? {} : { since }),
        });
        const source = { kind: "sqlite", where: options.log } as const;
        emit(
          options,
          { ledger: source, ...report },
          () => `usage log: ${describeSource(source)}\n${renderUsageReport(report)}`,
        );
      } finally {
        await log.close();
      }
    });
}

interface ReceiptsVerifyOptions {
  readonly receipts: string;
  readonly keys: string;
  readonly partial?: boolean;
  readonly json?: boolean;
}

function registerReceipts(ledger: Command): void {
  const receipts = ledger
    .command("receipts")
    .description("Signed receipts of commits (spec/receipts.md), checked offline");
  receipts
    .command("verify")
    .description(
      "Verify receipts offline: every signature, each root's numbering (no gap, no fork), each receipt's link to the one before; and what each link was charged",
    )
    .requiredOption(
      "--receipts <file>",
      "the receipts: one JSON object {body, sig} per line, or a JSON array of them; - for stdin",
    )
    .requiredOption("--keys <file>", "the enforcers' public keys: a JWKS, or one public JWK")
    .option(
      "--partial",
      "the receipts are a window of each root's: numbers before the first are not missing",
    )
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      exampleHelp(
        "allowance ledger receipts verify --receipts receipts.jsonl --keys enforcer.pub.jwk",
      ),
    )
    .action(async (options: ReceiptsVerifyOptions) => {
      const { values, lines } = parseReceiptsText(readText(options.receipts, "--receipts file"));
      const keys = await readRoots(options.keys, "--keys");
      const { verifyReceipts } = await import("@allowance/enforcer");
      const report = verifyReceipts(values, { keys, partial: options.partial === true });
      const json = receiptsToJSON(report, lines);
      if (report.ok) {
        emit(options, json, () => describeReceipts(report, lines));
        return;
      }
      // The report is the answer either way: printed, then refused (exit 1) with a summary line.
      if (options.json !== true) process.stdout.write(describeReceipts(report, lines) + "\n");
      throw new RejectedError(
        `${report.problems.length} problem${report.problems.length === 1 ? "" : "s"} in the receipts: ${report.problems[0]?.detail ?? ""}`,
        json,
        "RECEIPTS_INVALID",
      );
    });
}

/**
 * A receipts file: a JSON array, or one JSON value per non-empty line (JSON Lines). A line that is
 * not JSON is passed on as its text, which the verifier reports as malformed. `lines[i]` is the
 * line of the i-th value (1-based; 0 for an array).
 */
export function parseReceiptsText(text: string): { values: unknown[]; lines: number[] } {
  const trimmed = text.trimStart();
  if (trimmed.startsWith("[")) {
    let array: unknown;
    try {
      array = JSON.parse(trimmed);
    } catch {
      throw new UsageError("the --receipts file starts with [ but is not a JSON array");
    }
    if (!Array.isArray(array)) throw new UsageError("the --receipts file is not a JSON array");
    return { values: array, lines: array.map(() => 0) };
  }
  const values: unknown[] = [];
  const lines: number[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = line;
    }
    values.push(value);
    lines.push(i + 1);
  });
  return { values, lines };
}

/** The report as `--json` prints it: the verifier's, each problem with its input's line. */
export function receiptsToJSON(
  report: ReceiptsReport,
  lines: readonly number[],
): Record<string, unknown> {
  return {
    ok: report.ok,
    verified: report.verified,
    problems: report.problems.map((p) =>
      p.index === undefined || (lines[p.index] ?? 0) === 0 ? p : { ...p, line: lines[p.index] },
    ),
    roots: report.roots,
  };
}

/** The report in words: per root its numbers and per link what it was charged, then the problems. */
export function describeReceipts(report: ReceiptsReport, lines: readonly number[]): string {
  const out = [
    `receipts: ${report.verified} verified, ${report.problems.length} problem${report.problems.length === 1 ? "" : "s"}`,
  ];
  for (const root of report.roots) {
    out.push(`root ${root.root}: receipts ${root.first} to ${root.last} (${root.count} present)`);
    for (const [link, amounts] of Object.entries(root.links))
      out.push(
        `   link ${link}: usd ${formatAmount("usdMicros", amounts.usdMicros)} · tokens ${formatAmount("tokens", amounts.tokens)} · requests ${formatAmount("requests", amounts.requests)} · risk ${formatAmount("risk", amounts.risk)}`,
      );
  }
  for (const problem of report.problems) {
    const line = problem.index === undefined ? 0 : (lines[problem.index] ?? 0);
    const where =
      problem.index === undefined ? "" : line > 0 ? `line ${line}: ` : `item ${problem.index}: `;
    out.push(`${problem.kind}: ${where}${problem.detail}`);
  }
  return out.join("\n");
}

/** The budget tree: one block per link, one line per limit. */
export function describeRemaining(
  chain: VerifiedChain,
  report: RemainingReport,
  ledger: string,
): string {
  const lines = [`ledger: ${ledger}`, `budgets at ${formatInstant(Math.floor(report.at / 1000))}`];
  for (const link of report.links) {
    const pad = "   ".repeat(link.index);
    const label = chain.links[link.index]?.grant.label;
    lines.push(
      `${pad}└─ link ${link.index}${label === undefined ? "" : ` ${quoted(label)}`}  ${link.id}`,
    );
    // A provider without caps of its own, on which nothing moved, says nothing worth a line.
    const shown = link.limits.filter(
      (l) => !(l.field.startsWith("providers.") && l.cap === null && l.spent === 0 && l.held === 0),
    );
    const width = Math.max(0, ...shown.map((l) => fieldName(l).length));
    for (const limit of shown)
      lines.push(`${pad}   ${fieldName(limit).padEnd(width)}  ${describeLimit(limit)}`);
  }
  const leaf = Object.entries(report.leaf)
    .filter(([, left]) => left !== null && left !== undefined)
    .map(
      ([kind, left]) =>
        `${kind === "usdMicros" ? "usd" : kind} ${formatAmount(kind, left as number)}`,
    );
  lines.push(`the holder can still spend: ${leaf.join(" · ") || "no capped field"}`);
  return lines.join("\n");
}

function fieldName(limit: LimitRemaining): string {
  return limit.field.replace(/usdMicros$/, "usd");
}

function describeLimit(limit: LimitRemaining): string {
  const f = (value: number) => formatAmount(limit.kind, value);
  const base = `spent ${f(limit.spent)}  held ${f(limit.held)}`;
  if (limit.cap === null || limit.remaining === null) return `${base}  (no cap)`;
  const resets =
    limit.resetsAt === undefined
      ? ""
      : `  resets ${formatInstant(Math.floor(limit.resetsAt / 1000))}`;
  // Past the cap (overruns, late commits): "left $0 of $0.01" would hide by how much.
  if (limit.overBy !== undefined && limit.overBy > 0)
    return `${base}  over by ${f(limit.overBy)} of ${f(limit.cap)}${resets}`;
  return `${base}  left ${f(limit.remaining)} of ${f(limit.cap)}${resets}`;
}
