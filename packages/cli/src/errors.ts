/**
 * The CLI's own failures, each with its exit code (README.md): a usage error (2) is the caller's
 * input — flags, files, malformed tokens; a rejection (1) is a well-formed request that the token,
 * the verifier or the enforcer refused.
 */
export const EXIT = Object.freeze({ ok: 0, rejected: 1, usage: 2 });

export class CliError extends Error {
  override readonly name: string = "CliError";
  readonly exitCode: number;
  /**
   * The `code` of the `--json` error object `{ ok: false, code, message, ...details }`: the
   * library's code (ERR_EXPIRED, …) when it refused, else USAGE or REJECTED. The MCP server uses the same shape.
   */
  readonly code: string;
  /** Structured details for `--json` output. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    message: string,
    exitCode: number,
    details: Readonly<Record<string, unknown>> = {},
    code?: string,
  ) {
    super(message);
    this.exitCode = exitCode;
    this.details = details;
    this.code = code ?? (exitCode === EXIT.usage ? "USAGE" : "REJECTED");
  }

  /**
   * The one error shape of `--json` and of the MCP server's error results (packages/cli/README.md):
   * `ok`, `code` and `message` first, then the details; a detail never replaces those three.
   */
  toJSON(): Record<string, unknown> {
    const json: Record<string, unknown> = { ok: false, code: this.code, message: this.message };
    for (const [key, value] of Object.entries(this.details)) if (!(key in json)) json[key] = value;
    return json;
  }
}

/** Bad flags, a missing or unreadable file, input that is not what it should be. Exit 2. */
export class UsageError extends CliError {
  override readonly name = "UsageError";
  constructor(message: string, details: Readonly<Record<string, unknown>> = {}, code?: string) {
    super(message, EXIT.usage, details, code);
  }
}

/** Refused: verification failed, widening, wrong key, denied. Exit 1. */
export class RejectedError extends CliError {
  override readonly name = "RejectedError";
  constructor(message: string, details: Readonly<Record<string, unknown>> = {}, code?: string) {
    super(message, EXIT.rejected, details, code);
  }
}

/**
 * Thrown by a command whose answer is "no" without anything having failed (`check` answering
 * DENY), after it printed that answer, `ok: true` and all: `main` exits 1 ("rejected or denied")
 * and prints nothing more. Thrown, not kept in a module's flag, so that the answer travels with its
 * own run: runs of `main` in one process may overlap, and one run's DENY must not become another's.
 */
export class DeniedAnswer extends Error {
  override readonly name = "DeniedAnswer";
  constructor() {
    super("the answer printed was: denied");
  }
}
