/**
 * The CLI as a new user meets it (issue 15), through the built binary: reading commands say which
 * ledger they read and never invent an empty one, expiry is judged on this clock, the usual flags
 * (--version, help <command>) work, and --json always answers with one error shape.
 */
import { existsSync, writeFileSync } from "node:fs";
import { trustedRoots, importPublicJwk } from "@allowance/core";
import { Enforcer } from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { SqliteUsageLog } from "@allowance/meter/sqlite";
import { verify } from "@allowance/verifier";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildProgram } from "../src/program.js";
import { allowance, expectFailure, expectSuccess, json, tempDir } from "./support.js";

const tmp = tempDir();
const at = tmp.path;
let token = "";
const roots = () => ["--roots", at("root.pub.jwk")];

beforeAll(() => {
  for (const name of ["root", "agent"])
    expectSuccess(allowance(["keygen", "--out", at(`${name}.jwk`)]));
  const mint = allowance([
    "mint",
    "--key",
    at("root.jwk"),
    "--to",
    at("agent.pub.jwk"),
    "--usd",
    "0.01",
    "--tokens",
    "10k",
    "--rate",
    "5k-tokens/1h",
    "--expires",
    "1h",
  ]);
  expectSuccess(mint);
  token = mint.stdout.trim();
});

afterAll(() => tmp.remove());

async function overspend(path: string): Promise<void> {
  const root = await importPublicJwk(JSON.parse(readFileSync(at("root.pub.jwk"), "utf8")));
  const chain = verify(token, { roots: trustedRoots([root]) });
  const ledger = SqliteLedger.open(path);
  const enforcer = new Enforcer({ ledger });
  const decision = await enforcer.reserve({ chain, usdMicros: 10_000, tokens: 1_000 });
  if (decision.decision === "DENY") throw new Error("expected the reservation to be allowed");
  await enforcer.commit(decision.reservationId, { usdMicros: 10_000, tokens: 1_000 });
  await ledger.close();
}

describe("reading a ledger", () => {
  it("refuses ledger remaining without --ledger instead of reading an empty in-memory ledger (exit 2, with the way out)", () => {
    const run = allowance(["ledger", "remaining", "--token", token, ...roots(), "--json"]);
    expectFailure(run, 2, /needs --ledger.*--ledger sqlite:/);
    expect(json(run)).toMatchObject({ ok: false, code: "USAGE" });
    expect(run.stdout).not.toContain('remaining":');
  });

  it("refuses a SQLite ledger file that does not exist, and creates none", () => {
    const path = at("typo.db");
    expectFailure(
      allowance([
        "ledger",
        "remaining",
        "--token",
        token,
        ...roots(),
        "--ledger",
        `sqlite:${path}`,
      ]),
      2,
      /no SQLite ledger at .*typo\.db/,
    );
    expect(existsSync(path)).toBe(false);
  });

  it("names the ledger it read, in the header and in --json, and reports an overspent budget as spent", async () => {
    const path = at("ledger.db");
    await overspend(path);
    const text = allowance([
      "ledger",
      "remaining",
      "--token",
      token,
      ...roots(),
      "--ledger",
      `sqlite:${path}`,
    ]);
    expectSuccess(text);
    expect(text.stdout.split("\n")[0]).toBe(`ledger: sqlite ${path}`);
    expect(text.stdout).toMatch(/usd +spent \$0.01 +held \$0 +left \$0 of \$0.01/);
    const run = allowance([
      "ledger",
      "remaining",
      "--token",
      token,
      ...roots(),
      "--ledger",
      `sqlite:${path}`,
      "--json",
    ]);
    expectSuccess(run);
    const out = json<{
      ledger: unknown;
      atSeconds: number;
      at?: unknown;
      providers?: unknown;
      links: {
        limits: {
          field: string;
          remaining: number | null;
          resetsAtSeconds?: number;
          resetsAt?: unknown;
        }[];
      }[];
    }>(run);
    expect(out.ledger).toEqual({ kind: "sqlite", where: path });
    // No provider failed in this process: no circuit-breaker state to report.
    expect(out.providers).toBeUndefined();
    expect(out.at).toBeUndefined();
    // Epoch seconds, as every flag and the README count: within a minute of this clock.
    const now = Date.now() / 1000;
    expect(Math.abs(out.atSeconds - now)).toBeLessThan(60);
    const window = out.links[0]?.limits.find((l) => l.field === "rate.3600s.tokens");
    expect(window?.resetsAt).toBeUndefined();
    expect(window?.resetsAtSeconds).toBeGreaterThan(now);
    expect(window?.resetsAtSeconds).toBeLessThanOrEqual(now + 3600 + 60);
    expect(out.links[0]?.limits.find((l) => l.field === "usdMicros")?.remaining).toBe(0);
  });

  it("reads an empty in-memory ledger only when asked, and says so", () => {
    const run = allowance([
      "ledger",
      "remaining",
      "--token",
      token,
      ...roots(),
      "--ledger",
      "memory",
    ]);
    expectSuccess(run);
    expect(run.stdout.split("\n")[0]).toMatch(/^ledger: memory \(empty/);
  });

  it("ledger report takes --since as a duration, names the log it read, and still takes epoch seconds and ISO dates", async () => {
    const path = at("usage.db");
    const log = SqliteUsageLog.open(path);
    await log.close();
    for (const since of ["1h", "7d", "1700000000", "2026-01-01T00:00:00Z"]) {
      const run = allowance(["ledger", "report", "--log", path, "--since", since, "--json"]);
      expectSuccess(run);
      expect(json(run)).toMatchObject({ ledger: { kind: "sqlite", where: path } });
    }
    const text = allowance(["ledger", "report", "--log", path, "--since", "1h"]);
    expectSuccess(text);
    expect(text.stdout.split("\n")[0]).toBe(`usage log: sqlite ${path}`);
    expectFailure(
      allowance(["ledger", "report", "--log", path, "--since", "1y"]),
      2,
      /--since expected a duration/,
    );
    // Dates Date.parse would read as another instant: March 2nd, and the machine's local time.
    for (const since of ["2026-02-30", "2026-01-01T00:00:00"])
      expectFailure(
        allowance(["ledger", "report", "--log", path, "--since", since]),
        2,
        /--since expected a duration .* with its zone/,
      );
  });
});

describe("expiry on this clock", () => {
  it("verify reports a token expired a few seconds ago as expired (exit 1) unless --skew allows it", () => {
    const mint = allowance([
      "mint",
      "--key",
      at("root.jwk"),
      "--to",
      at("agent.pub.jwk"),
      "--usd",
      "1",
      "--expires",
      "1h",
    ]);
    expectSuccess(mint);
    const short = mint.stdout.trim();
    // As of 1 h 8 s from now, the token expired 8 s before.
    const late = String(Math.floor(Date.now() / 1000) + 3608);
    const run = allowance(["verify", short, ...roots(), "--at", late, "--json"]);
    expectFailure(run, 1, /ERR_EXPIRED.*no clock allowance by default \(--skew 60s/);
    expect(json(run)).toMatchObject({ ok: false, code: "ERR_EXPIRED" });
    const allowed = allowance(["verify", short, ...roots(), "--at", late, "--skew", "60s"]);
    expectSuccess(allowed);
    expect(allowed.stdout).toMatch(/expired \d+s ago/);
    expectFailure(
      allowance(["verify", short, ...roots(), "--at", late, "--skew", "5s"]),
      1,
      /ERR_EXPIRED/,
    );
    expectFailure(
      allowance(["verify", short, ...roots(), "--skew", "2h"]),
      2,
      /--skew: at most 1h/,
    );
    expectFailure(allowance(["verify", short, ...roots(), "--skew", "-5s"]), 2, /--skew/);
  });

  it("verify --help documents the clock allowance and its default", () => {
    const run = allowance(["verify", "--help"]);
    expectSuccess(run);
    expect(run.stdout).toMatch(/--skew <duration>/);
    expect(run.stdout).toMatch(/default 0/);
  });

  it("mint and attenuate refuse an expiry that is not in the future (exit 2)", () => {
    for (const expires of ["-1h", "now", "1000000000"]) {
      expectFailure(
        allowance([
          "mint",
          "--key",
          at("root.jwk"),
          "--to",
          at("agent.pub.jwk"),
          "--expires",
          expires,
        ]),
        2,
        /--expires: .* is not in the future/,
      );
    }
    writeFileSync(at("agent.token"), token);
    expectFailure(
      allowance([
        "attenuate",
        "--token",
        `@${at("agent.token")}`,
        "--key",
        at("agent.jwk"),
        "--to",
        at("root.pub.jwk"),
        "--expires",
        "-1s",
      ]),
      2,
      /not in the future/,
    );
  });
});

describe("the usual flags", () => {
  const { version } = JSON.parse(
    readFileSync(new URL("../package.json", import.meta.url), "utf8"),
  ) as { version: string };

  it.each(["--version", "-V"])("%s prints the package version", (flag) => {
    const run = allowance([flag]);
    expectSuccess(run);
    expect(run.stdout.trim()).toBe(version);
  });

  it("help <command> shows that command's help and exits 0; no command at all is still a usage error", () => {
    const run = allowance(["help", "mint"]);
    expectSuccess(run);
    expect(run.stdout).toMatch(/^Usage: allowance mint/);
    expect(allowance([]).code).toBe(2);
  });

  it("help <unknown> is a usage error that says so, not the whole help", () => {
    const run = allowance(["help", "frobnicate"]);
    expectFailure(run, 2, /unknown command 'frobnicate' \(see 'allowance --help'\)/);
    expect(run.stdout).toBe("");
  });

  it("points a usage error to the help of the command that exists, never of a typo", () => {
    expectFailure(
      allowance(["ledger", "remainig"]),
      2,
      /unknown command 'remainig' \(Did you mean remaining\?\) \(see 'allowance ledger --help'\)/,
    );
    expectFailure(
      allowance(["ledger", "report", "--bogus"]),
      2,
      /unknown option '--bogus' \(see 'allowance ledger report --help'\)/,
    );
  });

  it("takes a value flag once: a second --revocations or --roots is refused, not the first dropped", () => {
    for (const flag of ["--revocations", "--roots", "--aud"])
      expectFailure(
        allowance(["verify", "alw1_x", "--roots", "a.jwk", flag, "a", flag, "b"]),
        2,
        new RegExp(`${flag} given twice`),
      );
    expectFailure(
      allowance(["mint", "--key", "k", "--key", "k2", "--to", "t"]),
      2,
      /--key given twice/,
    );
  });

  it("points to the help of every ledger subcommand, by name and by alias", async () => {
    // The hint is worked out before any command module loads, from a list kept by hand: every
    // subcommand the program registers must be on it.
    const ledger = (await buildProgram()).commands.find((c) => c.name() === "ledger");
    const names = (ledger?.commands ?? []).flatMap((c) => [c.name(), ...c.aliases()]);
    expect(names).toContain("remaining");
    for (const name of names)
      expectFailure(
        allowance(["ledger", name, "--bogus"]),
        2,
        new RegExp(`unknown option '--bogus' \\(see 'allowance ledger ${name} --help'\\)`),
      );
  });

  it("reports an unknown option before a missing required one", () => {
    expectFailure(allowance(["mint", "--bogus"]), 2, /unknown option '--bogus'/);
    expectFailure(
      allowance(["mint", "--to", "x"]),
      2,
      /required option '--key <file>' not specified/,
    );
  });
});

describe("--json errors", () => {
  it("prints one error object with ok, code and message for option-parsing errors too", () => {
    for (const args of [
      ["mint", "--bogus", "--json"],
      ["mint", "--json"],
      ["verify", "--json"],
      ["frobnicate", "--json"],
      ["--json"],
      ["ledger", "--json"],
      ["help", "frobnicate", "--json"],
    ]) {
      const run = allowance(args);
      expect(run.code, args.join(" ")).toBe(2);
      const out = json<Record<string, unknown>>(run);
      expect(Object.keys(out).sort()).toEqual(["code", "message", "ok"]);
      expect(out).toMatchObject({ ok: false, code: "USAGE" });
      expect(out["message"]).not.toMatch(/outputHelp/);
    }
  });

  it("gives a malformed token the same shape as every other error", () => {
    const malformed = json<Record<string, unknown>>(
      allowance(["verify", "alw1_zzzz", ...roots(), "--json"]),
    );
    const missing = json<Record<string, unknown>>(
      allowance(["verify", token, "--roots", at("missing.jwks"), "--json"]),
    );
    expect(Object.keys(malformed).sort()).toEqual(["code", "message", "ok"]);
    expect(Object.keys(missing).sort()).toEqual(["code", "message", "ok"]);
    expect(malformed).toMatchObject({ ok: false, code: expect.stringMatching(/^ERR_/) });
    expect(missing).toMatchObject({ ok: false, code: "USAGE" });
  });
});

describe("the demo", () => {
  it("says what is simulated and what is real, prints money one way, says each denial once, and ends with what to try next", () => {
    const run = allowance(["demo"]);
    expectSuccess(run);
    expect(run.stdout).toMatch(/Simulated: the model and the tools/);
    expect(run.stdout).toMatch(/Real: .*tokens.*signatures.*verification.*ledger.*enforcement/);
    // Exact amounts in the one format of formatUsd: no four-decimal padding such as $0.7850.
    expect(run.stdout).not.toMatch(/\$\d+\.\d*0\b(?<!\.\d0)/);
    expect(run.stdout).not.toMatch(/\$\d+\.\d{3}0\b/);
    for (const line of run.stdout.split("\n"))
      expect(line.match(/link \d+/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
    const lines = run.stdout.trimEnd().split("\n");
    expect(lines.slice(-3).every((line) => line.trimStart().startsWith("allowance "))).toBe(true);
  });

  it("--json uses the key names of ledger remaining", () => {
    const out = json<{ tree: { limits: Record<string, unknown>[] } }>(
      allowance(["demo", "--json"]),
    );
    for (const limit of out.tree.limits) {
      expect(limit).toHaveProperty("remaining");
      expect(limit).not.toHaveProperty("left");
    }
  });
});
