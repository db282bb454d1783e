/**
 * A streamed answer is served without a stream until the consumer asks for `body` (wrap-fetch.ts
 * StreamedResponse): whichever way the consumer reads it, it gets the provider's bytes unchanged,
 * exactly once, and the usage is committed before it sees the end; a consumer that never reads is
 * settled all the same; an upstream failure reaches every way of reading.
 */
import { DEFAULT_PRICING, priceUsage, type ModelPrice } from "@allowance/meter";
import { describe, expect, it } from "vitest";
import { MockLlm, metered, mockLlmPerTest, post, readAll } from "./meter-support.js";

let mock: MockLlm;
mockLlmPerTest((started) => (mock = started));

const USAGE = { input: 20, output: 30, cached: 0, cacheWrite: 0 };
const BODY = {
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Say hello" }],
  max_tokens: 100,
  stream: true,
};
const PATH = "/v1/chat/completions";
const exact = () =>
  priceUsage(
    { inputTokens: USAGE.input, outputTokens: USAGE.output },
    DEFAULT_PRICING.openai?.["gpt-4o-mini"] as ModelPrice,
  );

/** The same answer from the mock, unmetered (the meter asks for the usage report): the bytes every way of reading must give. */
async function plainBytes(): Promise<Buffer> {
  return Buffer.from(
    await (
      await post(globalThis.fetch, `${mock.url}${PATH}`, {
        ...BODY,
        stream_options: { include_usage: true },
      })
    ).arrayBuffer(),
  );
}

const READS: readonly [string, (r: Response) => Promise<Buffer>][] = [
  ["arrayBuffer()", async (r) => Buffer.from(await r.arrayBuffer())],
  [
    "bytes()",
    async (r) => {
      const bytes = await (r as Response & { bytes(): Promise<Uint8Array> }).bytes();
      // Its own memory, nothing beyond the answer.
      expect(bytes.buffer.byteLength).toBe(bytes.byteLength);
      return Buffer.from(bytes);
    },
  ],
  ["text()", async (r) => Buffer.from(await r.text())],
  ["blob()", async (r) => Buffer.from(await (await r.blob()).arrayBuffer())],
  ["body.getReader()", readAll],
  [
    "for await over body",
    async (r) => {
      const chunks: Uint8Array[] = [];
      for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) chunks.push(c);
      return Buffer.concat(chunks);
    },
  ],
  [
    "body looked at, then arrayBuffer()",
    async (r) => {
      void r.body;
      return Buffer.from(await r.arrayBuffer());
    },
  ],
  [
    "clone().arrayBuffer(), then the original's body",
    async (r) => {
      const copy = r.clone();
      const a = Buffer.from(await copy.arrayBuffer());
      const b = await readAll(r);
      expect(b.equals(a)).toBe(true);
      return b;
    },
  ],
];

describe("a streamed answer read any way", () => {
  it.each(READS)(
    "%s: the provider's bytes, and the exact usage committed before the end is seen",
    async (_, read) => {
      mock.usage = USAGE;
      const expected = await plainBytes();
      const m = await metered();
      const response = await post(m.fetch, `${mock.url}${PATH}`, BODY);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toContain("text/event-stream");
      expect(response.bodyUsed).toBe(false);
      const bytes = await read(response);
      // Committed by the time the consumer has the whole answer, not later.
      expect(await m.ledger()).toEqual({ ...exact(), heldTokens: 0, heldUsdMicros: 0 });
      // Exactly the provider's bytes: nothing more (no pooled memory), nothing less.
      expect(bytes.length).toBe(expected.length);
      expect(bytes.toString("utf8")).toBe(expected.toString("utf8"));
      expect(response.bodyUsed).toBe(true);
      await expect(response.arrayBuffer()).rejects.toThrow(TypeError);
      expect(() => response.clone()).toThrow(TypeError);
    },
  );

  it("json() of a streamed answer fails as the platform's does, after the usage is committed", async () => {
    mock.usage = USAGE;
    const m = await metered();
    const response = await post(m.fetch, `${mock.url}${PATH}`, BODY);
    await expect(response.json()).rejects.toThrow(SyntaxError);
    expect(await m.ledger()).toEqual({ ...exact(), heldTokens: 0, heldUsdMicros: 0 });
  });

  it("a locked body cannot be read a second way", async () => {
    mock.usage = USAGE;
    const m = await metered();
    const response = await post(m.fetch, `${mock.url}${PATH}`, BODY);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await expect(response.text()).rejects.toThrow(TypeError);
    while (!(await reader.read()).done);
    expect(await m.ledger()).toEqual({ ...exact(), heldTokens: 0, heldUsdMicros: 0 });
  });

  it("a consumer that never reads is settled with the exact usage", async () => {
    mock.usage = USAGE;
    const m = await metered();
    const response = await post(m.fetch, `${mock.url}${PATH}`, BODY);
    expect(response.ok).toBe(true);
    for (let i = 0; i < 50 && (await m.ledger()).heldUsdMicros > 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(await m.ledger()).toEqual({ ...exact(), heldTokens: 0, heldUsdMicros: 0 });
  });

  it.each(READS.slice(0, 5))(
    "a server cut reaches %s as an error, and is charged",
    async (_, read) => {
      mock.usage = USAGE;
      mock.script.push({ kind: "cut", events: 2 });
      const m = await metered();
      const response = await post(m.fetch, `${mock.url}${PATH}`, BODY);
      await expect(read(response)).rejects.toThrow();
      const spent = await m.ledger();
      expect(spent.heldUsdMicros).toBe(0);
      expect(spent.usdMicros).toBeGreaterThan(0);
    },
  );
});

describe("a consumer that lags behind a long stream", () => {
  it("gets every byte once, in order, while the meter parses the stream in batches ahead of it", async () => {
    // 200 chunks of 1,000 bytes: the meter parses them in batches of 64 KiB (66 chunks). The
    // consumer reads 65 chunks, stops until the meter has read the whole stream, then reads the rest.
    const chunk = (i: number) =>
      new TextEncoder().encode(`: ${String(i).padStart(4, "0")} ${"x".repeat(991)}\n\n`);
    const chunks = Array.from({ length: 200 }, (_, i) => chunk(i));
    const usage = `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", choices: [], usage: { prompt_tokens: USAGE.input, completion_tokens: USAGE.output } })}\n\ndata: [DONE]\n\n`;
    chunks.push(new TextEncoder().encode(usage));
    let release!: () => void;
    const consumerWaits = new Promise<void>((resolve) => (release = resolve));
    const inner: typeof fetch = async () => {
      let i = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            // The second batch is sent once the consumer has read its 65 chunks.
            if (i === 66) await consumerWaits;
            if (i < chunks.length) controller.enqueue(chunks[i++] as Uint8Array);
            else controller.close();
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    };
    const m = await metered({}, { inner });
    const response = await post(m.fetch, `${mock.url}${PATH}`, BODY);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const read: Uint8Array[] = [];
    let bytes = 0;
    while (bytes < 65 * 1000) {
      const next = await reader.read();
      if (next.done) break;
      read.push(next.value);
      bytes += next.value.byteLength;
    }
    expect(bytes).toBe(65 * 1000);
    release();
    // The meter reads the rest of the stream and settles before the consumer reads on.
    for (let i = 0; i < 200 && (await m.ledger()).heldTokens > 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await m.ledger()).toMatchObject({ tokens: USAGE.input + USAGE.output, heldTokens: 0 });
    for (let next = await reader.read(); !next.done; next = await reader.read())
      read.push(next.value);
    expect(Buffer.concat(read).equals(Buffer.concat(chunks))).toBe(true);
  });
});
