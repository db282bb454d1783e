/**
 * Durable Redis, checked (spec/enforcement.md §8.1), on servers of the tests' own: the ledger
 * refuses a server that may lose what it acknowledged, unless told by name that durability is
 * ensured elsewhere or not needed; and the root's epoch marker turns state lost anyway (a restart
 * without persistence, an eviction) into ERR_LEDGER_STATE until an operator reconciles the root.
 * Before, a restart without persistence, or allkeys-lru eviction, let a second $9 through on a
 * $10 root, and `remaining()` showed a full budget again.
 */
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { generateKeyPair, mint, publicKeyOf, trustedRoots } from "@allowance/core";
import { Enforcer } from "@allowance/enforcer";
import { RedisLedger, type RedisLedgerOptions } from "@allowance/enforcer/redis";
import { verify, type VerifiedChain } from "@allowance/verifier";
import { hasRedisServer, startRedis, type RedisServer } from "./redis-servers.js";

const USD = 1_000_000;
const servers: RedisServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.dispose()));
});

async function server(args: readonly string[]): Promise<RedisServer> {
  const started = await startRedis(args);
  servers.push(started);
  return started;
}

/** A $10 root valid for an hour of the real clock, which the ledgers here run on. */
async function tenDollarRoot(): Promise<VerifiedChain> {
  const root = await generateKeyPair();
  const holder = await generateKeyPair();
  const token = mint({
    rootKey: root,
    holder: publicKeyOf(holder),
    grant: { exp: Math.floor(Date.now() / 1000) + 3600, usdMicros: 10 * USD },
  });
  return verify(token, { roots: trustedRoots([root]) });
}

/** An enforcer on its own connection to `url`; the connection reconnects across restarts. */
function enforcerOn(url: string, options: RedisLedgerOptions = {}) {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  // Refused connections while a server restarts are expected; the ledger's calls report them.
  redis.on("error", () => undefined);
  const ledger = new RedisLedger(redis, options);
  return {
    redis,
    ledger,
    enforcer: new Enforcer({ ledger }),
    close: () => redis.quit().catch(() => undefined),
  };
}

const spentOf = async (enforcer: Enforcer, chain: VerifiedChain) =>
  (await enforcer.remaining(chain)).links[0]?.limits.find((l) => l.field === "usdMicros")?.spent;

describe.skipIf(!hasRedisServer())("a Redis ledger's durability", () => {
  it("refuses a server without AOF (RDB snapshots, the default) with ERR_LEDGER_NOT_DURABLE, at connect and at the first operation, writing nothing", async () => {
    const s = await server([]);
    await expect(RedisLedger.connect(s.url)).rejects.toMatchObject({
      code: "ERR_LEDGER_NOT_DURABLE",
      message: expect.stringMatching(/appendonly no/),
    });
    const chain = await tenDollarRoot();
    const { enforcer, redis, close } = enforcerOn(s.url);
    try {
      await expect(enforcer.reserve({ chain, usdMicros: USD })).rejects.toMatchObject({
        code: "ERR_LEDGER_NOT_DURABLE",
      });
      expect(await redis.dbsize()).toBe(0);
    } finally {
      await close();
    }
  });

  it("refuses an eviction policy that can drop its keys: allkeys-* and volatile-* (the closed-record generations carry a TTL)", async () => {
    for (const policy of ["allkeys-lru", "allkeys-random", "volatile-lru", "volatile-ttl"]) {
      const s = await server(["--appendonly", "yes", "--maxmemory-policy", policy]);
      await expect(RedisLedger.connect(s.url), policy).rejects.toMatchObject({
        code: "ERR_LEDGER_NOT_DURABLE",
        message: expect.stringContaining(`maxmemory-policy ${policy}`),
      });
      await s.dispose();
    }
  });

  it("takes a server with AOF on and noeviction, whatever its appendfsync", async () => {
    const chain = await tenDollarRoot();
    for (const fsync of ["always", "everysec", "no"]) {
      const s = await server(["--appendonly", "yes", "--appendfsync", fsync]);
      const ledger = await RedisLedger.connect(s.url);
      try {
        const enforcer = new Enforcer({ ledger });
        expect((await enforcer.reserve({ chain, usdMicros: USD })).decision, fsync).toBe("ALLOW");
      } finally {
        await ledger.close();
        await s.dispose();
      }
    }
  });

  it("refuses a server that blocks CONFIG unless the caller states, by name, that durability is ensured elsewhere or not needed", async () => {
    const s = await server(["--appendonly", "yes", "--rename-command", "CONFIG", ""]);
    await expect(RedisLedger.connect(s.url)).rejects.toMatchObject({
      code: "ERR_LEDGER_NOT_DURABLE",
      message: expect.stringMatching(/ensured-elsewhere/),
    });
    const chain = await tenDollarRoot();
    for (const durability of ["ensured-elsewhere", "not-needed"] as const) {
      const ledger = await RedisLedger.connect(s.url, { durability, keyPrefix: `${durability}:` });
      try {
        const decision = await new Enforcer({ ledger }).reserve({ chain, usdMicros: USD });
        expect(decision.decision).toBe("ALLOW");
      } finally {
        await ledger.close();
      }
    }
  });

  it("refuses a durability option it does not know, with a TypeError, before touching the server", () => {
    const redis = new Redis({ lazyConnect: true });
    for (const durability of ["", "none", "Verify", 1, null])
      expect(
        () => new RedisLedger(redis, { durability: durability as never }),
        String(durability),
      ).toThrow(TypeError);
    redis.disconnect();
  });

  it("regression: a restart without persistence forgot a $9 spend and allowed a second $9 on a $10 root; now every operation on the root is refused with ERR_LEDGER_STATE until an operator reconciles it", async () => {
    const s = await server(["--save", "", "--appendonly", "no"]);
    const chain = await tenDollarRoot();
    const client = enforcerOn(s.url, { durability: "not-needed" });
    try {
      const first = await client.enforcer.reserve({ chain, usdMicros: 9 * USD });
      if (first.decision === "DENY") throw new Error("the first $9 was denied");
      await client.enforcer.commit(first.reservationId, { usdMicros: 9 * USD });
      const pending = await client.enforcer.reserve({ chain, usdMicros: USD });
      expect(await spentOf(client.enforcer, chain)).toBe(9 * USD);

      await s.stop("nosave");
      await s.restart();

      await expect(client.enforcer.reserve({ chain, usdMicros: 9 * USD })).rejects.toMatchObject({
        code: "ERR_LEDGER_STATE",
      });
      await expect(client.enforcer.remaining(chain)).rejects.toMatchObject({
        code: "ERR_LEDGER_STATE",
      });
      if (pending.decision !== "DENY")
        await expect(
          client.enforcer.commit(pending.reservationId, { usdMicros: USD }),
        ).rejects.toMatchObject({ code: "ERR_LEDGER_STATE" });
      // Another client that saw the root is refused the same way.
      await expect(client.enforcer.check({ chain, usdMicros: 9 * USD })).rejects.toMatchObject({
        code: "ERR_LEDGER_STATE",
      });

      // The operator accepts the root as it now is (having restored or written off the $9).
      await client.ledger.reconcile(chain.linkIds[0] as string);
      expect((await client.enforcer.reserve({ chain, usdMicros: USD })).decision).toBe("ALLOW");
    } finally {
      await client.close();
    }
  });

  it("regression: allkeys-lru eviction dropped the root's keys and allowed a second $9 on a $10 root; now it is refused with ERR_LEDGER_STATE", async () => {
    const s = await server([
      "--save",
      "",
      "--appendonly",
      "no",
      "--maxmemory",
      "4mb",
      "--maxmemory-policy",
      "allkeys-lru",
    ]);
    const chain = await tenDollarRoot();
    const client = enforcerOn(s.url, { durability: "not-needed" });
    try {
      const first = await client.enforcer.reserve({ chain, usdMicros: 9 * USD });
      if (first.decision === "DENY") throw new Error("the first $9 was denied");
      await client.enforcer.commit(first.reservationId, { usdMicros: 9 * USD });
      // Fill the memory until the root's accounts hash is evicted.
      const accounts = `allowance:{${chain.linkIds[0]}}:a`;
      const big = "x".repeat(20_000);
      for (let i = 0; i < 5_000 && (await client.redis.exists(accounts)) === 1; i++)
        await client.redis.set(`filler:${i}`, big);
      expect(await client.redis.exists(accounts)).toBe(0);
      await expect(client.enforcer.reserve({ chain, usdMicros: 9 * USD })).rejects.toMatchObject({
        code: "ERR_LEDGER_STATE",
      });
    } finally {
      await client.close();
    }
  });

  it("refuses, with ERR_LEDGER_STATE and no change, a commit whose hold's line set was deleted (it threw Redis's own error before)", async () => {
    const s = await server(["--appendonly", "yes"]);
    const chain = await tenDollarRoot();
    const client = enforcerOn(s.url);
    try {
      const held = await client.enforcer.reserve({ chain, usdMicros: 2 * USD });
      if (held.decision === "DENY") throw new Error("denied");
      // The operator deletes the root's line sets; the library's parsed copies go too.
      await client.redis.del(`allowance:{${chain.linkIds[0]}}:l`);
      await client.redis.call("FUNCTION", "FLUSH");
      const accounts = await client.redis.hgetall(`allowance:{${chain.linkIds[0]}}:a`);
      await expect(
        client.enforcer.commit(held.reservationId, { usdMicros: USD }),
      ).rejects.toMatchObject({
        name: "AllowanceError",
        code: "ERR_LEDGER_STATE",
        message: expect.stringMatching(/line set .* is missing/),
      });
      expect(await client.redis.hgetall(`allowance:{${chain.linkIds[0]}}:a`)).toEqual(accounts);
    } finally {
      await client.close();
    }
  });

  // Under `appendfsync always` Redis writes and fsyncs before it replies, so a kill -9 loses
  // nothing acknowledged. Under `everysec` it does not promise that: while an earlier fsync is
  // still running it postpones the write for up to 2 s and replies meanwhile (a CI run lost a
  // commit that way), which docs/ledgers.md states as that mode's loss window.
  it("loses nothing acknowledged when a server with AOF (appendfsync always) is killed with SIGKILL and restarted: the second $9 is denied", async () => {
    const s = await server(["--appendonly", "yes", "--appendfsync", "always"]);
    const chain = await tenDollarRoot();
    const client = enforcerOn(s.url);
    try {
      const first = await client.enforcer.reserve({ chain, usdMicros: 9 * USD });
      if (first.decision === "DENY") throw new Error("the first $9 was denied");
      await client.enforcer.commit(first.reservationId, { usdMicros: 9 * USD });
      await s.kill();
      await s.restart();
      expect(await client.enforcer.reserve({ chain, usdMicros: 9 * USD })).toMatchObject({
        decision: "DENY",
        reason: "BUDGET_USD",
      });
      expect(await spentOf(client.enforcer, chain)).toBe(9 * USD);
    } finally {
      await client.close();
    }
  });
});
