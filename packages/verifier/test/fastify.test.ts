/**
 * `@allowance/verifier/fastify`, run by Fastify itself: `inject` and a real listen on 127.0.0.1.
 * The handler runs only when authorized, and the body of a refused request is never parsed.
 */
import { request as httpRequest } from "node:http";
import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  attenuate,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
  type Token,
  type TrustedRoots,
} from "@allowance/core";
import {
  MemoryReplayCache,
  MemoryRevocationStore,
  present,
  verify,
  type AuthorizeOptions,
  type ReplayCache,
} from "@allowance/verifier";
import { allowanceHook, allowancePlugin } from "@allowance/verifier/fastify";

const AUD = "https://tools.example/search";
const SECOND = 1000;
let token: Token;
let worker: KeyPair;
let agent: KeyPair;
let roots: TrustedRoots;
let expired: Token;

beforeAll(async () => {
  const root = await generateKeyPair();
  agent = await generateKeyPair();
  worker = await generateKeyPair();
  const nowSeconds = Math.floor(Date.now() / SECOND);
  const parent = mint({
    rootKey: root,
    holder: publicKeyOf(agent),
    grant: { exp: nowSeconds + 3600, aud: [AUD, "https://tools.example/email"], usdMicros: 5 },
  });
  token = attenuate(parent, {
    holderKey: agent,
    holder: publicKeyOf(worker),
    grant: { usdMicros: 3, label: "worker" },
  });
  expired = attenuate(parent, {
    holderKey: agent,
    holder: publicKeyOf(worker),
    grant: { exp: nowSeconds - 600 },
  });
  roots = trustedRoots([root]);
});

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

interface Reached {
  usdMicros: number | undefined;
  path: string | null;
  body: unknown;
}

/** An app with the plugin on the root, a guarded route beside it, and a body parser that counts. */
async function app(options: Partial<AuthorizeOptions> = {}) {
  const reached: Reached[] = [];
  const parsed: string[] = [];
  const fastify = Fastify();
  apps.push(fastify);
  fastify.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    parsed.push(body as string);
    done(null, JSON.parse(body as string) as unknown);
  });
  await fastify.register(allowancePlugin, {
    roots,
    audience: AUD,
    replay: new MemoryReplayCache(),
    ...options,
  });
  // Declared beside the plugin, not inside it: still guarded (the plugin is not encapsulated).
  fastify.route({
    method: ["GET", "POST"],
    url: "/search/*",
    handler: (request) => {
      const context = request.allowance;
      reached.push({
        usdMicros: context?.chain.grant.usdMicros,
        path: context?.presentation?.path ?? null,
        body: request.body ?? null,
      });
      return { usdMicros: context?.chain.grant.usdMicros, label: context?.chain.grant.label };
    },
  });
  const send = (authorization?: string, url = "/search/web", method: "GET" | "POST" = "POST") =>
    fastify.inject({
      method,
      url,
      headers: {
        ...(authorization === undefined ? {} : { authorization }),
        ...(method === "POST" ? { "content-type": "application/json" } : {}),
      },
      ...(method === "POST" ? { payload: '{"query":"weather"}' } : {}),
    });
  return { fastify, reached, parsed, send };
}

const presentation = (options: Parameters<typeof present>[2] = { aud: AUD }) =>
  `Allowance ${present(token, worker, options)}`;

describe("the Fastify plugin", () => {
  it("passes a request with a valid bound presentation; the handler reads request.allowance", async () => {
    const { send, reached } = await app();
    const response = await send(presentation({ aud: AUD, method: "POST", path: "/search/web" }));
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ usdMicros: 3, label: "worker" });
    expect(reached).toEqual([{ usdMicros: 3, path: "/search/web", body: { query: "weather" } }]);
  });

  it("answers 401 with the problem body and challenge, before the body is parsed", async () => {
    const { send, reached, parsed } = await app();
    const response = await send();
    expect(response.statusCode).toBe(401);
    expect(response.headers["content-type"]).toBe("application/problem+json");
    expect(response.headers["cache-control"]).toBe("no-store");
    expect(response.headers["www-authenticate"]).toMatch(
      /^Allowance realm="https:\/\/tools.example\/search", error="ERR_NO_CREDENTIALS"/,
    );
    expect(response.json()).toMatchObject({ status: 401, code: "ERR_NO_CREDENTIALS" });
    expect(reached).toEqual([]);
    expect(parsed).toEqual([]);
  });

  it("serves a presentation once", async () => {
    const { send, reached } = await app();
    const once = presentation();
    expect((await send(once)).statusCode).toBe(200);
    const replay = await send(once);
    expect(replay.statusCode).toBe(401);
    expect(replay.json()).toMatchObject({ code: "ERR_REPLAY" });
    expect(reached).toHaveLength(1);
  });

  it("refuses a bare token, another path, method or endpoint, an old, expired, revoked or misheld one", async () => {
    const revocations = new MemoryRevocationStore();
    const { send, reached, parsed } = await app({ revocations });
    const cases: [string, number, string][] = [
      [`Allowance ${formatToken(token)}`, 401, "ERR_PRESENTATION"],
      [presentation({ aud: AUD, path: "/search/admin" }), 401, "ERR_PRESENTATION"],
      [presentation({ aud: AUD, method: "GET" }), 401, "ERR_PRESENTATION"],
      [presentation({ aud: "https://tools.example/email" }), 403, "ERR_AUDIENCE"],
      [`Allowance ${present(expired, worker, { aud: AUD })}`, 401, "ERR_EXPIRED"],
      [`Allowance ${present(token, agent, { aud: AUD })}`, 401, "ERR_PRESENTATION"],
      [
        presentation({ aud: AUD, now: () => new Date(Date.now() - 600 * SECOND).getTime() }),
        401,
        "ERR_STALE",
      ],
    ];
    for (const [header, status, code] of cases) {
      const response = await send(header);
      expect({ status: response.statusCode, body: response.json() }).toMatchObject({
        status,
        body: { code },
      });
    }
    revocations.revoke(verify(token, { roots }).linkIds[1] as string);
    const revoked = await send(presentation());
    expect(revoked.statusCode).toBe(401);
    expect(revoked.json()).toMatchObject({ code: "ERR_REVOKED", linkIndex: 1 });
    expect(reached).toEqual([]);
    expect(parsed).toEqual([]);
  });

  it("refuses hostile Authorization headers with a typed code", async () => {
    const { send, reached } = await app();
    const valid = present(token, worker, { aud: AUD });
    for (const header of [
      "Bearer abc",
      "Allowance",
      "Allowance alwp1_!!!",
      "Allowance alw1_",
      `Allowance ${valid}, Allowance ${valid}`,
      `Allowance ${valid} extra`,
      "Allowance alwp1_" + "A".repeat(30_000),
      "Allowance\t" + valid,
    ]) {
      const response = await send(header);
      expect(response.statusCode).toBe(401);
      expect((response.json() as { code: string }).code).toMatch(/^ERR_/);
    }
    expect(reached).toEqual([]);
    expect((await send(`ALLOWANCE ${valid}`)).statusCode).toBe(200);
  });

  it("answers 500 without running the handler when the replay cache fails", async () => {
    const failing: ReplayCache = {
      claim: () => Promise.reject(new Error("replay store unreachable")),
    };
    const { send, reached } = await app({ replay: failing });
    const response = await send(presentation());
    expect(response.statusCode).toBe(500);
    expect(reached).toEqual([]);
  });

  it("refuses bad options when registered", async () => {
    const fastify = Fastify();
    apps.push(fastify);
    await expect(
      fastify.register(allowancePlugin, { roots, audience: AUD, maxAgeSeconds: -1 }).ready(),
    ).rejects.toThrow(RangeError);
    expect(() => allowanceHook({ roots, audience: undefined as unknown as string })).toThrow(
      TypeError,
    );
  });
});

describe("the Fastify hook on one route", () => {
  it("guards that route and leaves its neighbours open", async () => {
    const fastify = Fastify();
    apps.push(fastify);
    const hook = allowanceHook({ roots, audience: AUD, replay: new MemoryReplayCache() });
    fastify.get("/search", { onRequest: hook }, (request) => ({
      label: request.allowance?.chain.grant.label,
    }));
    fastify.get("/health", () => "ok");
    expect((await fastify.inject({ url: "/search" })).statusCode).toBe(401);
    expect((await fastify.inject({ url: "/health" })).body).toBe("ok");
    const ok = await fastify.inject({
      url: "/search",
      headers: { authorization: presentation({ aud: AUD, method: "GET", path: "/search" }) },
    });
    expect(ok.json()).toEqual({ label: "worker" });
  });
});

describe("the Fastify plugin over a real socket", () => {
  /** A request with the target exactly as given (fetch would resolve dot segments). */
  function raw(url: string, target: string, authorization: string) {
    const { hostname, port } = new URL(url);
    return new Promise<{ status: number; body: string }>((resolve, reject) => {
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

  it("checks the raw request-target, never its normalised form (spec/presentation.md §8.1)", async () => {
    const { fastify, reached } = await app();
    const url = await fastify.listen({ port: 0, host: "127.0.0.1" });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const target = "/search/a/../web";
    const toNormalised = await raw(
      url,
      target,
      presentation({ aud: AUD, method: "GET", path: "/search/web" }),
    );
    expect(toNormalised.status).toBe(401);
    expect(JSON.parse(toNormalised.body)).toMatchObject({ code: "ERR_PRESENTATION" });
    const exact = await raw(
      url,
      `${target}?q=1`,
      presentation({ aud: AUD, method: "GET", path: target }),
    );
    expect(exact.status).toBe(200);
    expect(reached).toEqual([{ usdMicros: 3, path: target, body: null }]);
    const viaFetch = await fetch(`${url}/search/web`, {
      method: "POST",
      headers: {
        authorization: presentation({ aud: AUD, method: "POST", path: "/search/web" }),
        "content-type": "application/json",
      },
      body: "{}",
    });
    expect(viaFetch.status).toBe(200);
  });
});
