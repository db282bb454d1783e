/**
 * A worker process for the multi-process ledger tests (SQLite and Redis alike). It receives one
 * task, verifies the chain itself against the root JWKS, opens the shared ledger and:
 *
 * - `spend`: replies `ready` once set up and waits for `go` (so that all workers race), then runs
 *   `loops` concurrent reserve → commit (actual = reserved) loops of random amounts, as the leaf
 *   (charged to every link) or as the root link's holder (charged to the root only), until each
 *   level is exhausted; replies with what it committed per level.
 * - `hold`: reserves `usdMicros` with a short TTL, replies with the reservation, and waits to be killed.
 */
import { Redis } from "ioredis";
import { importJwks, parseToken } from "@allowance/core";
import { Enforcer, type Decision, type Ledger } from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { RedisLedger } from "@allowance/enforcer/redis";
import { verify } from "@allowance/verifier";

export type LedgerTarget =
  | { readonly kind: "sqlite"; readonly path: string }
  | { readonly kind: "redis"; readonly url: string; readonly prefix: string };

export type WorkerTask =
  | {
      readonly mode: "spend";
      readonly ledger: LedgerTarget;
      readonly token: string;
      readonly jwks: unknown;
      readonly loops: number;
      readonly maxUsdMicros: number;
    }
  | {
      readonly mode: "hold";
      readonly ledger: LedgerTarget;
      readonly token: string;
      readonly jwks: unknown;
      readonly usdMicros: number;
      readonly ttl: number;
    };

export type WorkerReply =
  | {
      readonly mode: "spend";
      readonly committed: { readonly leaf: number; readonly root: number };
      readonly reservations: number;
      readonly capped: number;
    }
  | { readonly mode: "ready" }
  | { readonly mode: "hold"; readonly reservationId: string; readonly expiresAt: number }
  | { readonly mode: "error"; readonly message: string };

type Level = "leaf" | "root";

async function open(target: LedgerTarget): Promise<Ledger> {
  if (target.kind === "sqlite") return SqliteLedger.open(target.path, { busyTimeoutMs: 20_000 });
  const redis = new Redis(target.url);
  await redis.ping();
  return new RedisLedger(redis, { keyPrefix: target.prefix, closeConnection: true });
}

async function spend(task: Extract<WorkerTask, { mode: "spend" }>): Promise<WorkerReply> {
  const roots = await importJwks(task.jwks);
  const token = parseToken(task.token);
  const chains = {
    leaf: verify(token, { roots }),
    root: verify({ rootKid: token.rootKid, links: token.links.slice(0, 1) }, { roots }),
  };
  const ledger = await open(task.ledger);
  const enforcer = new Enforcer({ ledger });
  const go = new Promise((resolve) => process.once("message", resolve));
  process.send?.({ mode: "ready" } satisfies WorkerReply);
  await go;
  const committed = { leaf: 0, root: 0 };
  let reservations = 0;
  let capped = 0;
  const loop = async () => {
    const exhausted = new Set<Level>();
    // Bounded: a loop ends when both levels are exhausted, or after 10,000 attempts.
    for (let attempt = 0; exhausted.size < 2 && attempt < 10_000; attempt++) {
      const level: Level = exhausted.has("leaf")
        ? "root"
        : exhausted.has("root")
          ? "leaf"
          : Math.random() < 0.6
            ? "leaf"
            : "root";
      const usdMicros = 1 + Math.floor(Math.random() * task.maxUsdMicros);
      const decision: Decision = await enforcer.reserve(
        { chain: chains[level], usdMicros, acceptCaps: Math.random() < 0.5 },
        { ttl: 60 },
      );
      if (decision.decision === "DENY") {
        if (decision.reason !== "BUDGET_USD")
          throw new Error(`unexpected denial ${decision.reason}`);
        // Every hold is committed in full, so nothing held comes back: 0 available is final. The root
        // link (index 0) is charged by both levels; the child (index 1) only by the leaf.
        if (decision.available === 0) {
          if (decision.linkIndex === 0) exhausted.add("root").add("leaf");
          else exhausted.add("leaf");
        }
        continue;
      }
      reservations++;
      if (decision.decision === "ALLOW_WITH_CAPS") capped++;
      // The work the reservation pays for: a short pause, in which the other processes reserve.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 4));
      const result = await enforcer.commit(decision.reservationId, {
        usdMicros: decision.amounts.usdMicros,
      });
      if (result.status !== "committed" || result.late)
        throw new Error(`commit ended ${JSON.stringify(result)}`);
      committed[level] += decision.amounts.usdMicros;
    }
  };
  await Promise.all(Array.from({ length: task.loops }, loop));
  await ledger.close();
  return { mode: "spend", committed, reservations, capped };
}

async function hold(task: Extract<WorkerTask, { mode: "hold" }>): Promise<WorkerReply> {
  const chain = verify(task.token, { roots: await importJwks(task.jwks) });
  const enforcer = new Enforcer({ ledger: await open(task.ledger) });
  const decision = await enforcer.reserve({ chain, usdMicros: task.usdMicros }, { ttl: task.ttl });
  if (decision.decision === "DENY") throw new Error(`hold denied: ${decision.detail}`);
  // The ledger stays open: the parent kills this process with the hold outstanding.
  return { mode: "hold", reservationId: decision.reservationId, expiresAt: decision.expiresAt };
}

process.once("message", (task: WorkerTask) => {
  (task.mode === "spend" ? spend(task) : hold(task)).then(
    (reply) => process.send?.(reply, () => task.mode === "spend" && process.disconnect()),
    (error: unknown) => {
      process.send?.(
        {
          mode: "error",
          message: error instanceof Error ? (error.stack ?? error.message) : String(error),
        } satisfies WorkerReply,
        () => process.exit(1),
      );
    },
  );
});
