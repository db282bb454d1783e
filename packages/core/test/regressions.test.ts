import { describe, expect, it } from "vitest";
import {
  AllowanceError,
  attenuate,
  generateKeyPair,
  mint,
  publicKeyOf,
  type Token,
} from "@allowance/core";

const EXP = 1_800_000_000;

describe("regressions", () => {
  it("mint refuses a label with a lone surrogate, which no verifier could decode", async () => {
    const root = await generateKeyPair();
    const holder = await generateKeyPair();
    expect(() =>
      mint({ rootKey: root, holder: publicKeyOf(holder), grant: { exp: EXP, label: "run\uD800" } }),
    ).toThrow(TypeError);
    expect(() =>
      mint({ rootKey: root, holder: publicKeyOf(holder), grant: { exp: EXP, label: "run 🚀 ok" } }),
    ).not.toThrow();
  });

  it("attenuate checks a Token object like the string it stands for", async () => {
    const root = await generateKeyPair();
    const holder = await generateKeyPair();
    const child = await generateKeyPair();
    const token = mint({ rootKey: root, holder: publicKeyOf(holder), grant: { exp: EXP } });
    const broken: Token = {
      rootKid: token.rootKid,
      links: [
        { payload: token.links[0]!.payload, signature: token.links[0]!.signature.subarray(0, 10) },
      ],
    };
    expect(() =>
      attenuate(broken, { holderKey: holder, holder: publicKeyOf(child), grant: {} }),
    ).toThrow(AllowanceError);
  });

  it("mint validates partial limits instead of silently ignoring them", async () => {
    const root = await generateKeyPair();
    const holder = await generateKeyPair();
    expect(() =>
      mint({
        rootKey: root,
        holder: publicKeyOf(holder),
        grant: { exp: EXP },
        limits: { maxLinks: 0 },
      }),
    ).toThrow(RangeError);
    expect(() =>
      mint({
        rootKey: root,
        holder: publicKeyOf(holder),
        grant: { exp: EXP, tools: ["a", "b", "c"] },
        limits: { maxListLength: 2 },
      }),
    ).toThrow(AllowanceError);
  });
});
