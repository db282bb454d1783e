/** Runs one fuzz input against its target; shared by scripts/fuzz.ts and the corpus replay test. */
import { AllowanceError } from "@allowance/core";
import { fromBase64url } from "@allowance/core/format";
import {
  verify,
  verifyPresentation,
  type Authorizer,
  type ReplayCache,
  type Verifier,
} from "@allowance/verifier";
import { FUZZ_AUD, FUZZ_NOW, type FuzzFixture } from "./fuzz-fixture.js";

export interface FuzzInput {
  /**
   * verify-resigned: the leaf payload mutated and signed again by its rightful signer. The holder
   * may sign any narrower grant, so acceptance is legitimate there ("resigned-valid"), as long as
   * the result is within the parent, which verify itself guarantees and the narrowing laws test.
   */
  readonly target:
    "parse" | "verify" | "verify-resigned" | "verify-cached" | "presentation" | "middleware";
  readonly kind: "bytes" | "string";
  /** base64url for bytes. */
  readonly value: string;
}

export interface FuzzContext {
  readonly fixture: FuzzFixture;
  readonly cached: Verifier;
  readonly authorizer: Authorizer;
  readonly replay: ReplayCache;
}

/**
 * The outcome: an error code, "parsed", "genuine" (a real token or presentation accepted), or
 * "ACCEPTED" (something else accepted: a bug). Throws only for untyped exceptions (also a bug).
 */
export async function runFuzzInput(input: FuzzInput, context: FuzzContext): Promise<string> {
  const value: Uint8Array | string =
    input.kind === "bytes" ? (fromBase64url(input.value) ?? new Uint8Array()) : input.value;
  const { fixture } = context;
  try {
    switch (input.target) {
      case "parse": {
        const { parseToken } = await import("@allowance/core");
        parseToken(value);
        return "parsed";
      }
      case "verify":
        verify(value, { roots: fixture.roots, now: () => FUZZ_NOW * 1000 });
        return fixture.isGenuineToken(value) ? "genuine" : "ACCEPTED";
      case "verify-resigned":
        verify(value, { roots: fixture.roots, now: () => FUZZ_NOW * 1000 });
        return "resigned-valid";
      case "verify-cached":
        context.cached.verify(value, { now: () => FUZZ_NOW * 1000 });
        return fixture.isGenuineToken(value) ? "genuine" : "ACCEPTED";
      case "presentation":
        await verifyPresentation(String(value), {
          roots: fixture.roots,
          audience: FUZZ_AUD,
          now: () => FUZZ_NOW * 1000,
          replay: context.replay,
          method: "POST",
          path: "/search",
        });
        return fixture.presentations.includes(String(value)) ? "genuine" : "ACCEPTED";
      case "middleware": {
        const result = await context.authorizer.authorize(String(value), "POST", "/search");
        if (!result.ok) return result.rejection.body.code;
        return fixture.presentations.includes(String(value).replace(/^Allowance +/i, ""))
          ? "genuine"
          : "ACCEPTED";
      }
    }
  } catch (error) {
    if (error instanceof AllowanceError) return error.code;
    throw error;
  }
}
