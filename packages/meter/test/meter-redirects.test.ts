/**
 * Redirects of calls the meter passes through (hosts that are no provider's): the meter follows
 * them itself, each hop through the meter again, so that a redirect cannot carry an unmetered call
 * to a provider. Otherwise as fetch follows them (303 and POST-after-301/302 become a GET,
 * Authorization dropped across origins, 20 at most); a caller's "manual" mode is left to fetch.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MockLlm, metered, mockLlmPerTest } from "./meter-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

/** A host that is no provider's, answering /go/<status>?to=<url> with that redirect, else 200. */
let redirector: Server;
let base = "";
const seen: {
  path: string;
  method: string;
  authorization?: string;
  cookie?: string;
  apiKey?: string;
}[] = [];
beforeAll(async () => {
  redirector = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    seen.push({
      path: url.pathname,
      method: req.method ?? "",
      ...(req.headers.authorization === undefined
        ? {}
        : { authorization: req.headers.authorization }),
      ...(req.headers.cookie === undefined ? {} : { cookie: req.headers.cookie }),
      ...(typeof req.headers["x-api-key"] === "string" ? { apiKey: req.headers["x-api-key"] } : {}),
    });
    req.resume();
    const status = /^\/go\/(\d+)$/.exec(url.pathname)?.[1];
    if (status !== undefined) {
      res.writeHead(Number(status), { location: url.searchParams.get("to") ?? "/" });
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("plain answer");
  });
  await new Promise<void>((done) => redirector.listen(0, "127.0.0.1", done));
  base = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}`;
});
afterAll(async () => new Promise<void>((done) => redirector.close(() => done())));

/** A host that moved: every request answered with a 307 to the same path on the provider mock. */
let moved: Server;
let movedBase = "";
beforeAll(async () => {
  moved = createServer((req, res) => {
    req.resume();
    res.writeHead(307, { location: `${mock.url}${req.url ?? "/"}` });
    res.end();
  });
  await new Promise<void>((done) => moved.listen(0, "127.0.0.1", done));
  movedBase = `http://127.0.0.1:${(moved.address() as AddressInfo).port}`;
});
afterAll(async () => new Promise<void>((done) => moved.close(() => done())));

const body = JSON.stringify({
  model: "gpt-4o",
  max_tokens: 16_000,
  messages: [{ role: "user", content: "x".repeat(20_000) }],
});
const headers = { "content-type": "application/json", "x-api-key": "sk-test" };
const to = (status: number, target: string) =>
  `${base}/go/${status}?to=${encodeURIComponent(target)}`;

describe("redirects of calls the meter passes through", () => {
  it("a 307 to a provider's endpoint is metered there: refused past the budget, sent unmetered never", async () => {
    const m = await metered({ child: { usdMicros: 1_000 } });
    const response = await m.fetch(to(307, `${mock.url}/v1/chat/completions`), {
      method: "POST",
      headers,
      body,
    });
    expect(response.status).toBe(402);
    expect(mock.count()).toBe(0);
  });

  it("within the budget, the hop is metered and the body sent again, as fetch sends it on a 307", async () => {
    const m = await metered();
    const response = await m.fetch(to(307, `${mock.url}/v1/chat/completions`), {
      method: "POST",
      headers,
      body,
    });
    expect(response.status).toBe(200);
    expect(response.redirected).toBe(true);
    await response.json();
    expect(mock.count()).toBe(1);
    expect(mock.received[0]?.body).toMatchObject({ model: "gpt-4o" });
    expect((await m.ledger()).usdMicros).toBeGreaterThan(0);
    // A Request's body too.
    const again = await m.fetch(
      new Request(to(308, `${mock.url}/v1/chat/completions`), { method: "POST", headers, body }),
    );
    expect(again.status).toBe(200);
    await again.json();
    expect(mock.count()).toBe(2);
  });

  it("a 303 becomes a GET without a body; Authorization is dropped across origins, other headers kept", async () => {
    const m = await metered();
    seen.length = 0;
    const other = `http://localhost:${new URL(base).port}/plain`;
    const response = await m.fetch(to(303, other), {
      method: "POST",
      headers: { ...headers, authorization: "Bearer k", cookie: "session=secret" },
      body: "not json",
    });
    expect(response.status).toBe(200);
    // As fetch would show it: reached by a redirect, at the last hop's URL.
    expect(response.redirected).toBe(true);
    expect(response.url).toBe(other);
    expect(await response.text()).toBe("plain answer");
    expect(seen).toEqual([
      {
        path: `/go/303`,
        method: "POST",
        authorization: "Bearer k",
        cookie: "session=secret",
        apiKey: "sk-test",
      },
      { path: "/plain", method: "GET", apiKey: "sk-test" },
    ]);
  });

  it("leaves a caller's manual mode to fetch, and refuses a 21st redirect", async () => {
    const m = await metered();
    const manual = await m.fetch(to(302, `${base}/plain`), { redirect: "manual" });
    expect(manual.status).toBe(302);
    expect(manual.headers.get("location")).toBe(`${base}/plain`);
    let target = `${base}/plain`;
    for (let i = 0; i < 21; i++) target = to(302, target);
    await expect(m.fetch(target)).rejects.toThrow(/more than 20 redirects/);
    let twenty = `${base}/plain`;
    for (let i = 0; i < 20; i++) twenty = to(302, twenty);
    expect((await m.fetch(twenty)).status).toBe(200);
  });

  it("refuses a redirect to a scheme that is not http(s), as fetch does", async () => {
    const m = await metered();
    await expect(m.fetch(to(302, "data:text/plain,INJECTED"))).rejects.toThrow(TypeError);
  });
});

describe("redirects of metered calls", () => {
  it("are refused, the hold released: the next hop could be another model or provider", async () => {
    const m = await metered();
    const response = await m.fetch(`${movedBase}/v1/chat/completions`, {
      method: "POST",
      headers,
      body,
    });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({
      error: { reason: "UNMETERABLE_REQUEST", message: expect.stringContaining("redirect") },
    });
    expect(mock.count()).toBe(0);
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
    // A caller who asked for the redirect itself gets it.
    const manual = await m.fetch(`${movedBase}/v1/chat/completions`, {
      method: "POST",
      headers,
      body,
      redirect: "manual",
    });
    expect(manual.status).toBe(307);
  });

  it("are sent so that fetch keeps no copy to follow with, and count as answers for the breaker", async () => {
    const modes: (string | undefined)[] = [];
    const inner: typeof fetch = (input, init) => {
      modes.push(init?.redirect);
      return fetch(input, init);
    };
    const m = await metered({}, { inner, breaker: { maxConsecutiveFailures: 1 } });
    for (let i = 0; i < 3; i++) {
      const response = await m.fetch(`${movedBase}/v1/chat/completions`, {
        method: "POST",
        headers,
        body,
      });
      expect(response.status).toBe(403);
    }
    expect(modes).toEqual(["error", "error", "error"]);
    // A redirect is an answer, not a failure: the breaker stays closed.
    expect(m.fetch.breakerState("openai").state).toBe("closed");
    // The provider itself is still called, with the same mode.
    const ok = await m.fetch(`${mock.url}/v1/chat/completions`, { method: "POST", headers, body });
    expect(ok.status).toBe(200);
    expect(modes.at(-1)).toBe("error");
    expect(mock.count()).toBe(1);
  });

  it("a caller's own redirect mode \"error\" gets fetch's error, and the breaker counts an answer, not a failure", async () => {
    const m = await metered({}, { breaker: { maxConsecutiveFailures: 1 } });
    const init: RequestInit = { method: "POST", headers, body, redirect: "error" };
    for (let i = 0; i < 3; i++)
      await expect(m.fetch(`${movedBase}/v1/chat/completions`, init)).rejects.toThrow(TypeError);
    expect(mock.count()).toBe(0);
    expect(m.fetch.breakerState("openai").state).toBe("closed");
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });

  it("a 421 on a reused connection, which Node's fetch retries with the body it already sent, is sent once more, whole, under the same hold", async () => {
    const served = new WeakMap<object, number>();
    let armed = false;
    const log: string[] = [];
    const misdirecting = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const seenOnSocket = served.get(req.socket) ?? 0;
        served.set(req.socket, seenOnSocket + 1);
        const status = armed && req.method === "POST" && seenOnSocket >= 1 ? 421 : 200;
        if (status === 421) armed = false;
        if (req.method === "POST") log.push(`${Buffer.concat(chunks).length}B ${status}`);
        if (status === 421) {
          res.writeHead(421);
          res.end();
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            id: "c",
            object: "chat.completion",
            model: "gpt-4o",
            choices: [
              { index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" },
            ],
            usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 },
          }),
        );
      });
    });
    await new Promise<void>((done) => misdirecting.listen(0, "127.0.0.1", done));
    const origin = `http://127.0.0.1:${(misdirecting.address() as AddressInfo).port}`;
    try {
      const m = await metered({}, { loop: false });
      // A first call opens the connection the metered one reuses; until it does (the pool may
      // open another), the metered call is answered as any.
      for (let i = 0; i < 20 && (i === 0 || armed); i++) {
        log.length = 0;
        await (await fetch(`${origin}/warm`)).text();
        armed = true;
        const response = await m.fetch(`${origin}/v1/chat/completions`, {
          method: "POST",
          headers,
          body,
        });
        expect(response.status).toBe(200);
        await response.json();
      }
      expect(armed).toBe(false);
      const length = log[0]?.split("B")[0];
      // The 421, the retry fetch sends empty, then the meter's whole one.
      expect(log).toEqual([`${length}B 421`, "0B 200", `${length}B 200`]);
      expect(await m.ledger()).toMatchObject({ heldTokens: 0, heldUsdMicros: 0 });
      expect((await m.ledger()).usdMicros).toBeGreaterThan(0);
      expect(m.fetch.breakerState("openai").state).toBe("closed");
    } finally {
      misdirecting.closeAllConnections();
      await new Promise<void>((done) => misdirecting.close(() => done()));
    }
  });

  it("are refused with where they lead when the fetch hands the redirect over", async () => {
    // A fetch that follows no mode but its own ("manual"): the meter sees the 307 itself.
    const inner: typeof fetch = (input, init) => fetch(input, { ...init, redirect: "manual" });
    const m = await metered({}, { inner });
    const response = await m.fetch(`${movedBase}/v1/chat/completions`, {
      method: "POST",
      headers,
      body,
    });
    expect(response.status).toBe(403);
    const { error } = (await response.json()) as { error: { reason: string; message: string } };
    expect(error.reason).toBe("UNMETERABLE_REQUEST");
    expect(error.message).toContain(`(307) to "${mock.url}/v1/chat/completions"`);
    // One without a Location too, as fetch's own error would have been in mode "error".
    const bare = await metered({}, { inner: async () => new Response(null, { status: 302 }) });
    const refused = await bare.fetch(`${mock.url}/v1/chat/completions`, {
      method: "POST",
      headers,
      body,
    });
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain("(302) without a Location");
    expect(await bare.ledger()).toEqual({
      tokens: 0,
      usdMicros: 0,
      heldTokens: 0,
      heldUsdMicros: 0,
    });
    expect(mock.count()).toBe(0);
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });
});
