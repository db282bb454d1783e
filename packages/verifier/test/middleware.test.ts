import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  attenuate,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
  type Token,
} from "@allowance/core";
import {
  MemoryReplayCache,
  MemoryRevocationStore,
  allowanceMiddleware,
  present,
  withAllowance,
  type AllowanceContext,
} from "@allowance/verifier";
import { fetchListener, listen, type RunningServer } from "../../../test/support/http.js";

const AUD = "https://tools.example/search";
let token: Token;
let worker: KeyPair;
let roots: ReturnType<typeof trustedRoots>;
let revoked: string;
const revocations = new MemoryRevocationStore();
const servers: Record<"node" | "fetch" | "bearer", RunningServer> = {} as Record<
  "node" | "fetch" | "bearer",
  RunningServer
>;

beforeAll(async () => {
  const root = await generateKeyPair();
  const agent = await generateKeyPair();
  worker = await generateKeyPair();
  const now = Math.floor(Date.now() / 1000);
  token = attenuate(
    mint({
      rootKey: root,
      holder: publicKeyOf(agent),
      grant: { exp: now + 3600, aud: [AUD], usdMicros: 5 },
    }),
    {
      holderKey: agent,
      holder: publicKeyOf(worker),
      grant: { usdMicros: 3, label: "worker" },
    },
  );
  roots = trustedRoots([root]);
  const sibling = attenuate(
    { rootKid: token.rootKid, links: token.links.slice(0, 1) },
    { holderKey: agent, holder: publicKeyOf(worker), grant: { usdMicros: 1 } },
  );
  revoked = formatToken(sibling);
  const options = { roots, audience: AUD, revocations, replay: new MemoryReplayCache() };
  const node = allowanceMiddleware(options);
  servers.node = await listen((req, res) => {
    node(req, res, (error?: unknown) => {
      if (error !== undefined) {
        res.writeHead(500);
        res.end();
        return;
      }
      const context = (req as typeof req & { allowance: AllowanceContext }).allowance;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          usdMicros: context.chain.grant.usdMicros,
          label: context.chain.grant.label,
          path: context.presentation?.path ?? null,
        }),
      );
    });
  });
  const handler = (_request: Request, context: AllowanceContext) =>
    Response.json({ usdMicros: context.chain.grant.usdMicros, label: context.chain.grant.label });
  servers.fetch = await listen(fetchListener(withAllowance(handler, options)));
  servers.bearer = await listen(
    fetchListener(withAllowance(handler, { ...options, requirePresentation: false })),
  );
});

afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.close()));
});

const call = (server: RunningServer, authorization?: string, path = "/search", method = "POST") =>
  fetch(server.url + path, {
    method,
    headers: authorization === undefined ? {} : { authorization },
  });

describe.each(["node", "fetch"] as const)("the %s middleware", (kind) => {
  it("passes a request with a valid presentation to the handler with its verified grant", async () => {
    const response = await call(
      servers[kind],
      `Allowance ${present(token, worker, { aud: AUD, method: "POST", path: "/search" })}`,
    );
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ usdMicros: 3, label: "worker" });
  });

  it("answers 401 with a problem body and WWW-Authenticate naming the code when credentials are missing", async () => {
    const response = await call(servers[kind]);
    expect(response.status).toBe(401);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    expect(response.headers.get("www-authenticate")).toMatch(
      /^Allowance realm="https:\/\/tools.example\/search", error="ERR_NO_CREDENTIALS"/,
    );
    expect(await response.json()).toMatchObject({
      status: 401,
      code: "ERR_NO_CREDENTIALS",
      type: "urn:allowance:error:ERR_NO_CREDENTIALS",
    });
  });

  it("refuses a replayed presentation", async () => {
    const presentation = present(token, worker, { aud: AUD });
    expect((await call(servers[kind], `Allowance ${presentation}`)).status).toBe(200);
    const replay = await call(servers[kind], `Allowance ${presentation}`);
    expect(replay.status).toBe(401);
    expect((await replay.json()) as { code: string }).toMatchObject({ code: "ERR_REPLAY" });
  });

  it("refuses a bare (possibly stolen) token when presentations are required", async () => {
    const response = await call(servers[kind], `Allowance ${formatToken(token)}`);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: "ERR_PRESENTATION" });
  });

  it("answers 403 for a presentation made for another endpoint", async () => {
    const response = await call(
      servers[kind],
      `Allowance ${present(token, worker, { aud: "https://tools.example/email" })}`,
    );
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ code: "ERR_AUDIENCE" });
  });

  it("refuses a presentation bound to another path", async () => {
    const response = await call(
      servers[kind],
      `Allowance ${present(token, worker, { aud: AUD, path: "/admin" })}`,
    );
    expect(response.status).toBe(401);
  });

  it("binds the raw request path, without URL normalisation", async () => {
    const response = await call(
      servers[kind],
      `Allowance ${present(token, worker, { aud: AUD, path: "/search" })}`,
      "//evil.example/search",
    );
    expect(response.status).toBe(401);
  });

  it("refuses other schemes and garbage with a typed code", async () => {
    for (const header of [
      "Bearer abc",
      "Allowance",
      "Allowance alwp1_!!!",
      "Allowance alwp1_" + "A".repeat(15000),
    ]) {
      const response = await call(servers[kind], header);
      expect(response.status).toBe(401);
      expect(((await response.json()) as { code: string }).code).toMatch(/^ERR_/);
    }
  });
});

describe("a middleware that accepts bare tokens", () => {
  it("accepts the token itself", async () => {
    const response = await call(servers.bearer, `Allowance ${formatToken(token)}`);
    expect(response.status).toBe(200);
  });

  it("refuses a revoked token", async () => {
    const { verify } = await import("@allowance/verifier");
    const ids = verify(revoked, { roots }).linkIds;
    revocations.revoke(ids[1] as string);
    const response = await call(servers.bearer, `Allowance ${revoked}`);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: "ERR_REVOKED", linkIndex: 1 });
  });
});

/** A GET with the request-target exactly as given: fetch and the WHATWG URL would resolve `..` and `%2e`. */
function rawGet(
  server: RunningServer,
  target: string,
  authorization: string,
): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: hostname, port, path: target, method: "GET", headers: { authorization } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("the node middleware compares the path exactly as the client sent it (spec/presentation.md §8.1)", () => {
  // Targets a URL parser would rewrite: dot segments, encoded dot segments, an empty segment.
  const targets = [
    "/a/../search",
    "/a/%2e%2e/search",
    "/a/%2E%2E/search",
    "//search",
    "/search/./",
    "/search/%2e",
  ];
  let server: RunningServer;
  beforeAll(async () => {
    const node = allowanceMiddleware({ roots, audience: AUD, replay: new MemoryReplayCache() });
    server = await listen((req, res) => {
      node(req, res, (error?: unknown) => {
        res.writeHead(error === undefined ? 200 : 500, { "content-type": "application/json" });
        // What the application (its router) sees: the same raw target the presentation was checked against.
        res.end(
          JSON.stringify({
            url: req.url,
            bound:
              (req as typeof req & { allowance?: AllowanceContext }).allowance?.presentation
                ?.path ?? null,
          }),
        );
      });
    });
  });
  afterAll(() => server.close());

  it.each(targets)(
    "serves %s only to a presentation bound to that very path, never to its normalised form",
    async (target) => {
      const normalised = new URL(target, "http://127.0.0.1").pathname;
      expect(normalised).not.toBe(target);
      // Bound to the target as sent: served, and the application sees the same string.
      const exact = await rawGet(
        server,
        target,
        `Allowance ${present(token, worker, { aud: AUD, method: "GET", path: target })}`,
      );
      expect(exact.status).toBe(200);
      expect(JSON.parse(exact.body)).toEqual({ url: target, bound: target });
      // Bound to the normalised path, sent as the raw target: refused, though a normaliser would have called them equal.
      const toNormalised = await rawGet(
        server,
        target,
        `Allowance ${present(token, worker, { aud: AUD, method: "GET", path: normalised })}`,
      );
      expect(toNormalised.status).toBe(401);
      expect(JSON.parse(toNormalised.body)).toMatchObject({ code: "ERR_PRESENTATION" });
      // Bound to the raw target, sent to the normalised path: refused too.
      const fromRaw = await rawGet(
        server,
        normalised,
        `Allowance ${present(token, worker, { aud: AUD, method: "GET", path: target })}`,
      );
      expect(fromRaw.status).toBe(401);
      expect(JSON.parse(fromRaw.body)).toMatchObject({ code: "ERR_PRESENTATION" });
    },
  );

  it("compares the path without the query, and an absolute-form target matches no bound path", async () => {
    const withQuery = await rawGet(
      server,
      "/a/../search?x=1",
      `Allowance ${present(token, worker, { aud: AUD, path: "/a/../search" })}`,
    );
    expect(withQuery.status).toBe(200);
    const absolute = await rawGet(
      server,
      `${server.url}/search`,
      `Allowance ${present(token, worker, { aud: AUD, path: "/search" })}`,
    );
    expect(absolute.status).toBe(401);
  });
});
