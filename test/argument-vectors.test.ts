/**
 * spec/vectors/arguments/: (args, tool, arguments, decision) triples. Each committed vector is
 * decided as it says, and the set is exactly what scripts/argument-vectors.ts generates.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ARGUMENT_DENIAL_REASONS } from "@allowance/core/format";
import {
  buildArgumentVectors,
  evaluateArgumentVector,
  type ArgumentVector,
} from "../scripts/argument-vectors.js";

const dir = join(import.meta.dirname, "..", "spec", "vectors", "arguments");
const committed: ArgumentVector[] = readdirSync(dir)
  .filter((file) => file.endsWith(".json"))
  .map((file) => JSON.parse(readFileSync(join(dir, file), "utf8")) as ArgumentVector)
  .sort((a, b) => (a.name < b.name ? -1 : 1));

describe("spec/vectors/arguments", () => {
  it.each(committed.map((v) => [v.name, v] as const))(
    "%s is decided as the vector expects",
    (_name, vector) => {
      expect(evaluateArgumentVector(vector)).toEqual(vector.expected);
    },
  );

  it("cover allowing and every refusal reason", () => {
    const outcomes = new Set(committed.map((v) => v.expected?.reason ?? "allowed"));
    for (const outcome of ["allowed", ...ARGUMENT_DENIAL_REASONS])
      expect(outcomes, outcome).toContain(outcome);
  });

  it("are exactly what scripts/argument-vectors.ts generates (run `pnpm vectors` after a deliberate change)", () => {
    const regenerated = buildArgumentVectors();
    expect(regenerated.map((v) => v.name).sort()).toEqual(committed.map((v) => v.name));
    const byName = new Map(committed.map((v) => [v.name, v]));
    for (const vector of regenerated) expect(vector, vector.name).toEqual(byName.get(vector.name));
  });
});
