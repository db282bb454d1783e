/**
 * `@allowance/enforcer/redis`: the ledger in Redis, shared by every host that talks to it. A subpath
 * of its own: ioredis is an optional peer dependency, installed only by those who use this ledger.
 */
export { REDIS_DURABILITY, RedisLedger } from "./redis/ledger.js";
export type { RedisDurability, RedisLedgerOptions } from "./redis/ledger.js";
