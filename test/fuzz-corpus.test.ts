import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createAuthorizer, createVerifier } from "@allowance/verifier";
import { fuzzFixture, FUZZ_AUD, FUZZ_NOW, type FuzzFixture } from "../scripts/fuzz-fixture.js";
import { runFuzzInput, type FuzzContext, type FuzzInput } from "../scripts/fuzz-run.js";

interface Entry extends FuzzInput {
  readonly code: string;
}

const corpus = JSON.parse(
  readFileSync(join(import.meta.dirname, "fuzz-corpus", "corpus.json"), "utf8"),
) as { entries: Entry[] };
let context: FuzzContext;

beforeAll(async () => {
  const fixture: FuzzFixture = await fuzzFixture();
  const replay = { claim: () => true };
  const cached = createVerifier({ roots: fixture.roots });
  for (const token of fixture.tokens) cached.verify(token, { now: () => FUZZ_NOW * 1000 });
  context = {
    fixture,
    cached,
    replay,
    authorizer: createAuthorizer({
      roots: fixture.roots,
      audience: FUZZ_AUD,
      replay,
      now: () => FUZZ_NOW * 1000,
    }),
  };
});

describe("the fuzz corpus (test/fuzz-corpus, written by pnpm fuzz --write-corpus)", () => {
  it("covers every target", () => {
    expect(new Set(corpus.entries.map((e) => e.target))).toEqual(
      new Set([
        "parse",
        "verify",
        "verify-resigned",
        "verify-cached",
        "presentation",
        "middleware",
      ]),
    );
  });

  it.each(corpus.entries.map((e) => [`${e.target} → ${e.code}`, e] as const))(
    "%s, as when it was found",
    async (_name, entry) => {
      expect(await runFuzzInput(entry, context)).toBe(entry.code);
    },
  );
});
