import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
const src = readFileSync("src/redis-ledger.ts", "utf8");
const grab = (name: string) => { const m = src.match(new RegExp("const " + name + " = `([\\s\\S]*?)`;")); return m![1]!; };
const PRELUDE = grab("PRELUDE");
const RESERVE = grab("RESERVE").replace("${PRELUDE}", PRELUDE);
const r = new Redis("redis://127.0.0.1:6390");
await r.flushall();
const root = "Z7UyY2tqe9JU6rzgBfY9Jo-aQi45geixINwyN-EqBYa";
const lineArgs: string[] = [];
for (let l = 0; l < 3; l++) for (const kind of ["tokens", "usdMicros", "risk", "requests"]) lineArgs.push(`${root}${l}|${kind}`, kind, kind === "tokens" || kind === "usdMicros" ? "1000000000000000" : "");
async function stat(name: string, script: string, n = 2000) {
  await r.config("RESETSTAT");
  const sha = (await r.script("LOAD", script)) as string;
  for (let i = 0; i < n; i++) {
    const base = `t:{${root}}:`;
    await r.evalsha(sha, 3, `${base}r:${i}${name}`, `${base}x`, `${base}a`, base, String(Date.now()), "86400000", `${i}${name}`, String(Date.now() + 1e9), "10", "10", "0", "1", "", "", ...lineArgs);
  }
  const info = await r.info("commandstats");
  console.log(name.padEnd(24), info.split("\n").find((l) => l.startsWith("cmdstat_evalsha"))?.match(/usec_per_call=([\d.]+)/)?.[1]);
}
await stat("full", RESERVE);
await stat("return at start", RESERVE.replace("local id, expiresAt = ARGV[4], ARGV[5]", "do return 1 end\nlocal id, expiresAt = ARGV[4], ARGV[5]"));
await stat("return after sweep", RESERVE.replace("if redis.call('EXISTS', KEYS[1]) == 1", "do return 1 end\nif redis.call('EXISTS', KEYS[1]) == 1"));
await stat("return before loop", RESERVE.replace("local reads = { values = {}, order = {} }", "do return 1 end\nlocal reads = { values = {}, order = {} }"));
await stat("return at start, no prelude", "return 1");
r.disconnect();
