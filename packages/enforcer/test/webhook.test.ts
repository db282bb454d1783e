import { afterEach, describe, expect, it, vi } from "vitest";
import {
  Enforcer,
  attachWebhook,
  signWebhook,
  verifyWebhookSignature,
  type Decision,
  type WebhookEnvelope,
} from "@allowance/enforcer";
import { generateKeyPair } from "@allowance/core";
import type { VerifiedChain } from "@allowance/verifier";
import { listen, type RunningServer } from "../../../test/support/http.js";
import { Clock, family } from "../../../test/support/ledger-suite.js";

const SECRET = "a-webhook-secret-of-some-length";
let server: RunningServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Received {
  readonly envelope: WebhookEnvelope;
  readonly valid: boolean;
  readonly id: string | undefined;
}

async function receiver(
  failFirst: number,
): Promise<{ received: Received[]; attempts: () => number }> {
  const received: Received[] = [];
  let attempts = 0;
  server = await listen((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
    req.on("end", () => {
      attempts++;
      if (attempts <= failFirst) {
        res.writeHead(503);
        res.end();
        return;
      }
      const signature = req.headers["allowance-signature"];
      received.push({
        envelope: JSON.parse(body) as WebhookEnvelope,
        valid: verifyWebhookSignature(
          SECRET,
          body,
          typeof signature === "string" ? signature : undefined,
        ),
        id: req.headers["allowance-event-id"] as string | undefined,
      });
      res.writeHead(204);
      res.end();
    });
  });
  return { received, attempts: () => attempts };
}

describe("the webhook sink", () => {
  it("POSTs denied, overrun and threshold events in order, signed, retrying after server errors", async () => {
    const { received, attempts } = await receiver(2);
    const clock = new Clock();
    const enforcer = new Enforcer({ now: clock.now });
    const sink = attachWebhook(enforcer, {
      url: `${server!.url}/hook`,
      secret: SECRET,
      backoffMs: 10,
    });
    const { children } = await family({ usdMicros: 100 }, [{}]);
    const chain = children[0] as VerifiedChain;
    const r = (await enforcer.reserve({ chain, usdMicros: 40 })) as Extract<
      Decision,
      { reservationId: string }
    >;
    await enforcer.commit(r.reservationId, { usdMicros: 60 });
    await enforcer.reserve({ chain, usdMicros: 50 });
    await sink.flush();
    expect(received.map((r) => r.envelope.type)).toEqual([
      "overrun",
      "threshold",
      "threshold",
      "denied",
    ]);
    expect(received.every((r) => r.valid)).toBe(true);
    expect(received.every((r) => r.id === r.envelope.id)).toBe(true);
    // A reservation's events go by their own ids, the same if raised again (after a lost reply);
    // a denial, which belongs to no reservation, by a uuid.
    expect(received.map((r) => r.id)).toEqual([
      `${r.reservationId}:overrun:usdMicros`,
      expect.stringMatching(new RegExp(`^${r.reservationId}:threshold:.+:50$`)),
      expect.stringMatching(new RegExp(`^${r.reservationId}:threshold:.+:50$`)),
      expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-/),
    ]);
    expect(attempts()).toBe(6);
    expect(sink.delivered).toBe(4);
    expect(sink.failed).toBe(0);
  });

  it("waits between retries at most a timer's longest delay, which Node would otherwise fire at once", async () => {
    const { attempts } = await receiver(100);
    const delays: number[] = [];
    const real = globalThis.setTimeout;
    // The waits are recorded and skipped; the deliveries are real.
    const spy = vi.spyOn(globalThis, "setTimeout").mockImplementation(((
      run: (...args: unknown[]) => void,
      ms?: number,
      ...args: unknown[]
    ) => {
      if (ms !== undefined && ms >= 1000) delays.push(ms);
      return real(run, ms !== undefined && ms >= 1000 ? 0 : ms, ...args);
    }) as typeof setTimeout);
    try {
      const enforcer = new Enforcer();
      const sink = attachWebhook(enforcer, {
        url: server!.url,
        secret: SECRET,
        retries: 30,
        backoffMs: 200,
        events: ["denied"],
      });
      const { children } = await family({ usdMicros: 1 }, [{}]);
      await enforcer.reserve({ chain: children[0] as VerifiedChain, usdMicros: 5 });
      await sink.flush();
      expect(attempts()).toBe(31);
      expect(Math.max(...delays)).toBe(2_147_483_647);
      expect(delays.filter((ms) => ms === 2_147_483_647).length).toBeGreaterThan(1);
    } finally {
      spy.mockRestore();
    }
  });

  it("sends a receipt raised again (a repeated commit) under the same event id", async () => {
    const { received } = await receiver(0);
    const enforcer = new Enforcer({ receipts: { key: await generateKeyPair() } });
    const sink = attachWebhook(enforcer, {
      url: server!.url,
      secret: SECRET,
      events: ["receipt"],
    });
    const { children } = await family({ usdMicros: 100 }, [{}]);
    const hold = await enforcer.reserve({ chain: children[0] as VerifiedChain, usdMicros: 5 });
    const id = (hold as { reservationId: string }).reservationId;
    await enforcer.commit(id, { usdMicros: 3 });
    await enforcer.commit(id, { usdMicros: 3 });
    await sink.flush();
    expect(received).toHaveLength(2);
    expect(received[0]?.id).toMatch(/^receipt:.+:1$/);
    expect(received[1]?.id).toBe(received[0]?.id);
  });

  it("gives up after its retries and counts the failure", async () => {
    const { received } = await receiver(100);
    const enforcer = new Enforcer();
    const sink = attachWebhook(enforcer, {
      url: server!.url,
      secret: SECRET,
      retries: 2,
      backoffMs: 5,
      events: ["denied"],
    });
    const { children } = await family({ usdMicros: 1 }, [{}]);
    await enforcer.reserve({ chain: children[0] as VerifiedChain, usdMicros: 5 });
    await sink.flush();
    expect(received).toHaveLength(0);
    expect(sink.failed).toBe(1);
  });

  it("signatures fail for another body, another secret, or an old timestamp", () => {
    const body = JSON.stringify({ a: 1 });
    const t = Math.floor(Date.now() / 1000);
    const header = `t=${t},v1=${"0".repeat(64)}`;
    expect(verifyWebhookSignature(SECRET, body, header)).toBe(false);
    const good = signWebhook(SECRET, body, t);
    expect(verifyWebhookSignature(SECRET, body, good)).toBe(true);
    expect(verifyWebhookSignature(SECRET, body + " ", good)).toBe(false);
    expect(verifyWebhookSignature("another-secret-entirely", body, good)).toBe(false);
    expect(verifyWebhookSignature(SECRET, body, good, { now: t + 301 })).toBe(false);
    // The raw bytes as received check the same as the text.
    expect(verifyWebhookSignature(SECRET, Buffer.from(body), good)).toBe(true);
    // Text UTF-8 cannot carry as it is: not what was signed (its bytes would be U+FFFD's).
    const replaced = signWebhook(SECRET, "\ufffd", t);
    expect(() => verifyWebhookSignature(SECRET, "\ud800", replaced)).toThrow(TypeError);
    expect(() => signWebhook(SECRET, "\ud800", t)).toThrow(TypeError);
    expect(verifyWebhookSignature(SECRET, Buffer.from(`${body} `), good)).toBe(false);
  });

  it("refuses arguments that would weaken the check, rather than pass a stale or forged signature", () => {
    const body = JSON.stringify({ a: 1 });
    const old = signWebhook(SECRET, body, 1_000);
    // A stale signature stays stale whatever the options' values are: an error, never true.
    for (const options of [
      { now: Number.NaN },
      { now: Number.POSITIVE_INFINITY },
      { now: "1000" },
      { toleranceSeconds: Number.NaN },
      { toleranceSeconds: Number.POSITIVE_INFINITY },
      { toleranceSeconds: -1 },
      { toleranceSeconds: 1.5 },
      { tolerance: 1e12 },
      null,
    ])
      expect(
        () => verifyWebhookSignature(SECRET, body, old, options as never),
        JSON.stringify(options),
      ).toThrow(options !== null && "tolerance" in options ? TypeError : Error);
    for (const secret of ["", "short", undefined, 42])
      expect(() => verifyWebhookSignature(secret as never, body, old)).toThrow(TypeError);
    for (const raw of [{ a: 1 }, undefined, 42])
      expect(() => verifyWebhookSignature(SECRET, raw as never, old)).toThrow(TypeError);
    for (const timestamp of [Number.NaN, -1, 1.5, undefined, 1e13])
      expect(() => signWebhook(SECRET, body, timestamp as never)).toThrow(RangeError);
    expect(verifyWebhookSignature(SECRET, body, old, { now: 1_100 })).toBe(true);
  });

  it("refuses a sink that would send nothing or give up at once: unknown events, NaN or negative counts", () => {
    const enforcer = new Enforcer();
    const url = "http://127.0.0.1:9/hook";
    for (const bad of [
      { events: ["denid"] },
      { events: "denied" },
      { retries: Number.NaN },
      { retries: -1 },
      { retries: 1.5 },
      { backoffMs: Number.NaN },
      { timeoutMs: 0 },
      { timeoutMs: Number.POSITIVE_INFINITY },
      { fetch: "fetch" },
      { url: "http://" },
      { url: "ftp://example.com/hook" },
      { secret: "short" },
    ])
      expect(
        () => attachWebhook(enforcer, { url, secret: SECRET, ...(bad as object) }),
        JSON.stringify(bad),
      ).toThrow(/expected/);
    attachWebhook(enforcer, { url, secret: SECRET, retries: 0, events: [] }).detach();
  });

  it("refuses a misspelt option and null for a default, as verifyWebhookSignature does", () => {
    const enforcer = new Enforcer();
    const url = "http://127.0.0.1:9/hook";
    // `event` (for `events`) left the default events on, and the receipts asked for were never sent.
    for (const bad of [{ event: ["receipt"] }, { retry: 5 }, { events: null }])
      expect(
        () => attachWebhook(enforcer, { url, secret: SECRET, ...(bad as object) }),
        JSON.stringify(bad),
      ).toThrow(TypeError);
    expect(() => attachWebhook(enforcer, null as never)).toThrow(/"options"/);
    expect(() => attachWebhook(null as never, { url, secret: SECRET })).toThrow(/"enforcer"/);
  });
});
