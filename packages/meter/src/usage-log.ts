/**
 * Attribution: every commit, with the chain's labels and link ids, the provider, model and tool,
 * appended to a usage log; reports group the spend by label, link, provider and model.
 *
 * Grouping partitions the spend, so the rows add up to the total: a call counts under its nearest
 * label (the last labelled link, root first; "(unlabelled)" when none) and under its leaf link (the
 * holder that spent). With `rollup`, a call counts instead under every label and every link of its
 * chain, as the ledger charges it; the rows then no longer add up to the total.
 */
import { printable } from "./printable.js";
import type { Enforcer, EnforcerEvents } from "@allowance/enforcer";
import { functionOption, integerOption, optionsOf, shown, timeOption } from "./options.js";

export interface UsageRecord {
  /** Epoch milliseconds when the commit was seen. */
  readonly at: number;
  readonly reservationId: string;
  /** The labels of the chain's links, root first (unlabelled links have none). */
  readonly labels: readonly string[];
  /** Root first; the last is the link that spent. */
  readonly linkIds: readonly string[];
  readonly provider?: string;
  readonly model?: string;
  readonly tool?: string;
  readonly tokens: number;
  readonly usdMicros: number;
  readonly risk: number;
  /** Committed after the hold had expired. */
  readonly late: boolean;
}

export interface UsageFilter {
  /** Epoch ms, inclusive. */
  readonly since?: number;
  /** Epoch ms, exclusive. */
  readonly until?: number;
}

export interface UsageLog {
  append(record: UsageRecord): void | Promise<void>;
  /** Records in the order they were appended. */
  records(filter?: UsageFilter): Promise<readonly UsageRecord[]>;
  close(): Promise<void>;
}

export interface MemoryUsageLogOptions {
  /** Records kept at most; the oldest are dropped first. Default 100,000. */
  readonly maxRecords?: number;
}

export class MemoryUsageLog implements UsageLog {
  readonly #records: UsageRecord[] = [];
  readonly #max: number;

  constructor(options?: MemoryUsageLogOptions) {
    const { maxRecords } = optionsOf(options, "options", ["maxRecords"]);
    this.#max = integerOption(maxRecords, "maxRecords", 100_000, 1);
  }

  append(record: UsageRecord): void {
    checkRecord(record);
    this.#records.push(record);
    if (this.#records.length > this.#max) this.#records.splice(0, this.#records.length - this.#max);
  }

  async records(filter?: UsageFilter): Promise<readonly UsageRecord[]> {
    const checked = filterOf(filter);
    return this.#records.filter((r) => within(r.at, checked));
  }

  async close(): Promise<void> {}
}

/**
 * The filter, checked: `since` and `until` are epoch milliseconds. A NaN bound compares false with
 * every time, and an invalid Date is NaN: the report would be empty, as if nothing had been spent.
 */
export function filterOf(filter: UsageFilter | undefined): UsageFilter {
  const { since, until } = optionsOf(filter, "filter", ["since", "until"]);
  timeOption(since, "since");
  timeOption(until, "until");
  return filter ?? {};
}

const isCount = (x: unknown): boolean => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
const isStrings = (x: unknown): boolean =>
  Array.isArray(x) && x.every((s) => typeof s === "string");
const isOptionalString = (x: unknown): boolean => x === undefined || typeof x === "string";

/** What each field of a record must be. */
const RECORD_FIELDS: readonly (readonly [keyof UsageRecord, string, (x: unknown) => boolean])[] = [
  ["at", "epoch milliseconds", (x) => typeof x === "number" && Number.isFinite(x)],
  ["reservationId", "a string", (x) => typeof x === "string"],
  ["labels", "an array of strings", isStrings],
  ["linkIds", "an array of strings", isStrings],
  ["provider", "a string", isOptionalString],
  ["model", "a string", isOptionalString],
  ["tool", "a string", isOptionalString],
  ["tokens", "a non-negative safe integer", isCount],
  ["usdMicros", "a non-negative safe integer", isCount],
  ["risk", "a non-negative safe integer", isCount],
  ["late", "a boolean", (x) => typeof x === "boolean"],
];

/**
 * A record, checked before it is kept: a record whose time is not a number would fall out of every
 * report that names a time (and a SQLite log's INSERT OR IGNORE would drop it without a word).
 */
export function checkRecord(record: UsageRecord): void {
  if (record === null || typeof record !== "object")
    throw new TypeError(`"record" expected a usage record, got ${shown(record)}`);
  for (const [field, expected, ok] of RECORD_FIELDS)
    if (!ok(record[field]))
      throw new TypeError(`"record.${field}" expected ${expected}, got ${shown(record[field])}`);
}

export function within(at: number, filter: UsageFilter): boolean {
  return (
    (filter.since === undefined || at >= filter.since) &&
    (filter.until === undefined || at < filter.until)
  );
}

export interface UsageLogAttachment {
  /** Stops listening. */
  detach(): void;
  /** Resolves once every append so far has finished (for logs whose append is asynchronous). */
  flush(): Promise<void>;
}

/** Appends a record to `log` for every `committed` event of `enforcer`. */
export function attachUsageLog(
  enforcer: Enforcer,
  log: UsageLog,
  options?: { readonly now?: () => number; readonly onError?: (error: unknown) => void },
): UsageLogAttachment {
  if (typeof enforcer?.on !== "function" || typeof enforcer.off !== "function")
    throw new TypeError(`"enforcer" expected an Enforcer, got ${shown(enforcer)}`);
  if (typeof log?.append !== "function")
    throw new TypeError(`"log" expected a UsageLog, got ${shown(log)}`);
  const checked = optionsOf(options, "options", ["now", "onError"]);
  // By default a record carries the enforcer's own time of the commit.
  const now = functionOption(checked.now, "now");
  const report =
    functionOption(checked.onError, "onError") ??
    ((error: unknown) =>
      process.emitWarning(`allowance usage log: ${String(error)}`, "AllowanceMeterWarning"));
  // The listener runs inside the enforcer's commit: nothing here may throw into it. A clock that
  // fails is reported, and the record keeps the enforcer's time rather than being lost.
  const timeOf = (event: EnforcerEvents["committed"][0]): number => {
    if (now === undefined) return event.at;
    try {
      const at = now();
      if (typeof at === "number" && Number.isFinite(at)) return at;
      report(new RangeError(`the usage log's clock returned ${shown(at)}, not a time`));
    } catch (error) {
      report(error);
    }
    return event.at;
  };
  let pending: Promise<void> = Promise.resolve();
  const listener = (event: EnforcerEvents["committed"][0]) => {
    const record: UsageRecord = {
      at: timeOf(event),
      reservationId: event.reservationId,
      labels: event.labels,
      linkIds: event.linkIds,
      ...(event.provider === undefined ? {} : { provider: event.provider }),
      ...(event.model === undefined ? {} : { model: event.model }),
      ...(event.tool === undefined ? {} : { tool: event.tool }),
      tokens: event.charged.tokens,
      usdMicros: event.charged.usdMicros,
      risk: event.charged.risk,
      late: event.late,
    };
    try {
      const done = log.append(record);
      if (done !== undefined) pending = pending.then(() => done).catch(report);
    } catch (error) {
      report(error);
    }
  };
  enforcer.on("committed", listener);
  return {
    detach: () => enforcer.off("committed", listener),
    flush: () => pending,
  };
}

export type UsageDimension = "label" | "link" | "provider" | "model";
export const USAGE_DIMENSIONS: readonly UsageDimension[] = ["label", "link", "provider", "model"];

export interface UsageReportOptions extends UsageFilter {
  /** Default ["label"]. */
  readonly groupBy?: readonly UsageDimension[];
  /** Count each call under every label and link of its chain (see the module comment). Default false. */
  readonly rollup?: boolean;
}

export interface UsageTotals {
  readonly calls: number;
  readonly tokens: number;
  readonly usdMicros: number;
}

export interface UsageRow extends UsageTotals {
  /** One value per dimension of `groupBy`. */
  readonly key: Readonly<Partial<Record<UsageDimension, string>>>;
}

export interface UsageReport {
  readonly groupBy: readonly UsageDimension[];
  readonly rollup: boolean;
  /** Most micro-dollars first, then by key. */
  readonly rows: readonly UsageRow[];
  /** Every call once, whatever the grouping. */
  readonly total: UsageTotals;
}

export const UNLABELLED = "(unlabelled)";
export const UNKNOWN = "(none)";

/** Groups a log's records. */
export async function usageReport(
  log: UsageLog,
  options?: UsageReportOptions,
): Promise<UsageReport> {
  if (typeof log?.records !== "function")
    throw new TypeError(`"log" expected a UsageLog, got ${shown(log)}`);
  const checked = reportOptionsOf(options);
  const filter = {
    ...(checked.since === undefined ? {} : { since: checked.since }),
    ...(checked.until === undefined ? {} : { until: checked.until }),
  };
  return summarize(await log.records(filter), checked);
}

/** The options, checked: a misspelt key, a time that is not one, or a rollup that is not a boolean is refused. */
function reportOptionsOf(options: UsageReportOptions | undefined): {
  readonly since?: number;
  readonly until?: number;
  readonly groupBy: readonly UsageDimension[];
  readonly rollup: boolean;
} {
  const { since, until, groupBy, rollup } = optionsOf(options, "options", [
    "since",
    "until",
    "groupBy",
    "rollup",
  ]);
  timeOption(since, "since");
  timeOption(until, "until");
  if (groupBy !== undefined && !Array.isArray(groupBy))
    throw new TypeError(
      `"groupBy" expected an array of ${USAGE_DIMENSIONS.join(", ")}, got ${shown(groupBy)}`,
    );
  for (const d of groupBy ?? [])
    if (!USAGE_DIMENSIONS.includes(d))
      throw new TypeError(
        `"groupBy" expected some of ${USAGE_DIMENSIONS.join(", ")}, got ${shown(d)}`,
      );
  if (rollup !== undefined && typeof rollup !== "boolean")
    throw new TypeError(`"rollup" expected a boolean, got ${shown(rollup)}`);
  return {
    ...(since === undefined ? {} : { since }),
    ...(until === undefined ? {} : { until }),
    groupBy: groupBy ?? ["label"],
    rollup: rollup === true,
  };
}

/** Groups records (already filtered by time; `since` / `until` are applied again here). */
export function summarizeUsage(
  records: readonly UsageRecord[],
  options?: UsageReportOptions,
): UsageReport {
  return summarize(records, reportOptionsOf(options));
}

function summarize(
  records: readonly UsageRecord[],
  options: ReturnType<typeof reportOptionsOf>,
): UsageReport {
  const { groupBy, rollup } = options;
  const groups = new Map<
    string,
    {
      key: Partial<Record<UsageDimension, string>>;
      calls: number;
      tokens: number;
      usdMicros: number;
    }
  >();
  const total = { calls: 0, tokens: 0, usdMicros: 0 };
  for (const record of records) {
    if (!within(record.at, options)) continue;
    total.calls++;
    total.tokens += record.tokens;
    total.usdMicros += record.usdMicros;
    let keys: Partial<Record<UsageDimension, string>>[] = [{}];
    for (const dimension of groupBy) {
      const values = valuesOf(record, dimension, rollup);
      keys = keys.flatMap((key) => values.map((value) => ({ ...key, [dimension]: value })));
    }
    for (const key of keys) {
      const id = JSON.stringify(groupBy.map((d) => key[d]));
      let group = groups.get(id);
      if (group === undefined) groups.set(id, (group = { key, calls: 0, tokens: 0, usdMicros: 0 }));
      group.calls++;
      group.tokens += record.tokens;
      group.usdMicros += record.usdMicros;
    }
  }
  const rows = [...groups.values()].sort(
    (a, b) => b.usdMicros - a.usdMicros || compareKeys(a.key, b.key, groupBy),
  );
  return { groupBy, rollup, rows, total };
}

function valuesOf(
  record: UsageRecord,
  dimension: UsageDimension,
  rollup: boolean,
): readonly string[] {
  switch (dimension) {
    case "label":
      if (record.labels.length === 0) return [UNLABELLED];
      return rollup
        ? [...new Set(record.labels)]
        : [record.labels[record.labels.length - 1] as string];
    case "link":
      if (record.linkIds.length === 0) return [UNKNOWN];
      return rollup ? record.linkIds : [record.linkIds[record.linkIds.length - 1] as string];
    case "provider":
      return [record.provider ?? UNKNOWN];
    case "model":
      return [record.model ?? UNKNOWN];
  }
}

function compareKeys(
  a: Partial<Record<UsageDimension, string>>,
  b: Partial<Record<UsageDimension, string>>,
  groupBy: readonly UsageDimension[],
): number {
  for (const d of groupBy) {
    const x = a[d] ?? "";
    const y = b[d] ?? "";
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** Micro-dollars as dollars with six decimals, exactly (no floating point): 1234567 → "$1.234567". */
export function formatUsdMicros(usdMicros: number): string {
  if (typeof usdMicros !== "number")
    throw new TypeError(`"usdMicros" expected an integer, got ${shown(usdMicros)}`);
  if (!Number.isSafeInteger(usdMicros))
    throw new RangeError(`"usdMicros" expected a safe integer, got ${usdMicros}`);
  const sign = usdMicros < 0 ? "-" : "";
  const abs = Math.abs(usdMicros);
  return `${sign}$${Math.floor(abs / 1_000_000)}.${String(abs % 1_000_000).padStart(6, "0")}`;
}

/** A plain-text table of a report: the grouping columns, calls, tokens and dollars, then a total line. */
export function renderUsageReport(report: UsageReport): string {
  if (
    report === null ||
    typeof report !== "object" ||
    !Array.isArray(report.groupBy) ||
    !Array.isArray(report.rows) ||
    typeof report.total !== "object" ||
    report.total === null
  )
    throw new TypeError(`"report" expected a UsageReport from usageReport, got ${shown(report)}`);
  const header = [...report.groupBy, "calls", "tokens", "usd"];
  const row = (key: UsageRow["key"], t: UsageTotals) => [
    ...report.groupBy.map((d) => printable(key[d] ?? "")),
    String(t.calls),
    String(t.tokens),
    formatUsdMicros(t.usdMicros),
  ];
  const rows = report.rows.map((r) => row(r.key, r));
  const totalLabel =
    report.groupBy.length === 0 ? [] : ["total", ...report.groupBy.slice(1).map(() => "")];
  const footer = [
    ...totalLabel,
    String(report.total.calls),
    String(report.total.tokens),
    formatUsdMicros(report.total.usdMicros),
  ];
  const all = [header, ...rows, footer];
  const widths = header.map((_, i) => Math.max(...all.map((cells) => (cells[i] ?? "").length)));
  const left = report.groupBy.length;
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i < left ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(header), rule, ...rows.map(line), rule, line(footer)].join("\n");
}
