/** Writes packages/enforcer/src/redis/ledger-lua.ts from scripts/ledger-lua.ts: `node --conditions=@allowance/source --import tsx scripts/embed-lua.ts`. */
import { writeFileSync } from "node:fs";
import { LEDGER_LUA_MODULE_PATH, renderLedgerLuaModule } from "./ledger-lua.js";

const text = renderLedgerLuaModule();
writeFileSync(LEDGER_LUA_MODULE_PATH, text);
console.log(`wrote ${LEDGER_LUA_MODULE_PATH} (${text.split("\n").length} lines)`);
