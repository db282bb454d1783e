/**
 * A worker process for the multi-process receipts test: it verifies the chain itself, opens the
 * shared ledger with an enforcer that signs receipts with its own key, replies `ready`, waits for
 * `go` (so that all workers race), runs `loops` concurrent reserve → commit loops of `commits`
 * each, and replies with every receipt it signed, in the order it got them.
 */
import { Redis } from "ioredis";
import { fromBase64url } from "@allowance/core/format";
import { importJwks, keyPairFromSeed } from "@allowance/core";
import { Enforcer, receiptToJSON, type Ledger, type ReceiptJSON } from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { verify } from "@allowance/verifier";
import type { LedgerTarget } from "./spender.js";

export interface ReceiptTask {
  readonly ledger: LedgerTarget;
  readonly token: string;
  readonly jwks: unknown;
  /** The worker's receipt key: a 32-byte seed, base64url. */
  readonly seed: string;
  readonly loops: number;
  readonly commits: number;
}

export type ReceiptReply =
  | { readonly mode: "ready" }
  | { readonly mode: "done"; readonly receipts: readonly ReceiptJSON[] }
  | { readonly mode: "error"; readonly message: string };

async function open(target: LedgerTarget): Promise<Ledger> {
  if (target.kind === "sqlite") return SqliteLedger.open(target.path, { busyTimeoutMs: 20_000 });
  const redis = new Redis(target.url);
  await redis.ping();
  return new RedisLedger(redis, { keyPrefix: target.prefix, closeConnection: true });
}

async function run(task: ReceiptTask): Promise<ReceiptReply> {
  const chain = verify(task.token, { roots: await importJwks(task.jwks) });
  const key = await keyPairFromSeed(fromBase64url(task.seed) as Uint8Array);
  const ledger = await open(task.ledger);
  const enforcer = new Enforcer({ ledger, receipts: { key } });
  const receipts: ReceiptJSON[] = [];
  const go = new Promise((resolve) => process.once("message", resolve));
  process.send?.({ mode: "ready" } satisfies ReceiptReply);
  await go;
  const loop = async () => {
    for (let i = 0; i < task.commits; i++) {
      const decision = await enforcer.reserve({
        chain,
        usdMicros: 1 + Math.floor(Math.random() * 9),
      });
      if (decision.decision === "DENY") throw new Error(`denied: ${decision.detail}`);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
      const result = await enforcer.commit(decision.reservationId, {
        usdMicros: decision.amounts.usdMicros,
      });
      if (result.status !== "committed" || result.receipt === undefined)
        throw new Error(`commit ended ${JSON.stringify(result)}`);
      receipts.push(receiptToJSON(result.receipt));
    }
  };
  await Promise.all(Array.from({ length: task.loops }, loop));
  await ledger.close();
  return { mode: "done", receipts };
}

process.once("message", (task: ReceiptTask) => {
  run(task).then(
    (reply) => process.send?.(reply, () => process.disconnect()),
    (error: unknown) => {
      process.send?.(
        {
          mode: "error",
          message: error instanceof Error ? (error.stack ?? error.message) : String(error),
        } satisfies ReceiptReply,
        () => process.exit(1),
      );
    },
  );
});
