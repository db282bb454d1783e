/** Helpers shared by the commands: mapping library errors to CLI errors. */
import { AllowanceError } from "@allowance/core";
import { RejectedError, UsageError } from "../errors.js";
import { describeViolation, errorDetails } from "../describe.js";
import { messageOf } from "../io.js";

/** The forms `--ledger` takes, in every command's help (ledger-spec.ts opens them). */
export const LEDGER_FORMS =
  "sqlite:PATH (an existing ledger, left unchanged), redis://HOST:PORT, or memory (always empty)";

/** `--policy`'s help, for the commands that price tools in risk points (policy.ts reads it). */
export const POLICY_HELP =
  'the risk policy the enforcer uses, JSON, e.g. {"tools": {"send_email": 10}} (without it every tool costs 0 risk points)';

/**
 * The `--ledger` a command needs. It is not optional: an empty in-memory ledger would find every
 * budget untouched, so asking one takes saying so (`--ledger memory`). `verb`: what the command
 * does with the memory one ("reads", "asks", "serves").
 */
export function requireLedger(spec: string | undefined, command: string, verb: string): string {
  if (spec === undefined)
    throw new UsageError(
      `${command} needs --ledger: the ledger the enforcer writes to, e.g. --ledger sqlite:ledger.db or --ledger redis://127.0.0.1:6379 (--ledger memory ${verb} an empty one)`,
    );
  return spec;
}

/**
 * Runs a library call on user input. Its TypeError or RangeError is the user's input being wrong
 * (exit 2); an AllowanceError is the token refusing (exit 1), with every violation when it has them.
 */
export function libraryCall<T>(call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw asCliError(error);
  }
}

export function isAllowanceError(error: unknown): error is AllowanceError {
  return error instanceof AllowanceError;
}

export function asCliError(error: unknown): unknown {
  if (error instanceof AllowanceError) return rejection(error);
  if (error instanceof TypeError || error instanceof RangeError)
    return new UsageError(messageOf(error));
  return error;
}

/** An AllowanceError as a one-line rejection; `--json` gets its structure. */
export function rejection(error: AllowanceError, prefix = "refused"): RejectedError {
  const where = error.linkIndex === undefined ? "" : ` at link ${error.linkIndex}`;
  const details = errorDetails(error);
  if (error.violations.length > 0 && (error.code === "ERR_WIDENED" || error.code === "ERR_DEPTH")) {
    const list = error.violations.map(describeViolation).join("; ");
    return new RejectedError(
      `${prefix} (${error.code}${where}): the grant is wider than its parent: ${list}. Ask for no more than the parent has`,
      details,
      error.code,
    );
  }
  const hint =
    error.code === "ERR_KEY" ? "; pass --key with the private key of the token's holder" : "";
  return new RejectedError(
    `${prefix} (${error.code}${where}): ${messageOf(error)}${hint}`,
    details,
    error.code,
  );
}
