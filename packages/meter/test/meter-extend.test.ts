/**
 * A stream that outlives its hold's TTL (spec/enforcement.md §3.11): while its bytes flow the meter
 * extends the hold, at most once per half TTL, so the hold is still there when the stream is
 * committed; a stream that stalls past its TTL loses its hold, and its commit is late. Real time:
 * the hold's TTL is 1 s and the streams last about 2.5 s.
 */
import type { ServerResponse } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { Enforcer, MemoryLedger } from "@allowance/enforcer";
import { wrapFetch } from "@allowance/meter";
import type { VerifiedChain } from "@allowance/verifier";
import { listen, type RunningServer } from "../../../test/support/http.js";
import { family } from "../../../test/support/ledger-suite.js";

/** A memory ledger that counts extends. */
class CountingLedger extends MemoryLedger {
  extends = 0;
  override extendSync(id: string, ttlMs: number, now?: number) {
    this.extends++;
    return super.extendSync(id, ttlMs, now);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const chunk = (content: string | null, finish: string | null = null) =>
  `data: ${JSON.stringify({
    id: "chatcmpl-slow",
    object: "chat.completion.chunk",
    created: 1,
    model: "gpt-4o-mini",
    choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
  })}\n\n`;
const usage = `data: ${JSON.stringify({
  id: "chatcmpl-slow",
  object: "chat.completion.chunk",
  created: 1,
  model: "gpt-4o-mini",
  choices: [],
  usage: { prompt_tokens: 12, completion_tokens: 20, total_tokens: 32 },
})}\n\n`;

/** A chat completions stream: `pauses[i]` ms before event i of words, then the end at once. */
async function slowStream(pauses: readonly number[]): Promise<RunningServer> {
  return listen((req, res: ServerResponse) => {
    req.resume();
    req.on("end", async () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (const pause of pauses) {
        await sleep(pause);
        res.write(chunk("word "));
      }
      res.end(`${chunk(null, "stop")}${usage}data: [DONE]\n\n`);
    });
  });
}

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function meteredStream(pauses: readonly number[]) {
  server = await slowStream(pauses);
  const { children } = await family({ usdMicros: 10_000_000 }, [{}]);
  const chain = children[0] as VerifiedChain;
  const ledger = new CountingLedger();
  // The real clock: the meter paces its extends by it, the ledger expires holds by it.
  const enforcer = new Enforcer({ ledger });
  const committed: { late: boolean }[] = [];
  enforcer.on("committed", (e) => committed.push(e));
  const errors: unknown[] = [];
  const fetch = wrapFetch(globalThis.fetch, {
    enforcer,
    chain,
    ttl: 1,
    onError: (error) => errors.push(error),
  });
  const started = performance.now();
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer sk-test" },
    body: JSON.stringify({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Say many words" }],
      max_tokens: 50,
      stream: true,
    }),
  });
  expect(response.status).toBe(200);
  await response.text();
  const durationMs = performance.now() - started;
  const report = await enforcer.remaining(chain);
  const usd = report.links[1]?.limits.find((l) => l.field === "usdMicros");
  return { ledger, committed, errors, usd, durationMs };
}

describe("a stream longer than its hold's TTL", () => {
  it("keeps its hold while bytes flow: extended every half TTL, committed on time", async () => {
    const { ledger, committed, errors, usd, durationMs } = await meteredStream(Array(16).fill(150));
    expect(ledger.extends).toBeGreaterThanOrEqual(2);
    // At most once per half TTL (about 2.4 s of stream: 4, more only on a slow machine).
    expect(ledger.extends).toBeLessThanOrEqual(Math.floor(durationMs / 500));
    expect(committed).toMatchObject([{ late: false }]);
    expect(errors).toEqual([]);
    expect(usd).toMatchObject({ held: 0 });
    expect(usd?.spent).toBeGreaterThan(0);
  }, 20_000);

  it("loses its hold when its bytes stop for longer than the TTL, and its commit is late", async () => {
    const { committed, errors, usd } = await meteredStream([100, 1_600, 100]);
    expect(committed).toMatchObject([{ late: true }]);
    // The extend after the stall finds the hold expired: reported, and the stream goes on.
    expect(errors).toEqual([expect.objectContaining({ code: "ERR_RESERVATION_CLOSED" })]);
    expect(usd).toMatchObject({ held: 0 });
  }, 20_000);
});
