/**
 * The overage policy (spec/enforcement.md §3.9): what spend past a cap does to new reservations,
 * and settle(). On every ledger family: memory, SQLite, Redis.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Enforcer,
  MemoryLedger,
  type Decision,
  type EnforcerEvents,
  type Ledger,
  type OveragePolicy,
  type RemainingReport,
} from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import type { VerifiedChain } from "@allowance/verifier";
import { Clock, clockOption, family } from "../../../test/support/ledger-suite.js";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-overage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

let redis: Redis | undefined;
beforeAll(async () => {
  if (redisUrl === "") return;
  redis = new Redis(redisUrl);
  await redis.ping();
});
afterAll(async () => {
  await redis?.quit();
});

/** A fresh ledger on the enforcer's clock (the ledger's time decides, spec/enforcement.md §3.8). */
type Factory = (now?: () => number) => Promise<Ledger>;
const families: readonly (readonly [string, Factory, boolean])[] = [
  ["memory", async (now) => new MemoryLedger(clockOption(now)), true],
  [
    "sqlite",
    async (now) => SqliteLedger.open(join(dir, `overage-${files++}.db`), clockOption(now)),
    true,
  ],
  [
    "redis",
    async (now) => {
      const prefix = freshPrefix();
      const ledger = new RedisLedger(redis as Redis, { keyPrefix: prefix, ...clockOption(now) });
      return Object.assign(ledger, { close: () => deleteKeys(redis as Redis, prefix) });
    },
    redisUrl !== "",
  ],
];

async function withEnforcer<T>(
  make: Factory,
  overage: OveragePolicy | undefined,
  run: (enforcer: Enforcer, clock: Clock) => Promise<T>,
): Promise<T> {
  const clock = new Clock();
  const ledger = await make(clock.now);
  try {
    return await run(
      new Enforcer({
        ledger,
        now: clock.now,
        policy: { tools: { "search.web": 1 } },
        ...(overage === undefined ? {} : { overage }),
      }),
      clock,
    );
  } finally {
    await ledger.close();
  }
}

/** Reserves and commits `actual` micro-dollars on a hold of `held`: an overrun when actual > held. */
async function spend(enforcer: Enforcer, chain: VerifiedChain, held: number, actual: number) {
  const decision = await enforcer.reserve({ chain, usdMicros: held });
  if (decision.decision === "DENY") throw new Error(`expected a hold, got ${decision.reason}`);
  return enforcer.commit(decision.reservationId, { usdMicros: actual });
}

const limit = (report: RemainingReport, link: number, field = "usdMicros") =>
  report.links[link]?.limits.find((l) => l.field === field);

/** A root of $100, a child of $40, its grandchild, and the child's sibling. */
async function tree() {
  const { parent, children } = await family({ usdMicros: 100 }, [
    { usdMicros: 40, label: "child" },
    { usdMicros: 40, label: "sibling" },
  ]);
  const child = children[0] as VerifiedChain;
  return { parent, child, sibling: children[1] as VerifiedChain };
}

for (const [name, make, available] of families) {
  describe.skipIf(!available)(`the overage policy on the ${name} ledger`, () => {
    it("record (the default): debt denies only what its cap denies; a request costing no dollars goes through", async () => {
      const { child } = await tree();
      await withEnforcer(make, undefined, async (enforcer) => {
        expect(enforcer.overage).toBe("record");
        expect(await spend(enforcer, child, 30, 50)).toMatchObject({ overrun: { usdMicros: 20 } });
        expect(await enforcer.reserve({ chain: child, tool: "search.web" })).toMatchObject({
          decision: "ALLOW",
        });
        expect(await enforcer.reserve({ chain: child, usdMicros: 1 })).toMatchObject({
          decision: "DENY",
          reason: "BUDGET_USD",
        });
      });
    });

    it("block: a link in debt and every link below it are denied everything until settled, its siblings and parent are not", async () => {
      const { parent, child, sibling } = await tree();
      await withEnforcer(make, "block", async (enforcer) => {
        await spend(enforcer, child, 30, 50);
        const denied = await enforcer.reserve({ chain: child, tool: "search.web" });
        expect(denied).toEqual({
          decision: "DENY",
          reason: "DEBT_OUTSTANDING",
          linkIndex: 1,
          linkId: child.linkIds[1],
          field: "usdMicros",
          available: 0,
          limit: 40,
          requested: 0,
          debt: 10,
          debtLimit: 0,
          detail:
            "this agent's spend is $0.00001 past the $0.00004 its grant allows: nothing more is allowed until that debt is settled (link 1, usdMicros)",
        });
        // check() answers as reserve() does.
        expect(await enforcer.check({ chain: child, tool: "search.web" })).toMatchObject({
          decision: "DENY",
          reason: "DEBT_OUTSTANDING",
          debt: 10,
        });
        for (const chain of [parent, sibling])
          expect(await enforcer.reserve({ chain, usdMicros: 10 })).toMatchObject({
            decision: "ALLOW",
          });
        expect(limit(await enforcer.remaining(child), 1)).toMatchObject({
          spent: 50,
          overBy: 10,
          blocked: true,
        });
        expect(limit(await enforcer.remaining(child), 0)).not.toHaveProperty("blocked");
      });
    });

    it("block: a root in debt blocks every chain under it", async () => {
      const { parent, child, sibling } = await tree();
      await withEnforcer(make, "block", async (enforcer) => {
        await spend(enforcer, child, 40, 40);
        await spend(enforcer, sibling, 40, 70);
        for (const chain of [parent, child, sibling])
          expect(await enforcer.reserve({ chain, tool: "search.web" })).toMatchObject({
            decision: "DENY",
            reason: "DEBT_OUTSTANDING",
            linkIndex: 0,
            debt: 10,
          });
      });
    });

    it("block: spend that happens while blocked is still charged in full (a late commit, an overrun)", async () => {
      const { child } = await tree();
      await withEnforcer(make, "block", async (enforcer) => {
        const held = await enforcer.reserve({ chain: child, usdMicros: 20 });
        if (held.decision === "DENY") throw new Error("expected a hold");
        await spend(enforcer, child, 10, 30);
        expect(await enforcer.commit(held.reservationId, { usdMicros: 25 })).toMatchObject({
          status: "committed",
          overrun: { usdMicros: 5 },
        });
        expect(limit(await enforcer.remaining(child), 1)).toMatchObject({ spent: 55, overBy: 15 });
      });
    });

    it("settle() ends the block without dropping spend or raising the cap, and new debt blocks again", async () => {
      const { child } = await tree();
      await withEnforcer(make, "block", async (enforcer) => {
        const events: EnforcerEvents["settled"][0][] = [];
        enforcer.on("settled", (event) => events.push(event));
        await spend(enforcer, child, 30, 50);
        expect(await enforcer.settle(child)).toEqual({
          at: expect.any(Number),
          settled: [
            {
              linkIndex: 1,
              linkId: child.linkIds[1],
              field: "usdMicros",
              kind: "usdMicros",
              cap: 40,
              amount: 10,
            },
          ],
        });
        expect(events).toEqual([
          {
            linkId: child.linkIds[1],
            field: "usdMicros",
            amount: 10,
            spent: 50,
            cap: 40,
            at: expect.any(Number),
            eventId: `settled:${child.linkIds[1]}:usdMicros:50:${events[0]?.at}`,
          },
        ]);
        expect((await enforcer.settle(child)).settled).toEqual([]);
        const tool = await enforcer.reserve({ chain: child, tool: "search.web" });
        expect(tool.decision).toBe("ALLOW");
        expect(await enforcer.reserve({ chain: child, usdMicros: 1 })).toMatchObject({
          decision: "DENY",
          reason: "BUDGET_USD",
        });
        expect(limit(await enforcer.remaining(child), 1)).toEqual({
          field: "usdMicros",
          kind: "usdMicros",
          cap: 40,
          spent: 50,
          held: 0,
          remaining: 0,
          overBy: 10,
          settled: 10,
        });
        if (tool.decision === "DENY") throw new Error("expected a hold");
        await enforcer.commit(tool.reservationId, { usdMicros: 2 });
        expect(await enforcer.reserve({ chain: child, tool: "search.web" })).toMatchObject({
          reason: "DEBT_OUTSTANDING",
          debt: 2,
        });
        // The second settle's event says the line's spent (52), not the cap plus its amount (42),
        // and has an id of its own.
        await enforcer.settle(child);
        expect(events.map(({ at: _at, eventId: _id, ...rest }) => rest)).toEqual([
          { linkId: child.linkIds[1], field: "usdMicros", amount: 10, spent: 50, cap: 40 },
          { linkId: child.linkIds[1], field: "usdMicros", amount: 2, spent: 52, cap: 40 },
        ]);
        expect(new Set(events.map((e) => e.eventId)).size).toBe(2);
      });
    });

    it("settle() of one link leaves the others' debt", async () => {
      const { child, sibling } = await tree();
      await withEnforcer(make, "block", async (enforcer) => {
        await spend(enforcer, child, 40, 45);
        await spend(enforcer, sibling, 40, 70);
        const { settled } = await enforcer.settle(child, { linkIndex: 1 });
        expect(settled.map((s) => [s.linkIndex, s.amount])).toEqual([[1, 5]]);
        expect(await enforcer.reserve({ chain: child, tool: "search.web" })).toMatchObject({
          reason: "DEBT_OUTSTANDING",
          linkIndex: 0,
          debt: 15,
        });
        expect(
          (await enforcer.settle(sibling)).settled.map((s) => [s.linkIndex, s.amount]),
        ).toEqual([
          [0, 15],
          [1, 30],
        ]);
        expect((await enforcer.reserve({ chain: child, tool: "search.web" })).decision).toBe(
          "ALLOW",
        );
      });
    });

    it("overdraft: debt up to the limit of its kind is let be, past it blocks; a kind not named blocks on any debt", async () => {
      const { children } = await family({ usdMicros: 100, tokens: 1_000 }, [{ usdMicros: 40 }]);
      const chain = children[0] as VerifiedChain;
      await withEnforcer(make, { overdraft: { usdMicros: 10 } }, async (enforcer) => {
        await spend(enforcer, chain, 30, 50);
        expect((await enforcer.reserve({ chain, tool: "search.web" })).decision).toBe("ALLOW");
        await spend(enforcer, chain, 0, 1);
        expect(await enforcer.reserve({ chain, tool: "search.web" })).toMatchObject({
          reason: "DEBT_OUTSTANDING",
          debt: 11,
          debtLimit: 10,
          detail:
            "this agent's spend is $0.000011 past the $0.00004 its grant allows, more than the overage policy's $0.00001: nothing more is allowed until that debt is settled (link 1, usdMicros)",
        });
        await enforcer.settle(chain);
        const hold = await enforcer.reserve({ chain, tokens: 900 });
        if (hold.decision === "DENY") throw new Error("expected a hold");
        await enforcer.commit(hold.reservationId, { tokens: 1_001 });
        expect(await enforcer.reserve({ chain, tool: "search.web" })).toMatchObject({
          reason: "DEBT_OUTSTANDING",
          linkIndex: 0,
          field: "tokens",
          debt: 1,
          debtLimit: 0,
        });
      });
    });

    it("block on a rate window: the debt is its bucket's, and the next bucket lets requests through", async () => {
      const { children } = await family({ usdMicros: 1_000 }, [
        { rate: [{ seconds: 60, tokens: 100 }] },
      ]);
      const chain = children[0] as VerifiedChain;
      await withEnforcer(make, "block", async (enforcer, clock) => {
        clock.advance(10);
        const hold = await enforcer.reserve({ chain, tokens: 60 });
        if (hold.decision === "DENY") throw new Error("expected a hold");
        await enforcer.commit(hold.reservationId, { tokens: 150 });
        expect(await enforcer.reserve({ chain, tool: "search.web" })).toMatchObject({
          reason: "DEBT_OUTSTANDING",
          field: "rate.60s.tokens",
          debt: 50,
          retryAfter: 50,
        });
        clock.advance(50);
        expect((await enforcer.reserve({ chain, tool: "search.web" })).decision).toBe("ALLOW");
      });
    });

    it("two settlements of a rate window's debt, in two buckets with the same spent, are two events", async () => {
      const { children } = await family({ usdMicros: 1_000 }, [
        { rate: [{ seconds: 60, tokens: 100 }] },
      ]);
      const chain = children[0] as VerifiedChain;
      await withEnforcer(make, "block", async (enforcer, clock) => {
        const events: EnforcerEvents["settled"][0][] = [];
        enforcer.on("settled", (event) => events.push(event));
        for (let bucket = 0; bucket < 2; bucket++) {
          clock.advance(60);
          const hold = await enforcer.reserve({ chain, tokens: 60 });
          if (hold.decision === "DENY") throw new Error("expected a hold");
          await enforcer.commit(hold.reservationId, { tokens: 150 });
          await enforcer.settle(chain);
        }
        const windowed = events.filter((e) => e.field === "rate.60s.tokens");
        expect(windowed.map((e) => [e.amount, e.spent])).toEqual([
          [50, 150],
          [50, 150],
        ]);
        expect(new Set(windowed.map((e) => e.eventId)).size).toBe(2);
      });
    });

    it("shadow mode with block: lets a blocked request through and says the policy would have denied it", async () => {
      const { child } = await tree();
      const ledger = await make();
      try {
        const enforcer = new Enforcer({ ledger, overage: "block", mode: "shadow" });
        await spend(enforcer, child, 30, 50);
        expect(await enforcer.reserve({ chain: child, tool: "search.web" })).toMatchObject({
          decision: "ALLOW",
          enforced: false,
          wouldBe: { decision: "DENY", reason: "DEBT_OUTSTANDING", debt: 10 },
        });
      } finally {
        await ledger.close();
      }
    });

    it("law: under block, a reservation is denied for debt exactly when a capped line of its chain owes more than was settled, and spend is never dropped", async () => {
      const { parent, child, sibling } = await tree();
      const chains = [parent, child, sibling];
      const step = fc.record({
        chain: fc.nat({ max: 2 }),
        held: fc.nat({ max: 30 }),
        actual: fc.nat({ max: 45 }),
        settle: fc.boolean(),
      });
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 10 }), async (steps) => {
          await withEnforcer(make, "block", async (enforcer) => {
            let charged = 0;
            for (const s of steps) {
              const chain = chains[s.chain] as VerifiedChain;
              const report = await enforcer.remaining(chain);
              const owing = report.links.flatMap((l) =>
                l.limits.filter((x) => (x.overBy ?? 0) > (x.settled ?? 0)),
              );
              const decision: Decision = await enforcer.reserve({ chain, usdMicros: s.held });
              const blocked =
                decision.decision === "DENY" && decision.reason === "DEBT_OUTSTANDING";
              expect(blocked).toBe(owing.length > 0);
              expect(owing.every((x) => x.blocked === true)).toBe(true);
              if (decision.decision !== "DENY") {
                await enforcer.commit(decision.reservationId, { usdMicros: s.actual });
                charged += s.actual;
              }
              if (s.settle) await enforcer.settle(chain);
              expect(limit(await enforcer.remaining(parent), 0)?.spent).toBe(charged);
            }
          });
        }),
        { numRuns: name === "memory" ? 40 : 10 },
      );
    });
  });
}

describe("the overage option", () => {
  it("takes record, block or { overdraft } with amounts by kind, and refuses anything else", () => {
    expect(new Enforcer({ overage: "block" }).overage).toBe("block");
    expect(new Enforcer({ overage: { overdraft: { usdMicros: 5, tokens: 0 } } }).overage).toEqual({
      overdraft: { usdMicros: 5, tokens: 0 },
    });
    for (const bad of [null, 1, true, [], { overdraft: { usdMicros: 1 }, extra: 1 }, {}])
      expect(() => new Enforcer({ overage: bad as never }), JSON.stringify(bad)).toThrow(TypeError);
    expect(() => new Enforcer({ overage: { overdraft: { dollars: 1 } as never } })).toThrow(
      TypeError,
    );
    for (const bad of ["BLOCK", "overdraft", ""])
      expect(() => new Enforcer({ overage: bad as never })).toThrow(RangeError);
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53])
      expect(() => new Enforcer({ overage: { overdraft: { usdMicros: bad } } })).toThrow(
        RangeError,
      );
    expect(() => new Enforcer({ overage: { overdraft: { usdMicros: "5" as never } } })).toThrow(
      TypeError,
    );
  });

  it("refuses a blocking policy on a ledger that cannot settle", () => {
    const memory = new MemoryLedger();
    const ledger: Ledger = {
      name: "partial",
      reserve: (op) => memory.reserve(op),
      commit: (id, actual, now) => memory.commit(id, actual, now),
      release: (id, now) => memory.release(id, now),
      extend: (id, ttlMs, now) => memory.extend(id, ttlMs, now),
      balances: (root, accounts, now) => memory.balances(root, accounts, now),
      close: () => memory.close(),
    };
    expect(() => new Enforcer({ ledger, overage: "block" })).toThrow(TypeError);
    expect(() => new Enforcer({ ledger, overage: { overdraft: {} } })).toThrow(TypeError);
    expect(new Enforcer({ ledger }).overage).toBe("record");
  });

  it("settle() refuses a chain verify did not return, and a link index out of range", async () => {
    const { child } = await tree();
    const enforcer = new Enforcer({ overage: "block" });
    await expect(enforcer.settle({ ...child })).rejects.toThrow(TypeError);
    for (const bad of [-1, 2, 1.5, Number.NaN])
      await expect(enforcer.settle(child, { linkIndex: bad })).rejects.toThrow(RangeError);
    for (const bad of ["1", null])
      await expect(enforcer.settle(child, { linkIndex: bad as never })).rejects.toThrow(TypeError);
    await expect(enforcer.settle(child, { link: 1 } as never)).rejects.toThrow(TypeError);
    expect((await enforcer.settle(child, { linkIndex: 1 })).settled).toEqual([]);
  });
});
