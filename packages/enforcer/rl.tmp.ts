import { Redis } from "ioredis";
import { RedisLedger, type LedgerLine } from "./src/index.js";
const r = new Redis("redis://127.0.0.1:6390");
await r.flushall();
const ledger = new RedisLedger(r, { keyPrefix: "t:" });
const root = "Z7UyY2tqe9JU6rzgBfY9Jo-aQi45geixINwyN-EqBYa";
const lines: LedgerLine[] = [];
const mk = (l: number) => `${root.slice(0, 40)}${l}AB`;
for (let l = 0; l < 3; l++) for (const kind of ["tokens", "usdMicros", "risk", "requests"] as const) lines.push({ account: `${mk(l)}|${kind}`, kind, cap: kind === "tokens" || kind === "usdMicros" ? 1e15 : null });
async function phase(name: string, f: (i: number) => Promise<unknown>, n = 3000) {
  await r.config("RESETSTAT");
  const t = performance.now();
  for (let i = 0; i < n; i++) await f(i);
  const wall = (performance.now() - t) * 1000 / n;
  const info = await r.info("commandstats");
  const line = info.split("\n").find((l) => l.startsWith("cmdstat_evalsha"));
  console.log(name.padEnd(20), "server", line?.match(/usec_per_call=([\d.]+)/)?.[1], "µs/call; wall", wall.toFixed(0), "µs");
}
let k = 0;
const ids: string[] = [];
await phase("reserve", async () => { const id = `${root}.x${k++}`; ids.push(id); await ledger.reserve({ id, root, lines, amounts: { tokens: 10, usdMicros: 10, risk: 0, requests: 1 }, expiresAt: Date.now() + 1e9, now: Date.now() }); });
await phase("commit", async (i) => { await ledger.commit(ids[i]!, { tokens: 9, usdMicros: 9, risk: -1, requests: -1 }, Date.now()); });
r.disconnect();
