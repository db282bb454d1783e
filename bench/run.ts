/** `pnpm bench`: every benchmark, one table each. Figures are for the issue notes, not assertions. */
import { cpus } from "node:os";
import { benchVerify, report } from "./verify.js";

console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}\n`);
console.log("== verify ==");
console.log(report(await benchVerify()));
