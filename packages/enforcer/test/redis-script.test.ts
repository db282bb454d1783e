/**
 * The Redis ledger's script is a real Lua file (src/redis/ledger.lua) embedded at build time into
 * src/redis/ledger-lua.ts, with the wire protocol's numbers written once, in src/redis/wire.ts.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { LUA_CONSTANTS } from "../src/redis/wire.js";
import {
  LEDGER_LUA_MODULE_PATH,
  LEDGER_LUA_SOURCE_PATH,
  renderLedgerLuaModule,
  renderLedgerScript,
} from "../../../scripts/ledger-lua.js";
import { LEDGER_LUA } from "../src/redis/ledger-lua.js";

describe("the Redis ledger's script", () => {
  it("is embedded exactly as scripts/ledger-lua.ts renders it from ledger.lua and wire.ts (run scripts/embed-lua.ts after changing either)", () => {
    expect(readFileSync(LEDGER_LUA_MODULE_PATH, "utf8")).toBe(renderLedgerLuaModule());
    expect(LEDGER_LUA).toBe(renderLedgerScript());
  });

  /** The script's code: no comments, no string literals (command names, struct formats). */
  const code = () =>
    readFileSync(LEDGER_LUA_SOURCE_PATH, "utf8")
      .replace(/--.*$/gm, "")
      .replace(/'[^'\n]*'/g, "''");

  it("uses by name every number of the wire protocol, and none that wire.ts does not define", () => {
    const source = code();
    const own = new Set(
      [...source.matchAll(/local\s+([A-Z][A-Z0-9_]*(?:\s*,\s*[A-Z][A-Z0-9_]*)*)\s*=/g)].flatMap(
        (m) => (m[1] as string).split(/\s*,\s*/),
      ),
    );
    const used = new Set(
      [...source.matchAll(/\b[A-Z][A-Z0-9_]+\b/g)]
        .map((m) => m[0])
        .filter((n) => !own.has(n) && n !== "KEYS" && n !== "ARGV"),
    );
    expect([...used].sort()).toEqual(Object.keys(LUA_CONSTANTS).sort());
  });

  it("holds no number of the wire protocol as a literal where a name exists", () => {
    const source = code();
    // The operation letters and the skip lengths of the old script were such literals.
    for (const literal of [/\b114\b/, /\b99\b/, /\b108\b/, /\b98\b/, /\bq \+ (?:73|41|9)\b/])
      expect(source).not.toMatch(literal);
  });
});
