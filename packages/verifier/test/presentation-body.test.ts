/**
 * Presentations bound to the request body (spec/presentation.md §3.4): a captured presentation
 * cannot be replayed with other arguments, wherever the replay cache is not shared.
 */
import { createServer, request as httpRequest, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
import { sha256, toBase64url } from "@allowance/core/format";
import {
  AllowanceError,
  MemoryReplayCache,
  allowanceMiddleware,
  present,
  verifyPresentation,
  withAllowance,
  type AllowanceContext,
  type VerifyPresentationOptions,
} from "@allowance/verifier";

const NOW = 1_800_000_000;
const AUD = "https://tools.example/mail";
const BODY = '{"to":"bob@example.com","subject":"hi"}';
const OTHER = '{"to":"eve@evil.example","subject":"hi"}';

let roots: TrustedRoots;
let token: Token;
let worker: KeyPair;

beforeAll(async () => {
  const root = await generateKeyPair();
  const agent = await generateKeyPair();
  worker = await generateKeyPair();
  token = attenuate(
    mint({ rootKey: root, holder: publicKeyOf(agent), grant: { exp: NOW + 3600, aud: [AUD] } }),
    { holderKey: agent, holder: publicKeyOf(worker), grant: { usdMicros: 1 } },
  );
  roots = trustedRoots([root]);
});

const clock = () => NOW * 1000;
const bound = (body: string | Uint8Array = BODY) =>
  present(token, worker, { aud: AUD, method: "POST", path: "/send", body, now: clock });
const unbound = () =>
  present(token, worker, { aud: AUD, method: "POST", path: "/send", now: clock });

function options(extra: Partial<VerifyPresentationOptions> = {}): VerifyPresentationOptions {
  return {
    roots,
    audience: AUD,
    method: "POST",
    path: "/send",
    now: clock,
    replay: new MemoryReplayCache(),
    ...extra,
  };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "accepted";
  } catch (error) {
    if (error instanceof AllowanceError) return error.code;
    throw error;
  }
}

type NodeRequest = IncomingMessage & { rawBody?: Uint8Array; originalUrl?: string };

/**
 * A Node server that reads the body, lets `prepare` play the framework in front (a raw-body
 * parser, a mount), then runs the middleware and answers 200 "ok" after it: its origin and close.
 */
async function nodeServer(
  extra: { maxBodyBytes?: number },
  prepare: (req: NodeRequest, body: Buffer) => void,
): Promise<{ origin: string; close: () => Promise<void> }> {
  const middleware = allowanceMiddleware({
    roots,
    audience: AUD,
    now: clock,
    replay: new MemoryReplayCache(),
    ...extra,
  });
  const server = createServer((req: NodeRequest, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      prepare(req, Buffer.concat(chunks));
      middleware(req, res, () => {
        res.writeHead(200);
        res.end("ok");
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe("verifyPresentation with a bound body", () => {
  it("accepts the body it was made for, as bytes or text, and reports its hash", async () => {
    const result = await verifyPresentation(
      bound(),
      options({ body: new TextEncoder().encode(BODY) }),
    );
    expect(result.claims.bodyHash).toBe(toBase64url(sha256(new TextEncoder().encode(BODY))));
    expect(
      await codeOf(
        verifyPresentation(bound(new TextEncoder().encode(BODY)), options({ body: BODY })),
      ),
    ).toBe("accepted");
  });

  it("refuses another body, one byte changed or re-serialised", async () => {
    for (const body of [
      OTHER,
      BODY + " ",
      BODY.replace("hi", "hI"),
      '{"subject":"hi","to":"bob@example.com"}',
    ])
      expect(await codeOf(verifyPresentation(bound(), options({ body })))).toBe("ERR_PRESENTATION");
  });

  it("refuses when the endpoint gives no body to check", async () => {
    expect(await codeOf(verifyPresentation(bound(), options()))).toBe("ERR_PRESENTATION");
  });

  it("does not use up the one-time id when the body is refused", async () => {
    const presentation = bound();
    const replay = new MemoryReplayCache();
    expect(await codeOf(verifyPresentation(presentation, options({ replay, body: OTHER })))).toBe(
      "ERR_PRESENTATION",
    );
    expect(await codeOf(verifyPresentation(presentation, options({ replay, body: BODY })))).toBe(
      "accepted",
    );
    expect(await codeOf(verifyPresentation(presentation, options({ replay, body: BODY })))).toBe(
      "ERR_REPLAY",
    );
  });

  it("names the body in the replay id", async () => {
    const ids: string[] = [];
    const replay = { claim: (id: string) => (ids.push(id), true) };
    await verifyPresentation(bound(), options({ replay, body: BODY }));
    await verifyPresentation(unbound(), options({ replay, body: BODY }));
    const hash = toBase64url(sha256(new TextEncoder().encode(BODY)));
    expect(ids[0]?.endsWith(`.${hash}`)).toBe(true);
    expect(ids[0]?.split(".")).toHaveLength(3);
    expect(ids[1]?.split(".")).toHaveLength(2);
  });

  it("reads a lazy body only for a presentation that binds one", async () => {
    let reads = 0;
    const body = async () => (reads++, BODY);
    await verifyPresentation(unbound(), options({ body }));
    expect(reads).toBe(0);
    await verifyPresentation(bound(), options({ body }));
    expect(reads).toBe(1);
  });

  it("refuses an unbound presentation when the endpoint requires a binding", async () => {
    expect(
      await codeOf(
        verifyPresentation(unbound(), options({ requireBodyBinding: true, body: BODY })),
      ),
    ).toBe("ERR_PRESENTATION");
    expect(
      await codeOf(verifyPresentation(bound(), options({ requireBodyBinding: true, body: BODY }))),
    ).toBe("accepted");
  });

  it("refuses options of the wrong type with a TypeError", async () => {
    await expect(
      verifyPresentation(bound(), options({ body: 42 as unknown as string })),
    ).rejects.toThrow(TypeError);
    await expect(
      verifyPresentation(bound(), options({ requireBodyBinding: "yes" as unknown as boolean })),
    ).rejects.toThrow(TypeError);
    expect(() =>
      present(token, worker, { aud: AUD, body: {} as unknown as string, now: clock }),
    ).toThrow(TypeError);
    expect(() => present(token, worker, { aud: AUD, body: "\ud800", now: clock })).toThrow(
      TypeError,
    );
  });
});

describe("the middleware", () => {
  const handler = async (request: Request, context: AllowanceContext) =>
    Response.json({ body: await request.text(), bodyHash: context.presentation?.bodyHash ?? null });
  const send = (
    fetchHandler: (r: Request) => Promise<Response>,
    presentation: string,
    body: string,
  ) =>
    fetchHandler(
      new Request("http://127.0.0.1/send", {
        method: "POST",
        headers: { authorization: `Allowance ${presentation}` },
        body,
      }),
    );

  it("checks a bound body and still hands it to the handler", async () => {
    const fetchHandler = withAllowance(handler, {
      roots,
      audience: AUD,
      now: clock,
      replay: new MemoryReplayCache(),
    });
    const response = await send(fetchHandler, bound(), BODY);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { body: string }).body).toBe(BODY);
    const refused = await send(fetchHandler, bound(), OTHER);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { code: string }).code).toBe("ERR_PRESENTATION");
  });

  it("refuses a bound body sent with a Content-Encoding, as such: the binding is of the body as it is", async () => {
    const fetchHandler = withAllowance(handler, {
      roots,
      audience: AUD,
      now: clock,
      replay: new MemoryReplayCache(),
    });
    const sendEncoded = (presentation: string, encoding: string, body: string | Uint8Array) =>
      fetchHandler(
        new Request("http://127.0.0.1/send", {
          method: "POST",
          headers: { authorization: `Allowance ${presentation}`, "content-encoding": encoding },
          body,
        }),
      );
    for (const encoding of ["gzip", "br", "gzip, identity", "x-custom"]) {
      const refused = await sendEncoded(bound(), encoding, gzipSync(BODY));
      expect(refused.status).toBe(401);
      const problem = (await refused.json()) as { code: string; detail: string };
      expect(problem.code).toBe("ERR_PRESENTATION");
      expect(problem.detail).toContain("Content-Encoding");
    }
    // Even when the encoded bytes are what the presentation hashed.
    const bytes = gzipSync(BODY);
    expect((await sendEncoded(bound(bytes), "gzip", bytes)).status).toBe(401);
    expect((await sendEncoded(bound(), "identity", BODY)).status).toBe(200);
    expect((await sendEncoded(bound(), " IDENTITY ", BODY)).status).toBe(200);
    // An unbound presentation reads no body: the encoding is the handler's business.
    expect((await sendEncoded(unbound(), "gzip", gzipSync(BODY))).status).toBe(200);
  });

  it("refuses a body longer than maxBodyBytes for a bound presentation", async () => {
    const fetchHandler = withAllowance(handler, {
      roots,
      audience: AUD,
      now: clock,
      replay: new MemoryReplayCache(),
      maxBodyBytes: 8,
    });
    expect((await send(fetchHandler, bound(), BODY)).status).toBe(401);
    expect((await send(fetchHandler, unbound(), BODY)).status).toBe(200);
  });

  it("with requireBodyBinding, refuses unbound presentations and bare tokens", async () => {
    const fetchHandler = withAllowance(handler, {
      roots,
      audience: AUD,
      now: clock,
      replay: new MemoryReplayCache(),
      requirePresentation: false,
      requireBodyBinding: true,
    });
    expect((await send(fetchHandler, unbound(), BODY)).status).toBe(401);
    const { formatToken } = await import("@allowance/core");
    const bare = await fetchHandler(
      new Request("http://127.0.0.1/send", {
        method: "POST",
        headers: { authorization: `Allowance ${formatToken(token)}` },
        body: BODY,
      }),
    );
    expect(bare.status).toBe(401);
    expect((await send(fetchHandler, bound(), BODY)).status).toBe(200);
  });

  it("refuses bad options at start-up", () => {
    expect(() => withAllowance(handler, { roots, audience: AUD, maxBodyBytes: -1 })).toThrow(
      RangeError,
    );
    expect(() =>
      withAllowance(handler, { roots, audience: AUD, requireBodyBinding: 1 as unknown as boolean }),
    ).toThrow(TypeError);
  });

  describe("for Node http", () => {
    let url: string;
    let close: () => Promise<void>;
    beforeAll(async () => {
      // A raw-body parser before the middleware, as the documentation asks.
      const started = await nodeServer({}, (req, body) => {
        if (req.headers["x-raw"] === "yes") req.rawBody = body;
      });
      url = `${started.origin}/send`;
      close = started.close;
    });
    afterAll(() => close());

    const post = (presentation: string, body: string, raw: boolean) =>
      fetch(url, {
        method: "POST",
        headers: { authorization: `Allowance ${presentation}`, "x-raw": raw ? "yes" : "no" },
        body,
      });

    it("checks a bound body against req.rawBody", async () => {
      expect((await post(bound(), BODY, true)).status).toBe(200);
      expect((await post(bound(), OTHER, true)).status).toBe(401);
    });

    it("refuses a bound presentation when no raw body is available, and serves an unbound one", async () => {
      expect((await post(bound(), BODY, false)).status).toBe(401);
      expect((await post(unbound(), BODY, false)).status).toBe(200);
    });
  });
});

describe("the Node middleware, at the edges a framework adds", () => {
  let url: string;
  let close: () => Promise<void>;
  beforeAll(async () => {
    const started = await nodeServer({ maxBodyBytes: 8 }, (req, body) => {
      req.rawBody = body;
      // Mounted as Express mounts a middleware under /api: req.url loses the prefix,
      // req.originalUrl keeps the target as sent.
      if (req.url?.startsWith("/api/") === true) {
        req.originalUrl = req.url;
        req.url = req.url.slice(4);
      }
    });
    url = started.origin;
    close = started.close;
  });
  afterAll(() => close());

  const at = (path: string, body?: string) =>
    present(token, worker, {
      aud: AUD,
      method: "POST",
      path,
      now: clock,
      ...(body === undefined ? {} : { body }),
    });
  /** Sends with the Authorization header lines given, each on a line of its own. */
  const send = (path: string, authorization: string[], body = "") =>
    new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${url}${path}`, {
        method: "POST",
        // Given as raw lines, Node adds no Host of its own.
        headers: [
          "host",
          new URL(url).host,
          ...authorization.flatMap((value) => ["authorization", value]),
        ],
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end(body);
    });

  it("checks the path as sent under a mount, not the path the mount leaves", async () => {
    expect(await send("/api/send", [`Allowance ${at("/api/send")}`])).toBe(200);
    // Signed for the shortened path, or for another one that the mount would shorten to it.
    expect(await send("/api/send", [`Allowance ${at("/send")}`])).toBe(401);
    expect(await send("/api/admin", [`Allowance ${at("/admin")}`])).toBe(401);
  });

  it("refuses two Authorization headers, the first of them valid", async () => {
    expect(await send("/send", [`Allowance ${at("/send")}`, "Bearer z"])).toBe(401);
    expect(await send("/send", [`Allowance ${at("/send")}`])).toBe(200);
  });

  it("refuses a bound body longer than maxBodyBytes", async () => {
    expect(await send("/send", [`Allowance ${at("/send", "1234567")}`], "1234567")).toBe(200);
    expect(await send("/send", [`Allowance ${at("/send", "123456789")}`], "123456789")).toBe(401);
  });
});

describe("the process's default replay cache", () => {
  it("holds an id for the widest window: a verifier with a longer one cannot take it again", async () => {
    const presentation = unbound();
    const verifyAt = (seconds: number, maxAgeSeconds: number) =>
      codeOf(
        verifyPresentation(presentation, {
          roots,
          audience: AUD,
          method: "POST",
          path: "/send",
          now: () => (NOW + seconds) * 1000,
          maxAgeSeconds,
        }),
      );
    expect(await verifyAt(0, 60)).toBe("accepted");
    expect(await verifyAt(0, 600)).toBe("ERR_REPLAY");
    // Past the first verifier's window, inside the second's: still used.
    expect(await verifyAt(121, 600)).toBe("ERR_REPLAY");
  });
});
