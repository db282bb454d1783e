/**
 * Hostile DPoP proofs and Authorization headers against the guarded MCP server, sent as raw HTTP
 * on 127.0.0.1. Each proof is made by hand with jose (or by hand without it), so that every field
 * of RFC 9449 §4.3 is attacked on its own; in every case the tool body must not run.
 */
import { createPrivateKey, sign, type JsonWebKey } from "node:crypto";
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { SignJWT, base64url, generateKeyPair as joseKeyPair, importJWK, type JWK } from "jose";
import { formatToken, type KeyPair } from "@allowance/core";
import { sha256, toBase64url, utf8 } from "@allowance/core/format";
import { present } from "@allowance/verifier";
import { createDpopProof, createMcpGuard, MCP_DENIAL_CODES, proofFetch } from "@allowance/mcp";
import { startFixture, type Fixture } from "./fixture.js";

let f: Fixture;
let token: string;
beforeAll(async () => {
  f = await startFixture();
  token = formatToken(f.token);
});
afterAll(async () => {
  await f.close();
});
beforeEach(() => {
  f.ran.length = 0;
  f.served.length = 0;
  f.clockMs = Date.now();
});

const CALL = JSON.stringify({
  jsonrpc: "2.0",
  id: 7,
  method: "tools/call",
  params: { name: "search.web", arguments: { q: "x" } },
});

interface Reply {
  status: number;
  challenge: string | null;
  body: Record<string, unknown>;
}

async function post(
  headers: Record<string, string>,
  body = CALL,
  url = f.resource,
): Promise<Reply> {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...headers,
    },
    body,
  });
  const text = await response.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { text };
  }
  return {
    status: response.status,
    challenge: response.headers.get("www-authenticate"),
    body: parsed,
  };
}

const privateJwk = (key: KeyPair): JWK => ({
  kty: "OKP",
  crv: "Ed25519",
  x: toBase64url(key.publicKey),
  d: toBase64url(key.privateKey),
});
const publicJwk = (key: KeyPair): JWK => ({
  kty: "OKP",
  crv: "Ed25519",
  x: toBase64url(key.publicKey),
});
const ath = (accessToken: string) => toBase64url(sha256(utf8(accessToken)));
const nowSeconds = () => Math.floor(Date.now() / 1000);

interface ProofParts {
  header?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  /** Signs with this key (default the worker, the token's holder). */
  signer?: KeyPair;
}

/** A proof made with jose: the valid one unless a part is overridden (undefined removes a claim). */
async function proof(parts: ProofParts = {}): Promise<string> {
  const signer = parts.signer ?? f.worker;
  const claims: Record<string, unknown> = {
    jti: toBase64url(crypto.getRandomValues(new Uint8Array(24))),
    iat: nowSeconds(),
    htm: "POST",
    htu: f.resource,
    ath: ath(token),
    ...parts.claims,
  };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
  const header = { alg: "EdDSA", typ: "dpop+jwt", jwk: publicJwk(f.worker), ...parts.header };
  return new SignJWT(claims)
    .setProtectedHeader(header as { alg: string })
    .sign(await importJWK(privateJwk(signer), "EdDSA"));
}

/** Refused with the status, the verifier's code and, for DPoP, the OAuth error; nothing ran. */
async function refused(
  reply: Reply | Promise<Reply>,
  status: number,
  code: string,
  oauth?: string,
): Promise<void> {
  const r = await reply;
  expect({ status: r.status, code: r.body.code }).toEqual({ status, code });
  if (oauth !== undefined)
    expect(r.challenge).toMatch(new RegExp(`^DPoP [^,]*, [^,]*, error="${oauth}"`));
  expect(f.ran).toEqual([]);
  expect(f.served).toEqual([]);
}

const dpop = async (p: string | Promise<string>) => ({
  authorization: `DPoP ${token}`,
  dpop: await p,
});

describe("a valid proof made with jose by hand", () => {
  it("is served once, and its tool runs", async () => {
    const headers = await dpop(proof());
    const ok = await post(headers);
    expect(ok.status).toBe(200);
    expect(f.ran.map((r) => r.tool)).toEqual(["search.web"]);
    f.ran.length = 0;
    f.served.length = 0;
    await refused(post(headers), 401, "ERR_REPLAY", "invalid_dpop_proof");
  });

  it("is accepted under the RFC 9864 alg name Ed25519 too", async () => {
    expect((await post(await dpop(proof({ header: { alg: "Ed25519" } })))).status).toBe(200);
  });
});

describe("malformed and unsigned proofs", () => {
  const encode = (value: unknown) => base64url.encode(JSON.stringify(value));
  it.each([
    ["an empty proof part", "a.b."],
    ["two parts", "a.b"],
    ["four parts", "a.b.c.d"],
    ["not base64url", "a+b.c/d.e=f"],
    ["a header that is not JSON", `${base64url.encode("nope")}.${encode({})}.AAAA`],
    ["a header that is an array", `${encode([1])}.${encode({})}.AAAA`],
    ["a proof too long", `${"A".repeat(9000)}.${encode({})}.AAAA`],
    ["white space", `${encode({ alg: "EdDSA" })} .${encode({})}.AAAA`],
  ])("refuses %s", async (_name, value) => {
    await refused(
      post({ authorization: `DPoP ${token}`, dpop: value }),
      401,
      "ERR_PRESENTATION",
      "invalid_dpop_proof",
    );
  });

  it("refuses alg none, with and without a signature part", async () => {
    const header = { alg: "none", typ: "dpop+jwt", jwk: publicJwk(f.worker) };
    const claims = {
      jti: "n".repeat(20),
      iat: nowSeconds(),
      htm: "POST",
      htu: f.resource,
      ath: ath(token),
    };
    for (const value of [
      `${encode(header)}.${encode(claims)}.`,
      `${encode(header)}.${encode(claims)}.AAAA`,
    ])
      await refused(post({ authorization: `DPoP ${token}`, dpop: value }), 401, "ERR_PRESENTATION");
  });

  it("refuses an HMAC proof keyed with the public key (algorithm confusion)", async () => {
    const claims = {
      jti: "h".repeat(20),
      iat: nowSeconds(),
      htm: "POST",
      htu: f.resource,
      ath: ath(token),
    };
    const value = await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256", typ: "dpop+jwt", jwk: publicJwk(f.worker) } as {
        alg: string;
      })
      .sign(f.worker.publicKey);
    await refused(post(await dpop(value)), 401, "ERR_PRESENTATION");
  });

  it("refuses a proof whose signature bytes were changed", async () => {
    const value = await proof();
    const [h, p, s] = value.split(".") as [string, string, string];
    const bytes = base64url.decode(s);
    bytes[5] = (bytes[5] as number) ^ 1;
    await refused(
      post(await dpop(`${h}.${p}.${base64url.encode(bytes)}`)),
      401,
      "ERR_PRESENTATION",
    );
    // A claim changed under the original signature.
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(p))) as Record<
      string,
      unknown
    >;
    const changed = base64url.encode(JSON.stringify({ ...claims, htm: "GET" }));
    await refused(post(await dpop(`${h}.${changed}.${s}`)), 401, "ERR_PRESENTATION");
  });
});

describe("the proof's header", () => {
  it.each<[string, () => Record<string, unknown>]>([
    ["typ JWT", () => ({ typ: "JWT" })],
    ["no typ", () => ({ typ: undefined })],
    ["typ in capitals", () => ({ typ: "DPOP+JWT" })],
    ["no jwk", () => ({ jwk: undefined })],
    ["a jwk with its private part", () => ({ jwk: privateJwk(f.worker) })],
    [
      "a jwk of another key type",
      () => ({ jwk: { kty: "EC", crv: "P-256", x: "AAAA", y: "AAAA" } }),
    ],
    ["a jwk of another curve", () => ({ jwk: { ...publicJwk(f.worker), crv: "Ed448" } })],
    ["a jwk that is a string", () => ({ jwk: "key" })],
    // No key at all: refused as a proof by someone else, not a server error of a key parser.
    ["a jwk whose x is empty", () => ({ jwk: { kty: "OKP", crv: "Ed25519", x: "" } })],
    ["a jwk whose x is not base64url", () => ({ jwk: { kty: "OKP", crv: "Ed25519", x: "!!" } })],
    [
      "a jwk whose x is the holder's key padded",
      () => ({ jwk: { ...publicJwk(f.worker), x: `${String(publicJwk(f.worker).x)}=` } }),
    ],
  ])("refuses %s", async (_name, override) => {
    const header: Record<string, unknown> = {
      alg: "EdDSA",
      typ: "dpop+jwt",
      jwk: publicJwk(f.worker),
      ...override(),
    };
    for (const [k, v] of Object.entries(header)) if (v === undefined) delete header[k];
    const value = await new SignJWT({
      jti: "j".repeat(20),
      iat: nowSeconds(),
      htm: "POST",
      htu: f.resource,
      ath: ath(token),
    })
      .setProtectedHeader(header as { alg: string })
      .sign(await importJWK(privateJwk(f.worker), "EdDSA"));
    await refused(post(await dpop(value)), 401, "ERR_PRESENTATION", "invalid_dpop_proof");
  });

  /**
   * A proof signed by hand, with this header and fresh claims for this request (`jti` from
   * `seed`): jose will not sign a header with a critical parameter it does not know.
   */
  const handSigned = (header: Record<string, unknown>, seed: string): string => {
    const claims = {
      jti: seed.repeat(20),
      iat: nowSeconds(),
      htm: "POST",
      htu: f.resource,
      ath: ath(token),
    };
    const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(claims))}`;
    const key = createPrivateKey({ key: privateJwk(f.worker) as JsonWebKey, format: "jwk" });
    return `${input}.${base64url.encode(sign(null, Buffer.from(input), key))}`;
  };
  const plainHeader = () => ({ alg: "EdDSA", typ: "dpop+jwt", jwk: publicJwk(f.worker) });

  it("refuses crit b64 too: no extension is understood (spec/presentation.md §12.2)", async () => {
    // jose understands b64 and would verify this proof.
    const value = handSigned({ ...plainHeader(), crit: ["b64"], b64: true }, "b");
    await refused(post(await dpop(value)), 401, "ERR_PRESENTATION", "invalid_dpop_proof");
  });

  it("refuses an unknown critical header parameter", async () => {
    const value = handSigned(
      { ...plainHeader(), crit: ["exp-tomorrow"], "exp-tomorrow": true },
      "c",
    );
    await refused(post(await dpop(value)), 401, "ERR_PRESENTATION", "invalid_dpop_proof");
    // The same proof without crit passes: the refusal above is the crit's.
    const ok = await post(await dpop(handSigned(plainHeader(), "d")));
    expect(ok.status).toBe(200);
  });
});

describe("who signed the proof", () => {
  it("refuses a proof by another key, carrying that key (a self-signed proof for a stolen token)", async () => {
    await refused(
      post(await dpop(proof({ signer: f.stranger, header: { jwk: publicJwk(f.stranger) } }))),
      401,
      "ERR_PRESENTATION",
      "invalid_dpop_proof",
    );
  });

  it("refuses a proof by another key that claims the holder's key in its header", async () => {
    await refused(post(await dpop(proof({ signer: f.stranger }))), 401, "ERR_PRESENTATION");
  });

  it("refuses the parent holder's proof for the child's token", async () => {
    await refused(
      post(await dpop(proof({ signer: f.agent, header: { jwk: publicJwk(f.agent) } }))),
      401,
      "ERR_PRESENTATION",
    );
  });

  it("refuses a proof by a jose-generated Ed25519 key", async () => {
    const { privateKey, publicKey } = await joseKeyPair("Ed25519", { extractable: true });
    const { exportJWK } = await import("jose");
    const jwk = await exportJWK(publicKey);
    const value = await new SignJWT({
      jti: "k".repeat(20),
      iat: nowSeconds(),
      htm: "POST",
      htu: f.resource,
      ath: ath(token),
    })
      .setProtectedHeader({ alg: "EdDSA", typ: "dpop+jwt", jwk })
      .sign(privateKey);
    await refused(post(await dpop(value)), 401, "ERR_PRESENTATION");
  });
});

describe("the proof's claims", () => {
  const origin = () => new URL(f.resource).origin;
  it.each<[string, () => Record<string, unknown>]>([
    ["htm GET for a POST", () => ({ htm: "GET" })],
    ["htm in lower case", () => ({ htm: "post" })],
    ["htu of another path", () => ({ htu: `${origin()}/admin` })],
    [
      "htu of another port",
      () => ({ htu: f.resource.replace(/:(\d+)\//, (_m, p: string) => `:${Number(p) + 1}/`) }),
    ],
    ["htu of another scheme", () => ({ htu: f.resource.replace("http:", "https:") })],
    ["htu with a query", () => ({ htu: `${f.resource}?x=1` })],
    ["htu with a fragment", () => ({ htu: `${f.resource}#x` })],
    ["htu with user info", () => ({ htu: f.resource.replace("//", "//user@") })],
    ["htu with empty user info", () => ({ htu: f.resource.replace("//", "//@") })],
    ["htu with an empty user and password", () => ({ htu: f.resource.replace("//", "//:@") })],
    ["htu that is not a URL", () => ({ htu: "mcp" })],
    ["htu whose path only normalises to the resource's", () => ({ htu: `${origin()}/x/../mcp` })],
    ["htu with a dot segment after the path", () => ({ htu: `${f.resource}/.` })],
    ["htu with an encoded path", () => ({ htu: `${origin()}/%6Dcp` })],
    ["htu with a trailing slash", () => ({ htu: `${f.resource}/` })],
    ["htu with backslashes", () => ({ htu: f.resource.replace("//", "\\\\") })],
    ["ath of another token", () => ({ ath: ath(formatToken(f.parent)) })],
    ["ath of the token's binary form", () => ({ ath: toBase64url(sha256(utf8(`${token} `))) })],
    ["no ath", () => ({ ath: undefined })],
    ["no jti", () => ({ jti: undefined })],
    ["a short jti", () => ({ jti: "1" })],
    ["a jti that is a number", () => ({ jti: 123456789012345678 })],
    ["no htm", () => ({ htm: undefined })],
    ["no iat", () => ({ iat: undefined })],
    ["a fractional iat", () => ({ iat: nowSeconds() + 0.5 })],
    ["an iat that is a string", () => ({ iat: String(nowSeconds()) })],
    ["an exp in the past", () => ({ exp: nowSeconds() - 3600 })],
  ])("refuses %s", async (_name, claims) => {
    await refused(
      post(await dpop(proof({ claims: claims() }))),
      401,
      "ERR_PRESENTATION",
      "invalid_dpop_proof",
    );
  });

  it("takes the htu with the scheme and host in capitals, as RFC 9449 §4.3 normalises", async () => {
    const htu = f.resource.replace("http://127.0.0.1", "HTTP://127.0.0.1");
    expect((await post(await dpop(proof({ claims: { htu } })))).status).toBe(200);
  });

  it("refuses a stale or future iat with ERR_STALE, and accepts the edges of the window", async () => {
    const now = nowSeconds();
    f.clockMs = now * 1000;
    // Window with the defaults: now − 119 … now + 60 (spec/presentation.md §4 step 9).
    await refused(
      post(await dpop(proof({ claims: { iat: now - 120 } }))),
      401,
      "ERR_STALE",
      "invalid_dpop_proof",
    );
    await refused(post(await dpop(proof({ claims: { iat: now + 61 } }))), 401, "ERR_STALE");
    await refused(post(await dpop(proof({ claims: { iat: now - 600 } }))), 401, "ERR_STALE");
    expect((await post(await dpop(proof({ claims: { iat: now - 119 } })))).status).toBe(200);
    expect((await post(await dpop(proof({ claims: { iat: now + 60 } })))).status).toBe(200);
  });

  it("lets a proof refused for a wrong claim leave its jti unused", async () => {
    const jti = toBase64url(crypto.getRandomValues(new Uint8Array(24)));
    await refused(
      post(await dpop(proof({ claims: { jti, htm: "GET" } }))),
      401,
      "ERR_PRESENTATION",
    );
    expect((await post(await dpop(proof({ claims: { jti } })))).status).toBe(200);
  });
});

describe("Authorization headers", () => {
  it("refuses a Bearer token (no proof of possession) with invalid_token", async () => {
    await refused(
      post({ authorization: `Bearer ${token}` }),
      401,
      "ERR_NO_CREDENTIALS",
      "invalid_token",
    );
    // Even with a valid proof beside it.
    await refused(
      post({ authorization: `Bearer ${token}`, dpop: await proof() }),
      401,
      "ERR_NO_CREDENTIALS",
    );
  });

  it("refuses the DPoP scheme without a proof, and with a presentation or garbage as its token", async () => {
    await refused(
      post({ authorization: `DPoP ${token}` }),
      401,
      "ERR_PRESENTATION",
      "invalid_dpop_proof",
    );
    const presentation = present(f.token, f.worker, { aud: f.resource });
    await refused(
      post({ authorization: `DPoP ${presentation}`, dpop: await proof() }),
      401,
      "ERR_MALFORMED",
      "invalid_token",
    );
    await refused(
      post({ authorization: "DPoP alw1_AAAA", dpop: await proof() }),
      401,
      "ERR_MALFORMED",
      "invalid_token",
    );
    await refused(post({ authorization: "DPoP", dpop: await proof() }), 401, "ERR_NO_CREDENTIALS");
  });

  it("refuses the Allowance scheme with a bare token, and with a DPoP proof beside a presentation", async () => {
    await refused(post({ authorization: `Allowance ${token}` }), 401, "ERR_PRESENTATION");
    const presentation = present(f.token, f.worker, {
      aud: f.resource,
      method: "POST",
      path: "/mcp",
    });
    await refused(
      post({ authorization: `Allowance ${presentation}`, dpop: await proof() }),
      401,
      "ERR_PRESENTATION",
    );
  });

  it("refuses two Authorization headers, and two DPoP headers", async () => {
    const raw = (headers: Record<string, string | string[]>) =>
      new Promise<string>((resolve, reject) => {
        const { hostname, port } = new URL(f.resource);
        const req = httpRequest(
          {
            host: hostname,
            port,
            path: "/mcp",
            method: "POST",
            headers: {
              "content-type": "application/json",
              accept: "application/json, text/event-stream",
              ...headers,
            },
          },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => (body += chunk));
            res.on("end", () =>
              resolve(`${res.statusCode ?? 0} ${/"code":"(\w+)"/.exec(body)?.[1] ?? ""}`),
            );
          },
        );
        req.on("error", reject);
        req.end(CALL);
      });
    const one = await proof();
    // Node keeps only the first of two Authorization headers in req.headers; the guard reads all.
    expect(await raw({ authorization: [`DPoP ${token}`, `DPoP ${token}`], dpop: one })).toBe(
      "401 ERR_NO_CREDENTIALS",
    );
    expect(await raw({ authorization: `DPoP ${token}`, dpop: [one, await proof()] })).toBe(
      "401 ERR_PRESENTATION",
    );
    expect(f.ran).toEqual([]);
    // The proof was never claimed by those refusals.
    expect(await raw({ authorization: `DPoP ${token}`, dpop: one })).toBe("200 ");
  });
});

describe("requests the guard answers before any MCP server sees them", () => {
  it("does not guard or serve a path that only normalises to the endpoint", async () => {
    for (const path of ["/x/../mcp", "/mcp/", "//mcp", "/MCP", "/mcp%2f"]) {
      const { hostname, port } = new URL(f.resource);
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: hostname, port, path, method: "POST" }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("error", reject);
        req.end(CALL);
      });
      expect(status).toBe(404);
    }
    expect(f.served).toEqual([]);
  });

  it("refuses a body that is not JSON with a JSON-RPC parse error, after authentication", async () => {
    const reply = await post(await dpop(proof()), "{not json");
    expect(reply.status).toBe(400);
    expect(reply.body).toMatchObject({ jsonrpc: "2.0", error: { code: -32700 } });
    expect(f.served).toEqual([]);
  });

  it("refuses a tools/call without a string name as invalid params", async () => {
    for (const params of [{}, { name: 5 }, null, "search.web", { name: ["search.web"] }]) {
      const reply = await post(
        await dpop(proof()),
        JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params }),
      );
      expect(reply.status).toBe(400);
      expect(reply.body).toMatchObject({ error: { code: -32602 } });
    }
    expect(f.served).toEqual([]);
  });

  it("refuses a batch if any of its calls is outside the grant, and runs none of them", async () => {
    const batch = JSON.stringify([
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "weather" } },
      { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "email.send" } },
    ]);
    const reply = await post(await dpop(proof()), batch);
    expect(reply.status).toBe(403);
    expect(reply.body).toMatchObject({ code: MCP_DENIAL_CODES[0], tool: "email.send" });
    expect(reply.challenge).toBe(
      `DPoP algs="EdDSA Ed25519", resource_metadata="${f.guard.metadataUrl}", error="insufficient_scope", error_description="the grant does not allow the tool email.send", scope="email.send"`,
    );
    expect(f.served).toEqual([]);
    expect(f.ran).toEqual([]);
  });

  it("keeps a hostile tool name out of the challenge's syntax", async () => {
    const name = 'x", error="none\r\nSet-Cookie: a=b';
    const reply = await post(
      await dpop(proof()),
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name } }),
    );
    expect(reply.status).toBe(403);
    expect(reply.challenge).toContain('scope="x, error=noneSet-Cookie: a=b"');
    expect(f.ran).toEqual([]);
  });

  it("refuses a body larger than maxBodyBytes with 413", async () => {
    const small = await startFixture({ maxBodyBytes: 64 });
    try {
      const headers = {
        authorization: `DPoP ${formatToken(small.token)}`,
        dpop: await createDpopProof(small.worker, {
          method: "POST",
          url: small.resource,
          accessToken: formatToken(small.token),
        }),
      };
      const reply = await post(headers, CALL, small.resource);
      expect(reply.status).toBe(413);
      expect(small.served).toEqual([]);
    } finally {
      await small.close();
    }
  });
});

describe("createMcpGuard's options", () => {
  const base = () => ({
    resource: "https://mcp.example/mcp",
    authorizationServers: ["https://grants.example"],
    roots: f.roots,
  });
  it.each<[string, Record<string, unknown>, typeof TypeError | typeof RangeError]>([
    ["an unknown option", { skew: 10 }, TypeError],
    ["http on a public host", { resource: "http://mcp.example/mcp" }, RangeError],
    ["a resource with a query", { resource: "https://mcp.example/mcp?x=1" }, RangeError],
    ["a resource with a fragment", { resource: "https://mcp.example/mcp#x" }, RangeError],
    ["a resource not in canonical form", { resource: "HTTPS://mcp.example/mcp" }, RangeError],
    ["a resource with user info", { resource: "https://u:p@mcp.example/mcp" }, RangeError],
    ["a relative resource", { resource: "/mcp" }, TypeError],
    ["no authorization server", { authorizationServers: [] }, TypeError],
    ["an authorization server that is not a URL", { authorizationServers: ["grants"] }, TypeError],
    ["NaN maxAgeSeconds", { maxAgeSeconds: Number.NaN }, RangeError],
    ["a negative skewSeconds", { skewSeconds: -1 }, RangeError],
    ["a string maxBodyBytes", { maxBodyBytes: "1" }, TypeError],
    ["a clock that is a number", { now: 1 }, TypeError],
    ["a replay cache without claim", { replay: {} }, TypeError],
    // null is not "no cache": a per-process cache in its place would let a proof replay elsewhere.
    ["a replay cache that is null", { replay: null }, TypeError],
    ["a scope with a quote", { scopesSupported: ['a"b'] }, TypeError],
    ["acceptTokensWithoutAud as a string", { acceptTokensWithoutAud: "true" }, TypeError],
    ["acceptTokensWithoutAud as 1", { acceptTokensWithoutAud: 1 }, TypeError],
    ["acceptTokensWithoutAud as null", { acceptTokensWithoutAud: null }, TypeError],
  ])("refuses %s", (_name, override, type) => {
    expect(() => createMcpGuard({ ...base(), ...override } as never)).toThrow(type);
  });

  it("createDpopProof refuses a jti the guard would refuse, and a method or clock that is not one", async () => {
    const options = { method: "POST", url: f.resource, accessToken: "alw1_x" };
    for (const [jti, type] of [
      ["short", RangeError],
      ["x".repeat(257), RangeError],
      [42, TypeError],
    ] as const)
      await expect(createDpopProof(f.worker, { ...options, jti } as never)).rejects.toThrow(type);
    await expect(createDpopProof(f.worker, { ...options, method: "PO ST" })).rejects.toThrow(
      TypeError,
    );
    // A clock that is no time, or seconds given for milliseconds (a proof the guard would refuse
    // as stale): refused here, as a misspelt option is.
    for (const [nowMs, type] of [
      [Number.NaN, RangeError],
      [1_700_000_000, RangeError],
      [-1, RangeError],
      [Number.POSITIVE_INFINITY, RangeError],
      [String(Date.now()), TypeError],
    ] as const)
      await expect(
        createDpopProof(f.worker, { ...options, nowMs } as never),
        String(nowMs),
      ).rejects.toThrow(type);
    await expect(createDpopProof(f.worker, { ...options, nowMS: 1 } as never)).rejects.toThrow(
      TypeError,
    );
    await expect(createDpopProof(f.worker, null as never)).rejects.toThrow(TypeError);
    for (const bad of [{ bindbody: false }, { audiance: "x" }])
      expect(() => proofFetch({ token, holderKey: f.worker, ...bad } as never)).toThrow(TypeError);
    await expect(createDpopProof(f.worker, { ...options, jti: "x".repeat(16) })).resolves.toMatch(
      /^[\w-]+\.[\w-]+\.[\w-]+$/,
    );
  });

  it("takes a root resource with or without its slash", () => {
    expect(createMcpGuard({ ...base(), resource: "https://mcp.example" }).metadataUrl).toBe(
      "https://mcp.example/.well-known/oauth-protected-resource",
    );
  });
});
