/**
 * The Redis ledger's reply decoders (src/redis/wire.ts) take only the codes the script sends: a
 * reply of another shape (a script of another version, a server that answers otherwise) is an
 * error, never a hold, a charge of nothing or a balance of zero.
 */
import { describe, expect, it } from "vitest";
import { ReplyReader, decodeBalances, decodeCommit, decodeReserve } from "../src/redis/wire.js";
import { storageOp } from "../../../test/support/ledger-suite.js";

/** A reply: a code byte, then four amounts, no expired ids and a time, as a hold's is laid out. */
function reply(code: number): ReplyReader {
  const parts = [Buffer.from([code])];
  for (let i = 0; i < 4; i++) {
    const amount = Buffer.alloc(8);
    amount.writeDoubleBE(50_000_000);
    parts.push(amount);
  }
  const none = Buffer.alloc(4);
  const at = Buffer.alloc(8);
  at.writeDoubleBE(1_800_000_000_000);
  return new ReplyReader(Buffer.concat([...parts, none, at]));
}

describe("the Redis ledger's replies", () => {
  it("reads the script's hold as a hold", () => {
    expect(decodeReserve(reply(1), storageOp("a", 1, 10))).toMatchObject({ ok: true });
  });

  it.each([9, 42, 255])("refuses a reserve answered with code %i, never a hold", (code) => {
    const outcome = decodeReserve(reply(code), storageOp("a", 1, 10));
    expect(outcome).toBeInstanceOf(RangeError);
    expect((outcome as RangeError).message).toMatch(/does not send/);
  });

  it.each([4, 9, 255])(
    "refuses a commit answered with code %i, never as nothing charged",
    (code) => {
      expect(decodeCommit(reply(code))).toBeInstanceOf(RangeError);
    },
  );

  it("refuses balances that do not answer every account asked for", () => {
    const short = Buffer.concat([Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(8)]);
    expect(() => decodeBalances(new ReplyReader(short), ["a|usdMicros", "b|usdMicros"])).toThrow(
      /0 balances for 2 accounts/,
    );
  });
});
