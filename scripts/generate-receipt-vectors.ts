/**
 * Writes spec/vectors/receipts/*.json from scripts/receipt-vectors.ts:
 * `node --conditions=@allowance/source --import tsx scripts/generate-receipt-vectors.ts`.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  RECEIPT_VECTORS_DIR,
  buildReceiptVectors,
  renderReceiptVector,
} from "./receipt-vectors.js";

const vectors = await buildReceiptVectors();
mkdirSync(RECEIPT_VECTORS_DIR, { recursive: true });
for (const file of readdirSync(RECEIPT_VECTORS_DIR))
  if (file.endsWith(".json")) rmSync(join(RECEIPT_VECTORS_DIR, file));
for (const vector of vectors)
  writeFileSync(join(RECEIPT_VECTORS_DIR, `${vector.name}.json`), renderReceiptVector(vector));
console.log(`wrote ${vectors.length} receipt vectors to spec/vectors/receipts/`);
