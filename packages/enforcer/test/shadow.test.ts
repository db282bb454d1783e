/**
 * Shadow mode (spec/enforcement.md §2.3): an enforcer that decides, holds, charges and emits exactly
 * as an enforcing one, but never denies or lowers. On every ledger family: memory, SQLite, Redis.
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
  type CheckResult,
  type Decision,
  type EnforcerEvents,
  type Ledger,
  type ReserveRequest,
} from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import type { VerifiedChain } from "@allowance/verifier";
import {
  Clock,
  clockOption,
  family,
  line,
  storageOp,
  T0,
  ZERO,
} from "../../../test/support/ledger-suite.js";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-shadow-"));
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

type Factory = (now?: () => number) => Promise<Ledger>;
const families: readonly (readonly [string, Factory, boolean])[] = [
  ["memory", async (now) => new MemoryLedger(clockOption(now)), true],
  [
    "sqlite",
    async (now) => SqliteLedger.open(join(dir, `shadow-${files++}.db`), clockOption(now)),
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

/** A shadow enforcer and an enforcing one on the same ledger and clock. */
async function withBoth<T>(
  make: Factory,
  run: (shadow: Enforcer, enforcing: Enforcer, clock: Clock) => Promise<T>,
): Promise<T> {
  const clock = new Clock();
  const ledger = await make(clock.now);
  const policy = { tools: { send_email: 10 }, default: 1 };
  try {
    return await run(
      new Enforcer({ ledger, now: clock.now, policy, mode: "shadow" }),
      new Enforcer({ ledger, now: clock.now, policy }),
      clock,
    );
  } finally {
    await ledger.close();
  }
}

/** Every event an enforcer raises, in order, as [name, data]. */
function recorded(enforcer: Enforcer): [string, unknown][] {
  const seen: [string, unknown][] = [];
  for (const name of [
    "denied",
    "reserved",
    "committed",
    "released",
    "expired",
    "overrun",
    "threshold",
  ] as const)
    enforcer.on(name, (data: EnforcerEvents[typeof name][0]) => seen.push([name, data]));
  return seen;
}

/** What enforcing mode answers, as shadow mode reports it: a check without its `fits`. */
function asWouldBe(result: CheckResult): unknown {
  if (result.decision === "ALLOW") return undefined;
  if (result.decision === "ALLOW_WITH_CAPS")
    return { decision: result.decision, caps: result.caps };
  const { fits: _, ...denial } = result;
  return denial;
}

function usdOf(report: Awaited<ReturnType<Enforcer["remaining"]>>, link: number) {
  return report.links[link]?.limits.find((l) => l.field === "usdMicros");
}

for (const [name, make, available] of families) {
  describe.skipIf(!available)(`shadow mode on the ${name} ledger`, () => {
    it("lets a request past a cap through, holds and charges it, and reports the denial enforcing would have given", async () => {
      const { children } = await family({ usdMicros: 100 }, [{ usdMicros: 60 }]);
      const chain = children[0] as VerifiedChain;
      await withBoth(make, async (shadow, enforcing) => {
        const events = recorded(shadow);
        const first = await shadow.reserve({ chain, usdMicros: 50 });
        expect(first).toMatchObject({ decision: "ALLOW", enforced: false });
        expect(first).not.toHaveProperty("wouldBe");
        const would = await enforcing.check({ chain, usdMicros: 20 });
        expect(would).toMatchObject({ decision: "DENY", reason: "BUDGET_USD", linkIndex: 1 });
        const second = await shadow.reserve({ chain, usdMicros: 20 });
        expect(second).toMatchObject({
          decision: "ALLOW",
          enforced: false,
          amounts: { usdMicros: 20 },
          wouldBe: asWouldBe(would),
        });
        expect(events.map(([event]) => event)).toEqual(["reserved", "denied", "reserved"]);
        expect(events[1]?.[1]).toEqual({
          decision: asWouldBe(would),
          labels: [],
          enforced: false,
        });
        // The hold is real: held 70 on a 60 cap, which an enforcing reserve now sees.
        expect(usdOf(await shadow.remaining(chain), 1)).toMatchObject({ held: 70, remaining: 0 });
        expect(await enforcing.reserve({ chain, usdMicros: 1 })).toMatchObject({
          decision: "DENY",
          available: 0,
        });
        // Charged as any commit: past the cap (the child's 75 of 60: 100%), with its events.
        if (second.decision === "DENY") throw new Error("expected a hold");
        if (first.decision === "DENY") throw new Error("expected a hold");
        expect(await shadow.commit(first.reservationId, { usdMicros: 50 })).toMatchObject({
          status: "committed",
        });
        events.length = 0;
        expect(await shadow.commit(second.reservationId, { usdMicros: 25 })).toEqual({
          status: "committed",
          already: false,
          late: false,
          overrun: { usdMicros: 5 },
        });
        expect(events.filter(([event]) => event !== "committed")).toEqual([
          [
            "overrun",
            {
              reservationId: second.reservationId,
              eventId: `${second.reservationId}:overrun:usdMicros`,
              kind: "usdMicros",
              reserved: 20,
              actual: 25,
            },
          ],
          [
            "threshold",
            {
              reservationId: second.reservationId,
              eventId: `${second.reservationId}:threshold:${chain.linkIds[1]}|usdMicros:100`,
              linkId: chain.linkIds[1],
              field: "usdMicros",
              percent: 100,
              spent: 75,
              cap: 60,
            },
          ],
        ]);
        expect(usdOf(await shadow.remaining(chain), 1)).toMatchObject({ spent: 75, overBy: 15 });
      });
    });

    it("lets through what the grant itself refuses (a tool not allowed, an expired link), naming the refusal", async () => {
      const { children } = await family({ usdMicros: 100 }, [
        { tools: ["search.*"], exp: Math.floor(T0 / 1000) + 60 },
      ]);
      const chain = children[0] as VerifiedChain;
      await withBoth(make, async (shadow, enforcing, clock) => {
        const events = recorded(shadow);
        const request: ReserveRequest = { chain, tool: "send_email", usdMicros: 5 };
        const would = await enforcing.check(request);
        expect(would).toMatchObject({ decision: "DENY", reason: "TOOL_NOT_ALLOWED" });
        const decision = await shadow.reserve(request);
        expect(decision).toMatchObject({
          decision: "ALLOW",
          enforced: false,
          amounts: { usdMicros: 5, risk: 10, requests: 1 },
          wouldBe: asWouldBe(would),
        });
        expect(events.map(([event]) => event)).toEqual(["denied", "reserved"]);
        clock.advance(61); // the first hold has expired too
        const late = await shadow.reserve({ chain, tool: "search.web", usdMicros: 5 });
        expect(late).toMatchObject({
          decision: "ALLOW",
          wouldBe: { decision: "DENY", reason: "EXPIRED", linkIndex: 1, field: "exp" },
        });
        expect(usdOf(await shadow.remaining(chain), 0)).toMatchObject({ held: 5 });
      });
    });

    it("holds what was asked where enforcing would lower it, and names the caps it would have set", async () => {
      const { children } = await family({ usdMicros: 100, tokens: 1_000 }, [{ usdMicros: 60 }]);
      const chain = children[0] as VerifiedChain;
      await withBoth(make, async (shadow, enforcing) => {
        await shadow.reserve({ chain, usdMicros: 40, tokens: 900 });
        const request: ReserveRequest = { chain, usdMicros: 50, tokens: 500, acceptCaps: true };
        const would = await enforcing.check(request);
        expect(would).toMatchObject({
          decision: "ALLOW_WITH_CAPS",
          caps: { tokens: 100, usdMicros: 20 },
        });
        const decision = await shadow.reserve(request);
        expect(decision).toMatchObject({
          decision: "ALLOW",
          enforced: false,
          amounts: { usdMicros: 50, tokens: 500 },
          wouldBe: { decision: "ALLOW_WITH_CAPS", caps: { tokens: 100, usdMicros: 20 } },
        });
      });
    });

    it("answers check() as its reserve would: ALLOW, not enforced, with what enforcing would say", async () => {
      const { children } = await family({ usdMicros: 100 }, [{ usdMicros: 10 }]);
      const chain = children[0] as VerifiedChain;
      await withBoth(make, async (shadow, enforcing) => {
        const request: ReserveRequest = { chain, usdMicros: 20 };
        const would = await enforcing.check(request);
        expect(await shadow.check(request)).toEqual({
          decision: "ALLOW",
          amounts: { tokens: 0, usdMicros: 20, risk: 0, requests: 1 },
          fits: { tokens: null, usdMicros: 10, risk: null, requests: null },
          enforced: false,
          wouldBe: asWouldBe(would),
        });
        expect(usdOf(await shadow.remaining(chain), 1)).toMatchObject({ held: 0 });
      });
    });

    it("law: every shadow decision holds what was asked and reports what an enforcing check said just before", async () => {
      const { children } = await family({ usdMicros: 300, tokens: 2_000 }, [
        { usdMicros: 120, tools: ["search.*"], rate: [{ seconds: 60, requests: 4 }] },
        { tokens: 500 },
      ]);
      const request = fc.record({
        child: fc.nat({ max: 1 }),
        usdMicros: fc.nat({ max: 90 }),
        tokens: fc.nat({ max: 400 }),
        tool: fc.constantFrom(undefined, "search.web", "send_email"),
        acceptCaps: fc.boolean(),
        commit: fc.option(fc.nat({ max: 120 }), { nil: undefined }),
        advance: fc.nat({ max: 30 }),
      });
      await fc.assert(
        fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 12 }), async (steps) => {
          await withBoth(make, async (shadow, enforcing, clock) => {
            for (const step of steps) {
              clock.advance(step.advance);
              const chain = children[step.child] as VerifiedChain;
              const asked: ReserveRequest = {
                chain,
                usdMicros: step.usdMicros,
                tokens: step.tokens,
                ...(step.tool === undefined ? {} : { tool: step.tool }),
                acceptCaps: step.acceptCaps,
              };
              const before = usdOf(await shadow.remaining(chain), 0);
              const would = await enforcing.check(asked);
              const decision: Decision = await shadow.reserve(asked);
              expect(decision).toMatchObject({
                decision: "ALLOW",
                enforced: false,
                amounts: { usdMicros: step.usdMicros, tokens: step.tokens, requests: 1 },
              });
              expect((decision as { wouldBe?: unknown }).wouldBe).toEqual(asWouldBe(would));
              expect(usdOf(await shadow.remaining(chain), 0)?.held).toBe(
                (before?.held ?? 0) + step.usdMicros,
              );
              if (step.commit !== undefined && decision.decision !== "DENY")
                await shadow.commit(decision.reservationId, { usdMicros: step.commit });
            }
          });
        }),
        { numRuns: name === "memory" ? 40 : 12 },
      );
    });

    it("refuses a hold past 2^53 - 1 with a RangeError, holding nothing, as an enforcing reserve would", async () => {
      const max = Number.MAX_SAFE_INTEGER;
      const { children } = await family({ usdMicros: 100 }, [{}]);
      const chain = children[0] as VerifiedChain;
      await withBoth(make, async (shadow) => {
        expect(await shadow.reserve({ chain, usdMicros: max - 5 })).toMatchObject({
          decision: "ALLOW",
          wouldBe: { reason: "BUDGET_USD" },
        });
        await expect(shadow.reserve({ chain, usdMicros: 6 })).rejects.toThrow(RangeError);
        await expect(shadow.check({ chain, usdMicros: 6 })).rejects.toThrow(RangeError);
        expect(usdOf(await shadow.remaining(chain), 0)).toMatchObject({ held: max - 5 });
      });
    });

    it("refuses a ledger reserve whose shadow is not a boolean, changing nothing", async () => {
      const ledger = await make();
      try {
        const lines = [line("link|usdMicros", "usdMicros", 10)];
        for (const shadow of ["yes", 1, null, {}])
          await expect(
            ledger.reserve({
              ...storageOp("a", 0, 1),
              lines,
              amounts: { ...ZERO, usdMicros: 50 },
              shadow: shadow as boolean,
            }),
          ).rejects.toThrow(TypeError);
        const op = { ...storageOp("a", 0, 1), lines, amounts: { ...ZERO, usdMicros: 50 } };
        expect(await ledger.reserve({ ...op, shadow: false })).toMatchObject({ ok: false });
        expect(await ledger.reserve({ ...op, shadow: true })).toEqual({
          ok: true,
          amounts: { ...ZERO, usdMicros: 50 },
          expired: [],
          at: T0,
          wouldBe: { ok: false, line: 0, available: 10 },
        });
      } finally {
        await ledger.close();
      }
    });
  });
}

describe("the enforcer's mode", () => {
  it("is enforce unless shadow is asked for by name; anything else is refused", () => {
    expect(new Enforcer().mode).toBe("enforce");
    expect(new Enforcer({ mode: "shadow" }).mode).toBe("shadow");
    for (const bad of [1, null, true, {}]) {
      expect(() => new Enforcer({ mode: bad as never })).toThrow(TypeError);
    }
    for (const bad of ["SHADOW", "observe", ""]) {
      expect(() => new Enforcer({ mode: bad as never })).toThrow(RangeError);
    }
  });

  it("enforcing mode answers as before: no enforced or wouldBe field", async () => {
    const { children } = await family({ usdMicros: 10 }, [{}]);
    const chain = children[0] as VerifiedChain;
    const enforcer = new Enforcer({ now: () => T0 });
    const allow = await enforcer.reserve({ chain, usdMicros: 5 });
    expect(Object.keys(allow).sort()).toEqual([
      "amounts",
      "decision",
      "expiresAt",
      "reservationId",
    ]);
    expect(await enforcer.reserve({ chain, usdMicros: 6 })).toMatchObject({ decision: "DENY" });
  });
});
