/**
 * Reserve + commit throughput per ledger: single process with many reservations in flight, and 8
 * processes sharing one SQLite file or one Redis. Figures are pairs (reserve and commit) per second.
 */
import { fork } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
import {
  Enforcer,
  MemoryLedger,
  type Decision,
  type Ledger,
  type ReserveOp,
  type SyncLedger,
} from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { verify, type VerifiedChain } from "@allowance/verifier";
import { median, table } from "./harness.js";

export interface LedgerFigure {
  readonly ledger: string;
  /** "enforcer": Enforcer.reserve/commit (grant checks, ids, events, then the ledger); "ledger": the ledger's own calls. */
  readonly through: "enforcer" | "ledger";
  readonly processes: number;
  readonly pairsPerSecond: number;
}

export async function benchChain(): Promise<{
  token: string;
  jwks: ReturnType<typeof exportJwks>;
  chain: VerifiedChain;
}> {
  const keys = await Promise.all([0, 1, 2, 3].map(() => generateKeyPair()));
  const [root, a, b, c] = keys as [KeyPair, KeyPair, KeyPair, KeyPair];
  const now = Math.floor(Date.now() / 1000);
  let token = mint({
    rootKey: root,
    holder: publicKeyOf(a),
    grant: { exp: now + 3600, usdMicros: Number.MAX_SAFE_INTEGER, tokens: Number.MAX_SAFE_INTEGER },
  });
  token = attenuate(token, { holderKey: a, holder: publicKeyOf(b), grant: { usdMicros: 2 ** 52 } });
  token = attenuate(token, {
    holderKey: b,
    holder: publicKeyOf(c),
    grant: { usdMicros: 2 ** 51, tokens: 2 ** 51 },
  });
  return {
    token: formatToken(token),
    jwks: exportJwks([root]),
    chain: verify(token, { roots: trustedRoots([root]) }),
  };
}

/** Runs `pair` with `concurrency` calls in flight for about `millis`; returns pairs per second. */
async function rate(
  millis: number,
  concurrency: number,
  pair: () => Promise<void>,
): Promise<number> {
  let done = 0;
  const started = performance.now();
  const deadline = started + millis;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        for (let i = 0; i < 64; i++) {
          await pair();
          done++;
        }
      }
    }),
  );
  return (done * 1000) / (performance.now() - started);
}

/** As rate, one pair at a time, for synchronous calls. */
function syncRate(millis: number, pair: () => void): number {
  let done = 0;
  const started = performance.now();
  const deadline = started + millis;
  while (performance.now() < deadline) {
    for (let i = 0; i < 64; i++) {
      pair();
      done++;
    }
  }
  return (done * 1000) / (performance.now() - started);
}

/** Reserve → commit pairs through the enforcer, with `concurrency` in flight for `millis`; pairs per second. */
export function pairsPerSecond(
  ledger: Ledger,
  chain: VerifiedChain,
  millis: number,
  concurrency: number,
): Promise<number> {
  const enforcer = new Enforcer({ ledger });
  return rate(millis, concurrency, async () => {
    const d = (await enforcer.reserve(
      { chain, tokens: 10, usdMicros: 10 },
      { ttl: 60 },
    )) as Extract<Decision, { reservationId: string }>;
    await enforcer.commit(d.reservationId, { tokens: 9, usdMicros: 9 });
  });
}

/** As pairsPerSecond, through the enforcer's synchronous methods (memory and SQLite ledgers). */
export function syncPairsPerSecond(ledger: Ledger, chain: VerifiedChain, millis: number): number {
  const enforcer = new Enforcer({ ledger });
  return syncRate(millis, () => {
    const d = enforcer.reserveSync({ chain, tokens: 10, usdMicros: 10 }, { ttl: 60 }) as Extract<
      Decision,
      { reservationId: string }
    >;
    enforcer.commitSync(d.reservationId, { tokens: 9, usdMicros: 9 });
  });
}

/** The reserve the enforcer sends a ledger for this chain's request: the same root, lines and amounts. */
export function enforcerOp(chain: VerifiedChain): ReserveOp {
  let seen: ReserveOp | undefined;
  class Recording extends MemoryLedger {
    override reserveSync(op: ReserveOp) {
      seen = op;
      return super.reserveSync(op);
    }
  }
  new Enforcer({ ledger: new Recording() }).reserveSync(
    { chain, tokens: 10, usdMicros: 10 },
    { ttl: 60 },
  );
  if (seen === undefined) throw new Error("the enforcer sent no reserve");
  return seen;
}

/** Ids of the ledger-alone rounds: unique across rounds, which may share one ledger. */
let nextId = 0;
const ACTUAL = { tokens: 9, usdMicros: 9, risk: 0, requests: 1 };

/** Reserve → commit pairs straight on a ledger's own methods, with the enforcer's op (ids of our own). */
export function ledgerPairsPerSecond(
  ledger: Ledger,
  template: ReserveOp,
  millis: number,
  concurrency: number,
): Promise<number> {
  // No time given: each ledger runs on its own clock, and is told the caller's, as the enforcer does.
  return rate(millis, concurrency, async () => {
    const id = `${template.root}.bench.${(nextId++).toString(36)}`;
    await ledger.reserve({ ...template, id, ttlMs: 60_000, clientNowMs: Date.now() });
    await ledger.commit(id, ACTUAL);
  });
}

/** As ledgerPairsPerSecond, through a synchronous ledger's `…Sync` methods. */
export function ledgerSyncPairsPerSecond(
  ledger: SyncLedger,
  template: ReserveOp,
  millis: number,
): number {
  return syncRate(millis, () => {
    const id = `${template.root}.bench.${(nextId++).toString(36)}`;
    ledger.reserveSync({ ...template, id, ttlMs: 60_000, clientNowMs: Date.now() });
    ledger.commitSync(id, ACTUAL);
  });
}

export async function benchLedgers(
  options: { redisUrl?: string; makeRedis?: () => Promise<Ledger> } = {},
): Promise<LedgerFigure[]> {
  const { chain, token, jwks } = await benchChain();
  const op = enforcerOp(chain);
  const figures: LedgerFigure[] = [];
  // The memory figures move most with the machine's load: five alternating rounds, each its median.
  const asyncRounds: number[] = [];
  const syncRounds: number[] = [];
  const ledgerRounds: number[] = [];
  const ledgerSyncRounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    asyncRounds.push(await pairsPerSecond(new MemoryLedger(), chain, 600, 16));
    syncRounds.push(syncPairsPerSecond(new MemoryLedger(), chain, 600));
    ledgerRounds.push(await ledgerPairsPerSecond(new MemoryLedger(), op, 600, 16));
    ledgerSyncRounds.push(ledgerSyncPairsPerSecond(new MemoryLedger(), op, 600));
  }
  figures.push({
    ledger: "memory",
    through: "enforcer",
    processes: 1,
    pairsPerSecond: median(asyncRounds),
  });
  figures.push({
    ledger: "memory, …Sync methods",
    through: "enforcer",
    processes: 1,
    pairsPerSecond: median(syncRounds),
  });
  figures.push({
    ledger: "memory",
    through: "ledger",
    processes: 1,
    pairsPerSecond: median(ledgerRounds),
  });
  figures.push({
    ledger: "memory, …Sync methods",
    through: "ledger",
    processes: 1,
    pairsPerSecond: median(ledgerSyncRounds),
  });
  const dir = mkdtempSync(join(tmpdir(), "allowance-bench-"));
  // SQLite and Redis: three alternating rounds of enforcer and ledger, each figure their median.
  let files = 0;
  const openSqlite = () =>
    SqliteLedger.open(join(dir, `single-${files++}.db`), { synchronous: "NORMAL" });
  const sqliteRounds: number[] = [];
  const sqliteLedgerRounds: number[] = [];
  for (let round = 0; round < 3; round++) {
    let sqlite = openSqlite();
    sqliteRounds.push(await pairsPerSecond(sqlite, chain, 1000, 16));
    await sqlite.close();
    sqlite = openSqlite();
    sqliteLedgerRounds.push(await ledgerPairsPerSecond(sqlite, op, 1000, 16));
    await sqlite.close();
  }
  figures.push({
    ledger: "sqlite (WAL, synchronous=NORMAL)",
    through: "enforcer",
    processes: 1,
    pairsPerSecond: median(sqliteRounds),
  });
  figures.push({
    ledger: "sqlite (WAL, synchronous=NORMAL)",
    through: "ledger",
    processes: 1,
    pairsPerSecond: median(sqliteLedgerRounds),
  });
  figures.push({
    ledger: "sqlite (WAL, synchronous=NORMAL)",
    through: "enforcer",
    processes: 8,
    pairsPerSecond: await multiProcess("sqlite", join(dir, "shared.db"), token, jwks),
  });
  if (options.makeRedis !== undefined && options.redisUrl !== undefined) {
    const redis = await options.makeRedis();
    const redisRounds: number[] = [];
    const redisLedgerRounds: number[] = [];
    for (let round = 0; round < 3; round++) {
      redisRounds.push(await pairsPerSecond(redis, chain, 1000, 64));
      redisLedgerRounds.push(await ledgerPairsPerSecond(redis, op, 1000, 64));
    }
    await redis.close();
    figures.push({
      ledger: "redis",
      through: "enforcer",
      processes: 1,
      pairsPerSecond: median(redisRounds),
    });
    figures.push({
      ledger: "redis",
      through: "ledger",
      processes: 1,
      pairsPerSecond: median(redisLedgerRounds),
    });
    figures.push({
      ledger: "redis",
      through: "enforcer",
      processes: 8,
      pairsPerSecond: await multiProcess("redis", options.redisUrl, token, jwks),
    });
  }
  return figures;
}

async function multiProcess(
  kind: "sqlite" | "redis",
  target: string,
  token: string,
  jwks: unknown,
): Promise<number> {
  const worker = join(import.meta.dirname, "ledger-worker.ts");
  const results = await Promise.all(
    Array.from(
      { length: 8 },
      () =>
        new Promise<number>((resolve, reject) => {
          const child = fork(worker, [kind, target, token, JSON.stringify(jwks)], {
            execArgv: ["--import", "tsx"],
            stdio: ["ignore", "ignore", "inherit", "ipc"],
          });
          child.on("message", (m) => resolve(Number(m)));
          child.on("error", reject);
          child.on("exit", (code) =>
            code === 0 ? undefined : reject(new Error(`worker exited with ${code}`)),
          );
        }),
    ),
  );
  return results.reduce((a, b) => a + b, 0);
}

export function ledgerReport(figures: readonly LedgerFigure[]): string {
  return table(
    ["ledger", "through", "processes", "reserve+commit / s"],
    figures.map((f) => [
      f.ledger,
      f.through,
      String(f.processes),
      Math.round(f.pairsPerSecond).toLocaleString("en-US"),
    ]),
  );
}
