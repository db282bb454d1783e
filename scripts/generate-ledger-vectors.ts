/**
 * Writes spec/vectors/ledger/*.json and packages/enforcer/src/testing/ledger-vectors.ts from
 * scripts/ledger-vectors.ts: `node --conditions=@allowance/source --import tsx scripts/generate-ledger-vectors.ts`.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  LEDGER_VECTORS_DIR,
  LEDGER_VECTORS_MODULE_PATH,
  buildLedgerVectors,
  renderLedgerVector,
  renderLedgerVectorsModule,
} from "./ledger-vectors.js";

const vectors = await buildLedgerVectors();
mkdirSync(LEDGER_VECTORS_DIR, { recursive: true });
for (const file of readdirSync(LEDGER_VECTORS_DIR))
  if (file.endsWith(".json")) rmSync(join(LEDGER_VECTORS_DIR, file));
for (const vector of vectors)
  writeFileSync(join(LEDGER_VECTORS_DIR, `${vector.name}.json`), renderLedgerVector(vector));
writeFileSync(LEDGER_VECTORS_MODULE_PATH, renderLedgerVectorsModule(vectors));
const steps = vectors.reduce((n, v) => n + v.steps.length, 0);
console.log(
  `wrote ${vectors.length} ledger vectors (${steps} steps) to spec/vectors/ledger/ and ${LEDGER_VECTORS_MODULE_PATH}`,
);
