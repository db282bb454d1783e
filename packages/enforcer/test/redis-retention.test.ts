/**
 * Retention of rate windows' buckets on Redis (spec/enforcement.md §3.5): a window keys one account
 * per bucket, and the script forgets a bucket account that ended at least `retentionMs` before
 * and holds nothing (ledger.lua pruneBuckets). Before, every bucket stayed in the root's accounts
 * hash forever: a 1-second window added three fields a second for as long as the root was used.
 */
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPair, mint, publicKeyOf, trustedRoots } from "@allowance/core";
import { Enforcer, MemoryLedger, type Ledger } from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import { verify, type VerifiedChain } from "@allowance/verifier";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";

const USD = 1_000_000;
const START = Date.now();

let admin: Redis;
const prefixes: string[] = [];
beforeAll(() => {
  admin = new Redis(redisUrl);
});
afterAll(async () => {
  for (const prefix of prefixes) await deleteKeys(admin, prefix);
  await admin.quit();
});

async function windowChain(seconds: number, requests: number): Promise<VerifiedChain> {
  const root = await generateKeyPair();
  const token = mint({
    rootKey: root,
    holder: publicKeyOf(await generateKeyPair()),
    grant: {
      exp: Math.floor(START / 1000) + 86_400,
      usdMicros: 1_000 * USD,
      rate: [{ seconds, requests }],
    },
  });
  return verify(token, { roots: trustedRoots([root]) });
}

/** An enforcer and its Redis ledger, both on a clock the test moves. */
function onClock(retentionMs: number) {
  const prefix = freshPrefix();
  prefixes.push(prefix);
  return {
    prefix,
    ...clocked(
      (now) =>
        new RedisLedger(admin.duplicate(), {
          keyPrefix: prefix,
          retentionMs,
          now,
          closeConnection: true,
        }),
    ),
  };
}

/** An enforcer on `open`'s ledger, both on a clock the test moves. */
function clocked(open: (now: () => number) => Ledger) {
  let now = START;
  const ledger = open(() => now);
  return {
    ledger,
    enforcer: new Enforcer({ ledger, now: () => now }),
    advance: (ms: number) => {
      now += ms;
    },
    close: () => ledger.close(),
  };
}

const keyOf = (prefix: string, chain: VerifiedChain, suffix: string) =>
  `${prefix}{${chain.linkIds[0]}}:${suffix}`;

describe.skipIf(redisUrl === "")("a Redis ledger's window buckets", () => {
  it("forgets ended buckets that hold nothing: the accounts hash stays bounded over 1,500 s of a 1 s window (it grew by one bucket a second before)", async () => {
    const chain = await windowChain(1, 100);
    const sizes: Record<string, number> = {};
    for (const [name, retentionMs] of [
      ["kept a day", 86_400_000],
      ["kept 10 s", 10_000],
    ] as const) {
      const c = onClock(retentionMs);
      try {
        for (let i = 0; i < 1_500; i++) {
          const d = await c.enforcer.reserve({ chain, usdMicros: 10 }, { ttl: 60 });
          if (d.decision === "DENY") throw new Error(`denied: ${d.reason}`);
          await c.enforcer.commit(d.reservationId, { usdMicros: 7 });
          c.advance(1_000);
        }
        sizes[name] = await admin.hlen(keyOf(c.prefix, chain, "a"));
        if (retentionMs === 10_000)
          expect(await admin.zcard(keyOf(c.prefix, chain, "w"))).toBeLessThanOrEqual(12);
        // The window's current bucket and the spend on the other lines are as ever.
        const remaining = await c.enforcer.remaining(chain);
        const usd = remaining.links[0]?.limits.find((l) => l.field === "usdMicros");
        expect(usd?.spent).toBe(1_500 * 7);
      } finally {
        await c.close();
      }
    }
    // A day's retention keeps all 1,500 buckets (spent and held each); 10 s keeps about 11.
    expect(sizes["kept a day"]).toBeGreaterThanOrEqual(3_000);
    expect(sizes["kept 10 s"]).toBeLessThanOrEqual(40);
  });

  it("keeps a bucket whose hold is still open past its retention, and its commit charges it", async () => {
    const chain = await windowChain(1, 100);
    const c = onClock(5_000);
    try {
      const open = await c.enforcer.reserve({ chain, usdMicros: 50 }, { ttl: 600 });
      if (open.decision === "DENY") throw new Error("denied");
      const bucket = Math.floor(START / 1000);
      for (let i = 0; i < 30; i++) {
        c.advance(1_000);
        const d = await c.enforcer.reserve({ chain, usdMicros: 1 }, { ttl: 60 });
        if (d.decision === "DENY") throw new Error("denied");
        await c.enforcer.commit(d.reservationId, { usdMicros: 1 });
      }
      const fields = await admin.hgetall(keyOf(c.prefix, chain, "a"));
      const held = Object.entries(fields).filter(
        ([f]) => f.startsWith("h:") && f.endsWith(`@${bucket}`),
      );
      expect(held.map(([, v]) => Number(v))).toContain(1);
      expect(Object.keys(fields).some((f) => f.endsWith(`@${bucket + 1}`))).toBe(false);

      const committed = await c.enforcer.commit(open.reservationId, { usdMicros: 40 });
      expect(committed).toMatchObject({ status: "committed", late: false });
      const after = await admin.hgetall(keyOf(c.prefix, chain, "a"));
      const spent = Object.entries(after).filter(
        ([f]) => f.startsWith("s:") && f.endsWith(`@${bucket}`),
      );
      expect(spent.map(([, v]) => Number(v))).toContain(1);
    } finally {
      await c.close();
    }
  });

  it("law: forgetting ended buckets never changes a decision (the same steps on a memory ledger keeping a day and a Redis ledger keeping 3 s)", async () => {
    const chain = await windowChain(2, 3);
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            // Mostly short waits, so that windows fill up; some long ones, so that buckets end.
            waitMs: fc.oneof(
              fc.constant(0),
              fc.integer({ min: 0, max: 400 }),
              fc.integer({ min: 0, max: 5_000 }),
            ),
            usdMicros: fc.integer({ min: 1, max: 50 }),
            end: fc.constantFrom("commit", "release", "abandon"),
          }),
          { minLength: 1, maxLength: 30 },
        ),
        async (steps) => {
          const ledgers = [
            clocked((now) => new MemoryLedger({ now, retentionMs: 86_400_000 })),
            onClock(3_000),
          ];
          try {
            const answers: string[][] = [[], []];
            for (const step of steps) {
              for (const [i, c] of ledgers.entries()) {
                c.advance(step.waitMs);
                const d = await c.enforcer.reserve(
                  { chain, usdMicros: step.usdMicros },
                  { ttl: 1 },
                );
                answers[i]?.push(d.decision === "DENY" ? `DENY ${d.reason}` : d.decision);
                if (d.decision === "DENY" || step.end === "abandon") continue;
                if (step.end === "commit")
                  await c.enforcer.commit(d.reservationId, { usdMicros: step.usdMicros });
                else await c.enforcer.release(d.reservationId);
              }
            }
            expect(answers[1]).toEqual(answers[0]);
          } finally {
            for (const c of ledgers) await c.close();
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});
