/**
 * The official MCP client (Client over StreamableHTTPClientTransport) against an official-SDK MCP
 * server guarded by `createMcpGuard`, over HTTP on 127.0.0.1. The token and its proofs travel in
 * the transport's own `fetch` and `requestInit` options: there is no authorization server here.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { discoverOAuthProtectedResourceMetadata } from "@modelcontextprotocol/sdk/client/auth.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  attenuate,
  formatToken,
  mint,
  publicKeyOf,
  type KeyPair,
  type Token,
} from "@allowance/core";
import { verify, type ReplayCache } from "@allowance/verifier";
import { createDpopProof, createMcpGuard, proofFetch, type ProofScheme } from "@allowance/mcp";
import { fetchListener, listen } from "../../../test/support/http.js";
import { startFixture, type Fixture } from "./fixture.js";

let f: Fixture;
beforeEach(async () => {
  f = await startFixture();
});
afterEach(async () => {
  await f.close();
});

interface Seen {
  readonly method: string;
  readonly status: number;
  readonly challenge: string | null;
  readonly body: string;
}

/** A fetch that proves possession, and records every response the client received. */
function recorded(fetchFn: typeof fetch, seen: Seen[]): typeof fetch {
  return async (input, init) => {
    const response = await fetchFn(input, init);
    // Only a refusal is read twice: teeing a live event stream would hold the client up.
    seen.push({
      method: new Request(input, init).method,
      status: response.status,
      challenge: response.headers.get("www-authenticate"),
      body: response.ok ? "" : await response.clone().text(),
    });
    return response;
  };
}

async function connect(
  options: { token?: Token; key?: KeyPair; scheme?: ProofScheme; seen?: Seen[] } = {},
): Promise<Client> {
  const fetchFn = proofFetch({
    token: options.token ?? f.token,
    holderKey: options.key ?? f.worker,
    scheme: options.scheme ?? "DPoP",
  });
  const transport = new StreamableHTTPClientTransport(new URL(f.resource), {
    fetch: recorded(fetchFn, options.seen ?? []),
  });
  const client = new Client({ name: "agent", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

const text = (result: Awaited<ReturnType<Client["callTool"]>>) =>
  (result.content as { type: string; text: string }[])[0]?.text;

describe("Protected Resource Metadata (RFC 9728)", () => {
  it("is served at the path-suffixed and the root well-known URL, naming the grant issuer", async () => {
    const origin = new URL(f.resource).origin;
    expect(f.guard.metadataUrl).toBe(`${origin}/.well-known/oauth-protected-resource/mcp`);
    for (const url of [f.guard.metadataUrl, `${origin}/.well-known/oauth-protected-resource`]) {
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        resource: f.resource,
        authorization_servers: ["https://grants.example"],
        bearer_methods_supported: ["header"],
        dpop_signing_alg_values_supported: ["EdDSA", "Ed25519"],
        dpop_bound_access_tokens_required: true,
        resource_name: "guarded tools",
        allowance_root_kids: [f.root.kid],
      });
    }
    expect((await fetch(f.guard.metadataUrl, { method: "POST" })).status).toBe(405);
    expect(f.served).toEqual([]);
  });

  it("is what the official client's discovery finds for the MCP endpoint", async () => {
    const metadata = await discoverOAuthProtectedResourceMetadata(new URL(f.resource));
    expect(metadata.resource).toBe(f.resource);
    expect(metadata.authorization_servers).toEqual(["https://grants.example"]);
  });

  it("is pointed to by the 401 challenge of a request without credentials", async () => {
    const response = await fetch(f.resource, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(response.status).toBe(401);
    const metadata = `resource_metadata="${f.guard.metadataUrl}"`;
    // Two challenges, one per accepted scheme; no error code, since no credential was sent (RFC 6750 §3.1).
    expect(response.headers.get("www-authenticate")).toBe(
      `DPoP algs="EdDSA Ed25519", ${metadata}, Allowance realm="${f.resource}", ${metadata}`,
    );
    expect(await response.json()).toMatchObject({ status: 401, code: "ERR_NO_CREDENTIALS" });
    expect(f.served).toEqual([]);
  });
});

describe.each(["DPoP", "Allowance"] as const)("the official client with %s proofs", (scheme) => {
  it("connects, lists the tools and runs a granted tool, which sees the holder in authInfo", async () => {
    const seen: Seen[] = [];
    const client = await connect({ scheme, seen });
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([
      "email.send",
      "search.news",
      "search.web",
      "weather",
    ]);
    const result = await client.callTool({ name: "search.web", arguments: { q: "mcp" } });
    expect(text(result)).toBe(`search.web ran for ${f.worker.kid}`);
    expect(f.ran).toEqual([
      { tool: "search.web", clientId: f.worker.kid, scopes: ["weather", "search.web"] },
    ]);
    await client.close();
    // Every request carried a fresh proof: none was refused.
    expect(seen.filter((s) => s.status === 401 || s.status === 403)).toEqual([]);
  });

  it("refuses a tool outside the grant with 403 insufficient_scope before the tool runs", async () => {
    const seen: Seen[] = [];
    const client = await connect({ scheme, seen });
    const call = client.callTool({ name: "email.send", arguments: { to: "x@example.com" } });
    await expect(call).rejects.toBeInstanceOf(StreamableHTTPError);
    await expect(call).rejects.toMatchObject({ code: 403 });
    // A name the grant's patterns do not cover, though the agent's parent grant does cover it.
    await expect(client.callTool({ name: "search.news" })).rejects.toMatchObject({ code: 403 });
    expect(f.ran).toEqual([]);
    const refused = seen.filter((s) => s.status === 403);
    expect(refused).toHaveLength(2);
    const metadata = `resource_metadata="${f.guard.metadataUrl}"`;
    expect(refused[0]?.challenge).toBe(
      scheme === "DPoP"
        ? `DPoP algs="EdDSA Ed25519", ${metadata}, error="insufficient_scope", error_description="the grant does not allow the tool email.send", scope="email.send"`
        : `Allowance realm="${f.resource}", ${metadata}, error="TOOL_NOT_ALLOWED", error_description="the grant does not allow the tool email.send", scope="email.send"`,
    );
    expect(JSON.parse(refused[0]?.body ?? "")).toMatchObject({
      status: 403,
      code: "TOOL_NOT_ALLOWED",
      tool: "email.send",
    });
    // The granted tool still runs on the same connection.
    await client.callTool({ name: "weather" });
    expect(f.ran.map((r) => r.tool)).toEqual(["weather"]);
    await client.close();
  });

  it("refuses an expired token with 401 invalid_token, and a revoked one", async () => {
    const seen: Seen[] = [];
    const client = await connect({ scheme, seen });
    const exp = verify(f.token, { roots: f.roots }).grant.exp;
    // The guard's clock past exp + skew; the client's proofs are made at that time too.
    f.clockMs = (exp + 61) * 1000;
    const expired = connect({ scheme, seen: [] });
    await expect(expired).rejects.toMatchObject({ code: 401 });
    await expect(client.callTool({ name: "weather" })).rejects.toMatchObject({ code: 401 });
    expect(seen.at(-1)?.body).toContain('"code":"ERR_EXPIRED"');
    expect(seen.at(-1)?.challenge).toMatch(
      scheme === "DPoP" ? /^DPoP .*error="invalid_token"/ : /Allowance .*error="ERR_EXPIRED"/,
    );
    f.clockMs = Date.now();
    f.revocations.revoke(verify(f.token, { roots: f.roots }).linkIds[1] as string);
    await expect(client.callTool({ name: "weather" })).rejects.toMatchObject({ code: 401 });
    expect(JSON.parse(seen.at(-1)?.body ?? "")).toMatchObject({
      code: "ERR_REVOKED",
      linkIndex: 1,
    });
    expect(f.ran).toEqual([]);
  });

  it("refuses proofs made by a key that does not hold the token", async () => {
    const seen: Seen[] = [];
    // The parent's holder signs for the child's token; then a stranger does.
    for (const key of [f.agent, f.stranger]) {
      await expect(connect({ scheme, key, seen })).rejects.toMatchObject({ code: 401 });
      expect(JSON.parse(seen.at(-1)?.body ?? "")).toMatchObject({ code: "ERR_PRESENTATION" });
    }
    // The agent with its own token is served (and may call email.send).
    const client = await connect({ scheme, token: f.parent, key: f.agent });
    await client.callTool({ name: "email.send" });
    expect(f.ran.map((r) => [r.tool, r.clientId])).toEqual([["email.send", f.agent.kid]]);
    await client.close();
  });
});

describe("the token's audience (MCP: a token issued for this resource)", () => {
  /** The worker's grant again, from the root, with `aud` as given (absent: valid everywhere). */
  const grantWith = (aud?: string[]) =>
    mint({
      rootKey: f.root,
      holder: publicKeyOf(f.worker),
      grant: {
        exp: Math.floor(Date.now() / 1000) + 600,
        tools: ["weather"],
        ...(aud === undefined ? {} : { aud }),
      },
    });

  it.each(["DPoP", "Allowance"] as const)(
    "refuses a %s request with a token that names no audience, with 401 ERR_AUDIENCE",
    async (scheme) => {
      const seen: Seen[] = [];
      await expect(connect({ token: grantWith(), scheme, seen })).rejects.toMatchObject({
        code: 401,
      });
      expect(JSON.parse(seen[0]?.body ?? "")).toMatchObject({
        status: 401,
        code: "ERR_AUDIENCE",
        linkIndex: null,
      });
      expect(seen[0]?.challenge).toMatch(
        scheme === "DPoP" ? /^DPoP .*error="invalid_token"/ : /Allowance .*error="ERR_AUDIENCE"/,
      );
      expect(f.served).toEqual([]);
      // A token whose aud lists this resource among others is served.
      const client = await connect({ token: grantWith(["https://other.example", f.resource]) });
      await client.callTool({ name: "weather" });
      await client.close();
      expect(f.ran.map((r) => r.tool)).toEqual(["weather"]);
    },
  );

  it("serves a token that names no audience only when told by name (acceptTokensWithoutAud)", async () => {
    await f.close();
    f = await startFixture({ acceptTokensWithoutAud: true });
    for (const scheme of ["DPoP", "Allowance"] as const) {
      const client = await connect({ token: grantWith(), scheme });
      await client.callTool({ name: "weather" });
      await client.close();
    }
    expect(f.ran.map((r) => r.tool)).toEqual(["weather", "weather"]);
    // The loose option does not loosen the check of an aud that is stated.
    await expect(connect({ token: grantWith(["https://other.example"]) })).rejects.toMatchObject({
      code: 401,
    });
  });
});

describe("a proof given once through requestInit", () => {
  it("serves the first request and refuses the replay, with 401 ERR_REPLAY", async () => {
    const token = formatToken(f.token);
    const proof = await createDpopProof(f.worker, {
      method: "POST",
      url: f.resource,
      accessToken: token,
    });
    const seen: Seen[] = [];
    const transport = new StreamableHTTPClientTransport(new URL(f.resource), {
      requestInit: { headers: { authorization: `DPoP ${token}`, dpop: proof } },
      fetch: recorded(fetch, seen),
    });
    const client = new Client({ name: "agent", version: "1.0.0" });
    // initialize passes; notifications/initialized carries the same proof and is refused.
    await expect(client.connect(transport)).rejects.toMatchObject({ code: 401 });
    expect(seen.map((s) => s.status)).toEqual([200, 401]);
    expect(seen[1]?.challenge).toMatch(/^DPoP .*error="invalid_dpop_proof"/);
    expect(JSON.parse(seen[1]?.body ?? "")).toMatchObject({ code: "ERR_REPLAY" });
    expect(f.served).toEqual(["POST /mcp"]);
  });
});

describe("argument constraints (args, spec/arguments.md)", () => {
  it("checks each call's arguments against the grant's args before the tool runs", async () => {
    // The worker hands a third key a grant whose search.web may only take a short q.
    const token = attenuate(f.token, {
      holderKey: f.worker,
      holder: publicKeyOf(f.stranger),
      grant: {
        args: [{ tool: "search.web", constraints: [{ name: "q", kind: "maxLength", max: 8 }] }],
      },
    });
    const seen: Seen[] = [];
    const client = await connect({ token, key: f.stranger, seen });
    await client.callTool({ name: "search.web", arguments: { q: "weather" } });
    const refusals: [Record<string, unknown> | undefined, string, string | null][] = [
      [{ q: "far too long a query" }, "value", "q"],
      [undefined, "missing", "q"],
      [{ q: "ok", limit: 100 }, "unnamed", "limit"],
    ];
    for (const [args, reason, argument] of refusals) {
      await expect(
        client.callTool({ name: "search.web", ...(args === undefined ? {} : { arguments: args }) }),
      ).rejects.toMatchObject({ code: 403 });
      expect(JSON.parse(seen.at(-1)?.body ?? "")).toMatchObject({
        status: 403,
        code: "ARGUMENT_NOT_ALLOWED",
        tool: "search.web",
        argument,
        reason,
        linkIndex: 2,
      });
      expect(seen.at(-1)?.challenge).toMatch(/^DPoP .*error="insufficient_scope"/);
    }
    // No entry covers weather: its arguments are not constrained.
    await client.callTool({ name: "weather", arguments: { city: "Paris" } });
    expect(f.ran.map((r) => [r.tool, r.clientId])).toEqual([
      ["search.web", f.stranger.kid],
      ["weather", f.stranger.kid],
    ]);
    await client.close();
  });
});

describe("server errors fail closed", () => {
  it("a clock that answers garbage, or a failing replay cache, is a 500 and nothing is served", async () => {
    const errors: unknown[] = [];
    await f.close();
    const failing: ReplayCache = { claim: () => Promise.reject(new Error("store unreachable")) };
    f = await startFixture({ replay: failing, onError: (error) => errors.push(error) });
    await expect(connect()).rejects.toMatchObject({ code: 500 });
    await f.close();
    f = await startFixture({ onError: (error) => errors.push(error) });
    // Seconds given for milliseconds, a fraction, NaN, a negative, a string, Infinity.
    const garbage = [1_800_000_000, Date.now() + 0.5, Number.NaN, -1, String(Date.now()), Infinity];
    for (const answer of garbage) {
      f.clockMs = () => answer;
      await expect(connect()).rejects.toMatchObject({ code: 500 });
    }
    expect(errors.map((e) => (e as Error).constructor.name)).toEqual([
      "Error",
      "RangeError",
      "RangeError",
      "RangeError",
      "RangeError",
      "TypeError",
      "RangeError",
    ]);
    expect(f.served).toEqual([]);
  });

  it("an onError that throws does not keep the 500 from being written, nor stop the server", async () => {
    await f.close();
    const failing: ReplayCache = { claim: () => Promise.reject(new Error("store unreachable")) };
    let told = 0;
    f = await startFixture({
      replay: failing,
      onError: () => {
        told++;
        throw new Error("logger down");
      },
    });
    await expect(connect()).rejects.toMatchObject({ code: 500 });
    await expect(connect()).rejects.toMatchObject({ code: 500 });
    expect(told).toBe(2);
    // The Fetch handler alike: a 500, not a rejected promise.
    const guard = createMcpGuard({
      resource: f.resource,
      authorizationServers: ["https://grants.example"],
      roots: f.roots,
      replay: failing,
      onError: () => {
        told++;
        throw new Error("logger down");
      },
    });
    const handler = guard.fetchHandler(() => Promise.resolve(new Response("served")));
    const signed = proofFetch({
      token: f.token,
      holderKey: f.worker,
      fetch: (input, init) => handler(new Request(input, init)),
    });
    const answer = await signed(f.resource, { method: "POST", body: "{}" });
    expect([answer.status, await answer.text()]).toEqual([500, '{"error":"server error"}']);
    expect(told).toBe(3);
    expect(f.served).toEqual([]);
  });
});

describe("the Fetch handler, with the SDK's web-standard transport", () => {
  it("serves the official client, refuses a tool outside the grant and a token for another resource", async () => {
    const ran: string[] = [];
    let handler: (request: Request) => Promise<Response> = () =>
      Promise.resolve(new Response(null, { status: 503 }));
    // A second server: its guard needs its own URL, known once it listens.
    const server = await listen(fetchListener((request) => handler(request)));
    try {
      const resource = `${server.url}/mcp`;
      const guard = createMcpGuard({
        resource,
        authorizationServers: ["https://grants.example"],
        roots: f.roots,
      });
      handler = guard.fetchHandler(async (request, extra) => {
        const mcp = new McpServer({ name: "fetch-tools", version: "1.0.0" });
        for (const tool of ["weather", "email.send"])
          mcp.registerTool(tool, {}, (toolExtra) => {
            ran.push(`${tool}:${toolExtra.authInfo?.clientId ?? "?"}`);
            return { content: [{ type: "text", text: "ok" }] };
          });
        // Stateless (no session id generator), answering in JSON rather than SSE.
        const transport = new WebStandardStreamableHTTPServerTransport({
          enableJsonResponse: true,
        });
        await mcp.connect(transport);
        return transport.handleRequest(request, extra);
      });
      const token = mint({
        rootKey: f.root,
        holder: publicKeyOf(f.worker),
        grant: { exp: Math.floor(Date.now() / 1000) + 600, aud: [resource], tools: ["weather"] },
      });
      const client = new Client({ name: "agent", version: "1.0.0" });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(resource), {
          fetch: proofFetch({ token, holderKey: f.worker }),
        }),
      );
      await client.callTool({ name: "weather" });
      await expect(client.callTool({ name: "email.send" })).rejects.toMatchObject({ code: 403 });
      expect(ran).toEqual([`weather:${f.worker.kid}`]);
      await client.close();
      // The fixture's token names the other server's resource in its aud: refused here.
      const elsewhere = new Client({ name: "agent", version: "1.0.0" });
      const seen: Seen[] = [];
      await expect(
        elsewhere.connect(
          new StreamableHTTPClientTransport(new URL(resource), {
            fetch: recorded(proofFetch({ token: f.token, holderKey: f.worker }), seen),
          }),
        ),
      ).rejects.toMatchObject({ code: 401 });
      expect(JSON.parse(seen[0]?.body ?? "")).toMatchObject({ code: "ERR_AUDIENCE" });
      expect(ran).toHaveLength(1);
    } finally {
      await server.close();
    }
  });
});
