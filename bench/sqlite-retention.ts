/**
 * How big a SQLite ledger's file grows under a long run (spec/enforcement.md §3.5): `ops`
 * operations, half reserves and half commits of one chain's reservations, on a file whose clock is
 * simulated (`stepMs` of ledger time per reservation), with the given retention. Prints the
 * reservations kept and the file's size (and its WAL's) every tenth of the run.
 *
 *   node --conditions=@allowance/source --import tsx bench/sqlite-retention.ts \
 *     [--ops 1000000] [--step-ms 518.4] [--retention-ms 86400000]
 *
 * `--retention-ms never` keeps every closed reservation, as the ledger did before it pruned.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import type { LedgerLine } from "@allowance/enforcer";

// The SQLite driver the ledger uses (an optional peer of @allowance/enforcer, not of the bench),
// to count the rows kept; only what is used here is typed.
interface ReadOnlyDatabase {
  prepare(sql: string): { get(): unknown };
  close(): void;
}
const Database = createRequire(fileURLToPath(import.meta.resolve("@allowance/enforcer/sqlite")))(
  "better-sqlite3",
) as new (path: string, options: { readonly: boolean }) => ReadOnlyDatabase;

const { values } = parseArgs({
  options: {
    ops: { type: "string", default: "1000000" },
    // 500,000 reservations over 72 hours: three retentions of the default 24 hours.
    "step-ms": { type: "string", default: "518.4" },
    "retention-ms": { type: "string", default: "86400000" },
  },
});
const ops = Number(values.ops);
const stepMs = Number(values["step-ms"]);
const retentionMs =
  values["retention-ms"] === "never" ? Number.MAX_SAFE_INTEGER : Number(values["retention-ms"]);

const dir = mkdtempSync(join(tmpdir(), "allowance-retention-bench-"));
const path = join(dir, "ledger.db");
const clock = { ms: 1_800_000_000_000 };
const ledger = SqliteLedger.open(path, {
  synchronous: "NORMAL",
  retentionMs,
  now: () => clock.ms,
});

// A two-link chain as the enforcer builds it: each link's tokens, dollars, risk and requests.
const line = (
  link: string,
  i: number,
  field: string,
  kind: LedgerLine["kind"],
  cap: number | null,
) => Object.freeze({ account: `${link}|${field}`, kind, cap, linkIndex: i, linkId: link, field });
const lines: readonly LedgerLine[] = Object.freeze([
  line("Lroot", 0, "tokens", "tokens", null),
  line("Lroot", 0, "usdMicros", "usdMicros", Number.MAX_SAFE_INTEGER),
  line("Lroot", 0, "risk", "risk", null),
  line("Lroot", 0, "requests", "requests", null),
  line("Lchild", 1, "tokens", "tokens", null),
  line("Lchild", 1, "usdMicros", "usdMicros", Number.MAX_SAFE_INTEGER),
  line("Lchild", 1, "risk", "risk", null),
  line("Lchild", 1, "requests", "requests", null),
]);
const amounts = { tokens: 900, usdMicros: 1_200, risk: 0, requests: 1 };
const actual = { tokens: 750, usdMicros: 1_000, risk: -1, requests: -1 };

const sizeOf = (file: string) => {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
};
const mb = (bytes: number) => (bytes / 1_048_576).toFixed(1);
const rowsNow = () => {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare("SELECT count(*) AS n FROM reservations").get() as { n: number }).n;
  } finally {
    db.close();
  }
};

console.log(
  `${ops.toLocaleString("en-US")} operations, ${stepMs} ms of ledger time per reservation, retention ${values["retention-ms"]} ms`,
);
console.log("operations | ledger hours | reservations kept | file MB | WAL MB");
const started = performance.now();
const GROUP = 32;
let done = 0;
let next = 0;
let checkpoint = ops / 10;
while (done < ops) {
  const ids = Array.from({ length: Math.min(GROUP, (ops - done) / 2) }, () => `Lroot.r${next++}`);
  await Promise.all(
    ids.map((id) => ledger.reserve({ id, root: "Lroot", lines, amounts, ttlMs: 60_000 })),
  );
  await Promise.all(ids.map((id) => ledger.commit(id, actual)));
  done += 2 * ids.length;
  clock.ms += stepMs * ids.length;
  if (done >= checkpoint || done >= ops) {
    checkpoint += ops / 10;
    const hours = (next * stepMs) / 3_600_000;
    console.log(
      `${done.toLocaleString("en-US")} | ${hours.toFixed(1)} | ${rowsNow().toLocaleString("en-US")} | ${mb(sizeOf(path))} | ${mb(sizeOf(`${path}-wal`))}`,
    );
  }
}
await ledger.close();
console.log(
  `done in ${((performance.now() - started) / 1000).toFixed(1)} s; file after close ${mb(sizeOf(path))} MB`,
);
rmSync(dir, { recursive: true, force: true });
