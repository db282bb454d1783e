import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Enforcer, MemoryLedger, type Decision } from "@allowance/enforcer";
import { ID_PREFIX, counterOf, newReservationId } from "../src/idempotency.js";
import {
  family,
  hostileArgumentsLaw,
  clockOption,
  ledgerSuite,
  line,
  recording,
  runSchedule,
  scheduleGrants,
  storageOp,
  stepArbitrary,
  syncApiLaw,
  thresholdLaw,
} from "../../../test/support/ledger-suite.js";

ledgerSuite("memory", async (now) => new MemoryLedger(clockOption(now)));

describe("the memory ledger's laws", () => {
  it("law: in any interleaving of reserve, commit, release and expiry, no capped account passes its cap beyond recorded overruns", async () => {
    const chains = await family(scheduleGrants.parent, scheduleGrants.children);
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArbitrary, { minLength: 1, maxLength: 40, size: "max" }),
        async (steps) => {
          await runSchedule(async (now) => new MemoryLedger(clockOption(now)), chains, steps);
        },
      ),
      { numRuns: 200 },
    );
  });
  syncApiLaw("memory", async (now) => new MemoryLedger(clockOption(now)), 100);
  thresholdLaw("memory", async (now) => new MemoryLedger(clockOption(now)), 100);
  hostileArgumentsLaw("memory", async (now) => new MemoryLedger(clockOption(now)), 200);
});

describe("the memory ledger's check of a root", () => {
  it("refuses a hostile root right after a valid one (the check remembers only the last root that passed)", () => {
    const ledger = new MemoryLedger();
    expect(ledger.reserveSync(storageOp("root.a", 1, 10)).ok).toBe(true);
    for (const root of ["", "a.b", "a{b", "b}", "\ud800", null, undefined, 7] as unknown[])
      expect(
        () => ledger.reserveSync({ ...storageOp("root.b", 1, 10), root: root as string }),
        String(root),
      ).toThrow(TypeError);
    expect(ledger.reserveSync(storageOp("root.c", 1, 10)).ok).toBe(true);
  });
});

describe("the enforcer's synchronous methods and commit contexts", () => {
  it("refuses the synchronous methods on a ledger that is not synchronous, with a TypeError, before doing anything", async () => {
    const { children } = await family({ usdMicros: 100 }, [{}]);
    const chain = children[0]!;
    const log: unknown[] = [];
    const enforcer = new Enforcer({ ledger: recording(new MemoryLedger(), log) });
    expect(enforcer.synchronous).toBe(false);
    expect(() => enforcer.reserveSync({ chain, usdMicros: 1 })).toThrow(TypeError);
    expect(() => enforcer.commitSync(`${chain.linkIds[0]}.x`, {})).toThrow(TypeError);
    expect(() => enforcer.releaseSync(`${chain.linkIds[0]}.x`)).toThrow(TypeError);
    expect(log).toEqual([]);
    expect((await enforcer.reserve({ chain, usdMicros: 1 })).decision).toBe("ALLOW");
  });

  it("attributes a commit to its reservation's labels and provider when a committed listener was there at reserve time, and to none otherwise", async () => {
    const { children } = await family({ usdMicros: 100, label: "team" }, [
      { label: "agent", providers: [{ name: "openai" }] },
    ]);
    const chain = children[0]!;
    const enforcer = new Enforcer();
    const early = enforcer.reserveSync({ chain, provider: "openai", usdMicros: 1 }) as Extract<
      Decision,
      { reservationId: string }
    >;
    const seen: { labels: readonly string[]; provider?: string; linkIds: readonly string[] }[] = [];
    enforcer.on("committed", (e) =>
      seen.push({
        labels: e.labels,
        linkIds: e.linkIds,
        ...(e.provider === undefined ? {} : { provider: e.provider }),
      }),
    );
    const late = enforcer.reserveSync({ chain, provider: "openai", usdMicros: 1 }) as Extract<
      Decision,
      { reservationId: string }
    >;
    enforcer.commitSync(early.reservationId, { usdMicros: 1 });
    enforcer.commitSync(late.reservationId, { usdMicros: 1 });
    expect(seen).toEqual([
      { labels: [], linkIds: [] },
      { labels: ["team", "agent"], linkIds: chain.linkIds, provider: "openai" },
    ]);
  });
});

describe("the memory ledger's retention of closed reservations", () => {
  const lines = [line("root|usdMicros", "usdMicros", 1_000_000)];
  const amounts = { tokens: 0, usdMicros: 1, risk: 0, requests: 1 };
  const reserveAndCommit = async (ledger: MemoryLedger, id: string, now: number) => {
    await ledger.reserve({ id, root: "root", lines, amounts, ttlMs: 60_000, now });
    await ledger.commit(id, { ...amounts, usdMicros: -1 }, now);
  };
  const statusOf = async (ledger: MemoryLedger, id: string, now: number) => {
    const outcome = await ledger.commit(id, { ...amounts, usdMicros: -1 }, now);
    return outcome.status === "committed"
      ? outcome.already
        ? "already"
        : "committed"
      : outcome.status;
  };

  it("refuses an option it does not have, and null for a default", () => {
    for (const options of [
      { retention: 5 },
      { maxclosed: 3 },
      { retentionMs: null },
      { now: null },
    ])
      expect(() => new MemoryLedger(options as never), JSON.stringify(options)).toThrow(
        /unknown option|expected/,
      );
    expect(() => new MemoryLedger(null as never)).toThrow(TypeError);
  });

  it("remembers at least the latest maxClosed, and forgets beyond twice that", async () => {
    const ledger = new MemoryLedger({ maxClosed: 3 });
    for (let i = 0; i < 20; i++) {
      await reserveAndCommit(ledger, `root.${i}`, 0);
      for (let j = Math.max(0, i - 2); j <= i; j++)
        expect(await statusOf(ledger, `root.${j}`, 0)).toBe("already");
      if (i >= 6) expect(await statusOf(ledger, `root.${i - 6}`, 0)).toBe("unknown");
    }
  });

  it("remembers a closed reservation for at least retentionMs, and forgets it within twice that", async () => {
    const ledger = new MemoryLedger({ retentionMs: 1000 });
    await reserveAndCommit(ledger, "root.a", 0);
    for (let now = 100; now < 1000; now += 100) {
      await reserveAndCommit(ledger, `root.at${now}`, now);
      expect(await statusOf(ledger, "root.a", now)).toBe("already");
    }
    for (let now = 1000; now <= 2000; now += 100)
      await reserveAndCommit(ledger, `root.at${now}`, now);
    expect(await statusOf(ledger, "root.a", 2000)).toBe("unknown");
  });

  it("remembers expired reservations apart from the others: a late commit is charged however many others close meanwhile", async () => {
    const ledger = new MemoryLedger({ maxClosed: 3 });
    await ledger.reserve({
      id: "root.slow",
      root: "root",
      lines,
      amounts: { ...amounts, usdMicros: 5 },
      ttlMs: 10,
      now: 0,
    });
    // Expires at 10, then a hundred others come and go: far past maxClosed.
    for (let i = 0; i < 100; i++) await reserveAndCommit(ledger, `root.${i}`, 20);
    expect(
      (await ledger.balances("root", ["root|usdMicros"], 20)).balances.get("root|usdMicros"),
    ).toEqual({ spent: 100, held: 0 });
    expect(await ledger.commit("root.slow", { ...amounts, usdMicros: 7 }, 30)).toMatchObject({
      status: "committed",
      late: true,
      charged: { usdMicros: 7 },
    });
    expect(
      (await ledger.balances("root", ["root|usdMicros"], 30)).balances.get("root|usdMicros"),
    ).toEqual({ spent: 107, held: 0 });
    // Once committed, it is one of the closed ones.
    expect(await statusOf(ledger, "root.slow", 30)).toBe("already");
  });

  it("remembers at least the latest maxExpired expired reservations, and forgets beyond twice that", async () => {
    const ledger = new MemoryLedger({ maxExpired: 2 });
    for (let i = 0; i < 10; i++) {
      await ledger.reserve({
        id: `root.${i}`,
        root: "root",
        lines,
        amounts,
        ttlMs: 1,
        now: i,
      });
    }
    // Each reserve swept the one before it: all but the last have expired, in order.
    await ledger.balances("root", [], 100);
    expect(await ledger.release("root.9", 100)).toMatchObject({ status: "expired", already: true });
    expect(await ledger.release("root.8", 100)).toMatchObject({ status: "expired", already: true });
    expect(await ledger.release("root.3", 100)).toMatchObject({ status: "unknown" });
  });

  it("keeps every held reservation, however many close around it", async () => {
    const ledger = new MemoryLedger({ maxClosed: 1, maxExpired: 1 });
    await ledger.reserve({
      id: "root.held",
      root: "root",
      lines,
      amounts,
      ttlMs: 1_000_000,
      now: 0,
    });
    for (let i = 0; i < 50; i++) await reserveAndCommit(ledger, `root.${i}`, 0);
    expect(await ledger.commit("root.held", { ...amounts, usdMicros: -1 }, 0)).toMatchObject({
      status: "committed",
      already: false,
      late: false,
    });
  });
});

describe("the memory ledger's reservation ids", () => {
  it("reads an enforcer's counter off its id, and nothing else as one", () => {
    const p = `root.${ID_PREFIX}`;
    expect(newReservationId("root").startsWith(p)).toBe(true);
    const minted = newReservationId("root");
    expect(counterOf(minted, "root")).toBe(Number.parseInt(minted.slice(p.length), 36));
    expect(counterOf(newReservationId("root"), "root")).toBe(counterOf(minted, "root") + 1);
    expect(counterOf(`${p}0`, "root")).toBe(0);
    expect(counterOf(`${p}z`, "root")).toBe(35);
    expect(counterOf(`${p}00z`, "root")).toBe(35);
    // Ten digits at most: 36^10 − 1 is a safe integer; eleven digits are not the form.
    expect(counterOf(`${p}zzzzzzzzzz`, "root")).toBe(36 ** 10 - 1);
    expect(Number.isSafeInteger(36 ** 10 - 1)).toBe(true);
    expect(counterOf(`${p}10000000000`, "root")).toBe(-1);
    for (const other of [
      p, // no digits
      `${p}Z`, // not base 36 as the enforcer writes it
      `${p}1-`,
      `${p}1.`,
      `root.${ID_PREFIX.slice(1)}x1`, // another prefix
      `root.x${ID_PREFIX}1`,
      "root.key:1",
      "root.check",
    ])
      expect([other, counterOf(other, "root")]).toEqual([other, -1]);
    // Another root, or a root that only begins the id's.
    expect(counterOf(`${p}5`, "roo")).toBe(-1);
    expect(counterOf(`${p}5`, "rootx")).toBe(-1);
    expect(counterOf(`other.${ID_PREFIX}5`, "root")).toBe(-1);
  });

  it("law: a reserve is refused as a repeat exactly when its id was reserved before, whatever order the enforcer's counters come in", () => {
    const prefix = ID_PREFIX;
    const lines = [line("link|usdMicros", "usdMicros", 1_000_000)];
    const amounts = { tokens: 0, usdMicros: 1, risk: 0, requests: 1 };
    // The enforcer's form with small counters (written plainly or after a zero), other forms,
    // and both on two roots: new ids come with counters above, below and equal to those seen.
    const counter = fc.nat({ max: 12 }).map((n) => n.toString(36));
    const suffix = fc.oneof(
      counter.map((n) => `${prefix}${n}`),
      counter.map((n) => `${prefix}0${n}`),
      counter.map((n) => `other${n}`),
      fc.constant(prefix),
      fc.constant(`${prefix}zzzzzzzzzzz`),
      fc.constant(`${prefix}A`),
    );
    const step = fc.record({
      root: fc.constantFrom("root", "sibling"),
      suffix,
      then: fc.constantFrom("commit", "release", "hold"),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const ledger = new MemoryLedger({ now: () => 1_800_000_000_000 });
        const reserved = new Set<string>();
        for (const { root, suffix, then } of steps) {
          const id = `${root}.${suffix}`;
          const op = { id, root, lines, amounts, ttlMs: 60_000 };
          if (reserved.has(id)) {
            let code: unknown;
            try {
              ledger.reserveSync(op);
            } catch (error) {
              code = (error as { code?: unknown }).code;
            }
            expect([id, code]).toEqual([id, "ERR_RESERVATION_CONFLICT"]);
            continue;
          }
          expect([id, ledger.reserveSync(op).ok]).toEqual([id, true]);
          reserved.add(id);
          if (then === "commit") ledger.commitSync(id, amounts);
          else if (then === "release") ledger.releaseSync(id);
        }
      }),
      { numRuns: 500 },
    );
  });
});
