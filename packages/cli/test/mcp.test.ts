import { writeFileSync } from "node:fs";
import { exportPrivateJwk, exportPublicJwk, formatToken, generateKeyPair, mint, publicKeyOf, trustedRoots, type KeyPair } from "@allowance/core";
import { Enforcer, MemoryLedger, SqliteLedger } from "@allowance/enforcer";
import { verify, type VerifiedChain } from "@allowance/verifier";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.js";
import { checkAction, createMcpServer } from "../src/mcp.js";
import { BIN, allowance, expectFailure, tempDir } from "./support.js";

const tmp = tempDir();
let root: KeyPair;
let agent: KeyPair;
let token: string;
let chain: VerifiedChain;
let ledger: SqliteLedger;
let enforcer: Enforcer;
let client: Client;
/** The same server from source, in process: the argument checks do not wait for a build. */
let local: Client;

/** A tool's JSON answer. */
async function call(name: string, args: Record<string, unknown> = {}): Promise<{ isError: boolean; body: Record<string, unknown> }> {
  const result = await client.callTool({ name, arguments: args });
  const content = result.content as { type: string; text: string }[];
  return { isError: result.isError === true, body: JSON.parse(content[0]?.text ?? "null") as Record<string, unknown> };
}

beforeAll(async () => {
  root = await generateKeyPair();
  agent = await generateKeyPair();
  const now = Math.floor(Date.now() / 1000);
  token = formatToken(
    mint({
      rootKey: root,
      holder: publicKeyOf(agent),
      grant: { exp: now + 3600, tokens: 100_000, usdMicros: 10_000_000, providers: [{ name: "openai" }, { name: "anthropic", usdMicros: 1_000_000 }], tools: ["search.*", "send_email"], risk: 15, depth: 2, label: "agent" },
    }),
  );
  writeFileSync(tmp.path("agent.token"), token);
  writeFileSync(tmp.path("agent.jwk"), JSON.stringify(exportPrivateJwk(agent)), { mode: 0o600 });
  writeFileSync(tmp.path("root.jwks"), JSON.stringify({ keys: [exportPublicJwk(root)] }));
  writeFileSync(tmp.path("policy.json"), JSON.stringify({ tools: { send_email: 10 } }));
  chain = verify(token, { roots: trustedRoots([root]) });

  // The test spends through its own enforcer on the same SQLite file the MCP server reads.
  ledger = SqliteLedger.open(tmp.path("ledger.db"));
  enforcer = new Enforcer({ ledger, policy: { tools: { send_email: 10 } } });
  const spend = await enforcer.reserve({ chain, provider: "openai", tokens: 4_000, usdMicros: 3_000_000 });
  if (spend.decision === "DENY") throw new Error("expected the spend to be allowed");
  await enforcer.commit(spend.reservationId, { tokens: 3_000, usdMicros: 2_500_000 });
  const email = await enforcer.reserve({ chain, tool: "send_email" });
  if (email.decision === "DENY") throw new Error("expected the email to be allowed");
  await enforcer.commit(email.reservationId, {});

  client = new Client({ name: "allowance-test", version: "0.0.0" });
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, "mcp", "--token", `@${tmp.path("agent.token")}`, "--key", tmp.path("agent.jwk"), "--roots", tmp.path("root.jwks"), "--ledger", `sqlite:${tmp.path("ledger.db")}`, "--policy", tmp.path("policy.json")],
    stderr: "pipe",
  });
  await client.connect(transport);

  const server = createMcpServer({ chain, token, holderKey: agent, ledger, policy: { tools: { send_email: 10 } }, version: "0.0.0" });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  local = new Client({ name: "allowance-test", version: "0.0.0" });
  await local.connect(clientSide);
}, 30_000);

afterAll(async () => {
  await local?.close();
  await client?.close();
  await ledger?.close();
  tmp.remove();
});

describe("allowance mcp", () => {
  it("lists the four tools, each with an input schema", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(["check_action", "delegate", "get_budget", "list_limits"]);
    const check = tools.find((t) => t.name === "check_action");
    expect(Object.keys(check?.inputSchema.properties ?? {}).sort()).toEqual(["model", "provider", "risk", "tokens", "tool", "usd"]);
  });

  it("get_budget answers what the enforcer's ledger says, per link and field", async () => {
    const { isError, body } = await call("get_budget");
    const expected = await enforcer.remaining(chain);
    expect(isError).toBe(false);
    expect(body["links"]).toEqual(expected.links);
    expect(body["leaf"]).toEqual({ tokens: 97_000, usdMicros: 7_500_000, risk: 5, requests: null });
    expect(body["summary"]).toEqual(["tokens 97k left", "usd $7.50 left", "risk 5 left"]);
  });

  it("get_budget says how far a cap was overrun instead of showing nothing left", async () => {
    const overLedger = new MemoryLedger();
    const overChain = verify(formatToken(mint({ rootKey: root, holder: publicKeyOf(agent), grant: { exp: Math.floor(Date.now() / 1000) + 3600, usdMicros: 10_000 } })), { roots: trustedRoots([root]) });
    const spender = new Enforcer({ ledger: overLedger });
    const hold = await spender.reserve({ chain: overChain, usdMicros: 10_000 });
    if (hold.decision === "DENY") throw new Error("expected the hold to be allowed");
    // The provider billed more than was held: charged, and recorded as an overrun.
    await spender.commit(hold.reservationId, { usdMicros: 15_000 });
    const server = createMcpServer({ chain: overChain, token, holderKey: agent, ledger: overLedger, policy: { tools: {} }, version: "0.0.0" });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const over = new Client({ name: "allowance-test", version: "0.0.0" });
    await over.connect(clientSide);
    const result = await over.callTool({ name: "get_budget", arguments: {} });
    const body = JSON.parse((result.content as { text: string }[])[0]?.text ?? "null") as { summary: string[] };
    expect(body.summary).toContain("usdMicros on link 0 over by $0.005 of $0.01");
    await over.close();
  });

  it("list_limits gives the effective grant in human units and exact integers", async () => {
    const { body } = await call("list_limits");
    expect(body["limits"]).toEqual(expect.arrayContaining(["tokens 100k", "usd $10", "providers openai, anthropic:usd=1", "tools search.*, send_email", "risk 15", "depth 2"]));
    expect(body["grant"]).toMatchObject({ usdMicros: 10_000_000, tokens: 100_000, risk: 15 });
    expect(body["linkIds"]).toEqual(chain.linkIds);
  });

  it("check_action allows what fits and reports how much would fit", async () => {
    const { body } = await call("check_action", { tool: "search.web", provider: "openai", tokens: "2k", usd: "0.50" });
    expect(body).toMatchObject({ allowed: true, decision: "ALLOW", request: { tokens: 2_000, usdMicros: 500_000, risk: 0 }, fits: { tokens: 97_000, usdMicros: 7_500_000, risk: 5 } });
  });

  it("check_action denies with the enforcer's reason, link and what is left", async () => {
    expect((await call("check_action", { tool: "admin.delete" })).body).toMatchObject({ allowed: false, reason: "TOOL_NOT_ALLOWED", linkIndex: 0, field: "tools" });
    expect((await call("check_action", { provider: "google" })).body).toMatchObject({ allowed: false, reason: "PROVIDER_NOT_ALLOWED" });
    expect((await call("check_action", { provider: "openai", usd: 8 })).body).toMatchObject({ allowed: false, reason: "BUDGET_USD", field: "usdMicros", available: 7_500_000 });
    expect((await call("check_action", { provider: "anthropic", usd: "1.5" })).body).toMatchObject({ allowed: false, reason: "BUDGET_USD", field: "providers.anthropic.usdMicros", available: 1_000_000 });
    // send_email costs 10 risk points by the policy; 5 are left.
    expect((await call("check_action", { tool: "send_email" })).body).toMatchObject({ allowed: false, reason: "BUDGET_RISK", available: 5, request: { risk: 10 } });
  });

  it("check_action agrees with what the enforcer would decide, and holds nothing", async () => {
    const asks = [
      { provider: "openai", tokens: 97_000 },
      { provider: "openai", tokens: 97_001 },
      { provider: "anthropic", usdMicros: 1_000_000 },
      { tool: "send_email" },
    ];
    for (const ask of asks) {
      const { body } = await call("check_action", { ...ask, ...(ask.usdMicros === undefined ? {} : { usd: String(ask.usdMicros / 1_000_000), usdMicros: undefined }) });
      const decision = await enforcer.reserve({ chain, ...ask });
      expect(body["decision"]).toBe(decision.decision);
      // The same sentence for a person, whichever answered.
      if (decision.decision === "DENY") expect(body["detail"]).toBe(decision.detail);
      if (decision.decision !== "DENY") await enforcer.release(decision.reservationId);
    }
    const report = await enforcer.remaining(chain);
    expect(report.links.flatMap((l) => l.limits).every((l) => l.held === 0)).toBe(true);
  });

  it("delegate mints a narrower grant for a sub-agent's key", async () => {
    const child = await generateKeyPair();
    const { isError, body } = await call("delegate", { publicJwk: exportPublicJwk(child), usd: "1", tools: "search.*", expires: "30m", label: "sub" });
    expect(isError).toBe(false);
    expect(body).toMatchObject({ ok: true, holderKid: child.kid });
    const delegated = verify(String(body["token"]), { roots: trustedRoots([root]) });
    expect(delegated.grant).toMatchObject({ usdMicros: 1_000_000, tools: ["search.*"], depth: 1, label: "sub" });
    expect(delegated.holder).toEqual(child.publicKey);
  });

  it("delegate refuses a wider grant with every violation by field", async () => {
    const child = await generateKeyPair();
    const { isError, body } = await call("delegate", { publicJwk: JSON.stringify(exportPublicJwk(child)), usd: "100", tools: "admin.*" });
    expect(isError).toBe(true);
    expect(body).toMatchObject({ ok: false, code: "ERR_WIDENED" });
    expect((body["violations"] as { field: string }[]).map((v) => v.field)).toEqual(["usdMicros", "tools"]);
  });

  it("delegate refuses malformed input with a message", async () => {
    const { isError, body } = await call("delegate", { publicJwk: { kty: "OKP" }, usd: "1" });
    expect(isError).toBe(true);
    expect(String(body["message"])).toMatch(/not an Ed25519 JWK/);
  });

  it("refuses to start with a key that is not the token's holder (exit 1, one line)", () => {
    writeFileSync(tmp.path("root.jwk"), JSON.stringify(exportPrivateJwk(root)));
    const run = allowance(["mcp", "--token", `@${tmp.path("agent.token")}`, "--key", tmp.path("root.jwk"), "--roots", tmp.path("root.jwks")]);
    expectFailure(run, 1, /ERR_KEY.*not the holder/);
  });
});

/** A tool call's answer as raw text: errors from argument validation are not JSON. */
async function callLocal(name: string, args: Record<string, unknown>): Promise<{ isError: boolean; text: string }> {
  const result = await local.callTool({ name, arguments: args });
  const content = result.content as { type: string; text: string }[];
  return { isError: result.isError === true, text: content[0]?.text ?? "" };
}

/** An error answer, and never an ALLOW. */
async function expectToolError(name: string, args: Record<string, unknown>, message?: RegExp): Promise<void> {
  const { isError, text } = await callLocal(name, args);
  expect({ args, isError }).toEqual({ args, isError: true });
  expect(text).not.toMatch(/"decision": "ALLOW"|"ok": true/);
  if (message !== undefined) expect(text).toMatch(message);
}

describe("allowance mcp: tool arguments", () => {
  it("advertises every tool's input schema as closed (additionalProperties: false)", async () => {
    const { tools } = await local.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(["check_action", "delegate", "get_budget", "list_limits"]);
    for (const tool of tools) expect({ tool: tool.name, additionalProperties: tool.inputSchema["additionalProperties"] }).toEqual({ tool: tool.name, additionalProperties: false });
  });

  it("check_action: a forbidden tool asked about under a misspelt or missing key is an error, never ALLOW", async () => {
    // The control: asked properly, the tool is refused.
    expect(JSON.parse((await callLocal("check_action", { tool: "admin.delete" })).text)).toMatchObject({ allowed: false, reason: "TOOL_NOT_ALLOWED" });
    for (const args of [{}, { tool_name: "admin.delete" }, { toolName: "admin.delete" }, { name: "admin.delete" }, { tool_name: "send_email" }, { tokens: 10 }, { usd: "0.01", risk: 1 }]) {
      await expectToolError("check_action", args);
    }
    await expectToolError("check_action", {}, /at least one of tool, provider or model/);
    await expectToolError("check_action", { tool_name: "send_email" }, /tool_name/);
  });

  it("check_action: an extra key beside a valid call is an error", async () => {
    expect((await callLocal("check_action", { tool: "search.web" })).isError).toBe(false);
    await expectToolError("check_action", { tool: "search.web", usdMicros: 1 }, /usdMicros/);
    await expectToolError("check_action", { provider: "openai", max_tokens: 5 });
  });

  it("check_action: wrongly typed names are errors", async () => {
    for (const args of [{ tool: 42 }, { tool: "" }, { provider: ["openai"] }, { model: { id: "x" } }, { tool: null }]) await expectToolError("check_action", args);
  });

  it("check_action: NaN, infinite, negative, fractional and huge amounts are errors", async () => {
    const hostile = fc.oneof(
      fc.constantFrom<unknown>(null, -1, 1.5, 2 ** 53, 1e21, "NaN", "Infinity", "-1", "1e400", "1.5", "9007199254740992", "", {}, [], true),
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
    for (const usd of [-1, -0.01, 1e21, 9_007_199_255, "NaN", "Infinity", "-1", "1e400", "0.0000001", "9007199254.740992", null, {}]) {
      await expectToolError("check_action", { provider: "openai", usd });
    }
  });

  it("checkAction itself, called without the schema, refuses an empty question and wrongly typed names", async () => {
    const policy = { tools: { send_email: 10 } };
    await expect(checkAction(enforcer, chain, policy, {})).rejects.toThrow(UsageError);
    await expect(checkAction(enforcer, chain, policy, { tool: 42 as never })).rejects.toThrow(TypeError);
    await expect(checkAction(enforcer, chain, policy, { tool: "search.web", tokens: Number.NaN })).rejects.toThrow(RangeError);
    await expect(checkAction(enforcer, chain, policy, { tool: "search.web", usd: Number.POSITIVE_INFINITY })).rejects.toThrow(UsageError);
    expect(await checkAction(enforcer, chain, policy, { tool: "search.web" })).toMatchObject({ decision: "ALLOW" });
  });

  it("get_budget and list_limits: no arguments, and an unknown one is an error", async () => {
    for (const name of ["get_budget", "list_limits"]) {
      expect((await callLocal(name, {})).isError).toBe(false);
      await expectToolError(name, { link: 0 });
    }
  });

  it("delegate: valid, missing, misspelt, extra and wrongly typed arguments", async () => {
    const child = exportPublicJwk(await generateKeyPair());
    const valid = await callLocal("delegate", { publicJwk: child, usd: "1", expires: "30m" });
    expect(valid.isError).toBe(false);
    expect(verify(String(JSON.parse(valid.text)["token"]), { roots: trustedRoots([root]) }).grant.usdMicros).toBe(1_000_000);
    await expectToolError("delegate", { usd: "1" }, /publicJwk/);
    // A misspelt cap would otherwise be dropped, and the sub-agent would inherit the whole budget.
    await expectToolError("delegate", { publicJwk: child, usd_limit: "1" }, /usd_limit/);
    await expectToolError("delegate", { publicJwk: child, usd: "1", tool: "search.*" }, /tool/);
    for (const bad of [{ usd: {} }, { usd: -1 }, { usd: "NaN" }, { tokens: 1.5 }, { tokens: -5 }, { tokens: "1e400" }, { tokens: 2 ** 53 }, { depth: "x" }, { expires: 42 }, { rate: "1k-tokens/1h" }]) {
      await expectToolError("delegate", { publicJwk: child, ...bad });
    }
  });
});
