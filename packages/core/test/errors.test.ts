/** AllowanceError: one closed list of codes, and a JSON form that keeps every field. */
import { describe, expect, expectTypeOf, it } from "vitest";
import {
  AllowanceError,
  DEFAULT_LIMITS,
  ERROR_CODES,
  attenuate,
  generateKeyPair,
  mint,
  parseToken,
  publicKeyOf,
  type ErrorCode,
} from "@allowance/core";

function caught(call: () => unknown): AllowanceError {
  try {
    call();
  } catch (error) {
    if (error instanceof AllowanceError) return error;
    throw error;
  }
  throw new Error("expected an AllowanceError");
}

describe("ERROR_CODES", () => {
  it("is frozen, without repeats, and the ErrorCode union is exactly its members", () => {
    expect(Object.isFrozen(ERROR_CODES)).toBe(true);
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    expectTypeOf<(typeof ERROR_CODES)[number]>().toEqualTypeOf<ErrorCode>();
  });
});

describe("toJSON", () => {
  it("keeps limit and actual, which a refusal for size carries", () => {
    const error = caught(() => parseToken("alw1_AAAA", { ...DEFAULT_LIMITS, maxTokenChars: 5 }));
    expect(error.code).toBe("ERR_LIMIT");
    const json = JSON.parse(JSON.stringify(error)) as Record<string, unknown>;
    expect(json).toEqual({
      code: "ERR_LIMIT",
      linkIndex: null,
      field: null,
      message: error.message,
      limit: 5,
      actual: 9,
      violations: [],
    });
  });

  it("keeps linkIndex, field and every violation of a widened grant", async () => {
    const [root, parent, child] = await Promise.all([
      generateKeyPair(),
      generateKeyPair(),
      generateKeyPair(),
    ]);
    const token = mint({
      rootKey: root,
      holder: publicKeyOf(parent),
      grant: { exp: 1_800_000_000, usdMicros: 5, tools: ["search"] },
    });
    const error = caught(() =>
      attenuate(token, {
        holderKey: parent,
        holder: publicKeyOf(child),
        grant: { usdMicros: 6, tools: ["shell"] },
      }),
    );
    expect(JSON.parse(JSON.stringify(error))).toEqual({
      code: "ERR_WIDENED",
      linkIndex: 1,
      field: "usdMicros",
      message: error.message,
      limit: null,
      actual: null,
      violations: [
        { field: "usdMicros", reason: "widened", parent: 5, child: 6 },
        { field: "tools", reason: "widened", parent: ["search"], child: ["shell"] },
      ],
    });
  });

  it("has a member for every field of the error", () => {
    const error = new AllowanceError("ERR_LIMIT", "m", {
      linkIndex: 2,
      field: "tools",
      limit: 64,
      actual: 65,
      violations: [],
    });
    const fields = ["code", "linkIndex", "field", "message", "limit", "actual", "violations"];
    expect(Object.keys(error.toJSON()).sort()).toEqual([...fields].sort());
    for (const name of fields)
      expect(error.toJSON()[name as keyof ReturnType<AllowanceError["toJSON"]>]).toEqual(
        error[name as keyof AllowanceError],
      );
  });
});
