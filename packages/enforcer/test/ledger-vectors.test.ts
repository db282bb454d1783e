/**
 * The ledger vectors (spec/vectors/ledger, spec/enforcement.md §9) on every ledger, on the rule
 * module's reference ledger, and on the Redis script itself through EVAL: one operation per call,
 * and a whole vector per call (the script's batch path).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAllowanceError } from "@allowance/core";
import {
  MAX_CLOCK_SKEW_MS,
  MemoryLedger,
  type AccountRef,
  type Amounts,
  type BalancesOutcome,
  type CommitOptions,
  type CommitOutcome,
  type ExtendOutcome,
  type Ledger,
  type LedgerLine,
  type ReleaseOutcome,
  type ReserveOp,
  type ReserveOutcome,
} from "@allowance/enforcer";
import type { SettleOutcome } from "@allowance/enforcer/rule";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { RedisLedger } from "@allowance/enforcer/redis";
import {
  LEDGER_VECTORS,
  ReferenceLedger,
  accountsOfRoot,
  compareStep,
  runLedgerVectors,
  stepRoot,
  type LedgerVector,
  type VectorFailure,
  type VectorOutcome,
  type VectorStep,
} from "@allowance/enforcer/testing";
import { LEDGER_LUA } from "../src/redis/ledger-lua.js";
import {
  ReplyReader,
  SCRIPT_KEYS,
  decodeBalances,
  decodeCommit,
  decodeExtend,
  decodeRelease,
  decodeReserve,
  decodeSettle,
  encodeBalances,
  encodeCommit,
  encodeExtend,
  encodeRelease,
  encodeReserve,
  encodeSettle,
  epochArg,
  lineSetOf,
  readHeader,
  scriptArgs,
  setLineSet,
  setSettleLineSet,
  type LineSet,
} from "../src/redis/wire.js";
import {
  LEDGER_VECTORS_DIR,
  LEDGER_VECTORS_MODULE_PATH,
  buildLedgerVectors,
  renderLedgerVector,
  renderLedgerVectorsModule,
} from "../../../scripts/ledger-vectors.js";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-vectors-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

const committed: LedgerVector[] = readdirSync(LEDGER_VECTORS_DIR)
  .filter((file) => file.endsWith(".json"))
  .sort()
  .map((file) => JSON.parse(readFileSync(join(LEDGER_VECTORS_DIR, file), "utf8")) as LedgerVector);

const steps = LEDGER_VECTORS.flatMap((v) => v.steps);
const CHECKS = 2 * steps.length;

describe("the ledger vectors", () => {
  it("are exactly what scripts/ledger-vectors.ts generates, in spec/vectors/ledger and in @allowance/enforcer/testing (run scripts/generate-ledger-vectors.ts after a deliberate change)", async () => {
    const built = await buildLedgerVectors();
    expect(committed.map((v) => v.name)).toEqual(built.map((v) => v.name).sort());
    for (const vector of built)
      expect(readFileSync(join(LEDGER_VECTORS_DIR, `${vector.name}.json`), "utf8")).toBe(
        renderLedgerVector(vector),
      );
    expect(readFileSync(LEDGER_VECTORS_MODULE_PATH, "utf8")).toBe(renderLedgerVectorsModule(built));
    expect(LEDGER_VECTORS).toEqual(built);
  });

  it("cover reserves with and without minimums, commits below, above, late and repeated, releases, expiry, thresholds, a window's bucket boundary and refusals", () => {
    const outcome = (s: VectorStep) => s.expect;
    const reserves = steps.filter((s) => s.op === "reserve");
    expect(reserves.some((s) => s.minimums === undefined && outcome(s).ok === false)).toBe(true);
    expect(
      reserves.some(
        (s) =>
          s.minimums !== undefined &&
          outcome(s).ok === true &&
          (outcome(s).amounts as Amounts).tokens < s.amounts.tokens,
      ),
    ).toBe(true);
    const commits = steps.filter((s) => s.op === "commit").map(outcome);
    const charged = (o: VectorOutcome) => o.charged as Amounts;
    const reserved = (o: VectorOutcome) => o.reserved as Amounts;
    const fresh = commits.filter((o) => o.status === "committed" && o.already === false);
    expect(fresh.some((o) => charged(o).usdMicros < reserved(o).usdMicros)).toBe(true);
    expect(fresh.some((o) => charged(o).usdMicros > reserved(o).usdMicros)).toBe(true);
    expect(fresh.some((o) => o.late === true)).toBe(true);
    expect(fresh.some((o) => (o.lines as unknown[]).length > 1)).toBe(true);
    expect(commits.some((o) => o.already === true)).toBe(true);
    for (const status of ["released", "unknown"])
      expect(commits.some((o) => o.status === status)).toBe(true);
    const releases = steps.filter((s) => s.op === "release").map(outcome);
    for (const status of ["released", "committed", "expired", "unknown"])
      expect(releases.some((o) => o.status === status)).toBe(true);
    expect(steps.some((s) => (outcome(s).expired as unknown[] | undefined)?.length === 4)).toBe(
      true,
    );
    const errors = new Set(steps.map((s) => outcome(s).error).filter((e) => e !== undefined));
    expect(errors).toEqual(new Set(["ERR_RESERVATION_CONFLICT", "ERR_CLOCK_SKEW", "RangeError"]));
    const shadowed = reserves.filter((s) => s.shadow === true).map(outcome);
    const wouldBe = (o: VectorOutcome) => o.wouldBe as { ok: boolean } | undefined;
    expect(shadowed.some((o) => o.ok === true && wouldBe(o) === undefined)).toBe(true);
    expect(shadowed.some((o) => wouldBe(o)?.ok === false)).toBe(true);
    expect(shadowed.some((o) => wouldBe(o)?.ok === true)).toBe(true);
    expect(shadowed.some((o) => o.error === "RangeError")).toBe(true);
    const blocked = reserves.filter((s) => s.debtLimits !== undefined).map(outcome);
    expect(blocked.some((o) => o.ok === false && typeof o.debt === "number")).toBe(true);
    expect(blocked.some((o) => o.ok === true)).toBe(true);
    expect(shadowed.some((o) => typeof (o.wouldBe as { debt?: number })?.debt === "number")).toBe(
      true,
    );
    const receipted = steps.filter((s) => s.op === "commit" && s.receipt === true).map(outcome);
    const receiptOf = (o: VectorOutcome) => o.receipt as { prev: unknown } | undefined;
    expect(receipted.some((o) => o.already === false && receiptOf(o)?.prev === null)).toBe(true);
    expect(receipted.some((o) => o.already === false && receiptOf(o)?.prev !== null)).toBe(true);
    expect(receipted.some((o) => o.already === true && receiptOf(o) !== undefined)).toBe(true);
    expect(receipted.some((o) => o.late === true && receiptOf(o) !== undefined)).toBe(true);
    const settles = steps.filter((s) => s.op === "settle").map(outcome);
    expect(settles.some((o) => (o.settled as unknown[]).length > 0)).toBe(true);
    expect(settles.some((o) => (o.settled as unknown[]).length === 0)).toBe(true);
    const window = LEDGER_VECTORS.find((v) => v.name === "rate-window-bucket-boundary");
    const windowed = Object.values(window?.lineSets ?? {}).flatMap((set) =>
      set.lines.filter((line) => line.windowMs !== undefined),
    );
    expect(windowed.length).toBeGreaterThan(0);
    // Steps on both sides of a bucket boundary, by the ledger's time.
    const times = (window?.steps ?? []).map((s) => Math.floor(s.now / 60_000));
    expect(new Set(times).size).toBe(2);
    // Repeated reserves answered and refused, repeated commits with their lines, every extend.
    const repeats = reserves.filter((s) => s.fingerprint !== undefined).map(outcome);
    expect(repeats.some((o) => o.already === true)).toBe(true);
    expect(repeats.some((o) => o.error === "ERR_RESERVATION_CONFLICT")).toBe(true);
    expect(
      commits.some((o) => o.already === true && (o.lines as unknown[]).length > 0 && o.late),
    ).toBe(true);
    const extends_ = steps.filter((s) => s.op === "extend").map(outcome);
    for (const status of ["held", "expired", "released", "committed", "unknown"])
      expect(extends_.some((o) => o.status === status)).toBe(true);
  });

  const ledgers: readonly (readonly [string, () => Ledger])[] = [
    ["the reference ledger (the rule module over plain maps)", () => new ReferenceLedger()],
    ["the memory ledger", () => new MemoryLedger()],
    ["the sqlite ledger", () => SqliteLedger.open(join(dir, `vectors-${files++}.db`))],
    ["the sqlite ledger, in memory", () => SqliteLedger.open(":memory:")],
  ];
  for (const [name, make] of ledgers)
    it(`all pass on ${name}`, async () => {
      const report = await runLedgerVectors(make);
      expect(report.failures).toEqual([]);
      expect(report).toMatchObject({ vectors: LEDGER_VECTORS.length, checks: CHECKS });
    });

  it("all pass on the sqlite ledger's synchronous methods", async () => {
    const report = await runLedgerVectors(() => {
      const ledger = SqliteLedger.open(":memory:");
      return Object.assign(ledger, {
        reserve: async (op: ReserveOp) => ledger.reserveSync(op),
        commit: async (id: string, actual: Amounts, now?: number, options?: CommitOptions) =>
          ledger.commitSync(id, actual, now, options),
        release: async (id: string, now?: number) => ledger.releaseSync(id, now),
      });
    });
    expect(report.failures).toEqual([]);
  });

  it("fail, step by step, on a ledger that breaks the rule", async () => {
    // Lowering ignored, thresholds never reported, and a sweep that leaves a hold due at exactly now.
    class Broken extends MemoryLedger {
      override reserveSync(op: ReserveOp): ReserveOutcome {
        const { minimums: _, ...rest } = op;
        return super.reserveSync(rest);
      }
      override commitSync(id: string, actual: Amounts, now = 0): CommitOutcome {
        const outcome = super.commitSync(id, actual, now - 0.001);
        return outcome.status === "committed" ? { ...outcome, lines: [] } : outcome;
      }
    }
    const report = await runLedgerVectors(() => new Broken());
    const failed = new Set(report.failures.map((f) => f.vector));
    for (const vector of ["reserve-accept-caps", "thresholds", "commit-below-and-above-the-hold"])
      expect(failed).toContain(vector);
    expect(report.failures[0]).toMatchObject({ what: "outcome" });
  });

  it("fail on a ledger that holds a repeated reserve again, forgets a commit's lines, or extends past the chain's end", async () => {
    class Forgetful extends MemoryLedger {
      override reserveSync(op: ReserveOp): ReserveOutcome {
        const { fingerprint: _, ...rest } = op;
        return super.reserveSync(rest);
      }
    }
    class Lineless extends MemoryLedger {
      override commitSync(id: string, actual: Amounts, now?: number): CommitOutcome {
        const outcome = super.commitSync(id, actual, now);
        return outcome.status === "committed" && outcome.already
          ? { ...outcome, lines: [] }
          : outcome;
      }
    }
    class Unbounded extends MemoryLedger {
      override reserveSync(op: ReserveOp): ReserveOutcome {
        const { notAfter: _, ...rest } = op;
        return super.reserveSync(rest);
      }
    }
    const failedOn = async (make: () => Ledger) =>
      new Set((await runLedgerVectors(make)).failures.map((f) => f.vector));
    expect(await failedOn(() => new Forgetful())).toContain("reserve-repeated");
    expect(await failedOn(() => new Lineless())).toContain("commit-repeated");
    expect(await failedOn(() => new Unbounded())).toEqual(new Set(["extend"]));
  });
});

let redis: Redis | undefined;
beforeAll(async () => {
  if (redisUrl === "") return;
  redis = new Redis(redisUrl);
  await redis.ping();
});
afterAll(async () => {
  await redis?.quit();
});

/** The key prefix of one vector's run on Redis; its keys are deleted when it is done. */
async function withPrefix<T>(run: (prefix: string) => Promise<T>): Promise<T> {
  const prefix = freshPrefix();
  try {
    return await run(prefix);
  } finally {
    await deleteKeys(redis as Redis, prefix);
  }
}

/** One EVAL of the embedded script on a root: the operations, the line sets they use. */
async function evalScript(
  prefix: string,
  root: string,
  ops: readonly Buffer[],
  sets: readonly LineSet[],
): Promise<ReplyReader> {
  const args = scriptArgs(
    `${prefix}{${root}}:`,
    "86400000",
    String(MAX_CLOCK_SKEW_MS),
    // Knowing no epoch: the first call that makes balances writes one, later calls take it.
    epochArg(undefined, () => randomBytes(9).toString("base64url")),
    sets.flatMap((set) => [set.digest, set.json]),
    Buffer.concat(ops),
  );
  const reply = new ReplyReader(
    (await (redis as Redis).callBuffer("EVAL", LEDGER_LUA, SCRIPT_KEYS, ...args)) as Buffer,
  );
  const header = readHeader(reply);
  if ("lost" in header) throw new Error(`the script found the root's state lost: ${header.lost}`);
  return reply;
}

const refused = <T>(outcome: T | Error): T => {
  if (outcome instanceof Error) throw outcome;
  return outcome;
};

/**
 * The script as a Ledger, one operation per EVAL, with the time each operation gives: no
 * batching, no class, only wire.ts's encoding.
 */
class EvalLedger implements Ledger {
  readonly name = "lua";
  constructor(readonly prefix: string) {}
  async reserve(op: ReserveOp): Promise<ReserveOutcome> {
    const encoded = encodeReserve(op);
    setLineSet(encoded, 1);
    const reply = await evalScript(this.prefix, op.root, [encoded], [lineSetOf(op.lines)]);
    return refused(decodeReserve(reply, op));
  }
  async commit(
    id: string,
    actual: Amounts,
    now?: number,
    options?: CommitOptions,
  ): Promise<CommitOutcome> {
    const root = id.slice(0, id.indexOf("."));
    const op = encodeCommit(id, actual, now, options);
    return refused(decodeCommit(await evalScript(this.prefix, root, [op], []), root));
  }
  async release(id: string, now?: number): Promise<ReleaseOutcome> {
    const root = id.slice(0, id.indexOf("."));
    return decodeRelease(await evalScript(this.prefix, root, [encodeRelease(id, now)], []));
  }
  async extend(id: string, ttlMs: number, now?: number): Promise<ExtendOutcome> {
    const root = id.slice(0, id.indexOf("."));
    return decodeExtend(await evalScript(this.prefix, root, [encodeExtend(id, ttlMs, now)], []));
  }
  async balances(
    root: string,
    accounts: readonly AccountRef[],
    now?: number,
  ): Promise<BalancesOutcome> {
    return decodeBalances(
      await evalScript(this.prefix, root, [encodeBalances(accounts, now)], []),
      accounts,
    );
  }
  async settle(root: string, lines: readonly LedgerLine[], now: number): Promise<SettleOutcome> {
    const encoded = encodeSettle(now);
    setSettleLineSet(encoded, 1);
    return decodeSettle(await evalScript(this.prefix, root, [encoded], [lineSetOf(lines)]), lines);
  }
  async close(): Promise<void> {}
}

/** An outcome as the runner states it (vectors.ts): refusals as their code or name. */
function asOutcome(outcome: object | Error): VectorOutcome {
  if (outcome instanceof Error)
    return { error: isAllowanceError(outcome) ? outcome.code : outcome.name };
  if ("balances" in outcome) {
    const { balances, expired, at } = outcome as BalancesOutcome;
    return { balances: Object.fromEntries(balances), expired, at };
  }
  return { ...outcome };
}

/**
 * A vector through the script's batch path: each run of consecutive steps on one root is ONE
 * EVAL holding every operation, each followed by the balances read the runner makes after it.
 */
async function runVectorInBatches(vector: LedgerVector, prefix: string): Promise<VectorFailure[]> {
  const failures: VectorFailure[] = [];
  let first = 0;
  while (first < vector.steps.length) {
    const root = stepRoot(vector, vector.steps[first] as VectorStep);
    let end = first;
    while (end < vector.steps.length && stepRoot(vector, vector.steps[end] as VectorStep) === root)
      end++;
    const accounts = accountsOfRoot(vector, root);
    const ops: Buffer[] = [];
    const sets = new Map<string, LineSet>();
    const decoders: ((reply: ReplyReader) => VectorOutcome)[] = [];
    for (const step of vector.steps.slice(first, end)) {
      if (step.op === "reserve") {
        const set = vector.lineSets[step.lineSet];
        const op: ReserveOp = {
          id: step.id,
          root,
          lines: set?.lines ?? [],
          amounts: step.amounts,
          ...(step.minimums === undefined ? {} : { minimums: step.minimums }),
          ttlMs: step.ttlMs,
          ...(step.clientNowMs === undefined ? {} : { clientNowMs: step.clientNowMs }),
          now: step.now,
          ...(step.shadow === undefined ? {} : { shadow: step.shadow }),
          ...(step.debtLimits === undefined ? {} : { debtLimits: step.debtLimits }),
          ...(step.fingerprint === undefined ? {} : { fingerprint: step.fingerprint }),
          ...(step.notAfter === undefined ? {} : { notAfter: step.notAfter }),
        };
        const lineSet = lineSetOf(op.lines);
        if (!sets.has(lineSet.digest)) sets.set(lineSet.digest, lineSet);
        const encoded = encodeReserve(op);
        setLineSet(encoded, [...sets.keys()].indexOf(lineSet.digest) + 1);
        ops.push(encoded);
        decoders.push((reply) => asOutcome(decodeReserve(reply, op)));
      } else if (step.op === "commit") {
        const options = step.receipt === undefined ? undefined : { receipt: step.receipt };
        ops.push(encodeCommit(step.id, step.actual, step.now, options));
        decoders.push((reply) => asOutcome(decodeCommit(reply, root)));
      } else if (step.op === "release") {
        ops.push(encodeRelease(step.id, step.now));
        decoders.push((reply) => asOutcome(decodeRelease(reply)));
      } else if (step.op === "extend") {
        ops.push(encodeExtend(step.id, step.ttlMs, step.now));
        decoders.push((reply) => asOutcome(decodeExtend(reply)));
      } else if (step.op === "settle") {
        const lines = vector.lineSets[step.lineSet]?.lines ?? [];
        const lineSet = lineSetOf(lines);
        if (!sets.has(lineSet.digest)) sets.set(lineSet.digest, lineSet);
        const encoded = encodeSettle(step.now);
        setSettleLineSet(encoded, [...sets.keys()].indexOf(lineSet.digest) + 1);
        ops.push(encoded);
        decoders.push((reply) => asOutcome(decodeSettle(reply, lines)));
      } else {
        const asked = step.accounts;
        ops.push(encodeBalances(asked, step.now));
        decoders.push((reply) => asOutcome(decodeBalances(reply, asked)));
      }
      ops.push(encodeBalances(accounts, step.now));
      decoders.push((reply) => asOutcome(decodeBalances(reply, accounts)));
    }
    const reply = await evalScript(prefix, root, ops, [...sets.values()]);
    for (let i = first; i < end; i++) {
      const outcome = (decoders[2 * (i - first)] as (r: ReplyReader) => VectorOutcome)(reply);
      const after = (decoders[2 * (i - first) + 1] as (r: ReplyReader) => VectorOutcome)(reply)
        .balances as VectorOutcome;
      failures.push(...compareStep(vector, i, { outcome, after: after as never }));
    }
    first = end;
  }
  return failures;
}

describe.skipIf(redisUrl === "")("the ledger vectors on Redis", () => {
  it("all pass on the redis ledger", async () => {
    const report = await runLedgerVectors(() => {
      const prefix = freshPrefix();
      const ledger = new RedisLedger(redis as Redis, { keyPrefix: prefix });
      return Object.assign(ledger, { close: () => deleteKeys(redis as Redis, prefix) });
    });
    expect(report.failures).toEqual([]);
    expect(report.checks).toBe(CHECKS);
  });

  it("all pass on the Lua script through EVAL, one operation per call, each with its own time", async () => {
    const report = await runLedgerVectors(() => {
      const prefix = freshPrefix();
      return Object.assign(new EvalLedger(prefix), {
        close: () => deleteKeys(redis as Redis, prefix),
      });
    });
    expect(report.failures).toEqual([]);
    expect(report.checks).toBe(CHECKS);
  });

  it("all pass on the Lua script through EVAL, each vector's operations on a root in one call", async () => {
    for (const vector of LEDGER_VECTORS)
      expect(await withPrefix((prefix) => runVectorInBatches(vector, prefix))).toEqual([]);
  });
});
