/**
 * Presentations bound to their request body (spec/presentation.md §3.4, §12.5) through the guard,
 * with the official MCP client over Streamable HTTP on 127.0.0.1, for the Node listener and the
 * Fetch handler alike: the tool runs with the arguments that were bound, a captured presentation
 * cannot carry other arguments, and `requireBodyBinding` refuses every proof that binds no body.
 */
import type { RequestListener } from "node:http";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import {
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
  type Token,
  type TrustedRoots,
} from "@allowance/core";
import { sha256, toBase64url, utf8 } from "@allowance/core/format";
import { present } from "@allowance/verifier";
import {
  createMcpGuard,
  proofFetch,
  type McpAllowance,
  type McpGuard,
  type McpGuardOptions,
  type ProofScheme,
} from "@allowance/mcp";
import { fetchListener, listen } from "../../../test/support/http.js";
import { serveNode } from "./fixture.js";

type Kind = "node" | "fetch";

interface Call {
  readonly tool: string;
  /** The arguments exactly as the SDK handed them to the tool. */
  readonly arguments: unknown;
  readonly bodyHash: string | undefined;
}

interface Guarded {
  readonly resource: string;
  readonly guard: McpGuard;
  readonly token: Token;
  readonly calls: Call[];
  /** The methods of the requests that reached the SDK transport. */
  readonly served: string[];
  close(): Promise<void>;
}

/** What the client sent: the final request, proof included. */
interface Sent {
  readonly authorization: string;
  readonly body: string;
}

/** What the client received. */
interface Seen {
  readonly status: number;
  readonly challenge: string | null;
  readonly body: string;
}

let root: KeyPair;
let worker: KeyPair;
let roots: TrustedRoots;
beforeAll(async () => {
  root = await generateKeyPair();
  worker = await generateKeyPair();
  roots = trustedRoots([root]);
});

const open: Guarded[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()));
});

/** The low-level SDK server, so that a tool sees its arguments as received, no schema between. */
function toolServer(calls: Call[]): Server {
  const server = new Server(
    { name: "bound-tools", version: "1.0.0" },
    { capabilities: { tools: {} } },
  );
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: ["search.web", "weather"].map((name) => ({
      name,
      inputSchema: { type: "object" as const },
    })),
  }));
  server.setRequestHandler(CallToolRequestSchema, (request, extra) => {
    const allowance = extra.authInfo?.extra?.allowance as McpAllowance | undefined;
    calls.push({
      tool: request.params.name,
      arguments: request.params.arguments,
      bodyHash: allowance?.presentation?.bodyHash,
    });
    return { content: [{ type: "text", text: `${request.params.name} ran` }] };
  });
  return server;
}

/** An SDK server behind the guard's Node listener or its Fetch handler, stateless. */
async function startGuarded(kind: Kind, options: Partial<McpGuardOptions> = {}): Promise<Guarded> {
  const calls: Call[] = [];
  const served: string[] = [];
  let node: RequestListener = (_req, res) => res.writeHead(503).end();
  let web = (_request: Request) => Promise.resolve(new Response(null, { status: 503 }));
  const server = await listen(
    kind === "node" ? (req, res) => node(req, res) : fetchListener((request) => web(request)),
  );
  const resource = `${server.url}/mcp`;
  const guard = createMcpGuard({
    resource,
    authorizationServers: ["https://grants.example"],
    roots,
    ...options,
  });
  if (kind === "node")
    node = guard.nodeListener(
      serveNode(
        () => toolServer(calls),
        (req) => served.push(req.method ?? "?"),
      ),
    );
  else
    web = guard.fetchHandler(async (request, extra) => {
      served.push(request.method);
      if (request.method !== "POST")
        return new Response(null, { status: 405, headers: { allow: "POST" } });
      const mcp = toolServer(calls);
      const transport = new WebStandardStreamableHTTPServerTransport({ enableJsonResponse: true });
      await mcp.connect(transport);
      return transport.handleRequest(request, extra);
    });
  const token = mint({
    rootKey: root,
    holder: publicKeyOf(worker),
    grant: {
      exp: Math.floor(Date.now() / 1000) + 600,
      aud: [resource],
      tools: ["search.web", "weather"],
    },
  });
  const guarded: Guarded = { resource, guard, token, calls, served, close: () => server.close() };
  open.push(guarded);
  return guarded;
}

/** The official client, proving with `scheme`, recording what it sent and what it received. */
async function connect(
  g: Guarded,
  options: { scheme?: ProofScheme; bindBody?: boolean; sent?: Sent[]; seen?: Seen[] } = {},
): Promise<Client> {
  const { sent = [], seen = [] } = options;
  const fetchFn = proofFetch({
    token: g.token,
    holderKey: worker,
    scheme: options.scheme ?? "Allowance",
    ...(options.bindBody === undefined ? {} : { bindBody: options.bindBody }),
    fetch: async (input, init) => {
      const request = new Request(input, init);
      sent.push({
        authorization: request.headers.get("authorization") ?? "",
        body: await request.clone().text(),
      });
      const response = await fetch(request);
      seen.push({
        status: response.status,
        challenge: response.headers.get("www-authenticate"),
        body: response.ok ? "" : await response.clone().text(),
      });
      return response;
    },
  });
  const client = new Client({ name: "agent", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(g.resource), { fetch: fetchFn }));
  return client;
}

/** A raw POST to the MCP endpoint, as an attacker holding a captured Authorization value sends it. */
async function post(g: Guarded, authorization: string, body: string) {
  const response = await fetch(g.resource, {
    method: "POST",
    headers: {
      authorization,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    },
    body,
  });
  const text = await response.text();
  return {
    status: response.status,
    challenge: response.headers.get("www-authenticate"),
    problem: (response.headers.get("content-type") === "application/problem+json"
      ? JSON.parse(text)
      : {}) as Record<string, unknown>,
  };
}

const callBody = (q: string, id = 1) =>
  JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: "search.web", arguments: { q } },
  });

/** The presentation of a tool call, made by the holder for exactly `body`. */
const presented = (g: Guarded, body: string) =>
  `Allowance ${present(g.token, worker, { aud: g.resource, method: "POST", path: "/mcp", body })}`;

describe.each(["node", "fetch"] as const)("body-bound presentations, %s handler", (kind) => {
  it("runs the tool with the arguments the presentation bound, and names the body's hash", async () => {
    const g = await startGuarded(kind);
    const sent: Sent[] = [];
    const client = await connect(g, { sent });
    await client.callTool({ name: "search.web", arguments: { q: "mcp", limit: 3 } });
    await client.close();
    const call = sent.find((s) => s.body.includes('"tools/call"'));
    expect(call).toBeDefined();
    // The hash the guard checked is the hash of the bytes the client sent.
    expect(g.calls).toEqual([
      {
        tool: "search.web",
        arguments: { q: "mcp", limit: 3 },
        bodyHash: toBase64url(sha256(utf8(call?.body ?? ""))),
      },
    ]);
  });

  it("refuses the presentation replayed with other arguments (ERR_PRESENTATION), then as sent (ERR_REPLAY)", async () => {
    const g = await startGuarded(kind);
    const sent: Sent[] = [];
    const client = await connect(g, { sent });
    await client.callTool({ name: "search.web", arguments: { q: "weather in Paris" } });
    await client.close();
    const captured = sent.find((s) => s.body.includes('"tools/call"'));
    if (captured === undefined) throw new Error("the client sent no tools/call");
    const other = captured.body.replace("weather in Paris", "rm -rf /");
    expect(other).not.toBe(captured.body);
    const replayed = await post(g, captured.authorization, other);
    expect(replayed.status).toBe(401);
    expect(replayed.problem).toMatchObject({
      code: "ERR_PRESENTATION",
      detail: "the presentation is for another request body",
    });
    expect(replayed.challenge).toMatch(/, Allowance realm=.*error="ERR_PRESENTATION"/);
    expect((await post(g, captured.authorization, captured.body)).problem).toMatchObject({
      code: "ERR_REPLAY",
    });
    expect(g.calls.map((c) => c.arguments)).toEqual([{ q: "weather in Paris" }]);
  });

  it("refuses a presentation captured before use with other arguments, and still serves it as made", async () => {
    const g = await startGuarded(kind);
    const body = callBody("harmless");
    const authorization = presented(g, body);
    // The one-time id is claimed last: the refused attempt does not use it up (§4 step 10).
    for (const other of [callBody("harmful"), `${body} `, callBody("harmless", 2)]) {
      const refused = await post(g, authorization, other);
      expect([refused.status, refused.problem.code]).toEqual([401, "ERR_PRESENTATION"]);
    }
    expect(g.served).toEqual([]);
    expect((await post(g, authorization, body)).status).toBe(200);
    expect(g.calls.map((c) => c.arguments)).toEqual([{ q: "harmless" }]);
  });

  it("refuses a body-bound presentation whose body is over maxBodyBytes, before the tool runs", async () => {
    const g = await startGuarded(kind, { maxBodyBytes: 1024 });
    const seen: Seen[] = [];
    const client = await connect(g, { seen });
    const long = "x".repeat(2048);
    await expect(
      client.callTool({ name: "search.web", arguments: { q: long } }),
    ).rejects.toMatchObject({ code: 401 });
    expect(JSON.parse(seen.at(-1)?.body ?? "")).toMatchObject({
      code: "ERR_PRESENTATION",
      detail: "the request body is longer than 1024 bytes, the most read to check a binding",
    });
    // An unbound presentation's body is read after authentication: 413, as before.
    const unbound = await connect(g, { bindBody: false, seen });
    await expect(
      unbound.callTool({ name: "search.web", arguments: { q: long } }),
    ).rejects.toMatchObject({ code: 413 });
    expect(g.calls).toEqual([]);
    // The same clients are served afterwards (on a new connection, for Node).
    await client.callTool({ name: "weather" });
    await unbound.callTool({ name: "weather" });
    expect(g.calls.map((c) => c.tool)).toEqual(["weather", "weather"]);
    await client.close();
    await unbound.close();
  });
});

describe.each(["node", "fetch"] as const)("requireBodyBinding, %s handler", (kind) => {
  it("serves a client that binds every body, GET included (an empty body)", async () => {
    const g = await startGuarded(kind, { requireBodyBinding: true });
    const seen: Seen[] = [];
    const client = await connect(g, { seen });
    await client.callTool({ name: "weather", arguments: { city: "Oslo" } });
    await client.close();
    expect(seen.filter((s) => s.status === 401 || s.status === 403)).toEqual([]);
    // The client's GET (its event stream) was authenticated too, bound to the empty body.
    expect(g.served).toContain("GET");
    expect(g.calls.map((c) => [c.tool, c.arguments])).toEqual([["weather", { city: "Oslo" }]]);
  });

  it("refuses a presentation that binds no body, with ERR_PRESENTATION and an Allowance challenge only", async () => {
    const g = await startGuarded(kind, { requireBodyBinding: true });
    const seen: Seen[] = [];
    await expect(connect(g, { bindBody: false, seen })).rejects.toMatchObject({ code: 401 });
    expect(JSON.parse(seen[0]?.body ?? "")).toMatchObject({
      code: "ERR_PRESENTATION",
      detail: "this endpoint requires a presentation bound to the request body",
    });
    expect(seen[0]?.challenge).toBe(
      `Allowance realm="${g.resource}", resource_metadata="${g.guard.metadataUrl}", error="ERR_PRESENTATION", error_description="this endpoint requires a presentation bound to the request body"`,
    );
    // Made by hand, without bh, for a tools/call: refused too, and its id left unused.
    const body = callBody("q");
    const unbound = `Allowance ${present(g.token, worker, { aud: g.resource, method: "POST", path: "/mcp" })}`;
    expect((await post(g, unbound, body)).problem).toMatchObject({ code: "ERR_PRESENTATION" });
    expect(g.served).toEqual([]);
    expect(g.calls).toEqual([]);
  });

  it("refuses every DPoP proof, which binds no body, with ERR_PRESENTATION", async () => {
    const g = await startGuarded(kind, { requireBodyBinding: true });
    const seen: Seen[] = [];
    await expect(connect(g, { scheme: "DPoP", seen })).rejects.toMatchObject({ code: 401 });
    expect(JSON.parse(seen[0]?.body ?? "")).toMatchObject({
      code: "ERR_PRESENTATION",
      linkIndex: null,
    });
    expect(seen[0]?.challenge).toMatch(/^Allowance realm=.*error="ERR_PRESENTATION"/);
    expect(seen[0]?.challenge).not.toContain("DPoP algs");
    // A request without credentials is told of the one scheme that can pass.
    const bare = await fetch(g.resource, { method: "POST", body: callBody("q") });
    expect(bare.headers.get("www-authenticate")).toBe(
      `Allowance realm="${g.resource}", resource_metadata="${g.guard.metadataUrl}"`,
    );
    expect(g.served).toEqual([]);
  });
});

describe("authenticate, given a request head", () => {
  it("refuses a body-bound presentation when no body is given to check it, and accepts it with the body", async () => {
    const g = await startGuarded("node");
    const body = callBody("q");
    const head = { method: "POST", path: "/mcp", authorization: [presented(g, body)], dpop: [] };
    const refused = await g.guard.authenticate(head);
    expect(refused.ok).toBe(false);
    if (!refused.ok)
      expect(JSON.parse(refused.answer.body)).toMatchObject({
        code: "ERR_PRESENTATION",
        detail: "the presentation binds a request body, and none was given to check it",
      });
    const accepted = await g.guard.authenticate({ ...head, body: () => utf8(body) });
    expect(accepted.ok && accepted.allowance.presentation?.bodyHash).toBe(
      toBase64url(sha256(utf8(body))),
    );
  });
});

describe("options", () => {
  it.each([["true"], [1], [null]])("createMcpGuard refuses requireBodyBinding %j", (value) => {
    expect(() =>
      createMcpGuard({
        resource: "https://mcp.example/mcp",
        authorizationServers: ["https://grants.example"],
        roots,
        requireBodyBinding: value as never,
      }),
    ).toThrow(TypeError);
  });

  it("proofFetch refuses bindBody with DPoP, which binds no body, and bindBody that is not a boolean", () => {
    const token = "alw1_x";
    expect(() => proofFetch({ token, holderKey: worker, bindBody: true })).toThrow(TypeError);
    expect(() =>
      proofFetch({ token, holderKey: worker, scheme: "Allowance", bindBody: "no" as never }),
    ).toThrow(TypeError);
    expect(() =>
      proofFetch({ token, holderKey: worker, scheme: "Allowance", bindBody: null as never }),
    ).toThrow(TypeError);
    expect(() => proofFetch({ token, holderKey: worker, bindBody: false })).not.toThrow();
  });
});
