/** Writes spec/vectors/*.json from scripts/vectors.ts: `pnpm vectors`. */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildArgumentVectors } from "./argument-vectors.js";
import { buildPresentationVectors } from "./presentation-vectors.js";
import { buildVectors } from "./vectors.js";

const dir = join(import.meta.dirname, "..", "spec", "vectors");
mkdirSync(dir, { recursive: true });
for (const file of readdirSync(dir)) if (file.endsWith(".json")) rmSync(join(dir, file));
const vectors = await buildVectors();
for (const vector of vectors)
  writeFileSync(join(dir, `${vector.name}.json`), JSON.stringify(vector, null, 2) + "\n");
const valid = vectors.filter((v) => v.expected.valid).length;
console.log(
  `wrote ${vectors.length} vectors (${valid} valid, ${vectors.length - valid} invalid) to spec/vectors/`,
);

const presentationDir = join(dir, "presentations");
mkdirSync(presentationDir, { recursive: true });
for (const file of readdirSync(presentationDir))
  if (file.endsWith(".json")) rmSync(join(presentationDir, file));
const presentations = await buildPresentationVectors();
for (const vector of presentations)
  writeFileSync(
    join(presentationDir, `${vector.name}.json`),
    JSON.stringify(vector, null, 2) + "\n",
  );
console.log(`wrote ${presentations.length} presentation vectors to spec/vectors/presentations/`);

const argumentsDir = join(dir, "arguments");
mkdirSync(argumentsDir, { recursive: true });
for (const file of readdirSync(argumentsDir))
  if (file.endsWith(".json")) rmSync(join(argumentsDir, file));
const argumentVectors = buildArgumentVectors();
for (const vector of argumentVectors)
  writeFileSync(join(argumentsDir, `${vector.name}.json`), JSON.stringify(vector, null, 2) + "\n");
const allowed = argumentVectors.filter((v) => v.expected === null).length;
console.log(
  `wrote ${argumentVectors.length} argument vectors (${allowed} allowed, ${argumentVectors.length - allowed} refused) to spec/vectors/arguments/`,
);
