/**
 * The README's CLI table, run as written (issue 15): each example is taken from README.md and run
 * in order in a shell, through the built binary, so the documentation cannot drift from the CLI.
 * The error object of packages/cli/README.md is checked against a real failure of the same kind.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { SqliteUsageLog } from "@allowance/meter/sqlite";
import { afterAll, describe, expect, it } from "vitest";
import { BIN, allowance, expectSuccess, json, tempDir } from "./support.js";

const README = readFileSync(fileURLToPath(new URL("../../../README.md", import.meta.url)), "utf8");
const CLI_README = readFileSync(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");
const tmp = tempDir();
const at = tmp.path;
afterAll(() => tmp.remove());

/** `| \`command\` — … | \`allowance …\` |` rows of the README's CLI table, in order. */
function examples(): { command: string; example: string }[] {
  const rows: { command: string; example: string }[] = [];
  for (const line of README.split("\n")) {
    const match = /^\| `([a-z ]+)` — .*\| `(allowance [^`]+)` \|$/.exec(line);
    if (match !== null) rows.push({ command: match[1] as string, example: match[2] as string });
  }
  return rows;
}

function sh(script: string): { code: number | null; stdout: string; stderr: string } {
  const run = spawnSync("sh", ["-c", script], {
    cwd: tmp.dir,
    encoding: "utf8",
    env: { ...process.env, PATH: `${tmp.dir}:${process.env["PATH"] ?? ""}`, NO_COLOR: "1" },
    timeout: 60_000,
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe("README.md's CLI examples", () => {
  it("lists every command, and each example runs as written (exit 0, nothing on stderr)", async () => {
    const rows = examples();
    expect(rows.map((r) => r.command)).toEqual([
      "keygen",
      "mint",
      "attenuate",
      "inspect",
      "verify",
      "present",
      "revoke",
      "ledger remaining",
      "ledger report",
      "mcp",
      "demo",
    ]);
    writeFileSync(
      at("allowance"),
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`,
    );
    chmodSync(at("allowance"), 0o755);
    // What the examples take as given: the other parties' keys, and the ledger the enforcer wrote.
    for (const name of ["orch", "researcher"])
      expectSuccess(allowance(["keygen", "--out", at(`${name}.jwk`)]));
    await SqliteLedger.open(at("ledger.db")).close();
    await SqliteUsageLog.open(at("ledger.db")).close();
    for (const { command, example } of rows) {
      if (command === "mcp") continue; // a server on stdin: the MCP tests run it
      let script = example;
      if (command === "revoke") {
        const inspected = json<{ links: { id: string }[] }>(
          allowance(["inspect", `@${at("researcher.token")}`, "--json"]),
        );
        script = script.replace("<link-id>", inspected.links.at(-1)?.id ?? "missing");
      }
      const run = sh(script);
      expect({ command, code: run.code, stderr: run.stderr }).toEqual({
        command,
        code: 0,
        stderr: "",
      });
    }
  });
});

describe("packages/cli/README.md's error object", () => {
  it("has the keys a real refusal has, in the one shape of every error", () => {
    const block = /never a stack trace\. With `--json`[\s\S]*?```json\n([\s\S]*?)\n```/.exec(
      CLI_README,
    );
    expect(block).not.toBeNull();
    const documented = JSON.parse(block?.[1] ?? "") as Record<string, unknown>;
    for (const name of ["root", "orch", "child"])
      expectSuccess(allowance(["keygen", "--out", at(`w-${name}.jwk`)]));
    const parent = allowance([
      "mint",
      "--key",
      at("w-root.jwk"),
      "--to",
      at("w-orch.pub.jwk"),
      "--usd",
      "50",
      "--expires",
      "1h",
    ]);
    expectSuccess(parent);
    const widened = allowance([
      "attenuate",
      "--token",
      parent.stdout.trim(),
      "--key",
      at("w-orch.jwk"),
      "--to",
      at("w-child.pub.jwk"),
      "--usd",
      "60",
      "--json",
    ]);
    expect(widened.code).toBe(1);
    const real = json<Record<string, unknown>>(widened);
    expect(Object.keys(real).sort()).toEqual(Object.keys(documented).sort());
    expect(real).toMatchObject({
      ok: false,
      code: documented["code"],
      error: {
        code: "ERR_WIDENED",
        field: "usdMicros",
        violations: [
          { field: "usdMicros", reason: "widened", parent: 50_000_000, child: 60_000_000 },
        ],
      },
    });
  });
});
