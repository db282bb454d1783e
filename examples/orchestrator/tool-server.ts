/**
 * The tools the sub-agents call, as an HTTP service on 127.0.0.1 that trusts nothing but the root
 * key: every request must carry a presentation (`Authorization: Allowance alwp1_…`) of a token
 * whose chain verifies against that key, made by the token's holder for this audience, method,
 * path and body, and used once (spec/presentation.md §3.4, §8). Then the grant must allow the tool
 * (`tools`) and its arguments (`args`, spec/arguments.md §6), checked on the very bytes the
 * presentation binds and the tool reads.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { checkArgumentsJson, type TrustedRoots } from "@allowance/core";
import { toolAllowed } from "@allowance/core/format";
import {
  MemoryReplayCache,
  allowanceMiddleware,
  type AllowanceContext,
  type ProblemBody,
} from "@allowance/verifier";
import { close } from "./mock-provider.js";

/** The name presentations must be made out to, and grants' `aud` may list. */
export const TOOLS_AUDIENCE = "https://tools.example";

/** Bodies are small JSON objects; anything longer is refused before it is parsed. */
const MAX_BODY_BYTES = 64 * 1024;

/** One request, as the server saw it. */
export interface ToolRequest {
  readonly path: string;
  readonly status: number;
  /** The label of the presenting link, when the presentation verified. */
  readonly holder?: string;
  /** The error code of a refusal by the tool check (the middleware's are in its answer only). */
  readonly code?: string;
  /** The arguments received, when a body was read. */
  readonly arguments?: unknown;
}

export interface ToolServer {
  /** Base URL: tools are `POST <url>/tools/<name>`. */
  readonly url: string;
  readonly requests: readonly ToolRequest[];
  /** The mail sent, in order. */
  readonly outbox: readonly { readonly to: string; readonly subject: string }[];
  close(): Promise<void>;
}

type Tool = (args: Record<string, unknown>, server: { sent: number }) => unknown;

/** Two stand-in tools with fixed answers. */
const TOOLS: Readonly<Record<string, Tool>> = {
  search_web: (args) => {
    const query = String(args.query ?? "").toLowerCase();
    return {
      results: CORPUS.filter((doc) =>
        query.split(/\W+/).some((word) => word.length > 3 && doc.text.includes(word)),
      ).map(({ title, url }) => ({ title, url })),
    };
  },
  send_email: (args, server) => ({ sent: true, to: args.to, id: `mail_${++server.sent}` }),
};

const CORPUS = [
  {
    title: "MCP servers must publish resource metadata (RFC 9728)",
    url: "https://docs.example/mcp-auth",
    text: "mcp authorization servers publish protected resource metadata",
  },
  {
    title: "DPoP (RFC 9449) binds a token to the client's key",
    url: "https://docs.example/dpop",
    text: "authorization proof of possession dpop",
  },
  {
    title: "Streamable HTTP replaces HTTP+SSE",
    url: "https://docs.example/mcp-http",
    text: "mcp transports streamable http",
  },
] as const;

export async function startToolServer(roots: TrustedRoots): Promise<ToolServer> {
  const requests: ToolRequest[] = [];
  const outbox: { to: string; subject: string }[] = [];
  const state = { sent: 0 };
  // The middleware verifies the chain and the presentation; a refusal is answered by it (401/403
  // with `WWW-Authenticate: Allowance …`), and `next` runs only for a verified request. Every
  // presentation must bind the body: one captured in transit cannot carry other arguments.
  const guard = allowanceMiddleware({
    roots,
    audience: TOOLS_AUDIENCE,
    replay: new MemoryReplayCache(),
    requireBodyBinding: true,
  });
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0] as string;
    let recorded = false;
    const record = (entry: ToolRequest) => {
      recorded = true;
      requests.push(entry);
    };
    // A request the middleware answered itself: a refusal, with its code in the problem body.
    res.on("finish", () => {
      if (!recorded) requests.push({ path, status: res.statusCode });
    });
    // The body is read first, as a raw-body parser would: the middleware checks the binding on
    // `req.rawBody`, and the tool gets these same bytes.
    readBody(req).then(
      (body) => {
        if (body === undefined) {
          problem(res, 413, "BODY_TOO_LARGE", `a body is at most ${MAX_BODY_BYTES} bytes`);
          return record({ path, status: 413, code: "BODY_TOO_LARGE" });
        }
        const request: IncomingMessage & { rawBody: Buffer; allowance?: AllowanceContext } =
          Object.assign(req, { rawBody: body });
        guard(request, res, (error) => {
          if (error !== undefined) return problem(res, 500, "ERR_INTERNAL", "the check failed");
          const { allowance } = request;
          if (allowance === undefined) return problem(res, 500, "ERR_INTERNAL", "no context");
          record(serve(allowance, req.method, path, body, res));
        });
      },
      () => problem(res, 400, "BAD_REQUEST", "the body could not be read"),
    );
  });

  function serve(
    { chain }: AllowanceContext,
    method: string | undefined,
    path: string,
    body: Buffer,
    res: ServerResponse,
  ): ToolRequest {
    const holder = chain.grant.label ?? "";
    const name = /^\/tools\/([a-z_]+)$/.exec(path)?.[1];
    const tool = name === undefined ? undefined : TOOLS[name];
    if (name === undefined || tool === undefined || method !== "POST") {
      problem(res, 404, "NOT_FOUND", "no such tool");
      return { path, status: 404, holder };
    }
    if (!toolAllowed(chain.grant.tools, name)) {
      problem(res, 403, "TOOL_NOT_ALLOWED", `the grant does not allow the tool ${name}`);
      return { path, status: 403, holder, code: "TOOL_NOT_ALLOWED" };
    }
    const refused = checkArgumentsJson(chain.grant.args, name, body);
    const args = refused === null ? parseJson(body) : undefined;
    if (refused !== null || typeof args !== "object" || args === null || Array.isArray(args)) {
      const detail = refused?.message ?? "the arguments must be a JSON object";
      problem(res, 403, "ARGUMENT_NOT_ALLOWED", detail);
      return { path, status: 403, holder, code: "ARGUMENT_NOT_ALLOWED" };
    }
    const record = args as Record<string, unknown>;
    if (name === "send_email")
      outbox.push({ to: String(record.to), subject: String(record.subject) });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(tool(record, state)));
    return { path, status: 200, holder, arguments: args };
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests, outbox, close: () => close(server) };
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
}

function problem(res: ServerResponse, status: number, code: string, detail: string): void {
  const body: Omit<ProblemBody, "code" | "linkIndex"> & { code: string } = {
    type: `urn:allowance:error:${code}`,
    title: status === 403 ? "Not allowed by the grant" : "Refused",
    status,
    code,
    detail,
  };
  res.writeHead(status, { "content-type": "application/problem+json" });
  res.end(JSON.stringify(body));
}
