/**
 * The README's CLI table, run as written (issue 15): each example is taken from README.md and run
 * in order in a shell, through the built binary, so the documentation cannot drift from the CLI.
 * Each JSON example of packages/cli/README.md is checked against what every command and MCP tool
 * it names really prints (the built binary, the MCP server over stdio through the official client).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseToken, trustedRoots, importPublicJwk } from "@allowance/core";
import { Enforcer } from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { verify } from "@allowance/verifier";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
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
      "check",
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

/**
 * The JSON examples of packages/cli/README.md, each after a line
 * `<!-- shape: NAME | PRODUCER | PRODUCER … -->` that names what prints it: `allowance …` commands
 * and `mcp TOOL` results.
 */
function shapeExamples(): { name: string; producers: string[]; example: unknown }[] {
  const found: { name: string; producers: string[]; example: unknown }[] = [];
  const pattern = /<!-- shape: ([^|]+?) \| (.+?) -->\n```json\n([\s\S]*?)\n```/g;
  for (const match of CLI_README.matchAll(pattern)) {
    found.push({
      name: match[1] as string,
      producers: (match[2] as string).split(" | "),
      example: JSON.parse(match[3] as string) as unknown,
    });
  }
  return found;
}

/**
 * A value's shape: its JSON types, and for objects the shape of each key, for arrays the merged
 * shape of every element. Two arrays' elements may differ in their optional keys; merged, an
 * example shows every key an element can have, and a real answer must have exactly those.
 */
interface Shape {
  types: Set<string>;
  keys?: Map<string, Shape>;
  items?: Shape;
}

function shapeOf(value: unknown): Shape {
  if (value === null) return { types: new Set(["null"]) };
  if (Array.isArray(value))
    return {
      types: new Set(["array"]),
      ...(value.length === 0 ? {} : { items: value.map(shapeOf).reduce(merge) }),
    };
  if (typeof value === "object")
    return {
      types: new Set(["object"]),
      keys: new Map(Object.entries(value).map(([key, v]) => [key, shapeOf(v)])),
    };
  return { types: new Set([typeof value]) };
}

function merge(a: Shape, b: Shape): Shape {
  const keys = new Map(a.keys ?? []);
  for (const [key, shape] of b.keys ?? []) {
    const other = keys.get(key);
    keys.set(key, other === undefined ? shape : merge(other, shape));
  }
  const items =
    a.items === undefined ? b.items : b.items === undefined ? a.items : merge(a.items, b.items);
  return {
    types: new Set([...a.types, ...b.types]),
    ...(a.keys === undefined && b.keys === undefined ? {} : { keys }),
    ...(items === undefined ? {} : { items }),
  };
}

/** Where `real` departs from `documented`: a key one has and the other lacks, an undocumented type. */
function differences(documented: Shape, real: Shape, path = "$"): string[] {
  const out: string[] = [];
  for (const type of real.types)
    if (!documented.types.has(type))
      out.push(`${path}: ${type}, documented ${[...documented.types].join("|")}`);
  if (documented.keys !== undefined || real.keys !== undefined) {
    const d = documented.keys ?? new Map<string, Shape>();
    const r = real.keys ?? new Map<string, Shape>();
    for (const key of d.keys())
      if (!r.has(key)) out.push(`${path}.${key}: documented, not printed`);
    for (const [key, shape] of r) {
      const doc = d.get(key);
      if (doc === undefined) out.push(`${path}.${key}: printed, not documented`);
      else out.push(...differences(doc, shape, `${path}.${key}`));
    }
  }
  if (documented.items !== undefined && real.items !== undefined)
    out.push(...differences(documented.items, real.items, `${path}[]`));
  else if (documented.items !== undefined || real.items !== undefined)
    out.push(`${path}[]: one of the example and the answer has elements, the other none`);
  return out;
}

describe("packages/cli/README.md's JSON examples", () => {
  let client: Client | undefined;
  afterAll(async () => client?.close());

  it("are what the commands and MCP tools they name print: the same keys, the same types", async () => {
    for (const name of ["s-root", "s-agent", "s-child"])
      expectSuccess(allowance(["keygen", "--out", at(`${name}.jwk`)]));
    const minted = allowance([
      "mint",
      "--key",
      at("s-root.jwk"),
      "--to",
      at("s-agent.pub.jwk"),
      "--usd",
      "2",
      "--tokens",
      "100k",
      "--rate",
      "60-requests/1m",
      "--tools",
      "search.*,send_email",
      "--depth",
      "2",
      "--label",
      "researcher",
      "--expires",
      "1h",
    ]);
    expectSuccess(minted);
    const token = minted.stdout.trim();
    writeFileSync(at("s-agent.token"), token);
    // What the enforcer wrote: a call billed past its hold, so the ledger shows an overrun.
    const root = await importPublicJwk(JSON.parse(readFileSync(at("s-root.pub.jwk"), "utf8")));
    const chain = verify(parseToken(token), { roots: trustedRoots([root]) });
    const ledger = SqliteLedger.open(at("s-ledger.db"));
    const enforcer = new Enforcer({ ledger });
    const hold = await enforcer.reserve({ chain, tokens: 4_000, usdMicros: 2_000_000 });
    if (hold.decision === "DENY") throw new Error(`expected an allowed hold, got ${hold.reason}`);
    await enforcer.commit(hold.reservationId, { tokens: 3_000, usdMicros: 2_500_000 });
    await ledger.close();

    client = new Client({ name: "allowance-readme-test", version: "0.0.0" });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [
          BIN,
          "mcp",
          "--token",
          `@${at("s-agent.token")}`,
          "--key",
          at("s-agent.jwk"),
          "--roots",
          at("s-root.pub.jwk"),
          "--ledger",
          `sqlite:${at("s-ledger.db")}`,
        ],
        stderr: "pipe",
      }),
    );
    await client.listTools();
    const mcp = async (tool: string, args: Record<string, unknown> = {}): Promise<unknown> => {
      const result = await client?.callTool({ name: tool, arguments: args });
      expect(result?.content).toEqual([
        { type: "text", text: JSON.stringify(result?.structuredContent) },
      ]);
      return result?.structuredContent;
    };
    const cli = (args: string[], code = 0): unknown => {
      const run = allowance([...args, "--json"]);
      expect({ args, code: run.code }).toEqual({ args, code });
      return json(run);
    };
    const child = JSON.parse(readFileSync(at("s-child.pub.jwk"), "utf8")) as unknown;
    const agent = ["--token", `@${at("s-agent.token")}`, "--key", at("s-agent.jwk")];
    /** The agent's token, its roots and its ledger: what a command that reads the ledger takes. */
    const reader = [
      "--token",
      `@${at("s-agent.token")}`,
      "--roots",
      at("s-root.pub.jwk"),
      "--ledger",
      `sqlite:${at("s-ledger.db")}`,
    ];
    const producers: Record<string, () => Promise<unknown> | unknown> = {
      "allowance ledger remaining --json": () => cli(["ledger", "remaining", ...reader]),
      "mcp get_budget": () => mcp("get_budget"),
      "allowance verify --json": () =>
        cli(["verify", `@${at("s-agent.token")}`, "--roots", at("s-root.pub.jwk")]),
      "mcp list_limits": () => mcp("list_limits"),
      "allowance attenuate --json": () =>
        cli([
          "attenuate",
          ...agent,
          "--to",
          at("s-child.pub.jwk"),
          "--usd",
          "1",
          "--tools",
          "search.web",
          "--expires",
          "30m",
        ]),
      "mcp delegate": () =>
        mcp("delegate", { publicJwk: child, usd: "1", tools: ["search.web"], expires: "30m" }),
      "allowance attenuate --json (refused)": () =>
        cli(["attenuate", ...agent, "--to", at("s-child.pub.jwk"), "--usd", "60"], 1),
      "mcp delegate (refused)": () => mcp("delegate", { publicJwk: child, usd: "60" }),
      "allowance check --json": () =>
        cli(["check", ...reader, "--tool", "send_email", "--usd", "0.01"], 1),
      "mcp check_action": () => mcp("check_action", { tool: "send_email", usd: "0.01" }),
    };

    const examples = shapeExamples();
    expect(examples.map((e) => e.name)).toEqual([
      "error",
      "remaining",
      "chain",
      "delegation",
      "check",
    ]);
    // Every producer is run, and each one the documentation names is known here.
    expect(examples.flatMap((e) => e.producers).sort()).toEqual(Object.keys(producers).sort());
    for (const { name, producers: named, example } of examples) {
      for (const producer of named) {
        const real = await (producers[producer] as () => unknown)();
        expect
          .soft({
            name,
            producer,
            differences: differences(shapeOf(example), shapeOf(real)),
          })
          .toEqual({ name, producer, differences: [] });
      }
    }
  });
});
