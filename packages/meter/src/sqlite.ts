/**
 * `@allowance/meter/sqlite`: the usage log kept in a SQLite file. A subpath of its own so that a user
 * of the in-memory log never loads better-sqlite3, an optional peer dependency.
 */
export { SqliteUsageLog } from "./sqlite-usage-log.js";
export type { SqliteUsageLogOptions } from "./sqlite-usage-log.js";
