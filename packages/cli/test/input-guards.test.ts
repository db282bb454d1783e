/**
 * Values the CLI and the MCP server read from people and agents, refused when they would be
 * misread: digit separators anywhere but between thousands, and what each is refused as. The CLI
 * tests run the built binary (`npm run build` first); the MCP tests run the server from source.
 */
import { writeFileSync } from "node:fs";
import {
  exportPrivateJwk,
  exportPublicJwk,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
} from "@allowance/core";
import { MemoryLedger } from "@allowance/enforcer";
import { verify } from "@allowance/verifier";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectMcp } from "./mcp-support.js";
import { allowance, expectFailure, expectSuccess, json, tempDir } from "./support.js";

const tmp = tempDir();
const at = tmp.path;
let root: KeyPair;
let agent: KeyPair;
let child: KeyPair;

beforeAll(async () => {
  [root, agent, child] = await Promise.all([
    generateKeyPair(),
    generateKeyPair(),
    generateKeyPair(),
  ]);
  writeFileSync(at("root.jwk"), JSON.stringify(exportPrivateJwk(root)), { mode: 0o600 });
  writeFileSync(at("root.pub.jwk"), JSON.stringify(exportPublicJwk(root)));
  writeFileSync(at("agent.jwk"), JSON.stringify(exportPrivateJwk(agent)), { mode: 0o600 });
  writeFileSync(at("agent.pub.jwk"), JSON.stringify(exportPublicJwk(agent)));
});

afterAll(() => tmp.remove());

/** `allowance mint` of a root grant for the agent, with the grant flags given. */
const mintWith = (...flags: string[]) =>
  allowance([
    "mint",
    "--key",
    at("root.jwk"),
    "--to",
    at("agent.pub.jwk"),
    ...(flags.includes("--expires") ? [] : ["--expires", "1h"]),
    ...flags,
    "--json",
  ]);

/** An in-process MCP client on a server holding `token` (a root grant to the agent). */
function mcpOn(token: string): Promise<Client> {
  return connectMcp({
    chain: verify(token, { roots: trustedRoots([root]) }),
    token,
    holderKey: agent,
    ledger: new MemoryLedger(),
    ledgerSource: { kind: "memory", where: "memory" },
    policy: { tools: {} },
    version: "0.0.0",
  });
}

async function callTool(client: Client, name: string, args: Record<string, unknown> = {}) {
  const result = await client.callTool({ name, arguments: args });
  return result.structuredContent as Record<string, unknown>;
}

const rootToken = (grant: Parameters<typeof mint>[0]["grant"]) =>
  formatToken(mint({ rootKey: root, holder: publicKeyOf(agent), grant, allowFarFuture: true }));

describe("digit separators on the command line", () => {
  it.each([
    ["--usd", "2,50", /^allowance: --usd: "2,50": a comma only separates thousands; write 2\.50$/],
    ["--usd", "1,5", /a comma only separates thousands; write 1\.5$/],
    ["--tokens", "1,5M", /^allowance: --tokens: "1,5M": .*; write 1\.5M$/],
    ["--tokens", "1,2,3", /^allowance: --tokens: .*complete groups of three/],
    ["--risk", "1_0", /^allowance: --risk: "1_0": an underscore only separates thousands/],
    ["--providers", "openai:usd=1,5", /^allowance: --providers: .*a comma separates providers/],
    ["--providers", "openai:usd=1_5", /^allowance: --providers openai:usd: "1_5": an underscore/],
    ["--rate", "1,5-usd/1h", /^allowance: --rate: "1,5": a comma only separates thousands/],
  ])("mint %s %s is a usage error (exit 2) that says why", (flag, value, message) => {
    expectFailure(mintWith(flag, value), 2, message);
  });

  it("reads thousands groups as the digits they separate", () => {
    const run = mintWith("--usd", "1,000", "--tokens", "12_345_678", "--rate", "1,000-requests/1h");
    expectSuccess(run);
    expect(json<{ grant: Record<string, unknown> }>(run).grant).toMatchObject({
      usdMicros: 1_000_000_000,
      tokens: 12_345_678,
      rate: [{ seconds: 3600, requests: 1_000 }],
    });
  });
});

describe("digit separators in MCP tool arguments", () => {
  let client: Client;
  beforeAll(async () => {
    client = await mcpOn(rootToken({ exp: Math.floor(Date.now() / 1000) + 3600, depth: 3 }));
  });
  afterAll(() => client.close());

  it.each([
    ["check_action", { tool: "search", tokens: "1,5M" }, /^tokens: "1,5M": .*write 1\.5M$/],
    ["check_action", { tool: "search", usd: "2,50" }, /^usd: "2,50": .*write 2\.50$/],
    ["check_action", { tool: "search", risk: ",100" }, /^risk: ",100": a comma only/],
    ["delegate", { usd: "2,50" }, /^usd: "2,50": .*write 2\.50$/],
    ["delegate", { tokens: "1_0" }, /^tokens: "1_0": an underscore only/],
    ["delegate", { rate: ["1,5-usd/1h"] }, /^rate: "1,5": a comma only/],
  ])("%s %j is INVALID_INPUT, saying why", async (tool, args, message) => {
    const input = tool === "delegate" ? { publicJwk: exportPublicJwk(child), ...args } : args;
    const body = await callTool(client, tool, input);
    expect(body).toMatchObject({ ok: false, code: "INVALID_INPUT" });
    expect(body["message"]).toMatch(message);
  });
});

describe("epoch seconds from 10^11 on are refused as milliseconds", () => {
  it("mint --expires Date.now() is a usage error naming milliseconds, not a 56,000-year token", () => {
    const now = Date.now();
    expectFailure(
      mintWith("--expires", String(now)),
      2,
      new RegExp(
        `^allowance: --expires: ${now} looks like milliseconds; .*${Math.floor(now / 1000)}$`,
      ),
    );
    expectFailure(mintWith("--nbf", "100000000000"), 2, /^allowance: --nbf: .*milliseconds/);
  });

  it("verify --at takes 10^11 - 1 as seconds and refuses 10^11", () => {
    const token = rootToken({ exp: Math.floor(Date.now() / 1000) + 3600 });
    const verifyAt = (time: string) =>
      allowance(["verify", token, "--roots", at("root.pub.jwk"), "--at", time]);
    // Read as seconds: the year 5138, long after the token's expiry.
    expectFailure(verifyAt("99999999999"), 1, /ERR_EXPIRED/);
    expectFailure(
      verifyAt("100000000000"),
      2,
      /^allowance: --at: 100000000000 looks like milliseconds/,
    );
    expectFailure(verifyAt(String(Date.now())), 2, /^allowance: --at: \d+ looks like milliseconds/);
  });

  it("the MCP delegate tool refuses expires and nbf in milliseconds", async () => {
    const client = await mcpOn(rootToken({ exp: Math.floor(Date.now() / 1000) + 3600, depth: 3 }));
    try {
      for (const args of [{ expires: String(Date.now()) }, { nbf: "100000000000" }]) {
        const body = await callTool(client, "delegate", {
          publicJwk: exportPublicJwk(child),
          ...args,
        });
        expect(body).toMatchObject({ ok: false, code: "INVALID_INPUT" });
        expect(body["message"]).toMatch(/^(expires|nbf): \d+ looks like milliseconds/);
      }
    } finally {
      await client.close();
    }
  });
});

describe("an expiry past what a Date holds (the format allows up to 2^53 - 1)", () => {
  const far = () => rootToken({ exp: Number.MAX_SAFE_INTEGER, nbf: 8_640_000_000_001, depth: 2 });

  it("verify and inspect show it as epoch seconds, in text and --json", () => {
    const token = far();
    const roots = ["--roots", at("root.pub.jwk")];
    // nbf is in the far future too: verify as of a time between nbf and exp.
    const asOf = ["--at", `+${Math.floor((8_640_000_000_002 - Date.now() / 1000) / 86_400) + 1}d`];
    const text = allowance(["verify", token, ...roots, ...asOf]);
    expectSuccess(text);
    expect(text.stdout).toContain("expires epoch 9007199254740991 s");
    expect(text.stdout).toContain("not before epoch 8640000000001 s");
    const verified = allowance(["verify", token, ...roots, ...asOf, "--json"]);
    expectSuccess(verified);
    expect(json<{ limits: string[]; grant: { exp: number } }>(verified)).toMatchObject({
      limits: expect.arrayContaining([expect.stringMatching(/^expires epoch 9007199254740991 s/)]),
      grant: { exp: Number.MAX_SAFE_INTEGER },
    });
    const inspected = allowance(["inspect", token]);
    expectSuccess(inspected);
    expect(inspected.stdout).toContain("expires epoch 9007199254740991 s");
    expectSuccess(allowance(["inspect", token, "--json"]));
  });

  it("attenuate narrows it, saying from what, and mint still takes such an expiry as a duration", () => {
    writeFileSync(at("far.token"), far());
    const child = allowance([
      "attenuate",
      "--token",
      `@${at("far.token")}`,
      "--key",
      at("agent.jwk"),
      "--to",
      at("root.pub.jwk"),
      "--expires",
      "+100000000000d",
    ]);
    expectSuccess(child);
    const inspected = allowance(["inspect", child.stdout.trim()]);
    expectSuccess(inspected);
    expect(inspected.stdout).toMatch(/narrowed +exp epoch 9007199254740991 s → epoch \d+ s/);
    const days = Math.floor((Number.MAX_SAFE_INTEGER - Date.now() / 1000) / 86_400) - 1;
    const minted = mintWith("--expires", `+${days}d`);
    expectSuccess(minted);
    expect(json<{ grant: { exp: number } }>(minted).grant.exp).toBeGreaterThan(8_640_000_000_000);
    // 10^11 seconds or more reads as milliseconds with an "s" after: refused, as typed digits are.
    for (const given of ["1796490779982s", "+1796490779982s", "-100000000000s"])
      expectFailure(mintWith("--expires", given), 2, /looks like milliseconds/);
    expectSuccess(mintWith("--expires", "99999999999s"));
  });

  it("the MCP list_limits tool answers it", async () => {
    const client = await mcpOn(rootToken({ exp: Number.MAX_SAFE_INTEGER }));
    try {
      const body = await callTool(client, "list_limits");
      expect(body).toMatchObject({ ok: true, grant: { exp: Number.MAX_SAFE_INTEGER } });
      expect(body["limits"]).toEqual(
        expect.arrayContaining([expect.stringMatching(/^expires epoch 9007199254740991 s/)]),
      );
    } finally {
      await client.close();
    }
  });
});

describe("provider caps given twice or with two '='", () => {
  it.each([
    ["openai:usd=5:usd=500", /gives openai:usd twice/],
    ["openai:usd=5=500", /has more than one "="/],
    ["openai:tokens=1k:tokens=1M", /gives openai:tokens twice/],
  ])("mint --providers %s is a usage error (exit 2)", (value, message) => {
    expectFailure(mintWith("--providers", value), 2, message);
  });

  it("the MCP delegate tool refuses them too", async () => {
    const client = await mcpOn(rootToken({ exp: Math.floor(Date.now() / 1000) + 3600, depth: 3 }));
    try {
      const body = await callTool(client, "delegate", {
        publicJwk: exportPublicJwk(child),
        providers: ["openai:usd=5:usd=500"],
      });
      expect(body).toMatchObject({ ok: false, code: "INVALID_INPUT" });
      expect(body["message"]).toMatch(/^providers: .*gives openai:usd twice/);
    } finally {
      await client.close();
    }
  });
});

describe("--json errors keep what the library's error names, at the top level", () => {
  /** A root grant with a 300-byte label, minted past the format's limits: every reader refuses it. */
  const overLong = () =>
    formatToken(
      mint({
        rootKey: root,
        holder: publicKeyOf(agent),
        grant: { exp: Math.floor(Date.now() / 1000) + 3600, label: "x".repeat(300) },
        limits: { maxStringBytes: 1000 },
      }),
    );

  it("a token over a format limit: inspect, verify and present give linkIndex, field, limit and actual", () => {
    const token = overLong();
    // inspect and present read the grants to show or check them (a malformed token, exit 2);
    // verify's verifier refuses it (exit 1). Each keeps the error's details.
    for (const [args, exit] of [
      [["inspect", token], 2],
      [["present", token, "--key", at("agent.jwk"), "--aud", "https://tools.example"], 2],
      [["verify", token, "--roots", at("root.pub.jwk")], 1],
    ] as const) {
      const run = allowance([...args, "--json"]);
      expect({ args, code: run.code }).toEqual({ args, code: exit });
      expect(json(run)).toEqual({
        ok: false,
        code: "ERR_LIMIT",
        message: expect.stringMatching(/label string has 300 bytes, the limit is 256/),
        linkIndex: 0,
        field: "label",
        limit: 256,
        actual: 300,
      });
    }
  });

  it("a token text over the length limit gives limit and actual", () => {
    const run = allowance(["inspect", `alw1_${"A".repeat(30_000)}`, "--json"]);
    expect(run.code).toBe(2);
    expect(json(run)).toEqual({
      ok: false,
      code: "ERR_LIMIT",
      message: expect.stringMatching(/^token is malformed \(ERR_LIMIT: /),
      limit: 24_000,
      actual: 30_005,
    });
  });

  it("present with a key that is not the holder's: linkIndex beside code, not under an error key", () => {
    const run = allowance([
      "present",
      rootToken({ exp: Math.floor(Date.now() / 1000) + 3600 }),
      "--key",
      at("root.jwk"),
      "--aud",
      "https://tools.example",
      "--json",
    ]);
    expect(run.code).toBe(1);
    expect(json(run)).toEqual({
      ok: false,
      code: "ERR_KEY",
      message: expect.stringMatching(/not the holder of this token/),
      linkIndex: 0,
    });
  });
});

describe("a grant too large for the format is a usage error (exit 2), as malformed input", () => {
  it("mint --label of 300 bytes exits 2 with ERR_LIMIT and its sizes", () => {
    const run = mintWith("--label", "x".repeat(300));
    expectFailure(
      run,
      2,
      /^allowance: --label is too large \(ERR_LIMIT\): a label string has 300 bytes, the limit is 256$/,
    );
    expect(json(run)).toMatchObject({
      ok: false,
      code: "ERR_LIMIT",
      field: "label",
      limit: 256,
      actual: 300,
    });
    expectSuccess(mintWith("--label", "x".repeat(256)));
  });

  it("mint --tools of 65 entries exits 2", () => {
    const tools = Array.from({ length: 65 }, (_, i) => `t${i}`).join(",");
    const run = mintWith("--tools", tools);
    expectFailure(run, 2, /^allowance: --tools is too large \(ERR_LIMIT\): tools has 65 entries/);
    expect(json(run)).toMatchObject({ code: "ERR_LIMIT", field: "tools", limit: 64, actual: 65 });
  });

  it("attenuate --label of 300 bytes exits 2; a widening is still refused (exit 1)", () => {
    writeFileSync(
      at("parent.token"),
      rootToken({ exp: Math.floor(Date.now() / 1000) + 3600, usdMicros: 1 }),
    );
    const attenuateWith = (...flags: string[]) =>
      allowance([
        "attenuate",
        "--token",
        `@${at("parent.token")}`,
        "--key",
        at("agent.jwk"),
        "--to",
        at("root.pub.jwk"),
        ...flags,
      ]);
    expectFailure(
      attenuateWith("--label", "x".repeat(300)),
      2,
      /^allowance: --label is too large \(ERR_LIMIT\)/,
    );
    expectFailure(attenuateWith("--usd", "2"), 1, /ERR_WIDENED/);
  });
});
