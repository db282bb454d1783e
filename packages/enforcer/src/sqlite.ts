/**
 * `@allowance/enforcer/sqlite`: the ledger in one SQLite file, shared by the processes of one host.
 * A subpath of its own: better-sqlite3 (native) is an optional peer dependency, installed only by
 * those who use this ledger.
 */
export { SqliteLedger } from "./sqlite-ledger.js";
export type { SqliteLedgerOptions } from "./sqlite-ledger.js";
