/** `--ledger memory | sqlite:PATH | redis:URL`: opening the ledger a command spends against or reads. */
import { existsSync } from "node:fs";
import { MemoryLedger, type Ledger } from "@allowance/enforcer";
import type { SqliteLedger } from "@allowance/enforcer/sqlite";
import { UsageError } from "./errors.js";
import { messageOf } from "./io.js";

export interface OpenedLedger {
  readonly ledger: Ledger;
  readonly kind: "memory" | "sqlite" | "redis";
  /** Where it is, for output: a path or a URL without its password. */
  readonly where: string;
  close(): Promise<void>;
}

const CONNECT_TIMEOUT_MS = 3000;

/**
 * The ledger `--ledger` names. A SQLite file that does not exist, or is not a ledger, is refused,
 * never created: every command that takes `--ledger` works against the ledger an enforcer already
 * writes to, and a typo would otherwise give a fresh, empty one that reports a full budget.
 */
export async function openLedger(spec: string): Promise<OpenedLedger> {
  if (spec === "memory") {
    const ledger = new MemoryLedger();
    return { ledger, kind: "memory", where: "memory", close: () => ledger.close() };
  }
  if (spec.startsWith("sqlite:")) {
    const path = spec.slice("sqlite:".length);
    if (path === "")
      throw new UsageError("--ledger sqlite: needs a file path, e.g. sqlite:ledger.db");
    if (!existsSync(path)) {
      throw new UsageError(
        `no SQLite ledger at ${path}: a reading command does not create one; check the path (the file the enforcer writes to)`,
      );
    }
    let ledger: SqliteLedger;
    try {
      // Loaded only when asked for: better-sqlite3 and ioredis are native or heavy, and optional.
      const { SqliteLedger } = await import("@allowance/enforcer/sqlite");
      // Only a file that is already a ledger: an empty file or another program's database would
      // otherwise be given a fresh schema and report every budget untouched.
      ledger = SqliteLedger.open(path, { existingOnly: true });
    } catch (error) {
      throw new UsageError(`cannot open SQLite ledger ${path}: ${messageOf(error)}`);
    }
    return { ledger, kind: "sqlite", where: path, close: () => ledger.close() };
  }
  if (spec.startsWith("redis:") || spec.startsWith("rediss:")) {
    let url: URL;
    try {
      // Accepts redis://host:port, redis:redis://host:port and redis:host:port.
      const rest =
        spec.startsWith("redis://") || spec.startsWith("rediss:")
          ? spec
          : spec.slice("redis:".length);
      url = new URL(rest.includes("://") ? rest : `redis://${rest}`);
    } catch {
      throw new UsageError(`--ledger ${spec} is not a Redis URL; use redis://host:6379`);
    }
    const where = `${url.protocol}//${url.host}${url.pathname === "/" ? "" : url.pathname}`;
    const [{ Redis }, { RedisLedger }] = await Promise.all([
      import("ioredis"),
      import("@allowance/enforcer/redis"),
    ]);
    const redis = new Redis(url.toString(), {
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      maxRetriesPerRequest: 1,
      retryStrategy: () => null,
    });
    // ioredis reports connection errors as events too; the connect() rejection below is what we act on.
    redis.on("error", () => {});
    try {
      await redis.connect();
    } catch (error) {
      redis.disconnect();
      throw new UsageError(
        `cannot reach the Redis ledger at ${where}: ${messageOf(error)}; is the server running?`,
      );
    }
    const ledger = new RedisLedger(redis, { closeConnection: true });
    return { ledger, kind: "redis", where, close: () => ledger.close() };
  }
  throw new UsageError(
    `--ledger ${JSON.stringify(spec)} is not a ledger; use memory, sqlite:PATH or redis://HOST:PORT`,
  );
}

/** Opens the ledger, hands it to `use`, and closes it whatever `use` does. */
export async function withLedger<T>(
  spec: string,
  use: (opened: OpenedLedger) => Promise<T>,
): Promise<T> {
  const opened = await openLedger(spec);
  try {
    return await use(opened);
  } finally {
    await opened.close();
  }
}
