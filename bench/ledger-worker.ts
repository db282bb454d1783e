/** One process of the multi-process ledger benchmark: reports its pairs per second to the parent. */
import { importJwks } from "@allowance/core";
import { type Ledger } from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { RedisLedger } from "@allowance/enforcer/redis";
import { verify } from "@allowance/verifier";
import { pairsPerSecond } from "./ledger.js";

const [kind, target, token, jwks] = process.argv.slice(2) as [string, string, string, string];
const chain = verify(token, { roots: await importJwks(JSON.parse(jwks)) });
let ledger: Ledger;
if (kind === "sqlite") {
  ledger = SqliteLedger.open(target, { synchronous: "NORMAL" });
} else {
  ledger = await RedisLedger.connect(target, { keyPrefix: "bench:" });
}
const rate = await pairsPerSecond(ledger, chain, 2000, kind === "redis" ? 32 : 16);
await ledger.close();
process.send?.(rate);
