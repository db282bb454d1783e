/**
 * Start-up through the built binary: what each command loads. Timing is bench/startup.ts's job
 * (figures, not assertions); here, a resolve hook lists every module the process resolves, so
 * a heavy import creeping back onto `--help` or `verify` fails a test.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, allowance, expectSuccess, tempDir } from "./support.js";

const tmp = tempDir();
const at = tmp.path;
let token = "";

beforeAll(() => {
  writeFileSync(
    at("hooks.mjs"),
    'import { appendFileSync } from "node:fs";\nexport async function resolve(specifier, context, next) {\n  const result = await next(specifier, context);\n  appendFileSync(process.env.ALLOWANCE_RESOLVE_LOG, result.url + "\\n");\n  return result;\n}\n',
  );
  writeFileSync(
    at("register.mjs"),
    `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(at("hooks.mjs")).href)});\n`,
  );
  for (const name of ["root", "agent"])
    expectSuccess(allowance(["keygen", "--out", at(`${name}.jwk`)]));
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
  token = mint.stdout.trim();
});

afterAll(() => tmp.remove());

let runs = 0;
/** The URLs of every module `allowance <args>` resolved, and the run's exit code. */
function resolved(args: readonly string[]): { code: number | null; urls: string[] } {
  const log = at(`resolved-${++runs}.log`);
  writeFileSync(log, "");
  const run = spawnSync(
    process.execPath,
    ["--import", pathToFileURL(at("register.mjs")).href, BIN, ...args],
    { encoding: "utf8", env: { ...process.env, ALLOWANCE_RESOLVE_LOG: log } },
  );
  return {
    code: run.status,
    urls: readFileSync(log, "utf8")
      .split("\n")
      .filter((line) => line !== ""),
  };
}

/** What inspect and verify do without: the server side, and zod (tens of ms to import). */
const SERVER_SIDE = /\/(enforcer|ioredis|better-sqlite3|@modelcontextprotocol|zod)\//;
const LIBRARIES =
  /\/(core|verifier|enforcer|ioredis|better-sqlite3|@modelcontextprotocol|zod|jose|cbor-x)\//;

describe("start-up", () => {
  it.each([["--help"], ["-h"], ["--version"], ["-V"]])(
    "allowance %s loads no library, not even the command line parser",
    (...args) => {
      const { code, urls } = resolved(args);
      expect(code).toBe(0);
      expect(urls.some((url) => url.endsWith("/dist/bin.js"))).toBe(true);
      expect(urls.filter((url) => LIBRARIES.test(url) || /\/commander\//.test(url))).toEqual([]);
    },
  );

  it.each([["frobnicate"], ["help"], ["--help", "--json"]])(
    "allowance %s loads no library, only the command line parser",
    (...args) => {
      const { urls } = resolved(args);
      expect(urls.some((url) => /\/commander\//.test(url))).toBe(true);
      expect(urls.filter((url) => LIBRARIES.test(url))).toEqual([]);
    },
  );

  it("answers --help without commander exactly as commander renders it", () => {
    const fast = allowance(["--help"]);
    const commander = allowance(["help"]);
    expectSuccess(fast);
    expectSuccess(commander);
    expect(fast.stdout).toMatch(/^Usage: allowance \[options\] \[command\]/);
    expect(fast.stdout).toBe(commander.stdout);
  });

  it("inspect and verify load neither the enforcer, nor a ledger driver, nor the MCP SDK, nor zod", () => {
    for (const args of [
      ["inspect", token],
      ["verify", token, "--roots", at("root.pub.jwk")],
    ]) {
      const { code, urls } = resolved(args);
      expect(code, args[0]).toBe(0);
      expect(
        urls.filter((url) => SERVER_SIDE.test(url)),
        args[0],
      ).toEqual([]);
    }
  });

  it("check loads the enforcer but not the MCP SDK, though it answers as check_action does", () => {
    const { code, urls } = resolved([
      "check",
      "--token",
      token,
      "--roots",
      at("root.pub.jwk"),
      "--ledger",
      "memory",
      "--tool",
      "search.web",
    ]);
    expect(code).toBe(0);
    expect(urls.some((url) => /\/enforcer\//.test(url))).toBe(true);
    expect(urls.filter((url) => /\/@modelcontextprotocol\//.test(url))).toEqual([]);
  });

  it("loads a command's module only when that command runs or shows its help", () => {
    const { urls } = resolved(["help", "inspect"]);
    const commands = urls
      .filter((url) => url.includes("/dist/commands/"))
      .map((url) => url.replace(/^.*\/dist\/commands\//, ""));
    expect(commands).toContain("inspect.js");
    expect(
      commands.filter((name) => !["inspect.js", "shared.js", "table.js"].includes(name)),
    ).toEqual([]);
  });

  it("lists every command in the top-level help with the description its own help gives", () => {
    const top = allowance(["--help"]);
    expectSuccess(top);
    const commands = [
      "keygen",
      "mint",
      "attenuate",
      "inspect",
      "verify",
      "present",
      "revoke",
      "ledger",
      "check",
      "mcp",
      "demo",
    ];
    const flat = top.stdout.replace(/\s+/g, " ");
    for (const command of commands) {
      const own = allowance([command, "--help"]);
      expectSuccess(own);
      const description = own.stdout.split("\n\n")[1]?.replace(/\s+/g, " ").trim() ?? "";
      expect(description.length, command).toBeGreaterThan(10);
      expect(flat, command).toContain(description);
    }
  });
});
