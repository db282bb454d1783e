/** What a call did: "accepted", or the code of the AllowanceError it threw. Anything else is rethrown. */
import { AllowanceError, type ErrorCode } from "@allowance/core";

export function outcome(run: () => unknown): ErrorCode | "accepted" {
  try {
    run();
    return "accepted";
  } catch (error) {
    if (error instanceof AllowanceError) return error.code;
    throw error;
  }
}

export async function outcomeAsync(run: () => Promise<unknown>): Promise<ErrorCode | "accepted"> {
  try {
    await run();
    return "accepted";
  } catch (error) {
    if (error instanceof AllowanceError) return error.code;
    throw error;
  }
}
