import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { Enforcer, type Decision } from "@allowance/enforcer";
import {
  MemoryUsageLog,
  attachUsageLog,
  formatUsdMicros,
  renderUsageReport,
  usageReport,
  type UsageRecord,
} from "@allowance/meter";
import { summarizeUsage } from "../src/usage-log.js";
import { wrapFetch } from "@allowance/meter";
import { SqliteUsageLog } from "@allowance/meter/sqlite";
import type { VerifiedChain } from "@allowance/verifier";
import { Clock, family } from "../../../test/support/ledger-suite.js";
import { MockLlm, mockLlmPerTest, cost, post } from "./meter-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const hello = [{ role: "user", content: "Say hello" }];

describe("the usage log", () => {
  it("records every commit with the chain's labels, link ids, provider and model", async () => {
    const clock = new Clock();
    const { children } = await family({ usdMicros: 10_000_000, label: "team" }, [
      { label: "researcher" },
      { label: "writer" },
    ]);
    const [researcher, writer] = children as [VerifiedChain, VerifiedChain];
    const enforcer = new Enforcer({ now: clock.now });
    const log = new MemoryUsageLog();
    attachUsageLog(enforcer, log, { now: clock.now });
    const asResearcher = wrapFetch(fetch, { enforcer, chain: researcher });
    const asWriter = wrapFetch(fetch, { enforcer, chain: writer });

    mock.usage = { input: 1000, output: 100, cached: 0, cacheWrite: 0 };
    await (
      await post(asResearcher, `${mock.url}/v1/chat/completions`, {
        model: "gpt-4o-mini",
        messages: hello,
      })
    ).arrayBuffer();
    await (
      await post(asResearcher, `${mock.url}/v1/messages`, {
        model: "claude-haiku-4-5",
        max_tokens: 100,
        messages: hello,
      })
    ).arrayBuffer();
    mock.usage = { input: 2000, output: 200, cached: 0, cacheWrite: 0 };
    await (
      await post(asWriter, `${mock.url}/v1/chat/completions`, {
        model: "gpt-4o-mini",
        messages: hello,
      })
    ).arrayBuffer();

    const records = await log.records();
    expect(records).toHaveLength(3);
    expect(records[0]).toMatchObject({
      labels: ["team", "researcher"],
      linkIds: researcher.linkIds,
      provider: "openai",
      model: "gpt-4o-mini",
      tokens: 1100,
      usdMicros: cost(1000, 150_000) + cost(100, 600_000),
      late: false,
    });

    const byLabel = await usageReport(log, { groupBy: ["label"] });
    expect(byLabel.rows.map((r) => [r.key.label, r.calls, r.tokens])).toEqual([
      ["researcher", 2, 2200],
      ["writer", 1, 2200],
    ]);
    expect(byLabel.total).toEqual({
      calls: 3,
      tokens: 4400,
      usdMicros: records.reduce((sum, r) => sum + r.usdMicros, 0),
    });

    const byProviderModel = await usageReport(log, { groupBy: ["provider", "model"] });
    expect(byProviderModel.rows.map((r) => r.key)).toEqual([
      { provider: "anthropic", model: "claude-haiku-4-5" },
      { provider: "openai", model: "gpt-4o-mini" },
    ]);
    expect(byProviderModel.rows[1]).toMatchObject({ calls: 2, tokens: 3300 });

    const rolled = await usageReport(log, { groupBy: ["link"], rollup: true });
    const root = rolled.rows.find((r) => r.key.link === researcher.linkIds[0]);
    expect(root).toMatchObject({ calls: 3, tokens: 4400 });
  });

  it("reports nothing for released or denied calls", async () => {
    const clock = new Clock();
    const { children } = await family({ usdMicros: 10 }, [{}]);
    const enforcer = new Enforcer({ now: clock.now });
    const log = new MemoryUsageLog();
    attachUsageLog(enforcer, log);
    const d = (await enforcer.reserve({
      chain: children[0] as VerifiedChain,
      usdMicros: 5,
    })) as Extract<Decision, { reservationId: string }>;
    await enforcer.release(d.reservationId);
    await enforcer.reserve({ chain: children[0] as VerifiedChain, usdMicros: 50 });
    expect(await log.records()).toEqual([]);
  });

  it("filters by time and groups unlabelled chains apart", () => {
    const record = (at: number, labels: string[], usdMicros: number): UsageRecord => ({
      at,
      reservationId: `r${at}`,
      labels,
      linkIds: ["root", "leaf"],
      tokens: 10,
      usdMicros,
      risk: 0,
      late: false,
    });
    const records = [record(1, [], 5), record(2, ["a"], 7), record(3, ["a", "b"], 9)];
    expect(summarizeUsage(records, { since: 2 }).rows.map((r) => r.key.label)).toEqual(["b", "a"]);
    expect(summarizeUsage(records, { until: 2 }).rows.map((r) => r.key.label)).toEqual([
      "(unlabelled)",
    ]);
    expect(
      summarizeUsage(records, { groupBy: ["label"], rollup: true }).rows.map((r) => [
        r.key.label,
        r.usdMicros,
      ]),
    ).toEqual([
      ["a", 16],
      ["b", 9],
      ["(unlabelled)", 5],
    ]);
    expect(() => summarizeUsage(records, { groupBy: ["colour" as never] })).toThrow(TypeError);
  });

  it("renders a plain-text table with exact dollars and a total line", () => {
    const records: UsageRecord[] = [
      {
        at: 1,
        reservationId: "a",
        labels: ["run-42"],
        linkIds: ["x"],
        provider: "openai",
        model: "gpt-4o",
        tokens: 1500,
        usdMicros: 1_234_567,
        risk: 0,
        late: false,
      },
      {
        at: 2,
        reservationId: "b",
        labels: ["run-7"],
        linkIds: ["y"],
        provider: "anthropic",
        model: "claude-sonnet-4-5",
        tokens: 20,
        usdMicros: 42,
        risk: 0,
        late: false,
      },
    ];
    expect(renderUsageReport(summarizeUsage(records, { groupBy: ["label", "provider"] }))).toBe(
      [
        "label   provider   calls  tokens        usd",
        "------  ---------  -----  ------  ---------",
        "run-42  openai         1    1500  $1.234567",
        "run-7   anthropic      1      20  $0.000042",
        "------  ---------  -----  ------  ---------",
        "total                  2    1520  $1.234609",
      ].join("\n"),
    );
    // Labels, models and tools are whoever made the token's or the request's: what would act on a
    // terminal or turn the text around is shown escaped.
    const hostile = `run\u001b[2J\u202eevil\u0085\u009b2J\u2066\u200b\u00ad\u{e0041}\\u202e`;
    const shown = renderUsageReport(
      summarizeUsage([{ ...(records[0] as UsageRecord), labels: [hostile], model: "m\u0007" }], {
        groupBy: ["label", "model"],
      }),
    );
    expect(shown).not.toMatch(/(?!\n)[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u);
    // A backslash in the text is doubled: it never reads as an escape.
    expect(shown).toContain(
      "run\\u001b[2J\\u202eevil\\u0085\\u009b2J\\u2066\\u200b\\u00ad\\u{e0041}\\\\u202e",
    );
    expect(shown).toContain("m\\u0007");
    const emoji = renderUsageReport(
      summarizeUsage([{ ...(records[0] as UsageRecord), labels: ["❤️ 👩‍💻 葛󠄀"] }], {
        groupBy: ["label"],
      }),
    );
    expect(emoji).toContain("❤️ 👩‍💻 葛󠄀");
    expect(formatUsdMicros(0)).toBe("$0.000000");
  });

  it("keeps records in a SQLite file, once per reservation, readable after reopening", async () => {
    const dir = mkdtempSync(join(tmpdir(), "allowance-usage-"));
    try {
      const path = join(dir, "ledger.db");
      const clock = new Clock();
      const { children } = await family({ usdMicros: 10_000_000, label: "team" }, [
        { label: "agent" },
      ]);
      const enforcer = new Enforcer({ now: clock.now });
      const log = SqliteUsageLog.open(path);
      attachUsageLog(enforcer, log, { now: clock.now });
      const metered = wrapFetch(fetch, { enforcer, chain: children[0] as VerifiedChain });
      await (
        await post(metered, `${mock.url}/v1/messages`, {
          model: "claude-haiku-4-5",
          max_tokens: 100,
          messages: hello,
        })
      ).arrayBuffer();
      const first = (await log.records())[0] as UsageRecord;
      log.append(first);
      await log.close();

      const reopened = SqliteUsageLog.open(path);
      const records = await reopened.records();
      expect(records).toEqual([first]);
      expect(first).toMatchObject({
        labels: ["team", "agent"],
        provider: "anthropic",
        model: "claude-haiku-4-5",
        tokens: 1234 + 567,
        usdMicros: cost(1234, 1_000_000) + cost(567, 5_000_000),
      });
      expect(await reopened.records({ since: clock.ms + 1 })).toEqual([]);
      await reopened.close();
      // existingOnly reads it; anything else is refused and left byte for byte as it was.
      const reader = SqliteUsageLog.open(path, { existingOnly: true });
      expect(await reader.records()).toEqual([first]);
      await reader.close();
      const other = join(dir, "other.db");
      const app = new Database(other);
      app.exec("CREATE TABLE mine (x INTEGER)");
      app.close();
      const empty = join(dir, "empty.db");
      writeFileSync(empty, "");
      const text = join(dir, "notes.txt");
      writeFileSync(text, "not a database at all, but long enough to look like a header? no.");
      for (const refused of [other, empty, text]) {
        const before = readFileSync(refused);
        expect(() => SqliteUsageLog.open(refused, { existingOnly: true })).toThrow(
          expect.objectContaining({ code: "ERR_LEDGER_STATE" }),
        );
        expect(readFileSync(refused).equals(before), refused).toBe(true);
      }
      const missing = join(dir, "missing.db");
      expect(() => SqliteUsageLog.open(missing, { existingOnly: true })).toThrow(
        expect.objectContaining({ code: "ERR_LEDGER_STATE" }),
      );
      expect(existsSync(missing)).toBe(false);
      expect(() => SqliteUsageLog.open(path, { existingOnly: 1 as never })).toThrow(TypeError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  describe("refuses hostile arguments rather than reporting less than was spent", () => {
    const record = (at: number): UsageRecord => ({
      at,
      reservationId: `r${at}`,
      labels: ["a"],
      linkIds: ["x"],
      tokens: 1,
      usdMicros: 5,
      risk: 0,
      late: false,
    });

    it("a report whose time bound is NaN, an invalid Date or a string is refused, not empty", async () => {
      const log = new MemoryUsageLog();
      log.append(record(1));
      log.append(record(2));
      for (const since of [Number.NaN, Number.POSITIVE_INFINITY, new Date(Number.NaN), "1"])
        await expect(usageReport(log, { since: since as number }), String(since)).rejects.toThrow(
          /"since"/,
        );
      await expect(usageReport(log, { until: Number.NaN })).rejects.toThrow(RangeError);
      await expect(log.records({ since: Number.NaN })).rejects.toThrow(RangeError);
      await expect(log.records({ until: Number.NEGATIVE_INFINITY })).rejects.toThrow(RangeError);
      expect(() => summarizeUsage([record(1)], { until: Number.NaN })).toThrow(RangeError);
      // The bounds that are times still work.
      expect((await usageReport(log, { since: 2 })).total.calls).toBe(1);
    });

    it("a report's options are checked: null, a misspelt key, a groupBy or rollup of the wrong type", async () => {
      const log = new MemoryUsageLog();
      log.append(record(1));
      for (const options of [
        null,
        { from: 5 },
        { groupBy: null },
        { groupBy: "label" },
        { rollup: "yes" },
        { rollup: null },
      ])
        await expect(usageReport(log, options as never), JSON.stringify(options)).rejects.toThrow(
          TypeError,
        );
      await expect(usageReport({} as never)).rejects.toThrow(/"log"/);
    });

    it("the memory and SQLite logs check their options and filters", async () => {
      expect(() => new MemoryUsageLog({ maxRecords: null as never })).toThrow(/"maxRecords"/);
      expect(() => new MemoryUsageLog({ maxRecords: Number.NaN })).toThrow(RangeError);
      expect(() => new MemoryUsageLog({ max: 1 } as never)).toThrow(/"max"/);
      expect(() => new MemoryUsageLog(null as never)).toThrow(TypeError);
      for (const busyTimeoutMs of [Number.NaN, -1, 1.5, 2 ** 31, null])
        expect(
          () => SqliteUsageLog.open(":memory:", { busyTimeoutMs: busyTimeoutMs as number }),
          String(busyTimeoutMs),
        ).toThrow(/"busyTimeoutMs"/);
      expect(() => SqliteUsageLog.open(":memory:", { timeout: 1 } as never)).toThrow(/"timeout"/);
      const sqlite = SqliteUsageLog.open(":memory:", { busyTimeoutMs: 0 });
      try {
        sqlite.append(record(1));
        await expect(sqlite.records({ since: Number.NaN })).rejects.toThrow(RangeError);
        await expect(sqlite.records({ since: "0" as never })).rejects.toThrow(TypeError);
        expect(await sqlite.records({ since: 0 })).toHaveLength(1);
      } finally {
        await sqlite.close();
      }
    });

    it("a record that would be lost (a NaN time, a fractional charge) is refused, not dropped", async () => {
      const sqlite = SqliteUsageLog.open(":memory:");
      const memory = new MemoryUsageLog();
      try {
        for (const log of [sqlite, memory]) {
          expect(() => log.append(record(Number.NaN))).toThrow(/"record.at"/);
          expect(() => log.append({ ...record(3), usdMicros: Number.NaN })).toThrow(
            /"record.usdMicros"/,
          );
          expect(() => log.append({ ...record(4), tokens: -1 })).toThrow(/"record.tokens"/);
          expect(() => log.append({ ...record(5), labels: [1] as never })).toThrow(
            /"record.labels"/,
          );
          expect(await log.records()).toEqual([]);
        }
      } finally {
        await sqlite.close();
      }
    });

    it("attachUsageLog checks its options, and a failing clock is reported while the record keeps the enforcer's time", async () => {
      const clock = new Clock();
      const { children } = await family({ usdMicros: 10_000_000, label: "team" }, [{}]);
      const chain = children[0] as VerifiedChain;
      const enforcer = new Enforcer({ now: clock.now });
      const log = SqliteUsageLog.open(":memory:");
      try {
        expect(() => attachUsageLog(enforcer, log, { now: 5 as never })).toThrow(/"now"/);
        expect(() => attachUsageLog(enforcer, log, { onError: "log" as never })).toThrow(
          /"onError"/,
        );
        expect(() => attachUsageLog(enforcer, log, { clock: clock.now } as never)).toThrow(
          /"clock"/,
        );
        expect(() => attachUsageLog(enforcer, log, null as never)).toThrow(TypeError);
        expect(() => attachUsageLog({} as never, log)).toThrow(/"enforcer"/);
        expect(() => attachUsageLog(enforcer, {} as never)).toThrow(/"log"/);

        const errors: unknown[] = [];
        const clocks = [
          () => Number.NaN,
          () => new Date() as never,
          () => {
            throw new Error("clock down");
          },
        ];
        for (const now of clocks) {
          const attached = attachUsageLog(enforcer, log, { now, onError: (e) => errors.push(e) });
          const d = (await enforcer.reserve({ chain, usdMicros: 5 })) as Extract<
            Decision,
            { reservationId: string }
          >;
          // The commit is not broken by the log's clock.
          await expect(enforcer.commit(d.reservationId, { usdMicros: 5 })).resolves.toMatchObject({
            status: "committed",
          });
          attached.detach();
        }
        expect(errors).toHaveLength(3);
        const records = await log.records({ since: clock.ms });
        expect(records.map((r) => r.at)).toEqual([clock.ms, clock.ms, clock.ms]);
      } finally {
        await log.close();
      }
    });

    it("formatUsdMicros and renderUsageReport refuse what is not an amount or a report", () => {
      for (const bad of [Number.NaN, 1.5, Number.POSITIVE_INFINITY, 2 ** 53])
        expect(() => formatUsdMicros(bad), String(bad)).toThrow(RangeError);
      expect(() => formatUsdMicros("5" as never)).toThrow(TypeError);
      expect(formatUsdMicros(-1_500_000)).toBe("-$1.500000");
      expect(() => renderUsageReport(null as never)).toThrow(TypeError);
    });
  });
});
