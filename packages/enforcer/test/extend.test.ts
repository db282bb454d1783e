/**
 * Enforcer.extend (spec/enforcement.md §3.11): a heartbeat that moves a held reservation's expiry,
 * never past the end of its chain and never earlier, on every ledger family; typed errors for a
 * reservation that is unknown or no longer held.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Enforcer, MemoryLedger, type Decision, type Ledger } from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import type { VerifiedChain } from "@allowance/verifier";
import { Clock, T0, family } from "../../../test/support/ledger-suite.js";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-extend-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let redis: Redis | undefined;
beforeAll(async () => {
  if (redisUrl === "") return;
  redis = new Redis(redisUrl);
  await redis.ping();
});
afterAll(async () => {
  await redis?.quit();
});

let files = 0;
const FAMILIES: readonly (readonly [string, (now: () => number) => Promise<Ledger>])[] = [
  ["memory", async (now) => new MemoryLedger({ now })],
  ["sqlite", async (now) => SqliteLedger.open(join(dir, `extend-${files++}.db`), { now })],
  [
    "redis",
    async (now) => {
      const prefix = freshPrefix();
      const ledger = new RedisLedger(redis as Redis, { keyPrefix: prefix, now });
      return Object.assign(ledger, { close: () => deleteKeys(redis as Redis, prefix) });
    },
  ],
];

const held = (d: Decision) => {
  if (d.decision === "DENY") throw new Error(`expected a hold, got ${d.reason}`);
  return d;
};

for (const [name, make] of FAMILIES) {
  describe.skipIf(name === "redis" && redisUrl === "")(`extend, on the ${name} ledger`, () => {
    async function setup(child: { exp?: number } = {}) {
      const clock = new Clock();
      const { children } = await family({ usdMicros: 100 }, [{ usdMicros: 100, ...child }]);
      const ledger = await make(clock.now);
      const enforcer = new Enforcer({ ledger, now: clock.now });
      const expired: string[] = [];
      enforcer.on("expired", (e) => expired.push(e.reservationId));
      const usdHeld = async () =>
        (await enforcer.remaining(children[0] as VerifiedChain)).links[1]?.limits.find(
          (l) => l.field === "usdMicros",
        )?.held;
      return { clock, chain: children[0] as VerifiedChain, ledger, enforcer, expired, usdHeld };
    }

    it("keeps a long call's hold past its first TTL, while one not extended expires", async () => {
      const t = await setup();
      try {
        const long = held(await t.enforcer.reserve({ chain: t.chain, usdMicros: 30 }, { ttl: 30 }));
        const short = held(
          await t.enforcer.reserve({ chain: t.chain, usdMicros: 20 }, { ttl: 30 }),
        );
        expect(long.expiresAt).toBe(T0 + 30_000);
        for (let beat = 1; beat <= 3; beat++) {
          t.clock.advance(20);
          expect(await t.enforcer.extend(long.reservationId, 30)).toEqual({
            expiresAt: T0 + beat * 20_000 + 30_000,
          });
        }
        expect(t.expired).toEqual([short.reservationId]);
        expect(await t.usdHeld()).toBe(30);
        expect(await t.enforcer.commit(long.reservationId, { usdMicros: 25 })).toMatchObject({
          status: "committed",
          late: false,
        });
      } finally {
        await t.ledger.close();
      }
    });

    it("never lets a hold outlive its chain: a reserve and every extend stop at the least exp of its links", async () => {
      const end = Math.floor(T0 / 1000) + 100;
      const t = await setup({ exp: end });
      try {
        const hold = held(
          await t.enforcer.reserve({ chain: t.chain, usdMicros: 30 }, { ttl: 3600 }),
        );
        expect(hold.expiresAt).toBe(end * 1000);
        t.clock.advance(50);
        expect(await t.enforcer.extend(hold.reservationId, 3600)).toEqual({
          expiresAt: end * 1000,
        });
        t.clock.advance(50);
        expect(await t.usdHeld()).toBe(0);
        expect(t.expired).toEqual([hold.reservationId]);
      } finally {
        await t.ledger.close();
      }
    });

    it("never shortens a hold", async () => {
      const t = await setup();
      try {
        const hold = held(
          await t.enforcer.reserve({ chain: t.chain, usdMicros: 30 }, { ttl: 600 }),
        );
        expect(await t.enforcer.extend(hold.reservationId, 1)).toEqual({
          expiresAt: hold.expiresAt,
        });
      } finally {
        await t.ledger.close();
      }
    });

    it("refuses an unknown reservation with ERR_RESERVATION_UNKNOWN, and one no longer held with ERR_RESERVATION_CLOSED naming its status", async () => {
      const t = await setup();
      try {
        await expect(
          t.enforcer.extend(`${t.chain.linkIds[0]}.never-made`, 30),
        ).rejects.toMatchObject({ code: "ERR_RESERVATION_UNKNOWN" });
        const committed = held(await t.enforcer.reserve({ chain: t.chain, usdMicros: 1 }));
        await t.enforcer.commit(committed.reservationId, { usdMicros: 1 });
        const released = held(await t.enforcer.reserve({ chain: t.chain, usdMicros: 1 }));
        await t.enforcer.release(released.reservationId);
        const expired = held(
          await t.enforcer.reserve({ chain: t.chain, usdMicros: 1 }, { ttl: 10 }),
        );
        t.clock.advance(10);
        for (const [id, status] of [
          [committed.reservationId, "committed"],
          [released.reservationId, "released"],
          [expired.reservationId, "expired"],
        ] as const)
          await expect(t.enforcer.extend(id, 30), status).rejects.toMatchObject({
            code: "ERR_RESERVATION_CLOSED",
            message: expect.stringContaining(`is ${status}`),
          });
        expect(t.expired).toEqual([expired.reservationId]);
      } finally {
        await t.ledger.close();
      }
    });

    it("extendSync answers as extend on a synchronous ledger, and is refused with a TypeError on another", async () => {
      const t = await setup();
      try {
        const hold = held(await t.enforcer.reserve({ chain: t.chain, usdMicros: 1 }, { ttl: 30 }));
        t.clock.advance(10);
        if (name === "redis")
          expect(() => t.enforcer.extendSync(hold.reservationId, 30)).toThrow(TypeError);
        else
          expect(t.enforcer.extendSync(hold.reservationId, 30)).toEqual({
            expiresAt: T0 + 40_000,
          });
      } finally {
        await t.ledger.close();
      }
    });
  });
}
