/**
 * The metered fetch's own arguments: an `init` that fetch would refuse, or a method that is not a
 * string, is a TypeError naming the argument, as a rejected promise (fetch's contract), before
 * anything is read, reserved or sent.
 */
import { describe, expect, it } from "vitest";
import { MockLlm, metered, mockLlmPerTest } from "./meter-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const body = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] });
/** A request $0.001 holds, and one it does not (gpt-4o, 16,000 tokens out, 100 kB in). */
const small = JSON.stringify({
  model: "gpt-4o-mini",
  max_tokens: 10,
  messages: [{ role: "user", content: "hi" }],
});
const large = JSON.stringify({
  model: "gpt-4o",
  max_tokens: 16_000,
  messages: [{ role: "user", content: "x".repeat(100_000) }],
});

describe("Meter.call's arguments", () => {
  it("a method that is not a string is a TypeError naming init.method, rejected, and nothing is sent or held", async () => {
    const m = await metered();
    const url = `${mock.url}/v1/chat/completions`;
    // fetch itself would coerce each of these to a string and send it (`null` as "null").
    for (const method of [1, null, {}, ["POST"], { toUpperCase: () => "POST" }, true]) {
      let result: Promise<Response> | undefined;
      expect(() => {
        result = m.fetch(url, { method, body } as never);
      }).not.toThrow();
      const error = await (result as Promise<Response>).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/^"init\.method" expected an HTTP method/);
    }
    // Also where no adapter matches: the check comes before the URL is read.
    await expect(m.fetch(`${mock.url}/v1/models`, { method: 7 } as never)).rejects.toThrow(
      /"init\.method"/,
    );
    expect(mock.count()).toBe(0);
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });

  it("an init that is not an object is a TypeError naming init, as fetch's own is", async () => {
    const m = await metered();
    const url = `${mock.url}/v1/chat/completions`;
    for (const init of [5, "POST", true, Symbol("init"), 10n]) {
      await expect(m.fetch(url, init as never)).rejects.toThrow(/^"init" expected the options/);
      // fetch refuses the same values with a TypeError of its own.
      await expect(globalThis.fetch(url, init as never)).rejects.toThrow(TypeError);
    }
    expect(mock.count()).toBe(0);
  });

  it("a string method is still read as before, and an absent init or method is GET", async () => {
    const m = await metered();
    const ok = await m.fetch(`${mock.url}/v1/chat/completions`, {
      method: "post",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(ok.status).toBe(200);
    await ok.json();
    expect((await m.ledger()).usdMicros).toBeGreaterThan(0);
    expect((await m.fetch(`${mock.url}/v1/models`)).status).toBe(200);
    expect((await m.fetch(`${mock.url}/v1/models`, null as never)).status).toBe(200);
    expect((await m.fetch(`${mock.url}/v1/models`, {})).status).toBe(200);
  });

  it("reads each member of init once: a getter that answers a second read otherwise sends what was metered", async () => {
    const m = await metered();
    let reads = 0;
    const own = {
      method: "POST",
      headers: { "content-type": "application/json" },
      get body() {
        return reads++ === 0 ? small : large;
      },
    };
    // And a class whose members fetch reads from its prototype.
    class Init {
      #reads = 0;
      get method() {
        return "POST";
      }
      get body() {
        return this.#reads++ === 0 ? small : large;
      }
    }
    for (const init of [own, new Init()]) {
      const before = mock.receivedText.length;
      const response = await m.fetch(`${mock.url}/v1/chat/completions`, init as RequestInit);
      await response.arrayBuffer();
      expect(mock.receivedText.length).toBe(before + 1);
      expect(JSON.parse(mock.receivedText[before] as string)).toMatchObject({
        model: "gpt-4o-mini",
        max_tokens: 10,
      });
    }
    expect(reads).toBe(1);
  });

  it("reads the resource once, as fetch does: a Request subclass or a URL that answers otherwise twice sends what was metered", async () => {
    // $0.001 holds the small request, not the large one.
    const m = await metered({ child: { usdMicros: 1_000 } });
    const url = `${mock.url}/v1/chat/completions`;
    const headers = { "content-type": "application/json" };
    // Overrides set on the prototypes: TypeScript types these members as properties.
    class CloneLies extends Request {}
    Object.defineProperty(CloneLies.prototype, "clone", {
      value: () => new Request(url, { method: "POST", headers, body: small }),
    });
    class UrlLies extends Request {}
    Object.defineProperty(UrlLies.prototype, "url", { get: () => `${mock.url}/v1/models` });
    for (const request of [
      new CloneLies(url, { method: "POST", headers, body: large }),
      new UrlLies(url, { method: "POST", headers, body: large }),
    ]) {
      const before = mock.receivedText.length;
      const response = await m.fetch(request);
      await response.arrayBuffer();
      // Metered as the large request it is: refused, nothing sent.
      expect(response.status, request.constructor.name).toBe(402);
      expect(mock.receivedText.length).toBe(before);
    }
    // A URL whose string is the provider's but whose fields say another path.
    class Disguised extends URL {}
    Object.defineProperty(Disguised.prototype, "pathname", { get: () => "/v1/models" });
    Object.defineProperty(Disguised.prototype, "href", { get: () => `${mock.url}/v1/models` });
    const before = mock.receivedText.length;
    const response = await m.fetch(new Disguised(url), { method: "POST", headers, body: large });
    await response.arrayBuffer();
    expect(response.status).toBe(402);
    expect(mock.receivedText.length).toBe(before);
    // A plain Request is metered and sent as before.
    const ok = await m.fetch(new Request(url, { method: "POST", headers, body: small }));
    expect(ok.status).toBe(200);
    await ok.json();
  });

  it("a Request and fetch's options are made one Request, as fetch makes them: init.body replaces the Request's", async () => {
    const m = await metered({ child: { usdMicros: 1_000 } });
    const url = `${mock.url}/v1/chat/completions`;
    const headers = { "content-type": "application/json" };
    const request = new Request(url, { method: "POST", headers, body: large });
    const response = await m.fetch(request, { body: small });
    expect(response.status).toBe(200);
    await response.json();
    expect(JSON.parse(mock.receivedText.at(-1) as string)).toMatchObject({ model: "gpt-4o-mini" });
    // As plain fetch leaves it: the caller's Request is not read.
    expect(request.bodyUsed).toBe(false);
    // And the other way round: the Request's large body, no init.body, is metered as large.
    const refused = await m.fetch(new Request(url, { method: "POST", headers, body: large }));
    expect(refused.status).toBe(402);
  });

  it("a Request's body is sent as the text the meter read, not as bytes it read otherwise", async () => {
    const sent: Uint8Array[] = [];
    const m = await metered(
      {},
      {
        inner: async (input, init) => {
          const copy = input instanceof Request ? input.clone() : new Request(input, init);
          sent.push(new Uint8Array(await copy.arrayBuffer()));
          return globalThis.fetch(input, init);
        },
      },
    );
    const text = JSON.stringify({
      model: "gpt-4o-mini",
      max_tokens: 10,
      messages: [{ role: "user", content: "hi" }],
    });
    // A byte that is no UTF-8 inside a key: read as U+FFFD.
    const bytes = Buffer.concat([
      Buffer.from(text.slice(0, -1)),
      Buffer.from([0x2c, 0x22, 0xc0, 0x22, 0x3a, 0x31, 0x7d]),
    ]);
    const response = await m.fetch(
      new Request(`${mock.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: bytes,
      }),
    );
    expect(response.status).toBe(200);
    await response.json();
    const last = Buffer.from(sent.at(-1) as Uint8Array);
    expect(last.includes(0xc0)).toBe(false);
    expect(last.toString("utf8")).toContain("\ufffd");
  });

  it("a redirect mode that is not one of fetch's strings is a TypeError, nothing sent or held: fetch would make one of it", async () => {
    const m = await metered();
    const url = `${mock.url}/v1/chat/completions`;
    const before = mock.count();
    for (const redirect of [
      new String("follow"),
      { toString: () => "follow" },
      null,
      "FOLLOW",
      1,
    ]) {
      for (const target of [url, "http://127.0.0.1:9/not-a-provider"])
        await expect(
          m.fetch(target, { method: "POST", body: small, redirect } as unknown as RequestInit),
        ).rejects.toThrow(/"init.redirect" expected "follow", "manual" or "error"/);
    }
    expect(mock.count()).toBe(before);
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
  });

  it("options fetch refuses before sending (a header it cannot send) are the caller's: the breaker does not open on them", async () => {
    const m = await metered({}, { breaker: { maxConsecutiveFailures: 2 } });
    const url = `${mock.url}/v1/chat/completions`;
    const before = mock.count();
    let n = 0;
    const request = () =>
      JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: `q ${n++}` }] });
    const blob = new Blob([request()]);
    const crlfType = {
      [Symbol.toStringTag]: "Blob",
      type: "application/json\r\nx-evil: 1",
      size: blob.size,
      stream: () => blob.stream(),
      arrayBuffer: () => blob.arrayBuffer(),
      text: () => blob.text(),
      slice: (start?: number, end?: number) => blob.slice(start, end),
    };
    for (let i = 0; i < 4; i++) {
      await expect(
        m.fetch(url, { method: "POST", headers: { "bad header": "x" }, body: request() }),
      ).rejects.toThrow(TypeError);
      // Headers Node's fetch refuses only when it dispatches (with an argument error as cause).
      for (const headers of [
        { "transfer-encoding": "chunked" },
        { connection: "foo" },
        { upgrade: "websocket" },
        { expect: "100-continue" },
      ])
        await expect(m.fetch(url, { method: "POST", headers, body: request() })).rejects.toThrow(
          TypeError,
        );
      // A signal or dispatcher that is none: refused before anything is held.
      for (const extra of [
        { signal: {} },
        { signal: { aborted: "no", addEventListener: () => undefined } },
        { dispatcher: {} },
        { dispatcher: null },
      ])
        await expect(
          m.fetch(url, { method: "POST", body: request(), ...extra } as unknown as RequestInit),
        ).rejects.toThrow(/"init\.(signal|dispatcher)" expected/);
      await expect(
        m.fetch(url, { method: "POST", headers: { authorization: "a\nb" }, body: request() }),
      ).rejects.toThrow(TypeError);
      await expect(
        m.fetch(url, { method: "POST", body: crlfType as unknown as Blob }),
      ).rejects.toThrow(TypeError);
    }
    expect(mock.count()).toBe(before);
    expect(m.fetch.breakerState("openai").state).toBe("closed");
    expect(await m.ledger()).toEqual({ tokens: 0, usdMicros: 0, heldTokens: 0, heldUsdMicros: 0 });
    // A signal as fetch takes one, though not an AbortSignal of this realm (a polyfill's).
    const native = new AbortController().signal;
    const polyfill = {
      aborted: false,
      reason: undefined,
      addEventListener: native.addEventListener.bind(native),
      removeEventListener: native.removeEventListener.bind(native),
    };
    const polyfilled = await m.fetch(url, {
      method: "POST",
      body: request(),
      signal: polyfill as unknown as AbortSignal,
    });
    expect(polyfilled.status).toBe(200);
    await polyfilled.json();
    // A failure of the network still counts: nothing listens on port 9.
    for (let i = 0; i < 2; i++)
      await expect(
        m.fetch("http://127.0.0.1:9/v1/chat/completions", { method: "POST", body: request() }),
      ).rejects.toThrow(TypeError);
    expect(m.fetch.breakerState("openai").state).toBe("open");
  });

  it("a caller's Content-Length is left to fetch to compute: a wrong one neither fails the call nor is sent twice", async () => {
    // Estimate bounds and the request's own limits: the body is sent as given, unchanged.
    const m = await metered({}, { bound: "estimate" });
    const url = `${mock.url}/v1/chat/completions`;
    const text = JSON.stringify({
      model: "gpt-4o-mini",
      max_tokens: 16,
      messages: [{ role: "user", content: "length" }],
    });
    const before = mock.count();
    for (const length of [String(Buffer.byteLength(text) + 10), String(Buffer.byteLength(text))]) {
      const response = await m.fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "Content-Length": length },
        body: text,
      });
      expect(response.status).toBe(200);
      await response.json();
    }
    // In any form of headers fetch takes: a Map, a Headers, pairs.
    for (const headers of [
      new Map([["Content-Length", "3"]]) as unknown as Headers,
      new Headers({ "content-length": "3" }),
      [["content-length", "3"]] as [string, string][],
    ]) {
      const response = await m.fetch(url, { method: "POST", headers, body: text });
      expect(response.status).toBe(200);
      await response.json();
    }
    expect(mock.count()).toBe(before + 5);
    expect(mock.receivedText.slice(-5)).toEqual([text, text, text, text, text]);
  });

  it("a relative URL is refused where nothing resolves it, and resolved where Node's fetch resolves it (undici's global origin)", async () => {
    const m = await metered();
    const key = Symbol.for("undici.globalOrigin.1");
    const scope = globalThis as Record<symbol, unknown>;
    const had = Object.getOwnPropertyDescriptor(globalThis, key);
    // As undici's setGlobalOrigin defines it.
    Object.defineProperty(globalThis, key, {
      value: new URL(mock.url),
      writable: true,
      enumerable: false,
      configurable: had?.configurable ?? false,
    });
    try {
      // Node's fetch resolves it there.
      expect((await fetch("/v1/models")).url).toBe(`${mock.url}/v1/models`);
      const response = await m.fetch("/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "o" }] }),
      });
      expect(response.status).toBe(200);
      await response.json();
      expect((await m.ledger()).usdMicros).toBeGreaterThan(0);
    } finally {
      scope[key] = undefined;
    }
  });

  it("a relative URL is refused where nothing resolves it, and resolved as a page would resolve it", async () => {
    const m = await metered();
    const body = JSON.stringify({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
    });
    const before = mock.count();
    await expect(m.fetch("/v1/chat/completions", { method: "POST", body })).rejects.toThrow(
      /absolute URL/,
    );
    expect(mock.count()).toBe(before);
    const holder = globalThis as { location?: unknown };
    holder.location = { href: `${mock.url}/app/` };
    try {
      const response = await m.fetch("/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      expect(response.status).toBe(200);
      await response.json();
      expect((await m.ledger()).usdMicros).toBeGreaterThan(0);
      // A page's base URL (moved by a <base> element) comes before its location, as for fetch:
      // a relative path goes, and is metered, where the base says.
      const page = globalThis as { document?: unknown };
      page.document = { baseURI: `${mock.url}/` };
      holder.location = { href: "http://127.0.0.1:9/elsewhere/" };
      try {
        const seenBefore = mock.count();
        const based = await m.fetch("v1/chat/completions", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: body.replace("hi", "hi again"),
        });
        expect(based.status).toBe(200);
        await based.json();
        expect(mock.count()).toBe(seenBefore + 1);
      } finally {
        delete page.document;
      }
    } finally {
      delete holder.location;
    }
  });

  it("hands fetch what plain fetch would see: non-enumerable options, the caller's signal, no Content-Type of its own", async () => {
    const seen: { init: RequestInit | undefined; request: Request }[] = [];
    const m = await metered(
      {},
      {
        inner: async (input, init) => {
          seen.push({
            init,
            request: new Request(input instanceof Request ? input.clone() : input, init),
          });
          return globalThis.fetch(input, init);
        },
      },
    );
    const url = `${mock.url}/v1/chat/completions`;
    // An option fetch reads though it is not enumerable.
    const init = { method: "POST", body: small } as RequestInit;
    Object.defineProperty(init, "headers", {
      value: { "content-type": "application/json", authorization: "Bearer k" },
      enumerable: false,
    });
    await (await m.fetch(url, init)).json();
    expect(seen.at(-1)?.request.headers.get("authorization")).toBe("Bearer k");
    // A Request and the caller's signal: the signal itself reaches fetch.
    const controller = new AbortController();
    await (
      await m.fetch(
        new Request(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: small,
        }),
        { signal: controller.signal },
      )
    ).json();
    expect(seen.at(-1)?.init?.signal).toBe(controller.signal);
    // A body of bytes with no Content-Type is sent with none, as plain fetch sends it.
    await (
      await m.fetch(new Request(url, { method: "POST", body: new TextEncoder().encode(small) }))
    ).json();
    expect(seen.at(-1)?.request.headers.get("content-type")).toBeNull();
    await (await m.fetch(url, { method: "POST", body: new TextEncoder().encode(small) })).json();
    expect(seen.at(-1)?.request.headers.get("content-type")).toBeNull();
    // A Blob's type is the Content-Type plain fetch sends when the caller gives none; a caller's
    // own wins, in any form of headers.
    // Each a new request: five alike would be a loop.
    let n = 0;
    const text = () =>
      JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: `hi ${n++}` }] });
    const typed = () => new Blob([text()], { type: "application/json" });
    expect(new Request(url, { method: "POST", body: typed() }).headers.get("content-type")).toBe(
      "application/json",
    );
    await (await m.fetch(url, { method: "POST", body: typed() })).json();
    expect(seen.at(-1)?.request.headers.get("content-type")).toBe("application/json");
    expect(await seen.at(-1)?.request.clone().text()).toContain('"max_completion_tokens"');
    for (const headers of [
      { "Content-Type": "application/json; charset=utf-8" },
      [["content-type", "application/json; charset=utf-8"]] as [string, string][],
      new Headers({ "content-type": "application/json; charset=utf-8" }),
    ]) {
      await (await m.fetch(url, { method: "POST", headers, body: typed() })).json();
      expect(seen.at(-1)?.request.headers.get("content-type")).toBe(
        "application/json; charset=utf-8",
      );
    }
    await (await m.fetch(url, { method: "POST", body: new Blob([text()]) })).json();
    expect(seen.at(-1)?.request.headers.get("content-type")).toBeNull();
    // A Blob-like object fetch takes (another realm's Blob, a polyfill): its type as well.
    const blob = new Blob([text()], { type: "application/json" });
    const blobLike = {
      [Symbol.toStringTag]: "Blob",
      type: blob.type,
      size: blob.size,
      stream: () => blob.stream(),
      arrayBuffer: () => blob.arrayBuffer(),
      text: () => blob.text(),
      slice: (start?: number, end?: number) => blob.slice(start, end),
    };
    expect(blobLike instanceof Blob).toBe(false);
    await (await m.fetch(url, { method: "POST", body: blobLike as unknown as Blob })).json();
    expect(seen.at(-1)?.request.headers.get("content-type")).toBe("application/json");
    expect(seen).toHaveLength(10);
  });
});
