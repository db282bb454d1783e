/** `pnpm bench`: every benchmark, one table each. Figures are for the issue notes, not assertions. */
import { cpus } from "node:os";
import { benchLedgers, ledgerReport } from "./ledger.js";
import { benchVerify, report } from "./verify.js";

console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}\n`);
console.log("== verify ==");
console.log(report(await benchVerify()));

console.log("\n== ledgers: reserve + commit on a 3-link chain ==");
console.log(ledgerReport(await benchLedgers()));
