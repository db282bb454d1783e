/** `@allowance/verifier/hono`, run by Hono itself (`app.request`): the handler runs only when authorized. */
import { Hono } from "hono";
import { beforeAll, describe, expect, it } from "vitest";
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
  type ReplayCache,
} from "@allowance/verifier";
import { allowance, type AllowanceEnv } from "@allowance/verifier/hono";

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

/** An app whose one route counts the calls that reached it. */
function app(options: Partial<Parameters<typeof allowance>[0]> = {}) {
  const reached: { usdMicros?: number | undefined; path: string | null }[] = [];
  const errors: unknown[] = [];
  const hono = new Hono<AllowanceEnv>();
  hono.onError((error, c) => {
    errors.push(error);
    return c.text("server error", 500);
  });
  hono.use(
    "/search/*",
    allowance({ roots, audience: AUD, replay: new MemoryReplayCache(), ...options }),
  );
  hono.all("/search/*", (c) => {
    const context = c.get("allowance");
    reached.push({
      usdMicros: context.chain.grant.usdMicros,
      path: context.presentation?.path ?? null,
    });
    return c.json({ usdMicros: context.chain.grant.usdMicros, label: context.chain.grant.label });
  });
  hono.get("/public", (c) => c.text("open"));
  const send = (authorization?: string, path = "/search/web", method = "POST") =>
    hono.request(`http://tools.example${path}`, {
      method,
      headers: authorization === undefined ? {} : { authorization },
    });
  return { hono, reached, errors, send };
}

const presentation = (options: Parameters<typeof present>[2] = { aud: AUD }) =>
  `Allowance ${present(token, worker, options)}`;

describe("the Hono middleware", () => {
  it("passes a request with a valid bound presentation, and the handler reads c.get('allowance')", async () => {
    const { send, reached } = app();
    const response = await send(presentation({ aud: AUD, method: "POST", path: "/search/web" }));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ usdMicros: 3, label: "worker" });
    expect(reached).toEqual([{ usdMicros: 3, path: "/search/web" }]);
  });

  it("answers 401 with the problem body and challenge when credentials are missing, and leaves other routes alone", async () => {
    const { send, reached, hono } = app();
    const response = await send();
    expect(response.status).toBe(401);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("www-authenticate")).toMatch(
      /^Allowance realm="https:\/\/tools.example\/search", error="ERR_NO_CREDENTIALS"/,
    );
    expect(await response.json()).toMatchObject({ status: 401, code: "ERR_NO_CREDENTIALS" });
    expect(reached).toEqual([]);
    expect(await (await hono.request("http://tools.example/public")).text()).toBe("open");
  });

  it("serves a presentation once: a replay is 401 ERR_REPLAY and never reaches the handler", async () => {
    const { send, reached } = app();
    const once = presentation();
    expect((await send(once)).status).toBe(200);
    const replay = await send(once);
    expect(replay.status).toBe(401);
    expect(await replay.json()).toMatchObject({ code: "ERR_REPLAY" });
    expect(reached).toHaveLength(1);
  });

  it("refuses a bare token, another path, another method, another endpoint, an expired or revoked token", async () => {
    const revocations = new MemoryRevocationStore();
    const { send, reached } = app({ revocations });
    const cases: [string, number, string][] = [
      [`Allowance ${formatToken(token)}`, 401, "ERR_PRESENTATION"],
      [presentation({ aud: AUD, path: "/search/admin" }), 401, "ERR_PRESENTATION"],
      [presentation({ aud: AUD, method: "GET" }), 401, "ERR_PRESENTATION"],
      [presentation({ aud: "https://tools.example/email" }), 403, "ERR_AUDIENCE"],
      [`Allowance ${present(expired, worker, { aud: AUD })}`, 401, "ERR_EXPIRED"],
      // Signed by the parent holder, not by the token's leaf holder.
      [`Allowance ${present(token, agent, { aud: AUD })}`, 401, "ERR_PRESENTATION"],
      // Made ten minutes ago: outside the window of maxAge + skew.
      [
        presentation({ aud: AUD, now: () => new Date(Date.now() - 600 * SECOND).getTime() }),
        401,
        "ERR_STALE",
      ],
    ];
    for (const [header, status, code] of cases) {
      const response = await send(header);
      expect({ status: response.status, body: await response.json() }).toMatchObject({
        status,
        body: { code },
      });
    }
    revocations.revoke(verify(token, { roots }).linkIds[1] as string);
    const revoked = await send(presentation());
    expect(revoked.status).toBe(401);
    expect(await revoked.json()).toMatchObject({ code: "ERR_REVOKED", linkIndex: 1 });
    expect(reached).toEqual([]);
  });

  it("binds the parsed pathname, so a presentation for the decoded form of an encoded path is refused", async () => {
    const { send, reached } = app();
    // Hono routes /search/%77eb as /search/web; the presentation names the path the client sent.
    const encoded = await send(presentation({ aud: AUD, path: "/search/web" }), "/search/%77eb");
    expect(encoded.status).toBe(401);
    const exact = await send(presentation({ aud: AUD, path: "/search/%77eb" }), "/search/%77eb");
    expect(exact.status).toBe(200);
    expect(reached).toEqual([{ usdMicros: 3, path: "/search/%77eb" }]);
  });

  it("refuses hostile Authorization headers with a typed code", async () => {
    const { send, reached } = app();
    const valid = present(token, worker, { aud: AUD });
    for (const header of [
      "Bearer abc",
      "Allowance",
      "Allowance ",
      "Allowance alwp1_!!!",
      "Allowance alw1_",
      `Allowance ${valid}, Allowance ${valid}`,
      `Allowance ${valid} extra`,
      "Allowance alwp1_" + "A".repeat(30_000),
      "Allowance\t" + valid,
      "Allowance alwp1_ü",
    ]) {
      const response = await send(header);
      expect(response.status).toBe(401);
      expect(((await response.json()) as { code: string }).code).toMatch(/^ERR_/);
    }
    expect(reached).toEqual([]);
    // The scheme is case-insensitive, and the header it was refused with above is still unused.
    expect((await send(`allowance ${valid}`)).status).toBe(200);
  });

  it("answers 500 without running the handler when the replay cache fails", async () => {
    const failing: ReplayCache = {
      claim: () => {
        throw new Error("replay store unreachable");
      },
    };
    const { send, reached, errors } = app({ replay: failing });
    const response = await send(presentation());
    expect(response.status).toBe(500);
    expect(reached).toEqual([]);
    expect(errors).toEqual([new Error("replay store unreachable")]);
  });

  it("checks its options when it is made", () => {
    expect(() => allowance({ roots, audience: "" })).toThrow(TypeError);
    expect(() => allowance({ roots, audience: AUD, maxAgeSeconds: Number.NaN })).toThrow(
      RangeError,
    );
    expect(() =>
      allowance({ roots, audience: AUD, requirePresentaton: false } as unknown as Parameters<
        typeof allowance
      >[0]),
    ).toThrow(TypeError);
  });
});
