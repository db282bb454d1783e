import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attenuate, formatToken, generateKeyPair, mint, publicKeyOf, trustedRoots, type KeyPair, type Token } from "@allowance/core";
import { MemoryReplayCache, MemoryRevocationStore, allowanceMiddleware, present, withAllowance, type AllowanceContext } from "@allowance/verifier";
import { fetchListener, listen, type RunningServer } from "../../../test/support/http.js";

const AUD = "https://tools.example/search";
let token: Token;
let worker: KeyPair;
let roots: ReturnType<typeof trustedRoots>;
let revoked: string;
const revocations = new MemoryRevocationStore();
const servers: Record<"node" | "fetch" | "bearer", RunningServer> = {} as Record<"node" | "fetch" | "bearer", RunningServer>;

beforeAll(async () => {
  const root = await generateKeyPair();
  const agent = await generateKeyPair();
  worker = await generateKeyPair();
  const now = Math.floor(Date.now() / 1000);
  token = attenuate(mint({ rootKey: root, holder: publicKeyOf(agent), grant: { exp: now + 3600, aud: [AUD], usdMicros: 5 } }), {
    holderKey: agent,
    holder: publicKeyOf(worker),
    grant: { usdMicros: 3, label: "worker" },
  });
  roots = trustedRoots([root]);
  const sibling = attenuate({ rootKid: token.rootKid, links: token.links.slice(0, 1) }, { holderKey: agent, holder: publicKeyOf(worker), grant: { usdMicros: 1 } });
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
      res.end(JSON.stringify({ usdMicros: context.chain.grant.usdMicros, label: context.chain.grant.label, path: context.presentation?.path ?? null }));
    });
  });
  const handler = (_request: Request, context: AllowanceContext) => Response.json({ usdMicros: context.chain.grant.usdMicros, label: context.chain.grant.label });
  servers.fetch = await listen(fetchListener(withAllowance(handler, options)));
  servers.bearer = await listen(fetchListener(withAllowance(handler, { ...options, requirePresentation: false })));
});

afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.close()));
});

const call = (server: RunningServer, authorization?: string, path = "/search", method = "POST") =>
  fetch(server.url + path, { method, headers: authorization === undefined ? {} : { authorization } });

describe.each(["node", "fetch"] as const)("the %s middleware", (kind) => {
  it("passes a request with a valid presentation to the handler with its verified grant", async () => {
    const response = await call(servers[kind], `Allowance ${present(token, worker, { aud: AUD, method: "POST", path: "/search" })}`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ usdMicros: 3, label: "worker" });
  });

  it("answers 401 with a problem body and WWW-Authenticate naming the code when credentials are missing", async () => {
    const response = await call(servers[kind]);
    expect(response.status).toBe(401);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    expect(response.headers.get("www-authenticate")).toMatch(/^Allowance realm="https:\/\/tools.example\/search", error="ERR_NO_CREDENTIALS"/);
    expect(await response.json()).toMatchObject({ status: 401, code: "ERR_NO_CREDENTIALS", type: "urn:allowance:error:ERR_NO_CREDENTIALS" });
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
    const response = await call(servers[kind], `Allowance ${present(token, worker, { aud: "https://tools.example/email" })}`);
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ code: "ERR_AUDIENCE" });
  });

  it("refuses a presentation bound to another path", async () => {
    const response = await call(servers[kind], `Allowance ${present(token, worker, { aud: AUD, path: "/admin" })}`);
    expect(response.status).toBe(401);
  });

  it("binds the raw request path, without URL normalisation", async () => {
    const response = await call(servers[kind], `Allowance ${present(token, worker, { aud: AUD, path: "/search" })}`, "//evil.example/search");
    expect(response.status).toBe(401);
  });

  it("refuses other schemes and garbage with a typed code", async () => {
    for (const header of ["Bearer abc", "Allowance", "Allowance alwp1_!!!", "Allowance alwp1_" + "A".repeat(15000)]) {
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
