import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ERROR_CODES, importJwks } from "@allowance/core";
import {
  buildPresentationVectors,
  evaluatePresentation,
  type PresentationVector,
} from "../scripts/presentation-vectors.js";
import { buildVectors, evaluateWith, type Vector } from "../scripts/vectors.js";

const dir = join(import.meta.dirname, "..", "spec", "vectors");
const committed: Vector[] = readdirSync(dir)
  .filter((file) => file.endsWith(".json"))
  .sort()
  .map((file) => JSON.parse(readFileSync(join(dir, file), "utf8")) as Vector);

// Presentation and transport codes are covered by spec/vectors/presentations/, ledger codes by
// spec/vectors/ledger/, the file revocation store's by packages/verifier/test/revocation.test.ts.
const TOKEN_CODES = ERROR_CODES.filter(
  (code) =>
    ![
      "ERR_PRESENTATION",
      "ERR_STALE",
      "ERR_REPLAY",
      "ERR_NO_CREDENTIALS",
      "ERR_RESERVATION_CONFLICT",
      "ERR_LEDGER_STATE",
      "ERR_CLOCK_SKEW",
      "ERR_RESERVATION_UNKNOWN",
      "ERR_RESERVATION_CLOSED",
      "ERR_LEDGER_NOT_DURABLE",
      "ERR_REVOCATION_UNAVAILABLE",
    ].includes(code),
);

describe("spec/vectors", () => {
  it.each(committed.map((v) => [v.name, v] as const))(
    "%s verifies as the vector expects",
    async (_name, vector) => {
      const roots = await importJwks(vector.roots);
      const actual = evaluateWith(vector.token, {
        roots,
        now: vector.now,
        skew: vector.skew,
        audience: vector.audience,
        revoked: vector.revoked,
      });
      expect(actual).toEqual(vector.expected);
    },
  );

  it("holds at least 15 valid chains of 1 to 6 links", () => {
    const valid = committed.filter((v) => v.expected.valid);
    expect(valid.length).toBeGreaterThanOrEqual(15);
    const lengths = new Set(valid.map((v) => (v.expected.valid ? v.expected.linkIds.length : 0)));
    for (const n of [1, 2, 3, 4, 5, 6]) expect(lengths).toContain(n);
  });

  it("holds an invalid vector for every error code", () => {
    const codes = new Set(committed.flatMap((v) => (v.expected.valid ? [] : [v.expected.code])));
    for (const code of TOKEN_CODES) expect(codes, code).toContain(code);
  });

  it("are exactly what scripts/vectors.ts generates (run `pnpm vectors` after a deliberate change)", async () => {
    const regenerated = await buildVectors();
    // Names compared sorted on both sides: file order puts "x-y.json" before "x.json".
    expect(regenerated.map((v) => v.name).sort()).toEqual(committed.map((v) => v.name).sort());
    const byName = new Map(committed.map((v) => [v.name, v]));
    for (const vector of regenerated) expect(vector, vector.name).toEqual(byName.get(vector.name));
  });
});

const presentationDir = join(dir, "presentations");
const committedPresentations: PresentationVector[] = readdirSync(presentationDir)
  .filter((file) => file.endsWith(".json"))
  .sort()
  .map(
    (file) => JSON.parse(readFileSync(join(presentationDir, file), "utf8")) as PresentationVector,
  );

describe("spec/vectors/presentations", () => {
  it.each(committedPresentations.map((v) => [v.name, v] as const))(
    "%s verifies as the vector expects",
    async (_name, vector) => {
      expect(await evaluatePresentation(vector, await importJwks(vector.roots))).toEqual(
        vector.expected,
      );
    },
  );

  it("cover acceptance and every presentation error code", () => {
    const outcomes = new Set(
      committedPresentations.map((v) => (v.expected.valid ? "valid" : v.expected.code)),
    );
    for (const outcome of ["valid", "ERR_PRESENTATION", "ERR_STALE", "ERR_REPLAY", "ERR_AUDIENCE"])
      expect(outcomes).toContain(outcome);
  });

  it("are exactly what scripts/presentation-vectors.ts generates", async () => {
    const regenerated = await buildPresentationVectors();
    expect(regenerated.map((v) => v.name).sort()).toEqual(
      committedPresentations.map((v) => v.name).sort(),
    );
    const byName = new Map(committedPresentations.map((v) => [v.name, v]));
    for (const vector of regenerated) expect(vector, vector.name).toEqual(byName.get(vector.name));
  });
});
