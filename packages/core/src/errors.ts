/**
 * Every way a token can be refused (spec/format.md §9 defines when each code is raised and in which
 * order checks run), and the ledgers' own refusals. In the order §9 lists them.
 */
export const ERROR_CODES = Object.freeze([
  "ERR_MALFORMED",
  "ERR_NON_CANONICAL",
  "ERR_LIMIT",
  "ERR_UNKNOWN_ROOT",
  "ERR_KEY",
  "ERR_SIGNATURE",
  "ERR_WIDENED",
  "ERR_DEPTH",
  "ERR_EXPIRED",
  "ERR_NOT_YET_VALID",
  "ERR_AUDIENCE",
  "ERR_REVOKED",
  "ERR_PRESENTATION",
  "ERR_STALE",
  "ERR_REPLAY",
  "ERR_NO_CREDENTIALS",
  // Ledgers (spec/enforcement.md §3.6, §8): a reservation id already in use; stored state this
  // version cannot read (a newer schema, a missing line set) or that was lost; a caller whose
  // clock is too far from the ledger's (§3.8); a store that may lose what it acknowledged (§8.1).
  "ERR_RESERVATION_CONFLICT",
  "ERR_LEDGER_STATE",
  "ERR_CLOCK_SKEW",
  "ERR_LEDGER_NOT_DURABLE",
  // An extend of a reservation the ledger does not know, or no longer holds (§3.11).
  "ERR_RESERVATION_UNKNOWN",
  "ERR_RESERVATION_CLOSED",
  // A revocation list that could not be read or written (spec/presentation.md §6.3, §9): a
  // malformed or unreadable file, a lock not obtained in time. Not ERR_REVOKED: no link is named.
  "ERR_REVOCATION_UNAVAILABLE",
] as const);

/** One code of ERROR_CODES: a closed union, so that `switch (err.code)` narrows. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** One way a child grant exceeds its parent. `field` is a dotted path such as `providers.openai.usdMicros`. */
export interface Violation {
  readonly field: string;
  /** `widened`: the child asks for more than the parent has; `exhausted`: the parent may not be extended at all. */
  readonly reason: "widened" | "exhausted";
  readonly parent: unknown;
  readonly child: unknown;
}

export interface AllowanceErrorOptions {
  /** Index of the link that failed, root = 0; absent when the token as a whole is unreadable. */
  readonly linkIndex?: number;
  readonly field?: string;
  readonly limit?: number;
  readonly actual?: number;
  readonly violations?: readonly Violation[];
}

/**
 * The one error type for problems with a token or grant. Misuse of the API (wrong argument types)
 * throws TypeError or RangeError instead.
 */
export class AllowanceError extends Error {
  override readonly name = "AllowanceError";
  readonly code: ErrorCode;
  readonly linkIndex: number | undefined;
  readonly field: string | undefined;
  readonly limit: number | undefined;
  readonly actual: number | undefined;
  readonly violations: readonly Violation[];

  constructor(code: ErrorCode, message: string, options: AllowanceErrorOptions = {}) {
    super(message);
    this.code = code;
    this.linkIndex = options.linkIndex;
    this.field = options.field;
    this.limit = options.limit;
    this.actual = options.actual;
    this.violations = options.violations ?? [];
  }

  /**
   * Every field, JSON-safe: an absent `linkIndex`, `field`, `limit` or `actual` is null, so that
   * the shape never changes. spec/vectors compare `code` and `linkIndex`.
   */
  toJSON(): AllowanceErrorJSON {
    return {
      code: this.code,
      linkIndex: this.linkIndex ?? null,
      field: this.field ?? null,
      message: this.message,
      limit: this.limit ?? null,
      actual: this.actual ?? null,
      violations: this.violations,
    };
  }
}

/** The JSON form of an AllowanceError (`toJSON`). */
export interface AllowanceErrorJSON {
  readonly code: ErrorCode;
  readonly linkIndex: number | null;
  readonly field: string | null;
  readonly message: string;
  readonly limit: number | null;
  readonly actual: number | null;
  readonly violations: readonly Violation[];
}

export function isAllowanceError(value: unknown): value is AllowanceError {
  return value instanceof AllowanceError;
}
