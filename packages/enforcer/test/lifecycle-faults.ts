/**
 * Re-runs two faults of the reservation lifecycle (issue 17) on every ledger and prints their
 * figures: `node --conditions=@allowance/source --import tsx packages/enforcer/test/lifecycle-faults.ts`
 * (Redis: ALLOWANCE_REDIS_URL, or a throwaway redis-server on a free loopback port).
 *
 * - A reserve whose reply is lost after the ledger applied it (a client timeout), retried by the
 *   caller with the same idempotency key: how much is held for two tries of one $3 ask.
 * - A commit whose reply is lost after the ledger applied it, retried: how many events a $6 spend
 *   on a $4 hold, crossing 50% of a $10 cap on both links, raises (committed, overrun, thresholds).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { generateKeyPair, mint, publicKeyOf, trustedRoots } from "@allowance/core";
import { Enforcer, MemoryLedger, type Ledger } from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { verify } from "@allowance/verifier";

const USD = 1_000_000;
const T0 = 1_800_000_000_000;

/** A ledger whose next `which` call is applied and then answers with an error, as a lost reply. */
function losingNextReply(ledger: Ledger, which: "reserve" | "commit"): Ledger {
  let armed = true;
  const lose = async <T>(applied: Promise<T>): Promise<T> => {
    const outcome = await applied;
    if (!armed) return outcome;
    armed = false;
    throw new Error("connection lost after the ledger applied the operation");
  };
  return new Proxy(ledger, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== "function") return value;
      // The synchronous methods are hidden, so that the enforcer calls the wrapped ones.
      if (typeof key === "string" && key.endsWith("Sync")) return undefined;
      if (key === which)
        return (...args: unknown[]) =>
          lose((value as (...a: unknown[]) => Promise<unknown>).apply(target, args));
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
}

async function chain() {
  const root = await generateKeyPair();
  const holder = await generateKeyPair();
  const token = mint({
    rootKey: root,
    holder: publicKeyOf(holder),
    grant: { exp: Math.floor(T0 / 1000) + 86_400, usdMicros: 10 * USD },
  });
  return verify(token, { roots: trustedRoots([root]), now: () => T0 });
}

async function retried<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch {
    return await call();
  }
}

async function doubleHold(make: () => Promise<Ledger>): Promise<number> {
  const ledger = await make();
  try {
    const enforcer = new Enforcer({ ledger: losingNextReply(ledger, "reserve"), now: () => T0 });
    const verified = await chain();
    const options = { ttl: 60, idempotencyKey: "call-1" };
    await retried(() => enforcer.reserve({ chain: verified, usdMicros: 3 * USD }, options));
    const report = await new Enforcer({ ledger, now: () => T0 }).remaining(verified);
    return report.links[0]?.limits.find((l) => l.field === "usdMicros")?.held ?? Number.NaN;
  } finally {
    await ledger.close();
  }
}

async function lostCommitEvents(make: () => Promise<Ledger>): Promise<string[]> {
  const ledger = await make();
  try {
    const enforcer = new Enforcer({ ledger: losingNextReply(ledger, "commit"), now: () => T0 });
    const events: string[] = [];
    enforcer.on("committed", () => events.push("committed"));
    enforcer.on("overrun", (e) => events.push(`overrun:${e.kind}`));
    enforcer.on("threshold", (e) => events.push(`threshold:${e.percent}`));
    const verified = await chain();
    const held = await enforcer.reserve({ chain: verified, usdMicros: 4 * USD });
    if (held.decision === "DENY") throw new Error("expected a hold");
    await retried(() => enforcer.commit(held.reservationId, { usdMicros: 6 * USD }));
    return events;
  } finally {
    await ledger.close();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

let url = process.env.ALLOWANCE_REDIS_URL ?? "";
let stop = (): void => undefined;
if (url === "") {
  const port = await freePort();
  // With AOF, as a production ledger needs (spec/enforcement.md §8.1), in a directory of its own.
  const dir = mkdtempSync(join(tmpdir(), "allowance-faults-"));
  const server = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"],
    { stdio: "ignore", cwd: dir },
  );
  stop = () => {
    server.kill();
    server.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  };
  url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50; i++) {
    const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null });
    probe.on("error", () => undefined);
    try {
      await probe.connect();
      await probe.quit();
      break;
    } catch {
      probe.disconnect();
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
const redis = new Redis(url);
let prefixes = 0;
// Every ledger on the enforcer's clock: the ledger's clock decides expiry (spec §3.8).
const now = () => T0;
const ledgers: readonly (readonly [string, () => Promise<Ledger>])[] = [
  ["memory", async () => new MemoryLedger({ now })],
  ["sqlite", async () => SqliteLedger.open(":memory:", { now })],
  [
    "redis",
    async () => new RedisLedger(redis, { keyPrefix: `faults:${process.pid}:${prefixes++}:`, now }),
  ],
];
try {
  for (const [name, make] of ledgers) {
    const held = await doubleHold(make);
    const events = await lostCommitEvents(make);
    console.log(
      `${name.padEnd(6)}  reserve retried after a lost reply, two tries of $3: $${(held / USD).toFixed(2)} held` +
        `  |  commit retried after a lost reply ($6 on a $4 hold, 50% of $10): ${events.length} events` +
        (events.length > 0 ? ` (${events.join(", ")})` : ""),
    );
  }
} finally {
  await redis.quit();
  stop();
}
