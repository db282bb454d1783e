/**
 * The multi-process tests every shared ledger must pass: 8 processes racing against one chain
 * never pass any link's cap and spend it exactly; a process killed with a hold outstanding frees
 * it once the TTL passes. Each runs the TypeScript source (no build needed).
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import {
  attenuate,
  exportJwks,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
} from "@allowance/core";
import { Enforcer, type Ledger, type RemainingReport } from "@allowance/enforcer";
import { verify } from "@allowance/verifier";
import type { LedgerTarget, WorkerReply, WorkerTask } from "./workers/spender.js";

const USD = 1_000_000;
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const workerScript = fileURLToPath(new URL("./workers/spender.ts", import.meta.url));

export interface SharedLedger {
  /** A fresh target (file or key prefix) for one test. */
  target(name: string): LedgerTarget;
  /** This process's own connection to a target. */
  open(target: LedgerTarget): Promise<Ledger>;
  /** Removes what a test left (keys); optional. */
  cleanup?(target: LedgerTarget): Promise<void>;
  /**
   * Whether all 8 processes must get to spend. SQLite's busy lock is not fair: under a tight race
   * one process can take most turns, so there only more than one is required.
   */
  readonly fairLock: boolean;
}

function startWorker(
  started: Set<ChildProcess>,
  task: WorkerTask,
): { child: ChildProcess; next: () => Promise<WorkerReply> } {
  const child = fork(workerScript, [], {
    cwd: repoRoot,
    execArgv: ["--conditions=@allowance/source", "--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
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
  child.once("exit", (code, signal) =>
    fail(new Error(`worker exited (${code ?? signal}) before replying`)),
  );
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
  const [root, owner, agent] = (await Promise.all([
    generateKeyPair(),
    generateKeyPair(),
    generateKeyPair(),
  ])) as [KeyPair, KeyPair, KeyPair];
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const parent = mint({
    rootKey: root,
    holder: publicKeyOf(owner),
    grant: { exp, usdMicros: rootUsdMicros },
  });
  const token = formatToken(
    attenuate(parent, {
      holderKey: owner,
      holder: publicKeyOf(agent),
      grant: { usdMicros: childUsdMicros },
    }),
  );
  const chain = verify(token, { roots: trustedRoots([root]) });
  return { token, chain, jwks: exportJwks([root]) };
}

const usdOf = (report: RemainingReport, link: number) =>
  report.links[link]?.limits.find((l) => l.field === "usdMicros");

export function describeMultiProcess(
  name: string,
  shared: SharedLedger,
  options: { readonly skip?: boolean } = {},
): void {
  const started = new Set<ChildProcess>();
  // A failed or timed-out test must not leave its workers behind.
  afterAll(() => {
    for (const child of started)
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });

  describe.skipIf(options.skip === true)(`the ${name} ledger shared by several processes`, () => {
    it("never lets 8 racing processes spend past any link's cap, and spends every cap to the last micro-dollar", async () => {
      // About 1,600 reservations of up to 2 cents, in 32 loops over 8 processes.
      const rootCap = 16 * USD;
      const childCap = 8 * USD;
      const { token, chain, jwks } = await sharedChain(rootCap, childCap);
      const target = shared.target("race");
      try {
        await (await shared.open(target)).close();
        const workers = Array.from({ length: 8 }, () =>
          startWorker(started, {
            mode: "spend",
            ledger: target,
            token,
            jwks,
            loops: 4,
            maxUsdMicros: 20_000,
          }),
        );
        expect(await Promise.all(workers.map((w) => w.next()))).toEqual(
          workers.map(() => ({ mode: "ready" })),
        );
        const done = Promise.all(workers.map((w) => w.next()));
        for (const w of workers) w.child.send("go");
        const replies = (await done) as Extract<WorkerReply, { mode: "spend" }>[];

        const ledger = await shared.open(target);
        const report = await new Enforcer({ ledger }).remaining(chain);
        await ledger.close();
        const committed = { leaf: 0, root: 0 };
        for (const reply of replies) {
          committed.leaf += reply.committed.leaf;
          committed.root += reply.committed.root;
        }
        // Link 1 (the child) is charged only by the leaf's spending; link 0 by both levels.
        expect(usdOf(report, 1)).toMatchObject({ cap: childCap, spent: committed.leaf, held: 0 });
        expect(usdOf(report, 0)).toMatchObject({
          cap: rootCap,
          spent: committed.leaf + committed.root,
          held: 0,
        });
        expect(committed.leaf).toBeLessThanOrEqual(childCap);
        expect(committed.leaf + committed.root).toBeLessThanOrEqual(rootCap);
        // Reached, not only respected: with every hold committed in full, the caps are spent exactly.
        expect(committed.leaf).toBe(childCap);
        expect(committed.leaf + committed.root).toBe(rootCap);
        // A real race, through both the exact and the capped (ALLOW_WITH_CAPS) paths.
        const spenders = replies.filter((r) => r.reservations > 0).length;
        if (shared.fairLock) expect(spenders).toBe(8);
        else expect(spenders).toBeGreaterThan(1);
        expect(replies.some((r) => r.capped > 0)).toBe(true);
      } finally {
        await shared.cleanup?.(target);
      }
    }, 60_000);

    it("frees the hold of a process killed before it committed once the hold's TTL has passed", async () => {
      const cap = 1 * USD;
      const { token, chain, jwks } = await sharedChain(cap, cap);
      const target = shared.target("killed");
      try {
        const worker = startWorker(started, {
          mode: "hold",
          ledger: target,
          token,
          jwks,
          usdMicros: 600_000,
          ttl: 2,
        });
        const held = (await worker.next()) as Extract<WorkerReply, { mode: "hold" }>;
        const exited = new Promise((resolve) => worker.child.once("exit", resolve));
        worker.child.kill("SIGKILL");
        await exited;

        const ledger = await shared.open(target);
        const enforcer = new Enforcer({ ledger });
        const expired: string[] = [];
        enforcer.on("expired", (e) => expired.push(e.reservationId));
        try {
          expect(usdOf(await enforcer.remaining(chain), 1)).toMatchObject({
            spent: 0,
            held: 600_000,
            remaining: 400_000,
          });
          expect(await enforcer.reserve({ chain, usdMicros: cap })).toMatchObject({
            decision: "DENY",
            reason: "BUDGET_USD",
            available: 400_000,
          });
          await new Promise((resolve) =>
            setTimeout(resolve, Math.max(0, held.expiresAt - Date.now()) + 50),
          );
          expect(await enforcer.reserve({ chain, usdMicros: cap })).toMatchObject({
            decision: "ALLOW",
          });
          expect(expired).toEqual([held.reservationId]);
        } finally {
          await ledger.close();
        }
      } finally {
        await shared.cleanup?.(target);
      }
    }, 60_000);
  });
}
