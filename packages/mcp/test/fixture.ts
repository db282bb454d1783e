/**
 * An MCP server built with the official SDK (McpServer over StreamableHTTPServerTransport,
 * stateless), guarded by `createMcpGuard`, listening on 127.0.0.1; and the tokens to call it with.
 * Every tool body records that it ran, so a test can assert that a refused call never executed.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import {
  attenuate,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
  type Token,
  type TrustedRoots,
} from "@allowance/core";
import { MemoryRevocationStore } from "@allowance/verifier";
import { createMcpGuard, type McpGuard, type McpGuardOptions } from "@allowance/mcp";
import { listen, type RunningServer } from "../../../test/support/http.js";

export const TOOLS = ["search.web", "search.news", "email.send", "weather"] as const;

export interface Ran {
  readonly tool: string;
  readonly clientId: string | undefined;
  readonly scopes: readonly string[] | undefined;
}

export interface Fixture {
  readonly root: KeyPair;
  readonly agent: KeyPair;
  readonly worker: KeyPair;
  readonly stranger: KeyPair;
  readonly roots: TrustedRoots;
  /** Held by `worker`: tools search.web and weather only. */
  readonly token: Token;
  /** The agent's own grant (search.*, weather, email.send), held by `agent`. */
  readonly parent: Token;
  readonly revocations: MemoryRevocationStore;
  readonly server: RunningServer;
  /** `http://127.0.0.1:<port>/mcp` */
  readonly resource: string;
  readonly guard: McpGuard;
  /** Tool bodies that ran, in order. */
  readonly ran: Ran[];
  /** Requests that reached the SDK transport (method and path). */
  readonly served: string[];
  /** The guard's clock: epoch milliseconds, settable by a test. */
  clockMs: number | (() => unknown);
  close(): Promise<void>;
}

/** A fresh SDK server per request (the SDK's stateless pattern), with every tool recording its runs. */
function mcpServer(ran: Ran[]): McpServer {
  const server = new McpServer({ name: "guarded-tools", version: "1.0.0" });
  for (const tool of TOOLS) {
    server.registerTool(tool, { description: `the ${tool} tool` }, (extra) => {
      const auth: AuthInfo | undefined = extra.authInfo;
      ran.push({ tool, clientId: auth?.clientId, scopes: auth?.scopes });
      return { content: [{ type: "text", text: `${tool} ran for ${auth?.clientId ?? "nobody"}` }] };
    });
  }
  return server;
}

/** Serves authorized requests with the SDK's Node transport, as its stateless example does. */
export function nodeServe(ran: Ran[], served: string[]) {
  return serveNode(
    () => mcpServer(ran),
    (req) => served.push(`${req.method ?? "?"} ${req.url ?? "?"}`),
  );
}

/**
 * The guard's Node handler for a stateless SDK server: each request is recorded, then a POST is
 * served by a server `make` builds for it over a transport of its own; anything else is 405.
 */
export function serveNode(
  make: () => Pick<McpServer, "connect" | "close">,
  record: (req: IncomingMessage) => void,
) {
  return async (req: IncomingMessage & { auth: AuthInfo }, res: ServerResponse, body: unknown) => {
    record(req);
    if (req.method !== "POST") {
      res.writeHead(405, { allow: "POST" }).end();
      return;
    }
    const server = make();
    const transport = new StreamableHTTPServerTransport({});
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  };
}

export async function startFixture(options: Partial<McpGuardOptions> = {}): Promise<Fixture> {
  const root = await generateKeyPair();
  const agent = await generateKeyPair();
  const worker = await generateKeyPair();
  const stranger = await generateKeyPair();
  const roots = trustedRoots([root]);
  const revocations = new MemoryRevocationStore();
  const ran: Ran[] = [];
  const served: string[] = [];
  let listener: RequestListener = (_req, res) => res.writeHead(503).end();
  const server = await listen((req, res) => listener(req, res));
  const resource = `${server.url}/mcp`;
  const nowSeconds = Math.floor(Date.now() / 1000);
  const parent = mint({
    rootKey: root,
    holder: publicKeyOf(agent),
    grant: {
      exp: nowSeconds + 3600,
      aud: [resource],
      tools: ["search.*", "weather", "email.send"],
      label: "orchestrator",
    },
  });
  const token = attenuate(parent, {
    holderKey: agent,
    holder: publicKeyOf(worker),
    grant: { tools: ["search.web", "weather"], label: "worker" },
  });
  const fixture: Fixture = {
    root,
    agent,
    worker,
    stranger,
    roots,
    token,
    parent,
    revocations,
    server,
    resource,
    ran,
    served,
    clockMs: Date.now(),
    guard: undefined as unknown as McpGuard,
    close: () => server.close(),
  };
  const guard = createMcpGuard({
    resource,
    authorizationServers: ["https://grants.example"],
    roots,
    revocations,
    resourceName: "guarded tools",
    now: () =>
      (typeof fixture.clockMs === "function" ? fixture.clockMs() : fixture.clockMs) as number,
    ...options,
  });
  (fixture as { guard: McpGuard }).guard = guard;
  listener = guard.nodeListener(nodeServe(ran, served));
  return fixture;
}
