import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { Enforcer } from "@allowance/enforcer";
import { SqliteLedger, type SqliteLedgerOptions } from "@allowance/enforcer/sqlite";
import {
  clockOption,
  concurrentCallsLaw,
  hostileArgumentsLaw,
  ledgerSuite,
  storageLaws,
  storageOp,
  syncApiLaw,
  T0,
  thresholdLaw,
  traceEqualityLaw,
  ZERO,
} from "../../../test/support/ledger-suite.js";
import { describeMultiProcess } from "./multi-process.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const fresh = (options?: SqliteLedgerOptions) =>
  SqliteLedger.open(join(dir, `ledger-${files++}.db`), options);

ledgerSuite("sqlite", async (now) => fresh(clockOption(now)));

describe("the sqlite ledger's laws", () => {
  // NORMAL skips the fsync per transaction; the algorithm under test is the same.
  const normal = async (now?: () => number) =>
    fresh({ synchronous: "NORMAL", ...clockOption(now) });
  traceEqualityLaw("sqlite", normal, 100);
  concurrentCallsLaw("sqlite", normal, 40);
  syncApiLaw("sqlite", normal, 30);
  thresholdLaw("sqlite", normal, 20);
  hostileArgumentsLaw("sqlite", normal, 60);
});

describe("the sqlite ledger's storage", () => {
  const op = storageOp;
  storageLaws(async () => fresh());

  it("keeps its state in the file: another connection sees the holds and commits", async () => {
    const path = join(dir, `reopened-${files++}.db`);
    const first = SqliteLedger.open(path);
    await first.reserve(op("a", 40, 100));
    await first.reserve(op("b", 30, 100));
    await first.commit("root.b", { ...ZERO, usdMicros: 25 }, T0);
    await first.close();
    const second = SqliteLedger.open(path);
    try {
      expect((await second.balances("root", ["link|usdMicros"], T0)).balances).toEqual(
        new Map([["link|usdMicros", { spent: 25, held: 40 }]]),
      );
      expect(await second.commit("root.b", { ...ZERO, usdMicros: 25 }, T0)).toMatchObject({
        status: "committed",
        already: true,
      });
    } finally {
      await second.close();
    }
  });
});

describe("the sqlite ledger's schema", () => {
  const op = storageOp;
  // As versions 1 and 2 stored lines: the link and field only inside the account name.
  const lines = [{ account: "link|usdMicros", kind: "usdMicros", cap: 100 }];

  it("upgrades a version-1 file in place: its held and committed reservations keep working", async () => {
    const path = join(dir, `v1-${files++}.db`);
    const v1 = new Database(path);
    v1.pragma("journal_mode = WAL");
    v1.exec(`
      CREATE TABLE accounts (account TEXT PRIMARY KEY, root TEXT NOT NULL, spent INTEGER NOT NULL DEFAULT 0, held INTEGER NOT NULL DEFAULT 0) STRICT;
      CREATE TABLE reservations (id TEXT PRIMARY KEY, root TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('held', 'committed', 'released', 'expired')),
        expires_at REAL NOT NULL, lines TEXT NOT NULL, amounts TEXT NOT NULL, outcome TEXT) STRICT;
      CREATE INDEX reservations_due ON reservations (root, status, expires_at);
      PRAGMA user_version = 1;
    `);
    const amounts = JSON.stringify({ ...ZERO, usdMicros: 30 });
    v1.prepare("INSERT INTO accounts VALUES ('link|usdMicros', 'root', 20, 30)").run();
    v1.prepare("INSERT INTO reservations VALUES ('root.held', 'root', 'held', ?, ?, ?, NULL)").run(
      T0 + 60_000,
      JSON.stringify(lines),
      amounts,
    );
    const outcome = {
      status: "committed",
      already: false,
      late: false,
      reserved: { ...ZERO, usdMicros: 20 },
      charged: { ...ZERO, usdMicros: 20 },
      lines: [],
      expired: [],
    };
    v1.prepare(
      "INSERT INTO reservations VALUES ('root.done', 'root', 'committed', ?, ?, ?, ?)",
    ).run(T0 + 60_000, JSON.stringify(lines), amounts, JSON.stringify(outcome));
    v1.close();

    const ledger = SqliteLedger.open(path);
    try {
      expect(await ledger.commit("root.done", { ...ZERO, usdMicros: 99 }, T0)).toEqual({
        ...outcome,
        already: true,
      });
      expect(await ledger.commit("root.held", { ...ZERO, usdMicros: 25 }, T0)).toMatchObject({
        status: "committed",
        already: false,
        charged: { usdMicros: 25 },
      });
      expect(await ledger.reserve(op("new", 50, 100))).toMatchObject({ ok: true });
      expect(
        (await ledger.balances("root", ["link|usdMicros"], T0)).balances.get("link|usdMicros"),
      ).toEqual({ spent: 45, held: 50 });
    } finally {
      await ledger.close();
    }
    const check = new Database(path);
    try {
      expect(check.pragma("user_version", { simple: true })).toBe(8);
      // Version 8: the sweep finds due holds through an index of held rows only.
      const indexes = check
        .prepare(
          "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'reservations'",
        )
        .all()
        .map((row) => (row as { name: string }).name);
      expect(indexes).toContain("reservations_held");
      expect(indexes).not.toContain("reservations_due");
      const plan = check
        .prepare(
          "EXPLAIN QUERY PLAN SELECT id FROM reservations WHERE root = ? AND status = 'held' AND expires_at <= ? ORDER BY expires_at, id",
        )
        .all("root", T0)
        .map((row) => (row as { detail: string }).detail);
      expect(plan.join("\n")).toContain("USING INDEX reservations_held");
      expect(
        check
          .prepare(
            "SELECT lines, line_set IS NOT NULL AS shared FROM reservations WHERE id = 'root.new'",
          )
          .get(),
      ).toEqual({ lines: "", shared: 1 });
    } finally {
      check.close();
    }
  });

  it("upgrades a version-2 file: a held reservation's commit reports each crossed line's link and field, read once from its account name", async () => {
    const path = join(dir, `v2-${files++}.db`);
    const v2 = new Database(path);
    v2.pragma("journal_mode = WAL");
    v2.exec(`
      CREATE TABLE accounts (account TEXT PRIMARY KEY, root TEXT NOT NULL, spent INTEGER NOT NULL DEFAULT 0, held INTEGER NOT NULL DEFAULT 0) STRICT;
      CREATE TABLE reservations (id TEXT PRIMARY KEY, root TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('held', 'committed', 'released', 'expired')),
        expires_at REAL NOT NULL, lines TEXT NOT NULL, amounts TEXT NOT NULL, outcome TEXT, line_set TEXT) STRICT;
      CREATE INDEX reservations_due ON reservations (root, status, expires_at);
      CREATE TABLE line_sets (digest TEXT PRIMARY KEY, lines TEXT NOT NULL) STRICT, WITHOUT ROWID;
      PRAGMA user_version = 2;
    `);
    // The lines the enforcer of version 2 built for a two-link chain, a provider and a window.
    const stored = [
      { account: "L0|usdMicros", kind: "usdMicros", cap: 100 },
      { account: "L0|p:open:ai:tokens", kind: "tokens", cap: 10 },
      { account: "L1|usdMicros", kind: "usdMicros", cap: 40 },
      { account: "L1|w0:60:30000000:requests", kind: "requests", cap: 2 },
    ];
    v2.prepare("INSERT INTO line_sets VALUES ('d', ?)").run(JSON.stringify(stored));
    v2.prepare(
      "INSERT INTO reservations VALUES ('root.held', 'root', 'held', ?, '', ?, NULL, 'd')",
    ).run(T0 + 60_000, JSON.stringify({ tokens: 10, usdMicros: 40, risk: 0, requests: 1 }));
    v2.exec(
      "INSERT INTO accounts VALUES ('L0|usdMicros', 'root', 0, 40), ('L0|p:open:ai:tokens', 'root', 0, 10), ('L1|usdMicros', 'root', 0, 40), ('L1|w0:60:30000000:requests', 'root', 0, 1)",
    );
    v2.close();

    const ledger = SqliteLedger.open(path);
    try {
      const outcome = await ledger.commit(
        "root.held",
        { tokens: 10, usdMicros: 40, risk: 0, requests: -1 },
        T0,
      );
      expect(outcome).toMatchObject({ status: "committed", already: false });
      expect(outcome.status === "committed" && outcome.lines).toEqual([
        {
          ...stored[1],
          linkIndex: 0,
          linkId: "L0",
          field: "providers.open:ai.tokens",
          before: 0,
          after: 10,
        },
        { ...stored[2], linkIndex: 1, linkId: "L1", field: "usdMicros", before: 0, after: 40 },
        {
          ...stored[3],
          linkIndex: 1,
          linkId: "L1",
          field: "rate.60s.requests",
          before: 0,
          after: 1,
        },
      ]);
    } finally {
      await ledger.close();
    }
    const check = new Database(path);
    try {
      expect(check.pragma("user_version", { simple: true })).toBe(8);
      const row = check.prepare("SELECT lines FROM line_sets WHERE digest = 'd'").get() as {
        lines: string;
      };
      expect((JSON.parse(row.lines) as { field: string }[]).map((l) => l.field)).toEqual([
        "usdMicros",
        "providers.open:ai.tokens",
        "usdMicros",
        "rate.60s.requests",
      ]);
    } finally {
      check.close();
    }
  });

  it("stores a chain's lines once, however many reservations use them, and refuses a file from a newer version", async () => {
    const path = join(dir, `shared-${files++}.db`);
    const ledger = SqliteLedger.open(path);
    try {
      for (let i = 0; i < 5; i++) await ledger.reserve(op(`r${i}`, 1, 100));
    } finally {
      await ledger.close();
    }
    const check = new Database(path);
    try {
      expect(check.prepare("SELECT count(*) AS n FROM line_sets").get()).toEqual({ n: 1 });
      check.pragma("user_version = 9");
    } finally {
      check.close();
    }
    expect(() => SqliteLedger.open(path)).toThrow(
      expect.objectContaining({
        code: "ERR_LEDGER_STATE",
        message: expect.stringMatching(/schema version 9/),
      }),
    );
  });

  it("existingOnly opens a ledger and refuses, untouched, a missing file, an empty one and another program's database", async () => {
    const path = join(dir, `existing-${files++}.db`);
    const made = SqliteLedger.open(path);
    await made.reserve(op("a", 40, 100));
    await made.close();
    const reader = SqliteLedger.open(path, { existingOnly: true });
    try {
      expect((await reader.balances("root", ["link|usdMicros"], T0)).balances).toEqual(
        new Map([["link|usdMicros", { spent: 0, held: 40 }]]),
      );
    } finally {
      await reader.close();
    }

    const missing = join(dir, `missing-${files++}.db`);
    const empty = join(dir, `empty-${files++}.db`);
    writeFileSync(empty, "");
    const text = join(dir, `text-${files++}.db`);
    writeFileSync(text, "not a database at all, but long enough to have a header\n".repeat(4));
    const other = join(dir, `other-${files++}.db`);
    const app = new Database(other);
    app.exec("CREATE TABLE accounts (name TEXT); INSERT INTO accounts VALUES ('kept')");
    app.pragma("user_version = 3");
    app.close();
    for (const file of [missing, empty, text, other]) {
      const before = existsSync(file) ? readFileSync(file) : undefined;
      expect(() => SqliteLedger.open(file, { existingOnly: true }), file).toThrow(
        expect.objectContaining({ code: "ERR_LEDGER_STATE" }),
      );
      // Nothing written: not a schema, not a WAL header, not a new file.
      expect(existsSync(file) ? readFileSync(file) : undefined, file).toEqual(before);
      expect(existsSync(`${file}-wal`), file).toBe(false);
    }
    // A misspelt option would leave the default (create the file) in force.
    expect(() => SqliteLedger.open(missing, { existingonly: true } as never)).toThrow(
      /unknown option "existingonly"/,
    );
    expect(existsSync(missing)).toBe(false);
    for (const options of [{ busyTimeoutMs: null }, { synchronous: null }, { retentionMs: null }])
      expect(() => SqliteLedger.open(path, options as never), JSON.stringify(options)).toThrow(
        /expected/,
      );
    for (const value of ["yes", 1, null])
      expect(() => SqliteLedger.open(path, { existingOnly: value as unknown as boolean })).toThrow(
        TypeError,
      );
  });
});

describe("the sqlite ledger's group commit", () => {
  const op = storageOp;
  const balanceOf = async (ledger: SqliteLedger) =>
    (await ledger.balances("root", ["link|usdMicros"], T0)).balances.get("link|usdMicros");

  it("runs the calls of one turn in one transaction, in order, each as if alone", async () => {
    const ledger = fresh({ synchronous: "NORMAL" });
    try {
      // Together: the second does not fit after the first; the commit frees room for the third.
      const [a, b, committed, c] = await Promise.all([
        ledger.reserve(op("a", 60, 100)),
        ledger.reserve(op("b", 60, 100)),
        ledger.commit("root.a", { ...ZERO, usdMicros: 10 }, T0),
        ledger.reserve(op("c", 60, 100)),
      ]);
      expect([a.ok, b.ok, c.ok]).toEqual([true, false, true]);
      expect(committed).toMatchObject({ status: "committed", charged: { usdMicros: 10 } });
      expect(await balanceOf(ledger)).toEqual({ spent: 10, held: 60 });
    } finally {
      await ledger.close();
    }
  });

  it("writes a group's changes once: far fewer WAL frames than the same calls made one at a time", async () => {
    const framesAfter = async (together: boolean) => {
      const path = join(dir, `frames-${files++}.db`);
      const ledger = SqliteLedger.open(path, { synchronous: "NORMAL" });
      const reserves = Array.from({ length: 16 }, (_, i) => op(`r${i}`, 1, 100));
      if (together) await Promise.all(reserves.map((r) => ledger.reserve(r)));
      else for (const r of reserves) await ledger.reserve(r);
      const reader = new Database(path);
      try {
        // A passive checkpoint reports the frames in the WAL; nothing else has checkpointed them.
        return (reader.pragma("wal_checkpoint(PASSIVE)") as { log: number }[])[0]?.log ?? 0;
      } finally {
        reader.close();
        await ledger.close();
      }
    };
    const grouped = await framesAfter(true);
    const single = await framesAfter(false);
    expect(grouped).toBeGreaterThan(0);
    expect(grouped * 4).toBeLessThan(single);
  });

  it("takes a queued call's arguments as they were when it was made, not when its group runs", async () => {
    const ledger = fresh({ synchronous: "NORMAL" });
    try {
      // One op object, changed between calls, as a caller reusing it would.
      const reused = { ...op("a", 10, 100), amounts: { ...ZERO, usdMicros: 10 } };
      const first = ledger.reserve(reused);
      reused.id = "root.b";
      reused.amounts.usdMicros = 20;
      const second = ledger.reserve(reused);
      const actual = { ...ZERO, usdMicros: 3 };
      const commit = ledger.commit("root.a", actual, T0);
      actual.usdMicros = 99;
      expect(await Promise.all([first, second, commit])).toMatchObject([
        { ok: true, amounts: { usdMicros: 10 } },
        { ok: true, amounts: { usdMicros: 20 } },
        { status: "committed", charged: { usdMicros: 3 } },
      ]);
      expect(await balanceOf(ledger)).toEqual({ spent: 3, held: 20 });
    } finally {
      await ledger.close();
    }
  });

  it("refuses every call of a group whose transaction fails, and none of them takes effect", async () => {
    const path = join(dir, `busy-${files++}.db`);
    const ledger = SqliteLedger.open(path, { busyTimeoutMs: 0 });
    const lock = new Database(path);
    try {
      await ledger.reserve(op("a", 10, 100));
      // Another connection holds the write lock while the group tries to begin.
      lock.prepare("BEGIN IMMEDIATE").run();
      const group = [
        ledger.reserve(op("b", 10, 100)),
        ledger.commit("root.a", { ...ZERO, usdMicros: 5 }, T0),
        ledger.release("root.a", T0),
      ];
      const settled = await Promise.allSettled(group);
      expect(settled.map((s) => s.status)).toEqual(["rejected", "rejected", "rejected"]);
      expect(String((settled[0] as PromiseRejectedResult).reason)).toMatch(/locked|busy/i);
      lock.prepare("ROLLBACK").run();
      expect(await balanceOf(ledger)).toEqual({ spent: 0, held: 10 });
      expect(await ledger.commit("root.a", { ...ZERO, usdMicros: 5 }, T0)).toMatchObject({
        status: "committed",
        already: false,
      });
    } finally {
      lock.close();
      await ledger.close();
    }
  });

  it("runs a synchronous call after the calls queued before it, and close() runs the queued ones", async () => {
    const path = join(dir, `order-${files++}.db`);
    const ledger = SqliteLedger.open(path, { synchronous: "NORMAL" });
    const queued = ledger.reserve(op("a", 60, 100));
    // Asked after: it must see the queued reserve's hold, and not fit.
    expect(ledger.reserveSync(op("b", 60, 100))).toMatchObject({ ok: false, available: 40 });
    expect(await queued).toMatchObject({ ok: true });
    const last = ledger.commit("root.a", { ...ZERO, usdMicros: 7 }, T0);
    await ledger.close();
    expect(await last).toMatchObject({ status: "committed" });
    const reopened = SqliteLedger.open(path);
    try {
      expect(await balanceOf(reopened)).toEqual({ spent: 7, held: 0 });
    } finally {
      await reopened.close();
    }
  });
});

describeMultiProcess("sqlite", {
  target: (name) => ({ kind: "sqlite", path: join(dir, `${name}-${files++}.db`) }),
  open: async (target) => SqliteLedger.open((target as { path: string }).path),
  fairLock: false,
});

describe("an enforcer on the sqlite ledger", () => {
  it("is not synchronous: its calls go through the promises that group them (a memory one is)", async () => {
    const ledger = fresh();
    try {
      const enforcer = new Enforcer({ ledger });
      expect(enforcer.synchronous).toBe(false);
      expect(new Enforcer().synchronous).toBe(true);
    } finally {
      await ledger.close();
    }
  });
});
