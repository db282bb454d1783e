import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
