/**
 * The CLI's own failures, each with its exit code (README.md): a usage error (2) is the caller's
 * input — flags, files, malformed tokens; a rejection (1) is a well-formed request that the token,
 * the verifier or the enforcer refused.
 */
export const EXIT = Object.freeze({ ok: 0, rejected: 1, usage: 2 });

export class CliError extends Error {
  override readonly name: string = "CliError";
  readonly exitCode: number;
  /** Structured details for `--json` output. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(message: string, exitCode: number, details: Readonly<Record<string, unknown>> = {}) {
    super(message);
    this.exitCode = exitCode;
    this.details = details;
  }
}

/** Bad flags, a missing or unreadable file, input that is not what it should be. Exit 2. */
export class UsageError extends CliError {
  override readonly name = "UsageError";
  constructor(message: string, details: Readonly<Record<string, unknown>> = {}) {
    super(message, EXIT.usage, details);
  }
}

/** Refused: verification failed, widening, wrong key, denied. Exit 1. */
export class RejectedError extends CliError {
  override readonly name = "RejectedError";
  constructor(message: string, details: Readonly<Record<string, unknown>> = {}) {
    super(message, EXIT.rejected, details);
  }
}
