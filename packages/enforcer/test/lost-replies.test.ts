/**
 * Lost replies (spec/enforcement.md §3.10, §7.2): an operation the ledger applied whose answer never
 * reached the caller (a client timeout, a dropped connection), retried. On every ledger family a
 * wrapper applies the operation, then throws instead of answering; the caller retries.
 *
 * - A reserve retried with its idempotency key answers the first decision and holds once
 *   (before: a $3 ask tried twice held $6, and a retry with the same id was refused while the
 *   hold existed).
 * - A commit retried after its reply was lost still raises the first commit's events, each with an
 *   id derived from the reservation and the effect (before: a $6 spend on a $4 hold, crossing 50%,
 *   raised no event at all).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAllowanceError } from "@allowance/core";
import {
  Enforcer,
  MemoryLedger,
  type Amounts,
  type Decision,
  type EnforcerEvents,
  type Ledger,
  type ReserveOp,
} from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import type { VerifiedChain } from "@allowance/verifier";
import { Clock, family } from "../../../test/support/ledger-suite.js";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";

const USD = 1_000_000;
const dir = mkdtempSync(join(tmpdir(), "allowance-lost-"));
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
/** Each family's ledger on the test's clock (the ledger's clock decides expiry, §3.8). */
const FAMILIES: readonly (readonly [string, (now: () => number) => Promise<Ledger>])[] = [
  ["memory", async (now) => new MemoryLedger({ now })],
  ["sqlite", async (now) => SqliteLedger.open(join(dir, `lost-${files++}.db`), { now })],
  [
    "redis",
    async (now) => {
      const prefix = freshPrefix();
      const ledger = new RedisLedger(redis as Redis, { keyPrefix: prefix, now });
      return Object.assign(ledger, { close: () => deleteKeys(redis as Redis, prefix) });
    },
  ],
];

type Method = "reserve" | "commit" | "release" | "extend";

/** The error a caller sees when the ledger applied its operation but the answer was lost. */
class LostReply extends Error {
  override readonly name = "LostReply";
}

/**
 * A ledger whose operations are applied by `inner` and then, when `lose(method)` says so, answered
 * with a LostReply instead of their outcome. Only the promise-returning methods: the enforcer
 * calls them as it calls the Redis ledger's.
 */
class LosingLedger implements Ledger {
  readonly name: string;
  lost = 0;
  constructor(
    readonly inner: Ledger,
    readonly lose: (method: Method) => boolean,
  ) {
    this.name = `${inner.name}, losing replies`;
  }
  async #answer<T>(method: Method, applied: Promise<T>): Promise<T> {
    const outcome = await applied;
    if (!this.lose(method)) return outcome;
    this.lost++;
    throw new LostReply(`the ${method} was applied, its answer lost`);
  }
  reserve(op: ReserveOp) {
    return this.#answer("reserve", this.inner.reserve(op));
  }
  commit(id: string, actual: Amounts, now?: number) {
    return this.#answer("commit", this.inner.commit(id, actual, now));
  }
  release(id: string, now?: number) {
    return this.#answer("release", this.inner.release(id, now));
  }
  extend(id: string, ttlMs: number, now?: number) {
    return this.#answer("extend", this.inner.extend(id, ttlMs, now));
  }
  balances(...args: Parameters<Ledger["balances"]>) {
    return this.inner.balances(...args);
  }
  close() {
    return this.inner.close();
  }
}

/** Loses the first answer of each method named, then answers. */
const losingFirst = (...methods: Method[]) => {
  const left = new Set(methods);
  return (method: Method) => left.delete(method);
};

/** Calls until an answer arrives, as a client that retries after a timeout does. */
async function untilAnswered<T>(call: () => Promise<T>, tries = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof LostReply) || i >= tries) throw error;
    }
  }
}

/** Every event an enforcer raises, as [type, data]. */
function recordEvents(enforcer: Enforcer): [keyof EnforcerEvents, Record<string, unknown>][] {
  const seen: [keyof EnforcerEvents, Record<string, unknown>][] = [];
  for (const type of [
    "reserved",
    "committed",
    "released",
    "expired",
    "overrun",
    "threshold",
  ] as const)
    enforcer.on(type, (data: object) => seen.push([type, data as Record<string, unknown>]));
  return seen;
}

const held = (d: Decision) => {
  if (d.decision === "DENY") throw new Error(`expected a hold, got ${d.reason}`);
  return d;
};

async function usdOf(enforcer: Enforcer, chain: VerifiedChain, linkIndex = 0) {
  const limit = (await enforcer.remaining(chain)).links[linkIndex]?.limits.find(
    (l) => l.field === "usdMicros",
  );
  return { spent: limit?.spent, held: limit?.held };
}

for (const [name, make] of FAMILIES) {
  describe.skipIf(name === "redis" && redisUrl === "")(
    `lost replies, on the ${name} ledger`,
    () => {
      async function setup(lose: (method: Method) => boolean) {
        const clock = new Clock();
        const { parent, children } = await family({ usdMicros: 10 * USD }, [
          { usdMicros: 10 * USD },
        ]);
        const inner = await make(clock.now);
        const losing = new LosingLedger(inner, lose);
        const enforcer = new Enforcer({ ledger: losing, now: clock.now });
        const observer = new Enforcer({ ledger: inner, now: clock.now });
        return {
          clock,
          parent,
          chain: children[0] as VerifiedChain,
          inner,
          losing,
          enforcer,
          observer,
        };
      }

      it("regression: a reserve retried after a client timeout held $6 for two $3 asks; with its idempotency key it holds $3 once and answers the first decision", async () => {
        const t = await setup(losingFirst("reserve"));
        try {
          const ask = () =>
            t.enforcer.reserve(
              { chain: t.chain, usdMicros: 3 * USD },
              { idempotencyKey: "call-1" },
            );
          await expect(ask()).rejects.toThrow(LostReply);
          t.clock.advance(5);
          const first = held(await ask());
          expect(first.reservationId.startsWith(`${t.chain.linkIds[0]}.`)).toBe(true);
          expect(await usdOf(t.observer, t.chain)).toEqual({ spent: 0, held: 3 * USD });
          t.clock.advance(5);
          expect(await ask()).toEqual(first);
          expect(await usdOf(t.observer, t.chain)).toEqual({ spent: 0, held: 3 * USD });
          expect(
            await t.enforcer.commit(first.reservationId, { usdMicros: 2 * USD }),
          ).toMatchObject({
            status: "committed",
            already: false,
          });
          expect(await ask(), "after the commit, still the first decision").toEqual(first);
          expect(await usdOf(t.observer, t.chain)).toEqual({ spent: 2 * USD, held: 0 });
        } finally {
          await t.inner.close();
        }
      });

      it("without an idempotency key, each try is a reservation of its own", async () => {
        const t = await setup(losingFirst("reserve"));
        try {
          const ask = () => t.enforcer.reserve({ chain: t.chain, usdMicros: 3 * USD });
          await expect(ask()).rejects.toThrow(LostReply);
          held(await ask());
          expect(await usdOf(t.observer, t.chain)).toEqual({ spent: 0, held: 6 * USD });
        } finally {
          await t.inner.close();
        }
      });

      it("an idempotency key reused for another request is refused with ERR_RESERVATION_CONFLICT and holds nothing more", async () => {
        const t = await setup(() => false);
        try {
          const request = { chain: t.chain, usdMicros: 3 * USD };
          held(await t.enforcer.reserve(request, { idempotencyKey: "k", ttl: 60 }));
          const others: [string, Promise<Decision>][] = [
            ["amount", t.enforcer.reserve({ ...request, usdMicros: USD }, { idempotencyKey: "k" })],
            ["ttl", t.enforcer.reserve(request, { idempotencyKey: "k", ttl: 61 })],
            ["tool", t.enforcer.reserve({ ...request, tool: "search" }, { idempotencyKey: "k" })],
            [
              "provider",
              t.enforcer.reserve({ ...request, provider: "x" }, { idempotencyKey: "k" }),
            ],
            ["caps", t.enforcer.reserve({ ...request, acceptCaps: true }, { idempotencyKey: "k" })],
            [
              "another chain of the same root",
              t.enforcer.reserve({ ...request, chain: t.parent }, { idempotencyKey: "k" }),
            ],
          ];
          for (const [what, call] of others)
            await expect(call, what).rejects.toMatchObject({ code: "ERR_RESERVATION_CONFLICT" });
          expect(await usdOf(t.observer, t.chain)).toEqual({ spent: 0, held: 3 * USD });
        } finally {
          await t.inner.close();
        }
      });

      it("a capped decision is answered again as it was, though the budget has changed since", async () => {
        const t = await setup(losingFirst("reserve"));
        try {
          const other = held(await t.observer.reserve({ chain: t.chain, usdMicros: 8 * USD }));
          const ask = () =>
            t.enforcer.reserve(
              { chain: t.chain, usdMicros: 5 * USD, acceptCaps: true },
              { idempotencyKey: "capped" },
            );
          await expect(ask()).rejects.toThrow(LostReply);
          // The lost try made the hold, lowered to the $2 left; the retry answers it.
          const first = held(await ask());
          expect(first).toMatchObject({
            decision: "ALLOW_WITH_CAPS",
            caps: { usdMicros: 2 * USD },
          });
          await t.observer.release(other.reservationId);
          expect(await ask(), "$10 are free now: still the first decision").toEqual(first);
          expect(await usdOf(t.observer, t.chain)).toEqual({ spent: 0, held: 2 * USD });
        } finally {
          await t.inner.close();
        }
      });

      it("regression: a commit retried after its reply was lost raised no event for a $6 spend on a $4 hold crossing 50%; now it raises the first commit's events, once, with ids of the reservation and the effect", async () => {
        const t = await setup(losingFirst("commit"));
        try {
          const seen = recordEvents(t.enforcer);
          const hold = held(await t.enforcer.reserve({ chain: t.chain, usdMicros: 4 * USD }));
          const id = hold.reservationId;
          seen.length = 0;
          await expect(t.enforcer.commit(id, { usdMicros: 6 * USD })).rejects.toThrow(LostReply);
          expect(seen).toEqual([]);
          const result = await t.enforcer.commit(id, { usdMicros: 6 * USD });
          expect(result).toEqual({
            status: "committed",
            already: true,
            late: false,
            overrun: { usdMicros: 2 * USD },
          });
          const types = seen.map(([type]) => type).sort();
          expect(types).toEqual(["committed", "overrun", "threshold", "threshold"]);
          const ids = seen.map(([, data]) => data.eventId as string);
          expect(new Set(ids).size).toBe(ids.length);
          expect(ids).toContain(`${id}:committed`);
          expect(ids).toContain(`${id}:overrun:usdMicros`);
          expect(seen.filter(([type]) => type === "threshold").map(([, e]) => e)).toEqual(
            t.chain.linkIds.map((linkId) =>
              expect.objectContaining({
                reservationId: id,
                linkId,
                field: "usdMicros",
                percent: 50,
                spent: 6 * USD,
              }),
            ),
          );
          expect(seen.find(([type]) => type === "committed")?.[1]).toMatchObject({
            reservationId: id,
            charged: { usdMicros: 6 * USD },
            late: false,
          });
          // The same enforcer asked again: it has raised them, it does not raise them twice.
          await t.enforcer.commit(id, { usdMicros: 6 * USD });
          expect(seen).toHaveLength(4);
          // Another process retrying raises the same events, with the same ids: consumers dedupe.
          const other = recordEvents(t.observer);
          expect(await t.observer.commit(id, { usdMicros: 1 })).toEqual(result);
          expect(other.map(([, e]) => e.eventId).sort()).toEqual([...ids].sort());
          expect(await usdOf(t.observer, t.chain)).toEqual({ spent: 6 * USD, held: 0 });
        } finally {
          await t.inner.close();
        }
      });

      it("a release retried after its reply was lost raises released once", async () => {
        const t = await setup(losingFirst("release"));
        try {
          const seen = recordEvents(t.enforcer);
          const hold = held(await t.enforcer.reserve({ chain: t.chain, usdMicros: USD }));
          await expect(t.enforcer.release(hold.reservationId)).rejects.toThrow(LostReply);
          expect(await t.enforcer.release(hold.reservationId)).toEqual({
            status: "released",
            already: true,
          });
          expect(await t.enforcer.release(hold.reservationId)).toEqual({
            status: "released",
            already: true,
          });
          expect(seen.filter(([type]) => type === "released")).toEqual([
            [
              "released",
              { reservationId: hold.reservationId, eventId: `${hold.reservationId}:released` },
            ],
          ]);
        } finally {
          await t.inner.close();
        }
      });

      it("an extend retried after its reply was lost answers the hold as extended", async () => {
        const t = await setup(losingFirst("extend"));
        try {
          const hold = held(
            await t.enforcer.reserve({ chain: t.chain, usdMicros: USD }, { ttl: 30 }),
          );
          t.clock.advance(20);
          await expect(t.enforcer.extend(hold.reservationId, 30)).rejects.toThrow(LostReply);
          expect(await t.enforcer.extend(hold.reservationId, 30)).toEqual({
            expiresAt: hold.expiresAt + 20_000,
          });
          t.clock.advance(29);
          expect(await usdOf(t.observer, t.chain)).toEqual({ spent: 0, held: USD });
        } finally {
          await t.inner.close();
        }
      });

      it("law: a client that retries every lost reply ends with the balances and the events (by id) of one whose replies all arrive", async () => {
        const { children } = await family({ usdMicros: 50 }, [{ usdMicros: 40 }, {}]);
        const step = fc.oneof(
          fc.record({
            op: fc.constant("reserve" as const),
            child: fc.nat({ max: 1 }),
            usdMicros: fc.nat({ max: 30 }),
            caps: fc.boolean(),
          }),
          fc.record({ op: fc.constant("commit" as const), pick: fc.nat(), usdMicros: fc.nat(40) }),
          fc.record({ op: fc.constant("release" as const), pick: fc.nat() }),
          fc.record({ op: fc.constant("extend" as const), pick: fc.nat() }),
          fc.record({
            op: fc.constant("advance" as const),
            seconds: fc.integer({ min: 1, max: 40 }),
          }),
        );
        type Step = typeof step extends fc.Arbitrary<infer S> ? S : never;
        const run = async (steps: readonly Step[], lost: readonly boolean[]) => {
          let n = 0;
          const clock = new Clock();
          const inner = await make(clock.now);
          const enforcer = new Enforcer({
            ledger: new LosingLedger(inner, () => lost[n++ % lost.length] === true),
            now: clock.now,
          });
          // An expiry rides on the answer of whichever operation swept it: lost with that answer.
          const events: [string, unknown][] = [];
          for (const type of ["reserved", "committed", "released", "overrun", "threshold"] as const)
            enforcer.on(type, (data: object) => {
              const { eventId, at: _at, ...rest } = data as Record<string, unknown>;
              events.push([eventId as string, rest]);
            });
          // Keyed reservations: their ids, hence their events' ids, are the same in both runs.
          const ids: string[] = [];
          const pick = (i: number) => ids[i % Math.max(1, ids.length)];
          const answers: unknown[] = [];
          try {
            for (const [i, s] of steps.entries()) {
              const answer = await untilAnswered(async () => {
                switch (s.op) {
                  case "reserve": {
                    const d = await enforcer.reserve(
                      {
                        chain: children[s.child] as VerifiedChain,
                        usdMicros: s.usdMicros,
                        acceptCaps: s.caps,
                      },
                      { idempotencyKey: `step-${i}`, ttl: 30 },
                    );
                    if (d.decision !== "DENY" && !ids.includes(d.reservationId))
                      ids.push(d.reservationId);
                    return d;
                  }
                  case "commit": {
                    const id = pick(s.pick);
                    if (id === undefined) return null;
                    return (await enforcer.commit(id, { usdMicros: s.usdMicros })).status;
                  }
                  case "release": {
                    const id = pick(s.pick);
                    return id === undefined ? null : (await enforcer.release(id)).status;
                  }
                  case "extend": {
                    const id = pick(s.pick);
                    if (id === undefined) return null;
                    return enforcer.extend(id, 30).then(
                      (extended) => extended.expiresAt,
                      (error: unknown) =>
                        isAllowanceError(error) ? error.code : Promise.reject(error),
                    );
                  }
                  case "advance":
                    clock.advance(s.seconds);
                    return null;
                }
              }, lost.length + 1);
              answers.push(answer);
            }
            const balances = await Promise.all(
              children.map(async (chain) => (await enforcer.remaining(chain)).links),
            );
            return { answers, balances, events: events.sort(([a], [b]) => (a < b ? -1 : 1)) };
          } finally {
            await inner.close();
          }
        };
        await fc.assert(
          fc.asyncProperty(
            fc.array(step, { minLength: 1, maxLength: 25 }),
            fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
            async (steps, lost) => {
              const clean = await run(steps, [false]);
              // Every run of lost answers ends: a retry is answered within lost.length + 1 tries.
              const lossy = await run(steps, [...lost, false]);
              expect(lossy.answers).toEqual(clean.answers);
              expect(lossy.balances).toEqual(clean.balances);
              expect(lossy.events).toEqual(clean.events);
            },
          ),
          { numRuns: name === "memory" ? 60 : 20 },
        );
      }, 120_000);
    },
  );
}
