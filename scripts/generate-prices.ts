/** Writes packages/meter/src/prices-data.ts from scripts/prices.ts: `node --import tsx scripts/generate-prices.ts`. */
import { writeFileSync } from "node:fs";
import { PRICES_DATA_PATH, renderPricesData } from "./prices.js";

const text = renderPricesData();
writeFileSync(PRICES_DATA_PATH, text);
console.log(`wrote ${PRICES_DATA_PATH} (${text.split("\n").length} lines)`);
