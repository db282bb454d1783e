import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attenuate, exportJwks, formatToken, generateKeyPair, mint, publicKeyOf, trustedRoots, type KeyPair } from "@allowance/core";
import { Enforcer, MemoryLedger, RedisLedger, type Ledger, type RemainingReport } from "@allowance/enforcer";
import { verify } from "@allowance/verifier";
import { T0, family, ledgerSuite, runSchedule, scheduleGrants, stepArbitrary } from "../../../test/support/ledger-suite.js";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";
import type { RedisWorkerReply, RedisWorkerTask } from "./workers/redis-worker.js";

let redis: Redis;
beforeAll(async () => {
  if (redisUrl === "") return;
  redis = new Redis(redisUrl);
  await redis.ping();
});
afterAll(async () => {
  await redis?.quit();
});

/** A ledger on a key prefix of its own; closing it deletes its keys. */
async function fresh(): Promise<Ledger> {
  const prefix = freshPrefix();
  const ledger = new RedisLedger(redis, { keyPrefix: prefix });
  return Object.assign(ledger, { close: () => deleteKeys(redis, prefix) });
}

/**
 * Forwards to `ledger` and logs every call's result, with reservation ids (random per run) renamed
 * by order of first appearance, so two ledgers' logs for one schedule can be compared exactly.
 */
function recording(ledger: Ledger, log: unknown[]): Ledger {
  const names = new Map<string, string>();
  const name = (id: string) => names.get(id) ?? (names.set(id, `r${names.size}`), `r${names.size - 1}`);
  const renamed = <T extends { readonly expired: readonly string[] }>(outcome: T) => ({ ...outcome, expired: outcome.expired.map(name) });
  return {
    name: ledger.name,
    async reserve(op) {
      const id = name(op.id);
      const outcome = await ledger.reserve(op);
      log.push(["reserve", id, renamed(outcome)]);
      return outcome;
    },
    async commit(id, actual, now) {
      const outcome = await ledger.commit(id, actual, now);
      log.push(["commit", name(id), actual, renamed(outcome)]);
      return outcome;
    },
    async release(id, now) {
      const outcome = await ledger.release(id, now);
      log.push(["release", name(id), renamed(outcome)]);
      return outcome;
    },
    async balances(root, accounts, now) {
      const balances = await ledger.balances(root, accounts, now);
      log.push(["balances", [...balances]]);
      return balances;
    },
    close: () => ledger.close(),
  };
}

describe.skipIf(redisUrl === "")("the redis ledger", () => {
  ledgerSuite("redis", fresh);

  describe("the redis ledger's laws", () => {
    it("law: for any schedule of reserve, commit, release and expiry, it returns exactly what the memory ledger returns", async () => {
      const chains = await family(scheduleGrants.parent, scheduleGrants.children);
      await fc.assert(
        // size "max": fast-check's default size keeps arrays to about ten steps, too few to run a
        // budget dry, where lowering to what fits and denial are decided.
        fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 60, size: "max" }), async (steps) => {
          const memoryLog: unknown[] = [];
          const redisLog: unknown[] = [];
          const memory = await runSchedule(async () => recording(new MemoryLedger(), memoryLog), chains, steps);
          const viaRedis = await runSchedule(async () => recording(await fresh(), redisLog), chains, steps);
          expect(viaRedis).toEqual(memory);
          // Beyond the decisions: every outcome, expiry lists, charged lines and balances included.
          expect(redisLog).toEqual(memoryLog);
        }),
        { numRuns: 60 },
      );
    }, 120_000);
  });

  describe("the redis ledger's laws, on the Ledger interface itself", () => {
    // Ops straight on the ledger: several holds expiring at the same instant (so the sweep's
    // (expiresAt, id) order shows in `expired`), minimums of every size, and balances only now and
    // then (a balances call sweeps, and its sweep is not reported).
    type LedgerStep =
      | { readonly op: "reserve"; readonly lines: number; readonly tokens: number; readonly usdMicros: number; readonly minTokens: number | null; readonly minUsd: number | null; readonly ttl: number }
      | { readonly op: "commit"; readonly pick: number; readonly tokens: number; readonly usdMicros: number }
      | { readonly op: "release"; readonly pick: number }
      | { readonly op: "balances" }
      | { readonly op: "advance"; readonly ms: number };
    const ledgerStep: fc.Arbitrary<LedgerStep> = fc.oneof(
      { arbitrary: fc.record({ op: fc.constant("reserve" as const), lines: fc.nat({ max: 3 }), tokens: fc.nat({ max: 60 }), usdMicros: fc.nat({ max: 60 }), minTokens: fc.option(fc.nat({ max: 40 })), minUsd: fc.option(fc.nat({ max: 40 })), ttl: fc.constantFrom(1, 2, 3) }), weight: 4 },
      { arbitrary: fc.record({ op: fc.constant("commit" as const), pick: fc.nat(), tokens: fc.integer({ min: -1, max: 80 }), usdMicros: fc.integer({ min: -1, max: 80 }) }), weight: 2 },
      { arbitrary: fc.record({ op: fc.constant("release" as const), pick: fc.nat() }), weight: 1 },
      { arbitrary: fc.record({ op: fc.constant("balances" as const) }), weight: 1 },
      { arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.constantFrom(0, 1, 2, 3) }), weight: 2 },
    );
    const LINES = [
      { account: "a|tokens", kind: "tokens" as const, cap: 100 },
      { account: "a|usdMicros", kind: "usdMicros" as const, cap: 90 },
      { account: "a|requests", kind: "requests" as const, cap: null },
      { account: "b|tokens", kind: "tokens" as const, cap: 70 },
      { account: "b|usdMicros", kind: "usdMicros" as const, cap: null },
      { account: "b|risk", kind: "risk" as const, cap: 5 },
    ];
    // Line sets of growing length, as a chain of one to four links would give.
    const lineSets = [LINES.slice(0, 2), LINES.slice(0, 3), LINES.slice(0, 5), LINES];

    async function run(ledger: Ledger, steps: readonly LedgerStep[]): Promise<unknown[]> {
      const log: unknown[] = [];
      const recorded = recording(ledger, log);
      const ids: string[] = [];
      let now = T0;
      try {
        for (const [i, step] of steps.entries()) {
          if (step.op === "reserve") {
            // Ids not in the order they were made, so ties in expiry are broken by id, not by age.
            const id = `root.${((i * 7919) % 1000).toString().padStart(3, "0")}`;
            const minimums = { ...(step.minTokens === null ? {} : { tokens: step.minTokens }), ...(step.minUsd === null ? {} : { usdMicros: step.minUsd }) };
            const outcome = await recorded.reserve({ id, root: "root", lines: lineSets[step.lines] ?? LINES, amounts: { tokens: step.tokens, usdMicros: step.usdMicros, risk: 1, requests: 1 }, minimums, expiresAt: now + step.ttl, now });
            if (outcome.ok) ids.push(id);
          } else if (step.op === "commit" && ids.length > 0) {
            await recorded.commit(ids[step.pick % ids.length] as string, { tokens: step.tokens, usdMicros: step.usdMicros, risk: -1, requests: -1 }, now);
          } else if (step.op === "release" && ids.length > 0) {
            await recorded.release(ids[step.pick % ids.length] as string, now);
          } else if (step.op === "balances") {
            await recorded.balances("root", LINES.map((l) => l.account), now);
          } else if (step.op === "advance") {
            now += step.ms;
          }
        }
        await recorded.balances("root", LINES.map((l) => l.account), now);
      } finally {
        await recorded.close();
      }
      return log;
    }

    it("law: any sequence of ledger calls returns exactly what the memory ledger returns, expiry order included", async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(ledgerStep, { minLength: 1, maxLength: 60, size: "max" }), async (steps) => {
          expect(await run(await fresh(), steps)).toEqual(await run(new MemoryLedger(), steps));
        }),
        { numRuns: 60 },
      );
    }, 120_000);
  });

  describe("the redis ledger's storage", () => {
    const zero = { tokens: 0, usdMicros: 0, risk: 0, requests: 0 };
    const op = (id: string, usdMicros: number, cap: number) => ({
      id: `root.${id}`,
      root: "root",
      lines: [{ account: "link|usdMicros", kind: "usdMicros" as const, cap }],
      amounts: { ...zero, usdMicros },
      expiresAt: T0 + 60_000,
      now: T0,
    });

    it("keeps amounts exact up to 2^53 - 1, where Lua's own number formatting would not", async () => {
      const max = Number.MAX_SAFE_INTEGER;
      const ledger = await fresh();
      try {
        expect(await ledger.reserve(op("a", max - 1, max))).toMatchObject({ ok: true, amounts: { usdMicros: max - 1 } });
        expect(await ledger.commit("root.a", { ...zero, usdMicros: max - 1 }, T0)).toMatchObject({ status: "committed", lines: [{ before: 0, after: max - 1 }] });
        expect(await ledger.reserve(op("b", 2, max))).toMatchObject({ ok: false, available: 1 });
        expect(await ledger.reserve(op("c", 1, max))).toMatchObject({ ok: true });
        expect(await ledger.balances("root", ["link|usdMicros"], T0)).toEqual(new Map([["link|usdMicros", { spent: max - 1, held: 1 }]]));
        // 10^15 is where "%.14g" would have written 1e+15.
        expect(await ledger.reserve({ ...op("d", 10 ** 15 + 1, max), lines: [{ account: "other", kind: "usdMicros", cap: 10 ** 15 + 1 }] })).toMatchObject({ ok: true });
        expect(await ledger.balances("root", ["other"], T0)).toEqual(new Map([["other", { spent: 0, held: 10 ** 15 + 1 }]]));
      } finally {
        await ledger.close();
      }
    });

    it("refuses a reservation id already in use, as the memory ledger does, keeping the expiry sweep", async () => {
      for (const ledger of [new MemoryLedger(), await fresh()]) {
        await ledger.reserve({ ...op("a", 40, 100), expiresAt: T0 + 1 });
        await expect(ledger.reserve({ ...op("a", 10, 100), now: T0 + 1 })).rejects.toThrow("reservation id root.a is already in use");
        expect(await ledger.release("root.a", T0 + 1)).toMatchObject({ status: "expired", already: true });
        await ledger.close();
      }
    });

    it("rejects amounts that are not exact integers", async () => {
      const ledger = await fresh();
      try {
        await expect(ledger.reserve(op("a", 0.5, 100))).rejects.toThrow(RangeError);
        await expect(ledger.reserve(op("b", 2 ** 53, 2 ** 60))).rejects.toThrow(RangeError);
      } finally {
        await ledger.close();
      }
    });

    it("puts every key of a chain under the root's hash tag, and forgets closed reservations after the retention time", async () => {
      const prefix = freshPrefix();
      const ledger = new RedisLedger(redis, { keyPrefix: prefix, retentionMs: 60_000 });
      try {
        await ledger.reserve(op("a", 10, 100));
        await ledger.reserve(op("b", 10, 100));
        await ledger.commit("root.b", { ...zero, usdMicros: 10 }, T0);
        const keys = (await redis.keys(`${prefix}*`)).sort();
        expect(keys).toEqual([`${prefix}{root}:a`, `${prefix}{root}:r:root.a`, `${prefix}{root}:r:root.b`, `${prefix}{root}:x`]);
        expect(await redis.hgetall(`${prefix}{root}:a`)).toEqual({ "s:link|usdMicros": "10", "h:link|usdMicros": "10" });
        // A held reservation lives until a sweep closes it; a closed one for the retention time.
        expect(await redis.pttl(`${prefix}{root}:r:root.a`)).toBe(-1);
        const ttl = await redis.pttl(`${prefix}{root}:r:root.b`);
        expect(ttl).toBeGreaterThan(50_000);
        expect(ttl).toBeLessThanOrEqual(60_000);
      } finally {
        await deleteKeys(redis, prefix);
      }
    });

    it("answers unknown for an id whose root cannot be a hash tag, without touching Redis", async () => {
      const ledger = await fresh();
      try {
        expect(await ledger.commit("{x}.a", { ...zero, usdMicros: 1 }, T0)).toEqual({ status: "unknown", expired: [] });
        expect(await ledger.release("nodot", T0)).toEqual({ status: "unknown", already: false, expired: [] });
        await expect(ledger.reserve({ ...op("a", 1, 100), id: "other.a" })).rejects.toThrow(TypeError);
      } finally {
        await ledger.close();
      }
    });
  });
});

const USD = 1_000_000;
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const workerScript = fileURLToPath(new URL("./workers/redis-worker.ts", import.meta.url));

const started = new Set<ChildProcess>();
// A failed or timed-out test must not leave its workers behind.
afterAll(() => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/** A worker process running the TypeScript source (no build needed). */
function startWorker(task: RedisWorkerTask): { child: ChildProcess; next: () => Promise<RedisWorkerReply> } {
  const child = fork(workerScript, [], { cwd: repoRoot, execArgv: ["--conditions=@allowance/source", "--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  started.add(child);
  const queue: RedisWorkerReply[] = [];
  const waiting: { resolve: (reply: RedisWorkerReply) => void; reject: (error: Error) => void }[] = [];
  let failure: Error | undefined;
  const fail = (error: Error) => {
    failure ??= error;
    for (const w of waiting.splice(0)) w.reject(failure);
  };
  child.on("message", (message: RedisWorkerReply) => {
    if (message.mode === "error") return fail(new Error(message.message));
    const w = waiting.shift();
    if (w === undefined) queue.push(message);
    else w.resolve(message);
  });
  child.once("exit", (code, signal) => fail(new Error(`worker exited (${code ?? signal}) before replying`)));
  child.once("error", fail);
  child.send(task);
  const next = () => {
    const message = queue.shift();
    if (message !== undefined) return Promise.resolve(message);
    if (failure !== undefined) return Promise.reject(failure);
    return new Promise<RedisWorkerReply>((resolve, reject) => waiting.push({ resolve, reject }));
  };
  return { child, next };
}

/** A root grant and one child, minted and verified here; workers get the string and the root JWKS. */
async function sharedChain(rootUsdMicros: number, childUsdMicros: number) {
  const [root, owner, agent] = (await Promise.all([generateKeyPair(), generateKeyPair(), generateKeyPair()])) as [KeyPair, KeyPair, KeyPair];
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const parent = mint({ rootKey: root, holder: publicKeyOf(owner), grant: { exp, usdMicros: rootUsdMicros } });
  const token = formatToken(attenuate(parent, { holderKey: owner, holder: publicKeyOf(agent), grant: { usdMicros: childUsdMicros } }));
  const chain = verify(token, { roots: trustedRoots([root]) });
  return { token, chain, jwks: exportJwks([root]) };
}

const usdOf = (report: RemainingReport, link: number) => report.links[link]?.limits.find((l) => l.field === "usdMicros");

describe.skipIf(redisUrl === "")("the redis ledger shared by several processes", () => {
  it("never lets 8 racing processes spend past any link's cap, and spends every cap to the last micro-dollar", async () => {
    // About 1,600 reservations of up to 2 cents, in 32 loops over 8 processes.
    const rootCap = 16 * USD;
    const childCap = 8 * USD;
    const { token, chain, jwks } = await sharedChain(rootCap, childCap);
    const prefix = freshPrefix();
    try {
      const workers = Array.from({ length: 8 }, () => startWorker({ mode: "spend", url: redisUrl, prefix, token, jwks, loops: 4, maxUsdMicros: 20_000 }));
      expect(await Promise.all(workers.map((w) => w.next()))).toEqual(workers.map(() => ({ mode: "ready" })));
      const done = Promise.all(workers.map((w) => w.next()));
      for (const w of workers) w.child.send("go");
      const replies = (await done) as Extract<RedisWorkerReply, { mode: "spend" }>[];

      const report = await new Enforcer({ ledger: new RedisLedger(redis, { keyPrefix: prefix }) }).remaining(chain);
      const committed = { leaf: 0, root: 0 };
      for (const reply of replies) {
        committed.leaf += reply.committed.leaf;
        committed.root += reply.committed.root;
      }
      // Link 1 (the child) is charged only by the leaf's spending; link 0 by both levels.
      expect(usdOf(report, 1)).toMatchObject({ cap: childCap, spent: committed.leaf, held: 0 });
      expect(usdOf(report, 0)).toMatchObject({ cap: rootCap, spent: committed.leaf + committed.root, held: 0 });
      expect(committed.leaf).toBeLessThanOrEqual(childCap);
      expect(committed.leaf + committed.root).toBeLessThanOrEqual(rootCap);
      // Reached, not only respected: with every hold committed in full, the caps are spent exactly.
      expect(committed.leaf).toBe(childCap);
      expect(committed.leaf + committed.root).toBe(rootCap);
      // A real race: every process spent, and both the exact and the capped paths were taken.
      expect(replies.filter((r) => r.reservations > 0).length).toBe(8);
      expect(replies.some((r) => r.capped > 0)).toBe(true);
    } finally {
      await deleteKeys(redis, prefix);
    }
  }, 60_000);

  it("frees the hold of a process killed before it committed once the hold's TTL has passed", async () => {
    const cap = 1 * USD;
    const { token, chain, jwks } = await sharedChain(cap, cap);
    const prefix = freshPrefix();
    try {
      const worker = startWorker({ mode: "hold", url: redisUrl, prefix, token, jwks, usdMicros: 600_000, ttl: 2 });
      const held = (await worker.next()) as Extract<RedisWorkerReply, { mode: "hold" }>;
      const exited = new Promise((resolve) => worker.child.once("exit", resolve));
      worker.child.kill("SIGKILL");
      await exited;

      const enforcer = new Enforcer({ ledger: new RedisLedger(redis, { keyPrefix: prefix }) });
      const expired: string[] = [];
      enforcer.on("expired", (e) => expired.push(e.reservationId));
      expect(usdOf(await enforcer.remaining(chain), 1)).toMatchObject({ spent: 0, held: 600_000, remaining: 400_000 });
      expect(await enforcer.reserve({ chain, usdMicros: cap })).toMatchObject({ decision: "DENY", reason: "BUDGET_USD", available: 400_000 });
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, held.expiresAt - Date.now()) + 50));
      expect(await enforcer.reserve({ chain, usdMicros: cap })).toMatchObject({ decision: "ALLOW" });
      expect(expired).toEqual([held.reservationId]);
    } finally {
      await deleteKeys(redis, prefix);
    }
  }, 60_000);
});
