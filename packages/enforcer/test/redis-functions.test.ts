/**
 * How the Redis ledger calls its script (packages/enforcer/src/redis/ledger.ts `#call`): as the
 * function of a library (FCALL, Redis 7 and later), loaded by the ledger where the server lacks it;
 * by EVALSHA where the server has no functions (FCALL unknown, as before Redis 7) or refuses to
 * load them (an ACL). On servers of the tests' own, each path is shown by what the server counted
 * (INFO commandstats), and every path gives the same balances: no batch runs twice, none is lost.
 */
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { generateKeyPair, mint, publicKeyOf, trustedRoots } from "@allowance/core";
import { Enforcer } from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import { verify, type VerifiedChain } from "@allowance/verifier";
import { LEDGER_FUNCTION, LEDGER_LIBRARY } from "../src/redis/ledger-lua.js";
import { hasRedisServer, startRedis, type RedisServer } from "./redis-servers.js";

const USD = 1_000_000;
const servers: RedisServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.dispose()));
});

async function server(args: readonly string[] = []): Promise<RedisServer> {
  const started = await startRedis(["--appendonly", "yes", ...args]);
  servers.push(started);
  return started;
}

async function tenDollarRoot(): Promise<VerifiedChain> {
  const root = await generateKeyPair();
  const token = mint({
    rootKey: root,
    holder: publicKeyOf(await generateKeyPair()),
    grant: { exp: Math.floor(Date.now() / 1000) + 3600, usdMicros: 10 * USD },
  });
  return verify(token, { roots: trustedRoots([root]) });
}

/** Calls of each command the server counted since its start. */
async function callsOf(url: string): Promise<{ fcall: number; evalsha: number; eval: number }> {
  const admin = new Redis(url);
  try {
    const info = await admin.info("commandstats");
    const calls = (name: string) =>
      Number(info.match(new RegExp(`cmdstat_${name}:calls=(\\d+)`))?.[1] ?? 0);
    return { fcall: calls("fcall"), evalsha: calls("evalsha"), eval: calls("eval") };
  } finally {
    await admin.quit();
  }
}

/**
 * On a ledger connected to `url`: three $2 reserves, each committed at $1.50, then one more $2
 * reserve held; the root's balances must then be spent $4.50, held $2.
 */
async function spendsExactly(url: string): Promise<void> {
  const ledger = await RedisLedger.connect(url);
  try {
    const chain = await tenDollarRoot();
    const enforcer = new Enforcer({ ledger });
    for (let i = 0; i < 3; i++) {
      const d = await enforcer.reserve({ chain, usdMicros: 2 * USD });
      if (d.decision === "DENY") throw new Error(`denied: ${d.reason}`);
      const c = await enforcer.commit(d.reservationId, { usdMicros: 1.5 * USD });
      expect(c.status).toBe("committed");
    }
    expect((await enforcer.reserve({ chain, usdMicros: 2 * USD })).decision).toBe("ALLOW");
    const usd = (await enforcer.remaining(chain)).links[0]?.limits.find(
      (l) => l.field === "usdMicros",
    );
    expect({ spent: usd?.spent, held: usd?.held }).toEqual({ spent: 4.5 * USD, held: 2 * USD });
  } finally {
    await ledger.close();
  }
}

describe.skipIf(!hasRedisServer())("how the Redis ledger calls its script", () => {
  it("on Redis 7 loads its library once and calls it with FCALL, never EVAL or EVALSHA", async () => {
    const s = await server();
    await spendsExactly(s.url);
    const calls = await callsOf(s.url);
    expect(calls.fcall).toBeGreaterThanOrEqual(8);
    expect(calls).toMatchObject({ evalsha: 0, eval: 0 });
    const admin = new Redis(s.url);
    const libraries = (await admin.call("FUNCTION", "LIST")) as unknown[];
    await admin.quit();
    expect(JSON.stringify(libraries)).toContain(LEDGER_FUNCTION);
  });

  it("runs by EVALSHA on a server without FCALL (as before Redis 7), with the same balances", async () => {
    const s = await server(["--rename-command", "FCALL", ""]);
    await spendsExactly(s.url);
    const calls = await callsOf(s.url);
    expect(calls.fcall).toBe(0);
    // The first EVALSHA finds no script and is sent again as EVAL (ioredis), which loads it.
    expect(calls.evalsha + calls.eval).toBeGreaterThanOrEqual(8);
  });

  it("runs by EVALSHA for a user whose ACL refuses FUNCTION LOAD, and by FCALL once an operator loaded the library", async () => {
    const s = await server();
    const admin = new Redis(s.url);
    await admin.call("ACL", "SETUSER", "app", "on", ">secret", "~*", "&*", "+@all", "-function");
    const appUrl = s.url.replace("redis://", "redis://app:secret@");
    try {
      await spendsExactly(appUrl);
      const before = await callsOf(s.url);
      expect(before.evalsha + before.eval).toBeGreaterThanOrEqual(8);

      await admin.call("FUNCTION", "LOAD", LEDGER_LIBRARY);
      await spendsExactly(appUrl);
      const after = await callsOf(s.url);
      expect(after.fcall - before.fcall).toBeGreaterThanOrEqual(8);
      expect(after.evalsha).toBe(before.evalsha);
    } finally {
      await admin.quit();
    }
  });

  it("loads the library again when the server lost it (FUNCTION FLUSH), running each batch once", async () => {
    const s = await server();
    const ledger = await RedisLedger.connect(s.url);
    const admin = new Redis(s.url);
    try {
      const chain = await tenDollarRoot();
      const enforcer = new Enforcer({ ledger });
      const first = await enforcer.reserve({ chain, usdMicros: 3 * USD });
      if (first.decision === "DENY") throw new Error("denied");
      await admin.call("FUNCTION", "FLUSH");
      // Several calls in flight find the library gone at once: one load, each batch run once.
      const outcomes = await Promise.all([
        enforcer.commit(first.reservationId, { usdMicros: 3 * USD }),
        enforcer.reserve({ chain, usdMicros: 2 * USD }),
        enforcer.reserve({ chain, usdMicros: 2 * USD }),
      ]);
      expect(outcomes[0]).toMatchObject({ status: "committed" });
      const usd = (await enforcer.remaining(chain)).links[0]?.limits.find(
        (l) => l.field === "usdMicros",
      );
      expect({ spent: usd?.spent, held: usd?.held }).toEqual({ spent: 3 * USD, held: 4 * USD });
      expect((await callsOf(s.url)).evalsha).toBe(0);
    } finally {
      await admin.quit();
      await ledger.close();
    }
  });
});
