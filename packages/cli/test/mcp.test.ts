/**
 * `allowance mcp` through the official MCP client. Most tests run the server from source in process
 * (InMemoryTransport); the "built binary" block runs `dist/bin.js` over stdio and needs `tsc -b`.
 */
import { existsSync, writeFileSync } from "node:fs";
import {
  attenuate,
  exportPrivateJwk,
  exportPublicJwk,
  formatToken,
  generateKeyPair,
  mint,
  parseToken,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
  type ToolArguments,
} from "@allowance/core";
import { Enforcer, MemoryLedger, type Ledger } from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { verify, type VerifiedChain } from "@allowance/verifier";
import { FileRevocationStore } from "@allowance/verifier/file";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { checkAction } from "../src/check.js";
import type { McpContext } from "../src/mcp.js";
import { connectMcp } from "./mcp-support.js";
import { BIN, allowance, expectFailure, tempDir } from "./support.js";

const tmp = tempDir();
const POLICY = { tools: { send_email: 10 } };
const TOOLS = ["check_action", "delegate", "get_budget", "list_limits"];
/** The fields each tool's success result always has. */
const REQUIRED: Record<string, string[]> = {
  get_budget: ["ledger", "atSeconds", "leaf", "links", "summary"],
  list_limits: ["rootKid", "holderKid", "linkIds", "limits", "unrestricted", "grant"],
  check_action: ["allowed", "decision", "request"],
  delegate: ["token", "holderKid", "linkIds", "linkId", "grant"],
};
let root: KeyPair;
let agent: KeyPair;
let token: string;
let chain: VerifiedChain;
let ledger: SqliteLedger;
let enforcer: Enforcer;
/** The server from source, in process. */
let local: Client;

type Body = Record<string, unknown>;

/** An in-process client on a server made from `context` (defaults: the shared chain and ledger). */
function connect(context: Partial<McpContext> = {}): Promise<Client> {
  return connectMcp({
    chain,
    token,
    holderKey: agent,
    ledger,
    ledgerSource: { kind: "sqlite", where: tmp.path("ledger.db") },
    policy: POLICY,
    version: "0.0.0",
    ...context,
  });
}

/**
 * A tool call, holding every result to the rules every tool keeps: compact JSON text, the same
 * object as structuredContent, `ok` a boolean, isError exactly when ok is false, and an error in
 * the one shape { ok: false, code, message, linkIndex?, field?, limit?, actual?, violations? }
 * (the CLI's --json error) with a message that names no CLI flag.
 */
async function callOn(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<{ isError: boolean; body: Body; text: string }> {
  const result = await client.callTool({ name, arguments: args });
  const content = result.content as { type: string; text: string }[];
  expect(content).toHaveLength(1);
  const text = content[0]?.text ?? "";
  const body = JSON.parse(text) as Body;
  expect(text).toBe(JSON.stringify(body));
  expect(result.structuredContent).toEqual(body);
  expect(typeof body["ok"]).toBe("boolean");
  const isError = result.isError === true;
  expect(isError).toBe(body["ok"] === false);
  if (isError) {
    expect(Object.keys(body).slice(0, 3)).toEqual(["ok", "code", "message"]);
    expect(
      Object.keys(body).filter(
        (k) =>
          ![
            "ok",
            "code",
            "message",
            "linkIndex",
            "field",
            "limit",
            "actual",
            "violations",
          ].includes(k),
      ),
    ).toEqual([]);
    expect(body["code"]).toMatch(/^(INVALID_INPUT|UNKNOWN_TOOL|INTERNAL|ERR_[A-Z_]+)$/);
    expect(typeof body["message"]).toBe("string");
    expect(body["message"]).not.toMatch(/(^|\s)--[a-z]/);
  }
  return { isError, body, text };
}

const call = (name: string, args: Record<string, unknown> = {}) => callOn(local, name, args);

/** An error answer in the one shape, and never an ALLOW or a token. */
async function expectToolError(
  name: string,
  args: Record<string, unknown>,
  code = "INVALID_INPUT",
  message?: RegExp,
): Promise<void> {
  const { isError, body } = await call(name, args);
  expect({ args, isError, code: body["code"] }).toEqual({ args, isError: true, code });
  if (message !== undefined) expect(String(body["message"])).toMatch(message);
}

beforeAll(async () => {
  root = await generateKeyPair();
  agent = await generateKeyPair();
  const now = Math.floor(Date.now() / 1000);
  token = formatToken(
    mint({
      rootKey: root,
      holder: publicKeyOf(agent),
      grant: {
        exp: now + 3600,
        tokens: 100_000,
        usdMicros: 10_000_000,
        providers: [{ name: "openai" }, { name: "anthropic", usdMicros: 1_000_000 }],
        tools: ["search.*", "send_email"],
        risk: 15,
        depth: 2,
        label: "agent",
      },
    }),
  );
  writeFileSync(tmp.path("agent.token"), token);
  writeFileSync(tmp.path("agent.jwk"), JSON.stringify(exportPrivateJwk(agent)), { mode: 0o600 });
  writeFileSync(tmp.path("root.jwks"), JSON.stringify({ keys: [exportPublicJwk(root)] }));
  writeFileSync(tmp.path("policy.json"), JSON.stringify(POLICY));
  chain = verify(token, { roots: trustedRoots([root]) });

  // The test spends through its own enforcer on the same SQLite file the servers read.
  ledger = SqliteLedger.open(tmp.path("ledger.db"));
  enforcer = new Enforcer({ ledger, policy: POLICY });
  const spend = await enforcer.reserve({
    chain,
    provider: "openai",
    tokens: 4_000,
    usdMicros: 3_000_000,
  });
  if (spend.decision === "DENY") throw new Error("expected the spend to be allowed");
  await enforcer.commit(spend.reservationId, { tokens: 3_000, usdMicros: 2_500_000 });
  const email = await enforcer.reserve({ chain, tool: "send_email" });
  if (email.decision === "DENY") throw new Error("expected the email to be allowed");
  await enforcer.commit(email.reservationId, {});
  local = await connect();
}, 30_000);

afterAll(async () => {
  await local?.close();
  await ledger?.close();
  tmp.remove();
});

describe("allowance mcp: tools and result shapes", () => {
  it("lists the four tools, each with a closed input schema and an object output schema with ok", async () => {
    const { tools } = await local.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(TOOLS);
    for (const tool of tools) {
      expect({
        tool: tool.name,
        additionalProperties: tool.inputSchema["additionalProperties"],
      }).toEqual({ tool: tool.name, additionalProperties: false });
      expect({
        tool: tool.name,
        type: tool.outputSchema?.type,
        required: tool.outputSchema?.required,
      }).toEqual({ tool: tool.name, type: "object", required: ["ok"] });
      // Which fields each value of ok requires: the tool's own on true, code and message on false.
      expect({ tool: tool.name, oneOf: tool.outputSchema?.["oneOf"] }).toEqual({
        tool: tool.name,
        oneOf: [
          { properties: { ok: { const: true } }, required: ["ok", ...REQUIRED[tool.name]!] },
          { properties: { ok: { const: false } }, required: ["ok", "code", "message"] },
        ],
      });
    }
    const check = tools.find((t) => t.name === "check_action");
    expect(Object.keys(check?.inputSchema.properties ?? {}).sort()).toEqual([
      "arguments",
      "model",
      "provider",
      "risk",
      "tokens",
      "tool",
      "usd",
    ]);
    expect(check?.inputSchema.properties?.["arguments"]).toMatchObject({ type: "object" });
    // Every list of delegate is an array of strings, as rate is.
    const properties = tools.find((t) => t.name === "delegate")?.inputSchema.properties as Record<
      string,
      { type?: string; items?: { type?: string } }
    >;
    for (const list of ["tools", "providers", "models", "aud", "rate"])
      expect({ list, ...properties[list] }).toMatchObject({
        list,
        type: "array",
        items: { type: "string" },
      });
  });

  it("get_budget answers what the ledger says, compactly: per link and field spent, held, remaining, cap", async () => {
    const before = Math.floor(Date.now() / 1000);
    const { body, text } = await call("get_budget");
    const expected = await enforcer.remaining(chain);
    expect(body["leaf"]).toEqual({ tokens: 97_000, usdMicros: 7_500_000, risk: 5, requests: null });
    expect(body["summary"]).toEqual(["tokens 97k left", "usd $7.50 left", "risk 5 left"]);
    // Read a moment apart, so a second may have turned in between: the time is in seconds, taken then.
    expect(body["atSeconds"]).toBeGreaterThanOrEqual(before);
    expect(body["atSeconds"]).toBeLessThanOrEqual(Math.floor(expected.at / 1000));
    const links = body["links"] as { index: number; id: string; label?: string; limits: Body[] }[];
    expect(links.map((l) => [l.index, l.id, l.label])).toEqual([[0, chain.linkIds[0], "agent"]]);
    const byField = Object.fromEntries((links[0]?.limits ?? []).map((l) => [l["field"], l]));
    expect(byField["usdMicros"]).toEqual({
      field: "usdMicros",
      kind: "usdMicros",
      cap: 10_000_000,
      spent: 2_500_000,
      held: 0,
      remaining: 7_500_000,
    });
    expect(byField["providers.anthropic.usdMicros"]).toEqual({
      field: "providers.anthropic.usdMicros",
      kind: "usdMicros",
      cap: 1_000_000,
      spent: 0,
      held: 0,
      remaining: 1_000_000,
    });
    expect(byField["providers.openai.tokens"]).toEqual({
      field: "providers.openai.tokens",
      kind: "tokens",
      cap: null,
      spent: 3_000,
      held: 0,
      remaining: null,
    });
    // Uncapped lines on which nothing moved say nothing an agent acts on.
    expect(byField["providers.anthropic.tokens"]).toBeUndefined();
    // Every line the ledger reports with a cap or with spend is there, with the same numbers.
    for (const limit of expected.links[0]?.limits ?? []) {
      if (limit.cap === null && limit.spent === 0 && limit.held === 0) continue;
      expect(byField[limit.field]).toMatchObject({
        cap: limit.cap,
        spent: limit.spent,
        held: limit.held,
        remaining: limit.remaining,
      });
    }
    expect(text.length).toBeLessThan(1000);
  });

  it("get_budget is ledger remaining --json: one shape, the same numbers, the same words", async () => {
    const { body } = await call("get_budget");
    const cli = allowance([
      "ledger",
      "remaining",
      "--token",
      `@${tmp.path("agent.token")}`,
      "--roots",
      tmp.path("root.jwks"),
      "--ledger",
      `sqlite:${tmp.path("ledger.db")}`,
      "--json",
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    const printed = JSON.parse(cli.stdout) as Body;
    expect(printed["ledger"]).toEqual({ kind: "sqlite", where: tmp.path("ledger.db") });
    // Read a moment apart: only the time of reading may differ.
    const { atSeconds: mcpAt, ...fromMcp } = body;
    const { atSeconds: cliAt, ...fromCli } = printed;
    expect(typeof mcpAt === "number" && typeof cliAt === "number").toBe(true);
    expect(Object.keys(body)).toEqual(Object.keys(printed));
    expect(fromMcp).toEqual(fromCli);
    expect(fromMcp["ok"]).toBe(true);
  });

  it("get_budget says how far a cap was overrun instead of showing nothing left", async () => {
    const overLedger = new MemoryLedger();
    const overChain = verify(
      formatToken(
        mint({
          rootKey: root,
          holder: publicKeyOf(agent),
          grant: { exp: Math.floor(Date.now() / 1000) + 3600, usdMicros: 10_000 },
        }),
      ),
      { roots: trustedRoots([root]) },
    );
    const spender = new Enforcer({ ledger: overLedger });
    const hold = await spender.reserve({ chain: overChain, usdMicros: 10_000 });
    if (hold.decision === "DENY") throw new Error("expected the hold to be allowed");
    // The provider billed more than was held: charged, and recorded as an overrun.
    await spender.commit(hold.reservationId, { usdMicros: 15_000 });
    const over = await connect({ chain: overChain, ledger: overLedger, policy: { tools: {} } });
    const { body } = await callOn(over, "get_budget");
    expect(body["summary"]).toContain("usdMicros on link 0 over by $0.005 of $0.01");
    expect(
      (body["links"] as { limits: Body[] }[])[0]?.limits.find((l) => l["field"] === "usdMicros"),
    ).toMatchObject({ cap: 10_000, spent: 15_000, remaining: 0, overBy: 5_000 });
    await over.close();
  });

  it("list_limits gives the effective grant in human units and exact integers", async () => {
    const { body } = await call("list_limits");
    expect(body["limits"]).toEqual(
      expect.arrayContaining([
        "tokens 100k",
        "usd $10",
        "providers openai, anthropic:usd=1",
        "tools search.*, send_email",
        "risk 15",
        "depth 2",
      ]),
    );
    expect(body["grant"]).toMatchObject({ usdMicros: 10_000_000, tokens: 100_000, risk: 15 });
    expect(body["linkIds"]).toEqual(chain.linkIds);
  });

  it("check_action allows what fits and reports how much would fit", async () => {
    const { body } = await call("check_action", {
      tool: "search.web",
      provider: "openai",
      tokens: "2k",
      usd: "0.50",
    });
    expect(body).toEqual({
      ok: true,
      allowed: true,
      decision: "ALLOW",
      request: { tokens: 2_000, usdMicros: 500_000, risk: 0 },
      fits: { tokens: 97_000, usdMicros: 7_500_000, risk: 5, requests: null },
    });
  });

  it("check_action denies with the enforcer's reason, link, field and what is left", async () => {
    expect((await call("check_action", { tool: "admin.delete" })).body).toMatchObject({
      ok: true,
      allowed: false,
      decision: "DENY",
      reason: "TOOL_NOT_ALLOWED",
      linkIndex: 0,
      field: "tools",
    });
    expect((await call("check_action", { provider: "google" })).body).toMatchObject({
      allowed: false,
      reason: "PROVIDER_NOT_ALLOWED",
    });
    expect((await call("check_action", { provider: "openai", usd: 8 })).body).toMatchObject({
      allowed: false,
      reason: "BUDGET_USD",
      field: "usdMicros",
      available: 7_500_000,
      limit: 10_000_000,
      requested: 8_000_000,
    });
    expect((await call("check_action", { provider: "anthropic", usd: "1.5" })).body).toMatchObject({
      allowed: false,
      reason: "BUDGET_USD",
      field: "providers.anthropic.usdMicros",
      available: 1_000_000,
    });
    // send_email costs 10 risk points by the policy; 5 are left.
    expect((await call("check_action", { tool: "send_email" })).body).toMatchObject({
      allowed: false,
      reason: "BUDGET_RISK",
      available: 5,
      request: { risk: 10 },
    });
  });

  it("check_action answers what Enforcer.check answers and reserve then decides, and holds nothing", async () => {
    const asks = [
      { provider: "openai", tokens: 97_000 },
      { provider: "openai", tokens: 97_001 },
      { provider: "anthropic", usdMicros: 1_000_000 },
      { provider: "anthropic", usdMicros: 1_000_001 },
      { tool: "send_email" },
      { tool: "search.web", risk: 5 },
      { tool: "admin.delete" },
      { model: "gpt-4o" },
    ];
    for (const ask of asks) {
      const { usdMicros, ...rest } = ask as typeof ask & { usdMicros?: number };
      const { body } = await call("check_action", {
        ...rest,
        ...(usdMicros === undefined ? {} : { usd: String(usdMicros / 1_000_000) }),
      });
      const checked = await enforcer.check({ chain, ...ask });
      const decision = await enforcer.reserve({ chain, ...ask });
      expect({ ask, decision: body["decision"] }).toEqual({ ask, decision: decision.decision });
      expect(body["fits"]).toEqual(checked.fits);
      if (decision.decision === "DENY") {
        const { decision: _d, retryAfter: _r, ...denial } = decision;
        expect(body).toMatchObject(denial);
      } else {
        await enforcer.release(decision.reservationId);
      }
    }
    const report = await enforcer.remaining(chain);
    expect(report.links.flatMap((l) => l.limits).every((l) => l.held === 0)).toBe(true);
  });

  it("delegate mints a narrower grant, every list an array of strings", async () => {
    const child = await generateKeyPair();
    const { isError, body } = await call("delegate", {
      publicJwk: exportPublicJwk(child),
      usd: "1",
      tools: ["search.*"],
      providers: ["openai"],
      models: ["gpt-4o-mini", "o3"],
      aud: ["https://api.example.com"],
      expires: "30m",
      label: "sub",
    });
    expect(isError).toBe(false);
    expect(body).toMatchObject({
      ok: true,
      holderKid: child.kid,
      grant: {
        usdMicros: 1_000_000,
        tools: ["search.*"],
        providers: [{ name: "openai" }],
        models: ["gpt-4o-mini", "o3"],
      },
    });
    const delegated = verify(String(body["token"]), {
      roots: trustedRoots([root]),
      audience: "https://api.example.com",
    });
    expect(delegated.grant).toMatchObject({
      usdMicros: 1_000_000,
      tools: ["search.*"],
      depth: 1,
      label: "sub",
    });
    expect([...(delegated.grant.models ?? [])].sort()).toEqual(["gpt-4o-mini", "o3"]);
    expect(delegated.holder).toEqual(child.publicKey);
    expect(body["linkId"]).toBe(delegated.linkIds.at(-1));
    // An empty list allows nothing: a grant with no tools at all.
    const none = await call("delegate", { publicJwk: exportPublicJwk(child), tools: [] });
    expect(verify(String(none.body["token"]), { roots: trustedRoots([root]) }).grant.tools).toEqual(
      [],
    );
  });

  it("delegate refuses a wider grant with ERR_WIDENED and every violation by field", async () => {
    const child = await generateKeyPair();
    const { body } = await call("delegate", {
      publicJwk: JSON.stringify(exportPublicJwk(child)),
      usd: "100",
      tools: ["admin.*"],
    });
    expect(body).toMatchObject({ ok: false, code: "ERR_WIDENED", linkIndex: 1 });
    expect((body["violations"] as { field: string; text: string }[]).map((v) => v.field)).toEqual([
      "usdMicros",
      "tools",
    ]);
    // In the arguments' own units, every violation named.
    expect(body["message"]).toMatch(
      /^the grant is wider than this token's: usd: asks \$100, .*; tools: /,
    );
  });

  it("delegate: a list as a comma string, or an entry holding a comma, is refused, never split", async () => {
    const child = exportPublicJwk(await generateKeyPair());
    await expectToolError(
      "delegate",
      { publicJwk: child, tools: "search.*" },
      "INVALID_INPUT",
      /tools/,
    );
    await expectToolError(
      "delegate",
      { publicJwk: child, tools: ["search.*,send_email"] },
      "INVALID_INPUT",
      /^tools: .*comma/,
    );
    await expectToolError(
      "delegate",
      { publicJwk: child, providers: ["openai,anthropic"] },
      "INVALID_INPUT",
      /^providers: /,
    );
    await expectToolError(
      "delegate",
      { publicJwk: child, tools: ["search.*", "search.*"] },
      "INVALID_INPUT",
      /^tools: /,
    );
  });

  it("errors name arguments as the tool's schema does, never CLI flags", async () => {
    const child = exportPublicJwk(await generateKeyPair());
    await expectToolError("delegate", { publicJwk: child, usd: "abc" }, "INVALID_INPUT", /^usd: /);
    await expectToolError(
      "delegate",
      { publicJwk: child, expires: "-1h" },
      "INVALID_INPUT",
      /^expires: /,
    );
    await expectToolError(
      "delegate",
      { publicJwk: child, rate: ["lots"] },
      "INVALID_INPUT",
      /^rate: /,
    );
    await expectToolError(
      "check_action",
      { tool: "search.web", usd: "abc" },
      "INVALID_INPUT",
      /^usd: /,
    );
    await expectToolError(
      "delegate",
      { publicJwk: { kty: "OKP" }, usd: "1" },
      "INVALID_INPUT",
      /not an Ed25519 JWK/,
    );
    // Refused by the input schema, before the tool runs: the same form, the argument first.
    await expectToolError(
      "delegate",
      { publicJwk: child, tools: "search.web" },
      "INVALID_INPUT",
      /^tools: expected array, received string$/,
    );
    await expectToolError(
      "check_action",
      { tool: 42, tokens: -1 },
      "INVALID_INPUT",
      /^tool: expected string, received number; tokens: /,
    );
  });

  it("a ledger that fails is the server's error (INTERNAL), not the caller's, and never an answer", async () => {
    const memory = new MemoryLedger();
    const broken: Ledger = {
      name: "broken",
      reserve: (op) => memory.reserve(op),
      commit: (...a) => memory.commit(...a),
      release: (...a) => memory.release(...a),
      extend: (...a) => memory.extend(...a),
      balances: async () => Promise.reject(new Error("connection lost")),
      close: async () => {},
    };
    const client = await connect({ ledger: broken });
    for (const [name, args] of [
      ["get_budget", {}],
      ["check_action", { tool: "search.web" }],
    ] as const) {
      const { body } = await callOn(client, name, args);
      expect({ name, body }).toEqual({
        name,
        body: { ok: false, code: "INTERNAL", message: "connection lost" },
      });
    }
    await client.close();
  });

  it("an unknown tool is an error in the same shape", async () => {
    await expectToolError("get_budgets", {}, "UNKNOWN_TOOL", /get_budgets/);
  });
});

describe("allowance mcp: tool arguments", () => {
  it("every tool: valid, missing, misspelt, extra and wrongly typed arguments", async () => {
    const child = exportPublicJwk(await generateKeyPair());
    const cases: Record<string, { valid: Body; invalid: Body[] }> = {
      get_budget: { valid: {}, invalid: [{ link: 0 }, { verbose: true }] },
      list_limits: { valid: {}, invalid: [{ link: 0 }] },
      check_action: {
        valid: { tool: "search.web", tokens: 10 },
        invalid: [
          {},
          { tool_name: "admin.delete" },
          { tool: "search.web", usdMicros: 1 },
          { tool: 42 },
          { tool: "" },
          { provider: ["openai"] },
          { model: { id: "x" } },
          { tool: null },
          { tool: "search.web", tokens: "many" },
        ],
      },
      delegate: {
        valid: { publicJwk: child, usd: "1", expires: "30m" },
        invalid: [
          { usd: "1" },
          { publicJwk: child, usd_limit: "1" },
          { publicJwk: child, tool: ["search.*"] },
          { publicJwk: child, usd: {} },
          { publicJwk: child, tokens: 1.5 },
          { publicJwk: child, tools: [1] },
          { publicJwk: child, rate: "1k-tokens/1h" },
          { publicJwk: 7 },
        ],
      },
    };
    for (const [name, { valid, invalid }] of Object.entries(cases)) {
      expect({ name, ok: (await call(name, valid)).body["ok"] }).toEqual({ name, ok: true });
      for (const args of invalid) await expectToolError(name, args);
    }
    await expectToolError(
      "check_action",
      {},
      "INVALID_INPUT",
      /at least one of tool, provider or model/,
    );
    await expectToolError(
      "check_action",
      { tool_name: "send_email" },
      "INVALID_INPUT",
      /tool_name/,
    );
    // A misspelt cap would otherwise be dropped, and the sub-agent would inherit the whole budget.
    await expectToolError(
      "delegate",
      { publicJwk: child, usd_limit: "1" },
      "INVALID_INPUT",
      /usd_limit/,
    );
  });

  it("check_action: NaN, infinite, negative, fractional and huge amounts are errors", async () => {
    const hostile = fc.oneof(
      fc.constantFrom<unknown>(
        null,
        -1,
        1.5,
        2 ** 53,
        1e21,
        "NaN",
        "Infinity",
        "-1",
        "1e400",
        "1.5",
        "9007199254740992",
        "",
        {},
        [],
        true,
      ),
      fc.integer({ max: -1 }),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
      fc.double({ min: 2 ** 53, noDefaultInfinity: true }),
      fc.string().filter((t) => !/^\s*\d[\d_,]*(\.\d+)?[kKmMbB]?\s*$/.test(t)),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("tokens", "risk"), hostile, async (field, value) => {
        await expectToolError("check_action", { tool: "search.web", [field]: value });
      }),
      { numRuns: 60, endOnFailure: true },
    );
    for (const usd of [
      -1,
      -0.01,
      1e21,
      9_007_199_255,
      "NaN",
      "Infinity",
      "-1",
      "1e400",
      "0.0000001",
      "9007199254.740992",
      null,
      {},
    ]) {
      await expectToolError("check_action", { provider: "openai", usd });
    }
  });

  it("checkAction itself, called without the schema, refuses an empty question and hostile values", async () => {
    await expect(checkAction(enforcer, chain, POLICY, {})).rejects.toThrow(TypeError);
    await expect(checkAction(enforcer, chain, POLICY, { tool: 42 as never })).rejects.toThrow(
      TypeError,
    );
    await expect(
      checkAction(enforcer, chain, POLICY, { tool: "search.web", tokens: Number.NaN }),
    ).rejects.toThrow(RangeError);
    await expect(
      checkAction(enforcer, chain, POLICY, { tool: "search.web", usd: Number.POSITIVE_INFINITY }),
    ).rejects.toThrow(/usd/);
    expect(await checkAction(enforcer, chain, POLICY, { tool: "search.web" })).toMatchObject({
      decision: "ALLOW",
    });
  });
});

describe("allowance mcp: argument constraints", () => {
  /** The mailer may mail only @example.com (spec/arguments.md). */
  const MAILER_ARGS: ToolArguments[] = [
    {
      tool: "send_email",
      constraints: [{ name: "to", kind: "emailDomain", domains: ["example.com"] }],
    },
  ];
  let mailerChain: VerifiedChain;
  let mailerLedger: MemoryLedger;
  let mailerEnforcer: Enforcer;
  let mailer: Client;
  beforeAll(async () => {
    const mailerKey = await generateKeyPair();
    const mailerToken = formatToken(
      attenuate(parseToken(token), {
        holderKey: agent,
        holder: publicKeyOf(mailerKey),
        grant: { args: MAILER_ARGS, label: "mailer" },
      }),
    );
    writeFileSync(tmp.path("mailer.token"), mailerToken);
    writeFileSync(tmp.path("mailer.jwk"), JSON.stringify(exportPrivateJwk(mailerKey)), {
      mode: 0o600,
    });
    mailerChain = verify(mailerToken, { roots: trustedRoots([root]) });
    // A ledger of its own: the shared one has spent the risk points send_email costs.
    mailerLedger = new MemoryLedger();
    mailerEnforcer = new Enforcer({ ledger: mailerLedger, policy: POLICY });
    mailer = await connect({
      chain: mailerChain,
      token: mailerToken,
      holderKey: mailerKey,
      ledger: mailerLedger,
    });
  });
  afterAll(async () => mailer?.close());

  const checkMail = (args: Record<string, unknown>) => callOn(mailer, "check_action", args);

  it("check_action allows a mail to @example.com and denies another domain, naming link, tool, argument and constraint", async () => {
    expect(
      (await checkMail({ tool: "send_email", arguments: { to: "ops@example.com" } })).body,
    ).toMatchObject({ ok: true, allowed: true, decision: "ALLOW" });
    const { body } = await checkMail({
      tool: "send_email",
      arguments: { to: "boss@evil.example" },
    });
    expect(body).toEqual({
      ok: true,
      allowed: false,
      decision: "DENY",
      request: { tokens: 0, usdMicros: 0, risk: 10 },
      reason: "ARGUMENT_NOT_ALLOWED",
      linkIndex: 1,
      linkId: mailerChain.linkIds[1],
      field: "args.send_email.to",
      detail:
        "the arguments of tool send_email are not allowed by link 1's grant: to has domain evil.example, not one allowed (args.send_email.to: emailDomain example.com)",
      argumentDenial: {
        tool: "send_email",
        pattern: "send_email",
        argument: "to",
        constraint: { name: "to", kind: "emailDomain", domains: ["example.com"] },
        reason: "value",
        message: "to has domain evil.example, not one allowed",
      },
    });
  });

  it("check_action answers what Enforcer.check answers and reserve then decides for arguments, and holds nothing", async () => {
    const asks: unknown[] = [
      { to: "ops@example.com" },
      { to: ["ops@example.com", "x@evil.example"] },
      { to: "ops@example.com", cc: "x@evil.example" },
      { to: "ops@example.com@evil.example" },
      { to: "ops@EXAMPLE.com" },
      {},
      undefined,
      null,
      "to=ops@example.com",
      [{ to: "ops@example.com" }],
      // An own __proto__ member, as JSON.parse makes it: judged, never dropped on the way.
      JSON.parse('{"to":"ops@example.com","__proto__":{"to":"x@evil.example"}}') as unknown,
    ];
    for (const ask of asks) {
      const request = {
        chain: mailerChain,
        tool: "send_email",
        ...(ask === undefined ? {} : { arguments: ask }),
      };
      const { body } = await checkMail({
        tool: "send_email",
        ...(ask === undefined ? {} : { arguments: ask }),
      });
      const checked = await mailerEnforcer.check(request);
      const decision = await mailerEnforcer.reserve(request);
      expect({ ask, decision: body["decision"] }).toEqual({ ask, decision: decision.decision });
      if (decision.decision === "DENY") {
        const { decision: _d, ...denial } = decision;
        expect(body).toMatchObject(JSON.parse(JSON.stringify(denial)) as Body);
        expect(checked).toMatchObject(denial);
      } else {
        await mailerEnforcer.release(decision.reservationId);
      }
    }
    const report = await mailerEnforcer.remaining(mailerChain);
    expect(report.links.flatMap((l) => l.limits).every((l) => l.held === 0)).toBe(true);
  });

  it("check_action fails closed: absent arguments count as {}, so the required address is missing", async () => {
    expect((await checkMail({ tool: "send_email" })).body).toMatchObject({
      allowed: false,
      reason: "ARGUMENT_NOT_ALLOWED",
      argumentDenial: { reason: "missing", argument: "to" },
    });
    // A tool no entry covers is not constrained by args.
    expect(
      (await checkMail({ tool: "search.web", arguments: { q: "anything" } })).body,
    ).toMatchObject({ allowed: true });
  });

  it("check_action refuses arguments without a tool as an input error, never an answer", async () => {
    const { body } = await checkMail({ provider: "openai", arguments: { to: "a@example.com" } });
    expect(body).toMatchObject({ ok: false, code: "INVALID_INPUT" });
    expect(String(body["message"])).toMatch(/"arguments" needs the "tool"/);
  });
});

describe("allowance mcp: revocation", () => {
  it("past the token's expiry, get_budget and delegate refuse ERR_EXPIRED: no budget is left and no child could verify", async () => {
    const client = await connect();
    const child = exportPublicJwk(await generateKeyPair());
    expect((await callOn(client, "get_budget", {})).body["ok"]).toBe(true);
    const exp = chain.grant.exp as number;
    const clock = vi.spyOn(Date, "now").mockReturnValue(exp * 1000);
    try {
      for (const [name, args] of [
        ["get_budget", {}],
        ["delegate", { publicJwk: child, usd: "1" }],
      ] as [string, Body][]) {
        const { body } = await callOn(client, name, args);
        expect({ name, body }).toMatchObject({
          name,
          body: { ok: false, code: "ERR_EXPIRED", field: "exp" },
        });
        expect(body).not.toHaveProperty("token");
      }
    } finally {
      clock.mockRestore();
    }
    await client.close();
  });

  it("refuses every tool with ERR_REVOKED once a link of the token is revoked, without a restart", async () => {
    const path = tmp.path("revoked-live.json");
    const store = new FileRevocationStore(path, { checkIntervalMs: 0 });
    const client = await connect({ revocations: store });
    const child = exportPublicJwk(await generateKeyPair());
    const calls: [string, Body][] = [
      ["get_budget", {}],
      ["list_limits", {}],
      ["check_action", { tool: "search.web" }],
      ["delegate", { publicJwk: child, usd: "1" }],
    ];
    for (const [name, args] of calls)
      expect({ name, ok: (await callOn(client, name, args)).body["ok"] }).toEqual({
        name,
        ok: true,
      });
    // Revoked by another process, through the file.
    new FileRevocationStore(path).revoke(chain.linkIds[0] as string);
    for (const [name, args] of calls) {
      const { body } = await callOn(client, name, args);
      expect({ name, body }).toMatchObject({
        name,
        body: { ok: false, code: "ERR_REVOKED", linkIndex: 0 },
      });
      expect(body).not.toHaveProperty("token");
    }
    await client.close();
  });
});

describe("allowance mcp and ledger remaining: through the built binary (needs tsc -b)", () => {
  let client: Client | undefined;
  afterAll(async () => client?.close());
  const serve = [
    "mcp",
    "--token",
    `@${tmp.path("agent.token")}`,
    "--key",
    tmp.path("agent.jwk"),
    "--roots",
    tmp.path("root.jwks"),
  ];

  it("serves over stdio: output schemas, structured and compact results", async () => {
    client = new Client({ name: "allowance-test", version: "0.0.0" });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [
          BIN,
          ...serve,
          "--ledger",
          `sqlite:${tmp.path("ledger.db")}`,
          "--policy",
          tmp.path("policy.json"),
        ],
        stderr: "pipe",
      }),
    );
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(TOOLS);
    for (const tool of tools) expect(tool.outputSchema?.type).toBe("object");
    const budget = await callOn(client, "get_budget");
    expect(budget.body["leaf"]).toMatchObject({ usdMicros: 7_500_000 });
    expect((await callOn(client, "check_action", { tool: "send_email" })).body).toMatchObject({
      ok: true,
      allowed: false,
      reason: "BUDGET_RISK",
    });
    expect(
      (
        await callOn(client, "delegate", {
          publicJwk: exportPublicJwk(await generateKeyPair()),
          tools: ["search.*"],
        })
      ).body,
    ).toMatchObject({ ok: true, grant: { tools: ["search.*"] } });
    expect((await callOn(client, "check_action", { tool_name: "x" })).body).toMatchObject({
      ok: false,
      code: "INVALID_INPUT",
    });
  }, 30_000);

  it("serves argument constraints over stdio: a mail to another domain is denied, naming the argument", async () => {
    const mailer = new Client({ name: "allowance-test", version: "0.0.0" });
    await mailer.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [
          BIN,
          "mcp",
          "--token",
          `@${tmp.path("mailer.token")}`,
          "--key",
          tmp.path("mailer.jwk"),
          "--roots",
          tmp.path("root.jwks"),
          "--ledger",
          "memory",
          "--policy",
          tmp.path("policy.json"),
        ],
        stderr: "pipe",
      }),
    );
    try {
      await mailer.listTools();
      const ask = (args: unknown) =>
        callOn(mailer, "check_action", { tool: "send_email", arguments: args });
      expect((await ask({ to: "ops@example.com" })).body).toMatchObject({ allowed: true });
      expect((await ask({ to: "boss@evil.example" })).body).toMatchObject({
        allowed: false,
        reason: "ARGUMENT_NOT_ALLOWED",
        linkIndex: 1,
        field: "args.send_email.to",
        argumentDenial: { argument: "to", reason: "value" },
      });
      // Through real JSON: an own __proto__ member reaches the check as sent.
      expect(
        (await ask(JSON.parse('{"to":"ops@example.com","__proto__":{}}') as unknown)).body,
      ).toMatchObject({ allowed: false, argumentDenial: { reason: "unnamed" } });
    } finally {
      await mailer.close();
    }
  }, 30_000);

  it("refuses to start with a key that is not the token's holder (exit 1, one line)", () => {
    writeFileSync(tmp.path("root.jwk"), JSON.stringify(exportPrivateJwk(root)));
    const run = allowance([
      "mcp",
      "--token",
      `@${tmp.path("agent.token")}`,
      "--key",
      tmp.path("root.jwk"),
      "--roots",
      tmp.path("root.jwks"),
      "--ledger",
      "memory",
    ]);
    expectFailure(run, 1, /ERR_KEY.*not the holder/);
  });

  it("refuses to serve without --ledger, or from a SQLite file that is not there (exit 2), rather than an empty ledger", () => {
    expectFailure(allowance(serve), 2, /mcp needs --ledger/);
    expectFailure(
      allowance([...serve, "--ledger", `sqlite:${tmp.path("typo.db")}`]),
      2,
      /typo\.db/,
    );
    expect(existsSync(tmp.path("typo.db"))).toBe(false);
  });

  it("--revocations: mcp and ledger remaining refuse a revoked token (exit 1), and serve it when not revoked", () => {
    const list = tmp.path("revocations.json");
    const store = new FileRevocationStore(list);
    store.revoke("A".repeat(43));
    const remaining = [
      "ledger",
      "remaining",
      "--token",
      `@${tmp.path("agent.token")}`,
      "--roots",
      tmp.path("root.jwks"),
      "--ledger",
      `sqlite:${tmp.path("ledger.db")}`,
      "--revocations",
      list,
      "--json",
    ];
    const before = allowance(remaining);
    expect(before.code).toBe(0);
    store.revoke(chain.linkIds[0] as string);
    expectFailure(allowance(remaining.slice(0, -1)), 1, /ERR_REVOKED/);
    expectFailure(
      allowance([...serve, "--ledger", "memory", "--revocations", list]),
      1,
      /ERR_REVOKED/,
    );
    // A list that is not there is a mistake, not an empty list.
    expectFailure(
      allowance([...serve, "--ledger", "memory", "--revocations", tmp.path("missing.json")]),
      2,
      /no such file/,
    );
  });
});
