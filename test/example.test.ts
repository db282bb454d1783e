/**
 * examples/orchestrator, run as a user runs it (`npm run -s example`) and in-process, and its tool
 * server attacked directly: whatever a sub-agent skips, the server verifies.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
  type Token,
} from "@allowance/core";
import { present } from "@allowance/verifier";
import {
  issueGrants,
  renderReport,
  runExample,
  type ExampleReport,
  type Holder,
} from "../examples/orchestrator/main.js";
import {
  TOOLS_AUDIENCE,
  startToolServer,
  type ToolServer,
} from "../examples/orchestrator/tool-server.js";

const run = promisify(execFile);

/** ceil(tokens × price per million) in micro-dollars, as the meter charges each part of a call. */
const cost = (tokens: number, perMTokUsdMicros: number) =>
  Number((BigInt(tokens) * BigInt(perMTokUsdMicros) + 999_999n) / 1_000_000n);
/** gpt-4.1-mini's list price: $0.40 per million input tokens, $1.60 per million output tokens. */
const call = (input: number, output: number) => cost(input, 400_000) + cost(output, 1_600_000);

let report: ExampleReport;
beforeAll(async () => {
  report = await runExample();
});

describe("the orchestrator example", () => {
  it("runs both sub-agents with the Agents SDK, each model call through the mock provider", () => {
    expect(report.agents.map((a) => [a.name, a.api])).toEqual([
      ["researcher", "Responses"],
      ["mailer", "Chat Completions"],
    ]);
    // The researcher: a tool call, then its answer; the mailer: two tool calls, then its answer.
    expect(report.modelCalls).toEqual([
      "/v1/responses",
      "/v1/responses",
      "/v1/chat/completions",
      "/v1/chat/completions",
      "/v1/chat/completions",
    ]);
    expect(report.agents[0]?.output).toContain("<https://docs.example/mcp-auth>");
    expect(report.agents[1]?.output).toBe(
      "alice@example.com: sent (mail_1)\n" +
        "eve@evil.test: refused by the grant: to has domain evil.test, not one allowed",
    );
  });

  it("refuses the out-of-domain mail in the mailer, so it never reaches the tool server", () => {
    expect(report.actions.map((a) => [a.agent, a.tool, a.outcome, a.deniedBy])).toEqual([
      ["researcher", "search_web", "allowed", undefined],
      ["mailer", "send_email", "allowed", undefined],
      ["mailer", "send_email", "denied", "grant"],
    ]);
    expect(report.actions[2]?.arguments.to).toBe("eve@evil.test");
    expect(report.outbox).toEqual([
      { to: "alice@example.com", subject: "Research notes: MCP authorization" },
    ]);
    expect(JSON.stringify(report.toolRequests)).not.toContain("evil.test");
  });

  it("has the tool server verify a presentation on every request it serves", () => {
    expect(report.toolRequests.map((r) => [r.path, r.status, r.holder])).toEqual([
      ["/tools/search_web", 200, "researcher"],
      ["/tools/send_email", 200, "mailer"],
    ]);
  });

  it("charges each sub-agent's link what the provider reported, and the root link both", () => {
    const spent = (agent: number, link: number) => {
      const limits = report.agents[agent]?.remaining.links[link]?.limits ?? [];
      const usd = limits.find((l) => l.field === "usdMicros");
      return { spent: usd?.spent, held: usd?.held, cap: usd?.cap };
    };
    // The mock's usage: 900 input tokens plus 300 per tool result so far, 60 output tokens.
    const researcher = call(900, 60) + call(1200, 60);
    const mailer = call(900, 60) + call(1200, 60) + call(1500, 60);
    expect(spent(0, 1)).toEqual({ spent: researcher, held: 0, cap: 500_000 });
    expect(spent(1, 1)).toEqual({ spent: mailer, held: 0, cap: 200_000 });
    expect(spent(0, 0)).toEqual({ spent: researcher + mailer, held: 0, cap: 1_000_000 });
    expect(spent(1, 0)).toEqual(spent(0, 0));
  });

  it("prints the same report from `npm run -s example`, from a fresh process", async () => {
    const { stdout } = await run("npm", ["run", "-s", "example"], {
      cwd: new URL("..", import.meta.url),
      timeout: 60_000,
    });
    expect(stdout).toBe(`${renderReport(report)}\n`);
    expect(stdout).toContain('send_email "eve@evil.test": denied by the grant (to: value)');
  });
});

describe("the example's tool server, called without the sub-agent's own checks", () => {
  let rootKey: KeyPair;
  let grants: Awaited<ReturnType<typeof issueGrants>>;
  let server: ToolServer;

  beforeAll(async () => {
    rootKey = await generateKeyPair();
    grants = await issueGrants(rootKey);
  });
  beforeEach(async () => {
    server = await startToolServer(trustedRoots([publicKeyOf(rootKey)]));
  });
  afterEach(async () => {
    await server.close();
  });

  /** `Allowance <presentation>` by `holder` for a POST to `path`, bound to `body` when given. */
  const credential = (holder: Holder, path: string, body?: string) =>
    `Allowance ${present(holder.token, holder.key, {
      aud: TOOLS_AUDIENCE,
      method: "POST",
      path,
      ...(body === undefined ? {} : { body }),
    })}`;

  /** POSTs `body` to a tool with the given Authorization (default: bound to this very body). */
  const send = async (holder: Holder, tool: string, body: string, authorization?: string) => {
    const response = await fetch(`${server.url}/tools/${tool}`, {
      method: "POST",
      headers: {
        authorization: authorization ?? credential(holder, `/tools/${tool}`, body),
        "content-type": "application/json",
      },
      body,
    });
    const problem = (await response.json()) as { code?: string };
    return { status: response.status, code: problem.code };
  };

  const mail = (to: string, extra = "") =>
    `{"to":${JSON.stringify(to)},"subject":"s","body":"b"${extra}}`;

  it("serves the mailer's mail to example.com", async () => {
    expect(await send(grants.mailer, "send_email", mail("alice@example.com"))).toEqual({
      status: 200,
      code: undefined,
    });
    expect(server.outbox).toEqual([{ to: "alice@example.com", subject: "s" }]);
    expect(server.requests).toMatchObject([{ status: 200, holder: "mailer" }]);
  });

  it.each([
    ["another domain", mail("eve@evil.test")],
    ["a subdomain of another domain", mail("eve@example.com.evil.test")],
    [
      "a second recipient in an argument the grant does not name",
      mail("a@example.com", ',"cc":"eve@evil.test"'),
    ],
    ["the address twice, the last one elsewhere", mail("a@example.com", ',"to":"eve@evil.test"')],
    [
      "a body over its length",
      mail("a@example.com").replace('"b"', JSON.stringify("x".repeat(4001))),
    ],
  ])("refuses the mailer's own valid presentation carrying %s (403)", async (_, body) => {
    expect(await send(grants.mailer, "send_email", body)).toEqual({
      status: 403,
      code: "ARGUMENT_NOT_ALLOWED",
    });
    expect(server.outbox).toEqual([]);
  });

  it("refuses the researcher's token for send_email (403 TOOL_NOT_ALLOWED)", async () => {
    expect(await send(grants.researcher, "send_email", mail("alice@example.com"))).toEqual({
      status: 403,
      code: "TOOL_NOT_ALLOWED",
    });
    expect(server.outbox).toEqual([]);
  });

  it("refuses a presentation used twice, or made for another path, body or none (401)", async () => {
    const path = "/tools/send_email";
    const body = mail("a@example.com");
    const once = credential(grants.mailer, path, body);
    expect((await send(grants.mailer, "send_email", body, once)).status).toBe(200);
    const refusals = [
      [once, "ERR_REPLAY"],
      [credential(grants.mailer, "/tools/search_web", body), "ERR_PRESENTATION"],
      // Captured on its way to alice, sent on with other arguments.
      [credential(grants.mailer, path, mail("alice@example.com")), "ERR_PRESENTATION"],
      [credential(grants.mailer, path), "ERR_PRESENTATION"],
    ] as const;
    for (const [authorization, code] of refusals)
      expect(await send(grants.mailer, "send_email", body, authorization)).toEqual({
        status: 401,
        code,
      });
    expect(server.outbox).toHaveLength(1);
    expect(server.requests.map((r) => [r.status, r.holder])).toEqual([
      [200, "mailer"],
      [401, undefined],
      [401, undefined],
      [401, undefined],
      [401, undefined],
    ]);
  });

  it("refuses a bare token, a presentation by another key, and a token of another root (401)", async () => {
    const body = mail("a@example.com");
    const bare = `Allowance ${formatToken(grants.mailer.token)}`;
    expect(await send(grants.mailer, "send_email", body, bare)).toEqual({
      status: 401,
      code: "ERR_PRESENTATION",
    });
    // The orchestrator holds the key of the link above, not the mailer's.
    const stolen: Holder = { token: grants.mailer.token, key: grants.orchestrator.key };
    expect(await send(stolen, "send_email", body)).toEqual({
      status: 401,
      code: "ERR_PRESENTATION",
    });
    const otherRoot = await generateKeyPair();
    const forged: Token = mint({
      rootKey: otherRoot,
      holder: publicKeyOf(grants.mailer.key),
      grant: { exp: Math.floor(Date.now() / 1000) + 60, tools: ["send_email"] },
    });
    expect(
      await send({ token: forged, key: grants.mailer.key }, "send_email", mail("eve@evil.test")),
    ).toEqual({ status: 401, code: "ERR_UNKNOWN_ROOT" });
    expect(server.outbox).toEqual([]);
    expect(server.requests.every((r) => r.holder === undefined)).toBe(true);
  });
});
