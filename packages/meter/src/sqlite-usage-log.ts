/**
 * A usage log in a SQLite file (better-sqlite3), which may be the same file as a SqliteLedger's:
 * its table has its own name and it does not touch `PRAGMA user_version`, which the ledger owns.
 *
 *   usage_log(seq INTEGER PK, at REAL, reservation_id TEXT UNIQUE, labels TEXT -- JSON string[],
 *             link_ids TEXT -- JSON string[], provider TEXT, model TEXT, tool TEXT,
 *             tokens INTEGER, usd_micros INTEGER, risk INTEGER, late INTEGER)
 *
 * A commit is recorded once: a second record with the same reservation id is ignored.
 */
import { AllowanceError } from "@allowance/verifier";
import Database from "better-sqlite3";
import { integerOption, optionsOf, shown } from "./options.js";
import {
  checkRecord,
  filterOf,
  within,
  type UsageFilter,
  type UsageLog,
  type UsageRecord,
} from "./usage-log.js";

interface Row {
  readonly at: number;
  readonly reservation_id: string;
  readonly labels: string;
  readonly link_ids: string;
  readonly provider: string | null;
  readonly model: string | null;
  readonly tool: string | null;
  readonly tokens: number;
  readonly usd_micros: number;
  readonly risk: number;
  readonly late: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS usage_log (
  seq INTEGER PRIMARY KEY,
  at REAL NOT NULL,
  reservation_id TEXT NOT NULL UNIQUE,
  labels TEXT NOT NULL,
  link_ids TEXT NOT NULL,
  provider TEXT,
  model TEXT,
  tool TEXT,
  tokens INTEGER NOT NULL,
  usd_micros INTEGER NOT NULL,
  risk INTEGER NOT NULL,
  late INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS usage_log_at ON usage_log (at);
`;

export interface SqliteUsageLogOptions {
  /** Milliseconds to wait for another process's write. Default 5000. */
  readonly busyTimeoutMs?: number;
  /**
   * Open only a file that already holds a usage log, and change nothing else (for readers such as
   * `allowance ledger report`): a missing file, an empty one, another program's database or a
   * file that is no database is an `ERR_LEDGER_STATE` AllowanceError, and is left as it was.
   * Default false: the file and its table are made when missing.
   */
  readonly existingOnly?: boolean;
}

export class SqliteUsageLog implements UsageLog {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #select: Database.Statement<[number, number], Row>;

  private constructor(db: Database.Database) {
    this.#db = db;
    this.#insert = db.prepare(
      "INSERT OR IGNORE INTO usage_log (at, reservation_id, labels, link_ids, provider, model, tool, tokens, usd_micros, risk, late) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.#select = db.prepare<[number, number], Row>(
      "SELECT at, reservation_id, labels, link_ids, provider, model, tool, tokens, usd_micros, risk, late FROM usage_log WHERE at >= ? AND at < ? ORDER BY seq",
    );
  }

  static open(path: string, options?: SqliteUsageLogOptions): SqliteUsageLog {
    if (typeof path !== "string" || path.length === 0)
      throw new TypeError('"path" expected a file path');
    const { busyTimeoutMs, existingOnly } = optionsOf(options, "options", [
      "busyTimeoutMs",
      "existingOnly",
    ]);
    // better-sqlite3 takes at most 2^31 − 1 milliseconds.
    const timeout = integerOption(busyTimeoutMs, "busyTimeoutMs", 5000, 0, 2 ** 31 - 1);
    if (existingOnly !== undefined && typeof existingOnly !== "boolean")
      throw new TypeError(`"existingOnly" expected true or false, got ${shown(existingOnly)}`);
    const existing = existingOnly === true;
    let db: Database.Database;
    try {
      db = new Database(path, { timeout, fileMustExist: existing });
    } catch (error) {
      if (!existing) throw error;
      throw new AllowanceError("ERR_LEDGER_STATE", `no usage log at ${path}: ${messageOf(error)}`);
    }
    try {
      if (existing) {
        // Looked at before anything is written (journal_mode = WAL writes the file's header).
        const table = db
          .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage_log'")
          .get();
        if (table === undefined)
          throw new AllowanceError(
            "ERR_LEDGER_STATE",
            `${path} holds no usage log (no usage_log table); it was left as it was`,
          );
      } else {
        db.pragma("journal_mode = WAL");
        db.exec(SCHEMA);
      }
      return new SqliteUsageLog(db);
    } catch (error) {
      db.close();
      if (!existing || error instanceof AllowanceError) throw error;
      throw new AllowanceError(
        "ERR_LEDGER_STATE",
        `${path} is not a usage log: ${messageOf(error)}`,
      );
    }
  }

  append(record: UsageRecord): void {
    // INSERT OR IGNORE ignores a NOT NULL violation too: a NaN time would be dropped silently.
    checkRecord(record);
    this.#insert.run(
      record.at,
      record.reservationId,
      JSON.stringify(record.labels),
      JSON.stringify(record.linkIds),
      record.provider ?? null,
      record.model ?? null,
      record.tool ?? null,
      record.tokens,
      record.usdMicros,
      record.risk,
      record.late ? 1 : 0,
    );
  }

  async records(filter?: UsageFilter): Promise<readonly UsageRecord[]> {
    filter = filterOf(filter);
    const rows = this.#select.all(
      filter.since ?? Number.NEGATIVE_INFINITY,
      filter.until ?? Number.POSITIVE_INFINITY,
    );
    return rows.map(toRecord).filter((r) => within(r.at, filter));
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}

function toRecord(row: Row): UsageRecord {
  return {
    at: row.at,
    reservationId: row.reservation_id,
    labels: JSON.parse(row.labels) as string[],
    linkIds: JSON.parse(row.link_ids) as string[],
    ...(row.provider === null ? {} : { provider: row.provider }),
    ...(row.model === null ? {} : { model: row.model }),
    ...(row.tool === null ? {} : { tool: row.tool }),
    tokens: row.tokens,
    usdMicros: row.usd_micros,
    risk: row.risk,
    late: row.late === 1,
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
