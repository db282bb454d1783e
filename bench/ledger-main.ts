/**
 * The ledger benchmark in a process of its own: the heap that the verify and peer benchmarks leave
 * behind (measured) slows the memory ledger's figures by about a third. Sends its figures to the
 * parent; argv[2] is a Redis URL, or empty for none.
 */
import { RedisLedger } from "@allowance/enforcer/redis";
import { benchLedgers } from "./ledger.js";

const url = process.argv[2] ?? "";
const figures = await benchLedgers(
  url === ""
    ? {}
    : { redisUrl: url, makeRedis: () => RedisLedger.connect(url, { keyPrefix: "bench:" }) },
);
process.send?.(figures);
