/**
 * `pnpm bench`: every benchmark, one table each; the side-by-side figures also go to
 * bench/results/latest.json (ignored), bench/latest.json (committed copy) and docs/bench.svg.
 * Figures are for the issue notes and the README, not assertions.
 */
import { fork } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { argsReport, benchArgs } from "./args.js";
import { renderChart } from "./chart.js";
import { ledgerReport, type LedgerFigure } from "./ledger.js";
import { benchMeter, meterReport } from "./meter.js";
import { benchRedis } from "./redis.js";
import { benchPeers, peersMarkdown, peersReport } from "./peers.js";
import { benchColdKeys, benchVerify, coldKeysReport, report } from "./verify.js";

const started = performance.now();
const machine = {
  node: process.version,
  cpu: cpus()[0]?.model.trim() ?? "cpu",
  cores: cpus().length,
  platform: `${process.platform}-${process.arch}`,
  loadAverageAtStart: loadavg()[0],
};
const machineLine = `node ${machine.node}, ${machine.cores} × ${machine.cpu}`;
console.log(`${machineLine}\n`);

console.log("== verify ==");
const verifyResult = await benchVerify();
console.log(report(verifyResult));

console.log("\n== cold keys: chains whose keys were never seen (2,048 chains in rotation) ==");
const coldKeys = await benchColdKeys();
console.log(coldKeysReport(coldKeys));

console.log("\n== tool-argument constraints: the 5-link story with a constraint on every link ==");
const args = await benchArgs();
console.log(argsReport(args));

console.log("\n== side by side: the same 5-link story in each library ==");
const peers = await benchPeers();
console.log(peersReport(peers));

console.log("\n== ledgers: reserve + commit on a 3-link chain (in a process of its own) ==");
const redis = await benchRedis();
if (redis === undefined)
  console.log("(no Redis: set ALLOWANCE_REDIS_URL or install redis-server for the Redis rows)");
const ledgers = await new Promise<LedgerFigure[]>((resolve, reject) => {
  const child = fork(
    fileURLToPath(new URL("ledger-main.ts", import.meta.url)),
    [redis?.url ?? ""],
    { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] },
  );
  child.on("message", (figures) => resolve(figures as LedgerFigure[]));
  child.on("error", reject);
  child.on("exit", (code) =>
    code === 0 ? undefined : reject(new Error(`the ledger benchmark exited with ${code}`)),
  );
});
await redis?.stop();
console.log(ledgerReport(ledgers));

console.log("\n== wrapFetch: per-call overhead against a loopback OpenAI mock ==");
const meter = await benchMeter();
console.log(meterReport(meter));

const path = (relative: string) => fileURLToPath(new URL(relative, import.meta.url));
const measuredAt = new Date().toISOString();
const json = `${JSON.stringify({ measuredAt, machine, peers, verify: verifyResult, coldKeys, args, ledgers, meter, markdown: peersMarkdown(peers) }, null, 2)}\n`;
mkdirSync(path("results/"), { recursive: true });
writeFileSync(path("results/latest.json"), json);
writeFileSync(path("latest.json"), json);
console.log("\nwrote bench/results/latest.json, bench/latest.json");
mkdirSync(path("../docs/"), { recursive: true });
writeFileSync(
  path("../docs/bench.svg"),
  await renderChart(
    peers,
    `${machineLine} · ${measuredAt.slice(0, 10)} · medians of alternating rounds in one process`,
  ),
);
console.log(`wrote docs/bench.svg (total ${((performance.now() - started) / 1000).toFixed(0)} s)`);
