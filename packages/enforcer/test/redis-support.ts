/**
 * Redis for the tests: the URL the global setup (test/support/redis-global-setup.ts) provides,
 * fresh key prefixes, and cleanup. Without a URL the Redis tests are skipped with a warning, except
 * in CI, where the global setup has already failed the run.
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { inject } from "vitest";

export const redisUrl: string = inject("redisUrl") ?? process.env.ALLOWANCE_REDIS_URL ?? "";
if (redisUrl === "") {
  if (process.env.CI) throw new Error("the Redis tests need ALLOWANCE_REDIS_URL in CI");
  console.warn(
    "⚠ SKIPPING Redis tests: ALLOWANCE_REDIS_URL is not set and no redis-server could be started",
  );
}

/** A key prefix no other test uses. */
export const freshPrefix = (): string => `test:${randomBytes(6).toString("hex")}:`;

/** Deletes every key under `prefix`. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== "0");
}
