/**
 * The middleware's `toolCall` option (spec/presentation.md §8.4): after the credential, the
 * request's tool calls are checked against the grant's `tools` and `args`, over real HTTP on
 * 127.0.0.1, through every adapter: Node `http`, the Fetch wrapper, Hono and Fastify.
 */
import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import Fastify from "fastify";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  attenuate,
  checkArguments,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
  type Token,
  type ToolArguments,
  type TrustedRoots,
} from "@allowance/core";
import {
  MemoryReplayCache,
  TOOL_CALL_CODES,
  allowanceMiddleware,
  createAuthorizer,
  present,
  verify,
  withAllowance,
  type AllowanceContext,
  type AuthorizeOptions,
  type ToolCallExtractor,
  type VerifiedChain,
} from "@allowance/verifier";
import { allowancePlugin, allowanceHook } from "@allowance/verifier/fastify";
import { allowance, type AllowanceEnv } from "@allowance/verifier/hono";
import { fetchListener, listen, type RunningServer } from "../../../test/support/http.js";

const AUD = "https://tools.example";
const MAILER_ARGS: ToolArguments[] = [
  {
    tool: "email.send",
    constraints: [
      { name: "to", kind: "emailDomain", domains: ["example.com"] },
      { name: "subject", kind: "maxLength", max: 100, optional: true },
    ],
  },
];
const TO_EXAMPLE = MAILER_ARGS[0]!.constraints[0];

let roots: TrustedRoots;
let mailer: Token;
let mailerKey: KeyPair;
let chain: VerifiedChain;
let bearer: string;

beforeAll(async () => {
  const root = await generateKeyPair();
  const agent = await generateKeyPair();
  mailerKey = await generateKeyPair();
  const parent = mint({
    rootKey: root,
    holder: publicKeyOf(agent),
    grant: { exp: Math.floor(Date.now() / 1000) + 3600, tools: ["email.*", "search.*"] },
  });
  mailer = attenuate(parent, {
    holderKey: agent,
    holder: publicKeyOf(mailerKey),
    grant: { args: MAILER_ARGS, label: "mailer" },
  });
  roots = trustedRoots([root]);
  chain = verify(mailer, { roots });
  bearer = `Allowance ${formatToken(mailer)}`;
});

interface Adapter {
  readonly name: string;
  /** A server with the middleware and an application behind it; `raw` gives Node its rawBody. */
  serve(options: Partial<AuthorizeOptions>, raw?: boolean): Promise<RunningServer>;
}

const base = () => ({
  roots,
  audience: AUD,
  requirePresentation: false,
  replay: new MemoryReplayCache(),
});

function answer(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** Each adapter's application answers the checked calls and the body it read itself. */
const adapters: readonly Adapter[] = [
  {
    name: "Node http",
    serve: (options, raw = true) => {
      const middleware = allowanceMiddleware({ ...base(), ...options });
      return listen((req: IncomingMessage & { allowance?: AllowanceContext }, res) => {
        // As a raw-body parser placed before the middleware would.
        const chunks: Buffer[] = [];
        req.on("data", (chunk: Buffer) => chunks.push(chunk));
        req.on("end", () => {
          const bytes = Buffer.concat(chunks);
          if (raw) Object.assign(req, { rawBody: bytes });
          middleware(req, res, (error) => {
            if (error !== undefined) return answer(res, 500, { error: String(error) });
            answer(res, 200, { toolCalls: req.allowance?.toolCalls, body: bytes.toString() });
          });
        });
      });
    },
  },
  {
    name: "Fetch",
    serve: (options) =>
      listen(
        fetchListener(
          withAllowance(
            async (request, context) =>
              Response.json({ toolCalls: context.toolCalls, body: await request.text() }),
            { ...base(), ...options },
          ),
        ),
      ),
  },
  {
    name: "Hono",
    serve: (options) => {
      const hono = new Hono<AllowanceEnv>();
      hono.onError((error, c) => c.json({ error: String(error) }, 500));
      hono.use("*", allowance({ ...base(), ...options }));
      hono.all("*", async (c) =>
        c.json({ toolCalls: c.get("allowance").toolCalls, body: await c.req.text() }),
      );
      return listen(fetchListener(async (request) => hono.fetch(request)));
    },
  },
  {
    name: "Fastify",
    serve: async (options) => {
      const fastify = Fastify();
      // The application reads the body as text, as it was checked.
      fastify.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) =>
        done(null, body),
      );
      fastify.setErrorHandler((error, _request, reply) => {
        void reply.code(500).send({ error: String(error) });
      });
      await fastify.register(allowancePlugin, { ...base(), ...options });
      fastify.route({
        method: ["GET", "POST"],
        url: "/*",
        handler: (request) => ({
          toolCalls: request.allowance?.toolCalls,
          body: typeof request.body === "string" ? request.body : "",
        }),
      });
      await fastify.listen({ port: 0, host: "127.0.0.1" });
      const address = fastify.server.address();
      if (address === null || typeof address === "string") throw new Error("no port");
      return { url: `http://127.0.0.1:${address.port}`, close: () => fastify.close() };
    },
  },
];

interface Sent {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Record<string, unknown>;
}

/** One request with exactly these bytes and headers (no Content-Length added when chunked). */
function send(
  url: string,
  body: string | Uint8Array | undefined,
  headers: Record<string, string> = {},
  method = "POST",
  path = "/tools",
): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const bytes = typeof body === "string" ? Buffer.from(body) : body;
    const req = httpRequest(
      `${url}${path}`,
      {
        method,
        headers: {
          authorization: bearer,
          "content-type": "application/json",
          ...(bytes === undefined || "transfer-encoding" in headers
            ? {}
            : { "content-length": String(bytes.length) }),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          let body: Record<string, unknown>;
          try {
            body = text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
          } catch {
            body = { text };
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.on("error", reject);
    req.end(bytes);
  });
}

const call = (tool: string, args?: unknown) =>
  JSON.stringify(args === undefined ? { tool } : { tool, arguments: args });

describe.each(adapters)("tool calls through the $name middleware", (adapter) => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await adapter.serve({ toolCall: "json" });
  });
  afterAll(async () => server.close());

  it("runs an allowed call, and the application reads the calls that were checked", async () => {
    const body = call("email.send", { to: "ops@example.com", subject: "green" });
    const sent = await send(server.url, body);
    expect(sent.status).toBe(200);
    expect(sent.body).toEqual({
      toolCalls: [{ tool: "email.send", arguments: { to: "ops@example.com", subject: "green" } }],
      body,
    });
  });

  it("refuses another domain with 403 ARGUMENT_NOT_ALLOWED, naming link, tool, argument and constraint", async () => {
    const sent = await send(server.url, call("email.send", { to: "boss@evil.example" }));
    expect(sent.status).toBe(403);
    expect(sent.body).toEqual({
      type: "urn:allowance:error:ARGUMENT_NOT_ALLOWED",
      title: "Tool call not allowed by the grant",
      status: 403,
      code: "ARGUMENT_NOT_ALLOWED",
      linkIndex: 1,
      detail: "email.send: to has domain evil.example, not one allowed",
      linkId: chain.linkIds[1],
      tool: "email.send",
      pattern: "email.send",
      reason: "value",
      argument: "to",
      constraint: TO_EXAMPLE,
    });
    expect(sent.headers["content-type"]).toBe("application/problem+json");
    expect(sent.headers["www-authenticate"]).toBe(
      `Allowance realm="${AUD}", error="ARGUMENT_NOT_ALLOWED", error_description="email.send: to has domain evil.example, not one allowed"`,
    );
  });

  it("refuses a tool the grant does not allow with 403 TOOL_NOT_ALLOWED, naming the link that states tools", async () => {
    for (const tool of ["deploy", "email", "email.send x", "../email.send", ""]) {
      const sent = await send(server.url, call(tool));
      expect({ tool, status: sent.status, body: sent.body }).toMatchObject({
        tool,
        status: 403,
        body: { code: "TOOL_NOT_ALLOWED", linkIndex: 0, linkId: chain.linkIds[0], tool },
      });
    }
  });

  it("fails closed on absent, null and non-object arguments, and judges a __proto__ member", async () => {
    const cases: readonly (readonly [string, string])[] = [
      [call("email.send"), "missing"],
      [call("email.send", {}), "missing"],
      [call("email.send", null), "arguments"],
      [call("email.send", ["ops@example.com"]), "arguments"],
      [call("email.send", "to=ops@example.com"), "arguments"],
      [call("email.send", { to: "ops@example.com", cc: "x@evil.example" }), "unnamed"],
      [call("email.send", { to: ["ops@example.com", "x@evil.example"] }), "value"],
      [call("email.send", { to: "ops@example.com@evil.example" }), "value"],
      ['{"tool":"email.send","arguments":{"to":"ops@example.com","__proto__":{}}}', "unnamed"],
    ];
    for (const [body, reason] of cases) {
      const sent = await send(server.url, body);
      expect({ body, status: sent.status, reason: sent.body["reason"] }).toEqual({
        body,
        status: 403,
        reason,
      });
    }
    // A tool no entry covers is not constrained by args.
    expect((await send(server.url, call("search.web", { q: "anything" }))).status).toBe(200);
  });

  it("refuses bodies a second parser could read otherwise with 400 MALFORMED_TOOL_CALL: repeated names, bad JSON, bad shapes", async () => {
    const bodies: readonly (string | Uint8Array)[] = [
      '{"tool":"email.send","arguments":{"to":"ops@example.com","to":"x@evil.example"}}',
      '{"tool":"email.send","arguments":{"to":"ops@example.com","t\\u006f":"x@evil.example"}}',
      '{"tool":"search.web","tool":"email.send","arguments":{"to":"x@evil.example"}}',
      '{"tool":"email.send","arguments":{"to":"ops@example.com"}} {"tool":"deploy"}',
      '{"tool":"email.send","arguments":{"to":"ops@example.com"},}',
      '{"tool":"email.send","arguments":{"to":"\\ud800@example.com"}}',
      "\ufeff" + call("search.web"),
      Uint8Array.of(0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d),
      "[".repeat(100) + "]".repeat(100),
      "null",
      "[]",
      '"email.send"',
      '{"tool":7}',
      '{"arguments":{"to":"ops@example.com"}}',
      '{"tool":"email.send","args":{"to":"x@evil.example"}}',
      '{"tool":"search.web","__proto__":{"tool":"email.send"}}',
    ];
    for (const body of bodies) {
      const sent = await send(server.url, body);
      expect({ body, status: sent.status, code: sent.body["code"] }).toEqual({
        body,
        status: 400,
        code: "MALFORMED_TOOL_CALL",
      });
      expect(sent.body["linkIndex"]).toBeNull();
    }
  });

  it("refuses a body past maxBodyBytes with 413 and an encoded body with 415", async () => {
    const big = call("email.send", { to: "ops@example.com", subject: "x".repeat(5 * 1024 * 1024) });
    expect(await send(server.url, big)).toMatchObject({
      status: 413,
      body: { code: "BODY_TOO_LARGE" },
    });
    for (const encoding of ["gzip", "br", "identity, gzip"])
      expect(
        await send(server.url, call("search.web"), { "content-encoding": encoding }),
      ).toMatchObject({ status: 415, body: { code: "UNSUPPORTED_CONTENT_ENCODING" } });
    expect(
      (await send(server.url, call("search.web"), { "content-encoding": "identity" })).status,
    ).toBe(200);
  });

  it("makes no tool call of an empty body, and refuses a bad credential before reading any", async () => {
    expect((await send(server.url, undefined, {}, "GET")).body).toMatchObject({ body: "" });
    const sent = await send(server.url, call("email.send", { to: "x@evil.example" }), {
      authorization: "Allowance alw1_nonsense",
    });
    expect(sent.status).toBe(401);
    expect(String(sent.body["code"])).toMatch(/^ERR_/);
  });

  it("checks a presentation bound to the body, and then the calls in that body", async () => {
    const body = call("email.send", { to: "boss@evil.example" });
    const proof = (text: string) =>
      `Allowance ${present(mailer, mailerKey, { aud: AUD, method: "POST", path: "/tools", body: text })}`;
    expect(
      (await send(server.url, body, { authorization: proof(call("search.web")) })).body["code"],
    ).toBe("ERR_PRESENTATION");
    expect((await send(server.url, body, { authorization: proof(body) })).body).toMatchObject({
      code: "ARGUMENT_NOT_ALLOWED",
      argument: "to",
    });
    const good = call("email.send", { to: "ops@example.com" });
    expect((await send(server.url, good, { authorization: proof(good) })).status).toBe(200);
    // An encoded body is never served, whichever bytes the presentation hashed: the wrappers
    // refuse the binding as such; Node's rawBody is what its raw-body parser made of the body.
    const gzipped = gzipSync(good);
    for (const hashed of [good, gzipped]) {
      const sent = await send(server.url, gzipped, {
        authorization: `Allowance ${present(mailer, mailerKey, { aud: AUD, method: "POST", path: "/tools", body: hashed })}`,
        "content-encoding": "gzip",
      });
      expect(sent.status).not.toBe(200);
      expect(["ERR_PRESENTATION", "UNSUPPORTED_CONTENT_ENCODING"]).toContain(sent.body["code"]);
      if (adapter.name !== "Node http")
        expect({ code: sent.body["code"], detail: sent.body["detail"] }).toMatchObject({
          code: "ERR_PRESENTATION",
          detail: expect.stringContaining("Content-Encoding"),
        });
    }
  });

  it("with an extractor: the tool from the path, a batch refused whole, SyntaxError 400, a wrong answer 500", async () => {
    const extractor: ToolCallExtractor = async (request, body) => {
      if (request.header("x-fail") === "syntax") throw new SyntaxError("not a call of ours");
      if (request.header("x-fail") === "shape") return { name: "email.send" } as never;
      const tool = request.path.slice("/tools/".length);
      if (tool === "batch") return body as { tool: string; arguments?: unknown }[];
      return tool === "" ? undefined : { tool, arguments: body };
    };
    const custom = await adapter.serve({ toolCall: extractor });
    try {
      const at = (path: string, body: string, headers: Record<string, string> = {}) =>
        send(custom.url, body, headers, "POST", path);
      expect(await at("/tools/email.send", '{"to":"ops@example.com"}')).toMatchObject({
        status: 200,
        body: { toolCalls: [{ tool: "email.send", arguments: { to: "ops@example.com" } }] },
      });
      expect(await at("/tools/email.send", '{"to":"x@evil.example"}')).toMatchObject({
        status: 403,
        body: { code: "ARGUMENT_NOT_ALLOWED", argument: "to", linkIndex: 1 },
      });
      const batch = JSON.stringify([
        { tool: "search.web", arguments: { q: "a" } },
        { tool: "email.send", arguments: { to: "x@evil.example" } },
      ]);
      expect(await at("/tools/batch", batch)).toMatchObject({
        status: 403,
        body: { code: "ARGUMENT_NOT_ALLOWED" },
      });
      expect((await at("/tools/", "{}")).body).toMatchObject({ toolCalls: [] });
      expect(await at("/tools/x", "{}", { "x-fail": "syntax" })).toMatchObject({
        status: 400,
        body: { code: "MALFORMED_TOOL_CALL", detail: "not a call of ours" },
      });
      expect((await at("/tools/x", "{}", { "x-fail": "shape" })).status).toBe(500);
    } finally {
      await custom.close();
    }
  });

  it("law: the middleware refuses exactly the calls checkArguments refuses", async () => {
    const address = fc.oneof(
      fc.constantFrom("ops@example.com", "x@evil.example", "a@EXAMPLE.com", "a@example.com."),
      fc.emailAddress(),
      fc.string({ maxLength: 20 }),
    );
    const args = fc.oneof(
      fc.record(
        {
          to: fc.oneof(address, fc.array(address, { maxLength: 3 }), fc.integer()),
          subject: fc.string({ maxLength: 120 }),
        },
        { requiredKeys: [] },
      ),
      fc.dictionary(fc.constantFrom("to", "cc", "To", "subject"), address, { maxKeys: 3 }),
      fc.constantFrom(null, "x", [] as unknown[], 3),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("email.send", "search.web"), args, async (tool, value) => {
        const sent = await send(server.url, call(tool, value));
        const denial = checkArguments(chain.grant.args, tool, value);
        expect({ value, status: sent.status, reason: sent.body["reason"] }).toEqual({
          value,
          status: denial === null ? 200 : 403,
          reason: denial?.reason,
        });
      }),
      { numRuns: 40 },
    );
  });
});

describe("the toolCall option's own arguments", () => {
  it("is checked when the middleware is made: a value that is neither json nor a function is a TypeError", () => {
    for (const toolCall of ["JSON", "mcp", true, 1, null, {}])
      expect(() => createAuthorizer({ ...base(), toolCall: toolCall as "json" })).toThrow(
        TypeError,
      );
    expect(TOOL_CALL_CODES).toContain("ARGUMENT_NOT_ALLOWED");
  });

  it("fails closed in an adapter that gives no request: authorize without a ToolCallSource throws", async () => {
    const authorizer = createAuthorizer({ ...base(), toolCall: "json" });
    await expect(authorizer.authorize(bearer, "POST", "/tools")).rejects.toThrow(
      /needs the request/,
    );
  });

  it("Fastify: the onRequest hook refuses toolCall, which needs the body (the plugin reads it)", () => {
    expect(() => allowanceHook({ ...base(), toolCall: "json" })).toThrow(/allowancePlugin/);
  });

  it("Node: without req.rawBody a request with a body is refused, never checked as empty", async () => {
    const server = await adapters[0]!.serve({ toolCall: "json" }, false);
    try {
      const body = call("email.send", { to: "x@evil.example" });
      expect(await send(server.url, body)).toMatchObject({
        status: 400,
        body: { code: "MALFORMED_TOOL_CALL" },
      });
      expect(await send(server.url, body, { "transfer-encoding": "chunked" })).toMatchObject({
        status: 400,
      });
      expect((await send(server.url, undefined, {}, "GET")).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
