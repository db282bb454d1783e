import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { Enforcer, type Decision } from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { attachUsageLog } from "@allowance/meter";
import { SqliteUsageLog } from "@allowance/meter/sqlite";
import type { VerifiedChain } from "@allowance/verifier";
import { family } from "../../../test/support/ledger-suite.js";
import { allowance, expectFailure, expectSuccess, json, tempDir } from "./support.js";

const temp = tempDir();
afterAll(() => temp.remove());

describe("allowance ledger report", () => {
  it("groups the spend a usage log recorded by label and provider, as a table or JSON", async () => {
    const path = temp.path("usage.db");
    const log = SqliteUsageLog.open(path);
    const enforcer = new Enforcer();
    const attachment = attachUsageLog(enforcer, log);
    const { children } = await family({ label: "run-7" }, [
      { label: "researcher" },
      { label: "writer" },
    ]);
    const spend = async (chain: VerifiedChain, provider: string, usdMicros: number) => {
      const d = (await enforcer.reserve({ chain, provider, tokens: 100, usdMicros })) as Extract<
        Decision,
        { reservationId: string }
      >;
      await enforcer.commit(d.reservationId, { tokens: 100, usdMicros });
    };
    await spend(children[0] as VerifiedChain, "openai", 300);
    await spend(children[0] as VerifiedChain, "openai", 200);
    await spend(children[1] as VerifiedChain, "anthropic", 1_000);
    await attachment.flush();
    await log.close();

    const run = allowance(["ledger", "report", "--log", path, "--by", "label,provider", "--json"]);
    expectSuccess(run);
    const report = json<{
      rows: { key: Record<string, string>; calls: number; usdMicros: number }[];
      total: { calls: number; usdMicros: number };
    }>(run);
    expect(report.total).toMatchObject({ calls: 3, usdMicros: 1_500 });
    expect(
      report.rows.map((r) => [r.key["label"], r.key["provider"], r.calls, r.usdMicros]),
    ).toEqual([
      ["writer", "anthropic", 1, 1_000],
      ["researcher", "openai", 2, 500],
    ]);
    const table = allowance(["ledger", "report", "--log", path]);
    expectSuccess(table);
    expect(table.stdout).toContain("researcher");
  });

  it("refuses an unknown dimension and a missing log with one clear line", () => {
    expectFailure(
      allowance(["ledger", "report", "--log", temp.path("none.db")]),
      2,
      /no usage log/,
    );
    expectFailure(
      allowance(["ledger", "report", "--log", temp.path("none.db"), "--by", "colour"]),
      2,
      /--by takes/,
    );
  });

  it("reads only a usage log: another database, an empty file or one that is no database is refused and left as it was", async () => {
    // Another database: a ledger's, which has no usage log in it.
    const other = temp.path("ledger-only.db");
    await SqliteLedger.open(other).close();
    const empty = temp.path("empty.db");
    writeFileSync(empty, "");
    const text = temp.path("notes.txt");
    writeFileSync(text, "meeting notes, not a database");
    for (const path of [other, empty, text]) {
      const before = readFileSync(path);
      expectFailure(allowance(["ledger", "report", "--log", path]), 2, /cannot read the usage log/);
      expect(readFileSync(path).equals(before), path).toBe(true);
    }
  });

  it("refuses --since in epoch seconds from 10^11 on as milliseconds, instead of reading a time 56,000 years away", async () => {
    const path = temp.path("since.db");
    await SqliteUsageLog.open(path).close();
    expectSuccess(
      allowance(["ledger", "report", "--log", path, "--since", "99999999999", "--json"]),
    );
    const now = Date.now();
    expectFailure(
      allowance(["ledger", "report", "--log", path, "--since", String(now)]),
      2,
      new RegExp(
        `^allowance: --since: ${now} looks like milliseconds; epoch seconds are 10 digits today .*; in seconds that is ${Math.floor(now / 1000)}$`,
      ),
    );
    for (const since of ["100000000000", String(2 ** 53), "9".repeat(400)]) {
      expectFailure(
        allowance(["ledger", "report", "--log", path, "--since", since]),
        2,
        /^allowance: --since: \d+ looks like milliseconds/,
      );
    }
  });
});

describe("allowance output", () => {
  it("ends quietly when its reader goes away (EPIPE), and `ledger show` is `ledger remaining`", async () => {
    const { spawnSync } = await import("node:child_process");
    const { BIN } = await import("./support.js");
    const piped = spawnSync(
      "sh",
      [
        "-c",
        `"${process.execPath}" "${BIN}" --help | head -c 10 >/dev/null; "${process.execPath}" "${BIN}" ledger --help | head -c 10`,
      ],
      { encoding: "utf8" },
    );
    expect(piped.stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect(allowance(["ledger", "show", "--help"]).stdout).toContain("Spent, held and left");
  });
});
