/**
 * The ledger's clock decides (spec/enforcement.md §3.8): two clients whose injected clocks
 * disagree share one SQLite file, then one Redis server, each ledger on its own clock (the host's
 * for SQLite, the server's TIME for Redis). Before, a client a TTL ahead expired another's live
 * hold ($8 spent on a $5 cap, the first commit recorded late), and two clients 10 s apart each got
 * their own rate-window bucket (a 5-per-10 s window allowed 10).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import {
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type GrantFields,
} from "@allowance/core";
import { Enforcer, type Ledger } from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { RedisLedger } from "@allowance/enforcer/redis";
import { verify, type VerifiedChain } from "@allowance/verifier";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";

const USD = 1_000_000;
const dir = mkdtempSync(join(tmpdir(), "allowance-clock-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A root chain valid for an hour of the real clock: these ledgers run on it. */
async function chainOf(grant: GrantFields): Promise<VerifiedChain> {
  const root = await generateKeyPair();
  const holder = await generateKeyPair();
  const now = Math.floor(Date.now() / 1000);
  const token = mint({
    rootKey: root,
    holder: publicKeyOf(holder),
    grant: { exp: now + 3600, ...grant },
  });
  return verify(token, { roots: trustedRoots([root]) });
}

/** A client whose clock is `skewMs` off the real one. */
const client = (ledger: Ledger, skewMs: number) =>
  new Enforcer({ ledger, now: () => Date.now() + skewMs });

/** Waits, if need be, until at least `marginMs` are left in the current bucket of `windowMs`. */
async function awayFromBoundary(windowMs: number, marginMs: number): Promise<void> {
  const left = windowMs - (Date.now() % windowMs);
  if (left < marginMs) await new Promise((resolve) => setTimeout(resolve, left + 50));
}

interface Shared {
  /** Two ledgers on one store, as two processes would open it, with the skew bound given. */
  open(maxClockSkewMs?: number): Promise<[Ledger, Ledger]>;
}

function clockFaults(name: string, shared: Shared): void {
  describe(`clients with skewed clocks on one ${name} ledger`, () => {
    it("regression: a client a TTL ahead expired another's live hold ($8 on a $5 cap); now it is refused with ERR_CLOCK_SKEW and the hold stays", async () => {
      const chain = await chainOf({ usdMicros: 5 * USD });
      const [a, b] = await shared.open();
      try {
        const honest = client(a, 0);
        const ahead = client(b, 60_000);
        const held = await honest.reserve({ chain, usdMicros: 4 * USD }, { ttl: 60 });
        expect(held.decision).toBe("ALLOW");
        await expect(
          ahead.reserve({ chain, usdMicros: 4 * USD }, { ttl: 60 }),
        ).rejects.toMatchObject({ code: "ERR_CLOCK_SKEW", field: "clientNowMs", limit: 5000 });
        const before = await honest.remaining(chain);
        expect(before.links[0]?.limits.find((l) => l.field === "usdMicros")).toMatchObject({
          spent: 0,
          held: 4 * USD,
        });
        if (held.decision === "DENY") return;
        expect(await honest.commit(held.reservationId, { usdMicros: 4 * USD })).toMatchObject({
          status: "committed",
          late: false,
        });
        const after = await honest.remaining(chain);
        expect(after.links[0]?.limits.find((l) => l.field === "usdMicros")).toMatchObject({
          spent: 4 * USD,
          held: 0,
        });
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it("decides expiry on the ledger's clock when the bound lets a skewed client in: the hold of the other stays, and the second $4 is denied", async () => {
      const chain = await chainOf({ usdMicros: 5 * USD });
      const [a, b] = await shared.open(120_000);
      try {
        const honest = client(a, 0);
        const ahead = client(b, 60_000);
        const held = await honest.reserve({ chain, usdMicros: 4 * USD }, { ttl: 60 });
        const second = await ahead.reserve({ chain, usdMicros: 4 * USD }, { ttl: 60 });
        expect(second).toMatchObject({ decision: "DENY", reason: "BUDGET_USD", available: USD });
        if (held.decision === "DENY") throw new Error("the first reserve was denied");
        // The hold ends a TTL after the ledger's time of the reserve, whatever the client's clock.
        expect(Math.abs(held.expiresAt - (Date.now() + 60_000))).toBeLessThan(5_000);
        expect(await honest.commit(held.reservationId, { usdMicros: 4 * USD })).toMatchObject({
          late: false,
        });
        const spent = (await ahead.remaining(chain)).links[0]?.limits.find(
          (l) => l.field === "usdMicros",
        )?.spent;
        expect(spent).toBe(4 * USD);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it("regression: two clients 10 s apart each had their own bucket (10 allowed by a 5-per-10 s window); now the ledger's bucket allows 5", async () => {
      const chain = await chainOf({ rate: [{ seconds: 10, requests: 5 }] });
      const [a, b] = await shared.open(20_000);
      try {
        const clients = [client(a, 0), client(b, 10_000)];
        await awayFromBoundary(10_000, 3_000);
        let allowed = 0;
        const denials: string[] = [];
        for (let i = 0; i < 10; i++) {
          const d = await (clients[i % 2] as Enforcer).reserve({ chain });
          if (d.decision === "DENY") denials.push(d.reason);
          else allowed++;
        }
        expect(allowed).toBe(5);
        expect(new Set(denials)).toEqual(new Set(["RATE_LIMITED"]));
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it("refuses the client 10 s off under the default bound, and allows the other its 5", async () => {
      const chain = await chainOf({ rate: [{ seconds: 10, requests: 5 }] });
      const [a, b] = await shared.open();
      try {
        const [honest, off] = [client(a, 0), client(b, 10_000)];
        await awayFromBoundary(10_000, 3_000);
        let allowed = 0;
        for (let i = 0; i < 10; i++) {
          if (i % 2 === 1) {
            await expect(off.reserve({ chain })).rejects.toMatchObject({ code: "ERR_CLOCK_SKEW" });
            continue;
          }
          if ((await honest.reserve({ chain })).decision !== "DENY") allowed++;
        }
        expect(allowed).toBe(5);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  });
}

let files = 0;
clockFaults("SQLite", {
  async open(maxClockSkewMs) {
    const path = join(dir, `clock-${files++}.db`);
    const options = maxClockSkewMs === undefined ? {} : { maxClockSkewMs };
    return [SqliteLedger.open(path, options), SqliteLedger.open(path, options)];
  },
});

describe.skipIf(redisUrl === "")("on Redis", () => {
  clockFaults("Redis", {
    async open(maxClockSkewMs) {
      const prefix = freshPrefix();
      const options = {
        keyPrefix: prefix,
        ...(maxClockSkewMs === undefined ? {} : { maxClockSkewMs }),
      };
      // Two connections, as two hosts would have; the server's TIME is the one clock.
      const open = (first: boolean): Ledger => {
        const connection = new Redis(redisUrl);
        return Object.assign(new RedisLedger(connection, options), {
          close: async () => {
            if (first) await deleteKeys(connection, prefix);
            await connection.quit();
          },
        });
      };
      return [open(true), open(false)];
    },
  });
});
