import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { attenuate, exportJwks, formatToken, generateKeyPair, mint, publicKeyOf, trustedRoots, type KeyPair } from "@allowance/core";
import { Enforcer, MemoryLedger, SqliteLedger, type Ledger, type RemainingReport, type SqliteLedgerOptions } from "@allowance/enforcer";
import { verify } from "@allowance/verifier";
import { T0, family, ledgerSuite, runSchedule, scheduleGrants, stepArbitrary } from "../../../test/support/ledger-suite.js";
import type { WorkerReply, WorkerTask } from "./workers/sqlite-spender.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const fresh = (options?: SqliteLedgerOptions) => SqliteLedger.open(join(dir, `ledger-${files++}.db`), options);

ledgerSuite("sqlite", async () => fresh());

/**
 * Forwards to `ledger` and logs every call's result, with reservation ids (random per run) renamed
 * by order of first appearance, so two ledgers' logs for one schedule can be compared exactly.
 */
function recording(ledger: Ledger, log: unknown[]): Ledger {
  const names = new Map<string, string>();
  const name = (id: string) => names.get(id) ?? (names.set(id, `r${names.size}`), `r${names.size - 1}`);
  const renamed = (outcome: { readonly expired: readonly string[] }) => ({ ...outcome, expired: outcome.expired.map(name) });
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

describe("the sqlite ledger's laws", () => {
  it("law: for any schedule of reserve, commit, release and expiry, it returns exactly what the memory ledger returns", async () => {
    const chains = await family(scheduleGrants.parent, scheduleGrants.children);
    await fc.assert(
      fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 40, size: "max" }), async (steps) => {
        const memoryLog: unknown[] = [];
        const sqliteLog: unknown[] = [];
        const memory = await runSchedule(async () => recording(new MemoryLedger(), memoryLog), chains, steps);
        // NORMAL skips the fsync per transaction; the algorithm under test is the same.
        const sqlite = await runSchedule(async () => recording(fresh({ synchronous: "NORMAL" }), sqliteLog), chains, steps);
        expect(sqlite).toEqual(memory);
        // Beyond the decisions: every outcome, expiry lists and balances included.
        expect(sqliteLog).toEqual(memoryLog);
      }),
      { numRuns: 100 },
    );
  });
});

describe("the sqlite ledger's storage", () => {
  const zero = { tokens: 0, usdMicros: 0, risk: 0, requests: 0 };
  const op = (id: string, usdMicros: number, cap: number) => ({
    id: `root.${id}`,
    root: "root",
    lines: [{ account: "link|usdMicros", kind: "usdMicros" as const, cap }],
    amounts: { ...zero, usdMicros },
    expiresAt: T0 + 60_000,
    now: T0,
  });

  it("keeps amounts exact up to 2^53 - 1", async () => {
    const max = Number.MAX_SAFE_INTEGER;
    const ledger = fresh();
    try {
      expect(await ledger.reserve(op("a", max - 1, max))).toMatchObject({ ok: true });
      expect(await ledger.commit("root.a", { ...zero, usdMicros: max - 1 }, T0)).toMatchObject({ status: "committed", lines: [{ before: 0, after: max - 1 }] });
      expect(await ledger.reserve(op("b", 2, max))).toMatchObject({ ok: false, available: 1 });
      expect(await ledger.reserve(op("c", 1, max))).toMatchObject({ ok: true });
      expect(await ledger.balances("root", ["link|usdMicros"], T0)).toEqual(new Map([["link|usdMicros", { spent: max - 1, held: 1 }]]));
    } finally {
      await ledger.close();
    }
  });

  it("keeps its state in the file: another connection sees the holds and commits", async () => {
    const path = join(dir, `reopened-${files++}.db`);
    const first = SqliteLedger.open(path);
    await first.reserve(op("a", 40, 100));
    await first.reserve(op("b", 30, 100));
    await first.commit("root.b", { ...zero, usdMicros: 25 }, T0);
    await first.close();
    const second = SqliteLedger.open(path);
    try {
      expect(await second.balances("root", ["link|usdMicros"], T0)).toEqual(new Map([["link|usdMicros", { spent: 25, held: 40 }]]));
      expect(await second.commit("root.b", { ...zero, usdMicros: 25 }, T0)).toMatchObject({ status: "committed", already: true });
    } finally {
      await second.close();
    }
  });

  it("refuses a reservation id already in use, as the memory ledger does, keeping the expiry sweep", async () => {
    for (const ledger of [new MemoryLedger(), fresh()]) {
      await ledger.reserve({ ...op("a", 40, 100), expiresAt: T0 + 1 });
      await expect(ledger.reserve({ ...op("a", 10, 100), now: T0 + 1 })).rejects.toThrow("reservation id root.a is already in use");
      expect(await ledger.release("root.a", T0 + 1)).toMatchObject({ status: "expired", already: true });
      await ledger.close();
    }
  });

  it("rejects amounts that are not exact integers", async () => {
    const ledger = fresh();
    try {
      await expect(ledger.reserve(op("a", 0.5, 100))).rejects.toThrow(RangeError);
      await expect(ledger.reserve(op("b", 2 ** 53, 2 ** 60))).rejects.toThrow(RangeError);
    } finally {
      await ledger.close();
    }
  });
});

const USD = 1_000_000;
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const workerScript = fileURLToPath(new URL("./workers/sqlite-spender.ts", import.meta.url));

const started = new Set<ChildProcess>();
// A failed or timed-out test must not leave its workers behind.
afterAll(() => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/** A worker process running the TypeScript source, as the README's test command leaves it (no build needed). */
function startWorker(task: WorkerTask): { child: ChildProcess; next: () => Promise<WorkerReply> } {
  const child = fork(workerScript, [], { cwd: repoRoot, execArgv: ["--conditions=@allowance/source", "--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  started.add(child);
  const queue: WorkerReply[] = [];
  const waiting: { resolve: (reply: WorkerReply) => void; reject: (error: Error) => void }[] = [];
  let failure: Error | undefined;
  const fail = (error: Error) => {
    failure ??= error;
    for (const w of waiting.splice(0)) w.reject(failure);
  };
  child.on("message", (message: WorkerReply) => {
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
    return new Promise<WorkerReply>((resolve, reject) => waiting.push({ resolve, reject }));
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

describe("the sqlite ledger shared by several processes", () => {
  it("never lets 8 racing processes spend past any link's cap, and spends every cap to the last micro-dollar", async () => {
    // About 1,600 reservations of up to 2 cents, in 32 loops over 8 processes.
    const rootCap = 16 * USD;
    const childCap = 8 * USD;
    const { token, chain, jwks } = await sharedChain(rootCap, childCap);
    const path = join(dir, "shared.db");
    SqliteLedger.open(path).close();
    const workers = Array.from({ length: 8 }, () => startWorker({ mode: "spend", path, token, jwks, loops: 4, maxUsdMicros: 20_000 }));
    expect(await Promise.all(workers.map((w) => w.next()))).toEqual(workers.map(() => ({ mode: "ready" })));
    const done = Promise.all(workers.map((w) => w.next()));
    for (const w of workers) w.child.send("go");
    const replies = (await done) as Extract<WorkerReply, { mode: "spend" }>[];

    const ledger = SqliteLedger.open(path);
    const report = await new Enforcer({ ledger }).remaining(chain);
    await ledger.close();
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
    // A real race: several processes spent (SQLite's lock is not fair, so not necessarily all eight),
    // and both the exact and the capped (ALLOW_WITH_CAPS) paths were taken.
    expect(replies.filter((r) => r.reservations > 0).length).toBeGreaterThan(1);
    expect(replies.some((r) => r.capped > 0)).toBe(true);
  }, 60_000);

  it("frees the hold of a process killed before it committed once the hold's TTL has passed", async () => {
    const cap = 1 * USD;
    const { token, chain, jwks } = await sharedChain(cap, cap);
    const path = join(dir, "killed.db");
    const worker = startWorker({ mode: "hold", path, token, jwks, usdMicros: 600_000, ttl: 2 });
    const held = (await worker.next()) as Extract<WorkerReply, { mode: "hold" }>;
    const exited = new Promise((resolve) => worker.child.once("exit", resolve));
    worker.child.kill("SIGKILL");
    await exited;

    const ledger = SqliteLedger.open(path);
    const enforcer = new Enforcer({ ledger });
    const expired: string[] = [];
    enforcer.on("expired", (e) => expired.push(e.reservationId));
    try {
      expect(usdOf(await enforcer.remaining(chain), 1)).toMatchObject({ spent: 0, held: 600_000, remaining: 400_000 });
      expect(await enforcer.reserve({ chain, usdMicros: cap })).toMatchObject({ decision: "DENY", reason: "BUDGET_USD", available: 400_000 });
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, held.expiresAt - Date.now()) + 50));
      expect(await enforcer.reserve({ chain, usdMicros: cap })).toMatchObject({ decision: "ALLOW" });
      expect(expired).toEqual([held.reservationId]);
    } finally {
      await ledger.close();
    }
  }, 60_000);
});
