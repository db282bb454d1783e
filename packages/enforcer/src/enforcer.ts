/**
 * The enforcer (spec/enforcement.md): reserve / commit / release against every link of a verified
 * chain, so no agent, and no group of sibling agents, spends more than any ancestor was given.
 */
import { EventEmitter } from "node:events";
import {
  AllowanceError,
  checkArguments,
  type ArgumentConstraint,
  type ArgumentDenial,
  type ArgumentScalar,
  type KeyPair,
} from "@allowance/core";
import { ARGUMENT_NAME, signingKeyOf, toolAllowed } from "@allowance/core/format";
import { isVerifiedChain, type VerifiedChain, type VerifiedLink } from "@allowance/verifier";
import {
  MAX_HOLD_MS,
  checkKnownKeys,
  checkedAmount,
  checkedDebtLimits,
  checkedObject,
  checkedTime,
  isSyncLedger,
  shown,
  type AccountRef,
  type Balance,
  type BalancesOutcome,
  type Ledger,
  type ReserveOp,
  type SyncLedger,
} from "./ledger.js";
import {
  LINE_KINDS,
  availableOf,
  bucketEndsAt,
  debtOf,
  decide,
  denyIfBlocked,
  holdAnyway,
  holdEnd,
  kindsOf,
  thresholdsCrossed,
  type Account,
  type Amounts,
  type ChargedLine,
  type CommitOutcome,
  type DebtLimits,
  type ExtendOutcome,
  type LedgerLine,
  type LineKind,
  type ReleaseOutcome,
  type ReserveOutcome,
} from "./rule.js";
import {
  checkedIdempotencyKey,
  fingerprintOf,
  keyedReservationId,
  newReservationId,
} from "./idempotency.js";
import { MemoryLedger } from "./memory-ledger.js";
import { signReceipt, type Receipt } from "./receipts.js";
import { parseRiskPolicy, riskOf, type RiskPolicy } from "./policy.js";

/** Why reserve() or check() denied (spec/enforcement.md §2). */
export const DENY_REASONS = Object.freeze([
  "BUDGET_TOKENS",
  "BUDGET_USD",
  "BUDGET_RISK",
  "PROVIDER_NOT_ALLOWED",
  "MODEL_NOT_ALLOWED",
  "TOOL_NOT_ALLOWED",
  "ARGUMENT_NOT_ALLOWED",
  "RATE_LIMITED",
  "DEBT_OUTSTANDING",
  "EXPIRED",
  "NOT_YET_VALID",
] as const);
export type DenyReason = (typeof DENY_REASONS)[number];

export interface ReserveRequest {
  readonly chain: VerifiedChain;
  /** The LLM provider, checked against every link's `providers`. */
  readonly provider?: string;
  readonly model?: string;
  /** The tool, checked against every link's `tools`, and priced in risk points by the policy. */
  readonly tool?: string;
  /**
   * The tool call's arguments, as parsed JSON: checked against the effective `args` (spec/
   * arguments.md §6) when the grant states any. Absent counts as `{}`, so a constrained argument
   * left out is `missing`: pass the very object the tool will run with. Needs `tool`.
   */
  readonly arguments?: unknown;
  /** Estimated tokens (input + output). */
  readonly tokens?: number;
  /** Estimated cost in micro-dollars. */
  readonly usdMicros?: number;
  /** Risk points; by default the policy's cost of `tool`. */
  readonly risk?: number;
  /**
   * Accept a smaller reservation when the request does not fit: the largest tokens and
   * micro-dollars that fit on every link, down to these minimums (default 1).
   */
  readonly acceptCaps?: boolean | { readonly minTokens?: number; readonly minUsdMicros?: number };
}

export interface ReserveOptions {
  /** Seconds until an uncommitted hold releases itself: more than 0, at most MAX_TTL_SECONDS. Default 60. */
  readonly ttl?: number;
  /**
   * Makes the reserve safe to retry (spec/enforcement.md §3.10): the key names the reservation
   * (its id is the chain's root, `.key:` and the key), so a retry whose first answer was lost gets
   * the first decision again instead of a second hold; the same key for another request (chain,
   * names, amounts, arguments, caps or TTL) is refused with ERR_RESERVATION_CONFLICT. Remembered
   * as long as the ledger keeps the reservation (§8). 1 to 128 characters.
   */
  readonly idempotencyKey?: string;
}

/** What extend() answers: the hold's expiry now (epoch ms, by the ledger's clock). */
export interface ExtendResult {
  readonly expiresAt: number;
}

/** The longest TTL a reservation may ask for: 7 days (spec/enforcement.md §3.6). */
export const MAX_TTL_SECONDS = MAX_HOLD_MS / 1000;

/** The longest provider, model or tool name a request may name, in UTF-16 units. */
export const MAX_REQUEST_NAME_LENGTH = 256;

/** How an enforcer treats its decisions (spec/enforcement.md §2.3). */
export const ENFORCER_MODES = Object.freeze(["enforce", "shadow"] as const);
export type EnforcerMode = (typeof ENFORCER_MODES)[number];

/**
 * What enforcing mode would have answered a request that shadow mode let through: its denial, or
 * the smaller amounts it would have held (spec/enforcement.md §2.3).
 */
export type ShadowedDecision =
  | Extract<Decision, { decision: "DENY" }>
  | {
      readonly decision: "ALLOW_WITH_CAPS";
      readonly caps: { readonly tokens?: number; readonly usdMicros?: number };
    };

export type Decision =
  | {
      readonly decision: "ALLOW";
      readonly reservationId: string;
      readonly expiresAt: number;
      readonly amounts: Amounts;
      /** Shadow mode only (§2.3): this decision was not enforced; the amounts asked are held. */
      readonly enforced?: false;
      /** Shadow mode only: what enforcing mode would have answered, when it is not ALLOW. */
      readonly wouldBe?: ShadowedDecision;
    }
  | {
      readonly decision: "ALLOW_WITH_CAPS";
      readonly reservationId: string;
      readonly expiresAt: number;
      readonly amounts: Amounts;
      /** What was reserved instead of what was asked: stay within these. */
      readonly caps: { readonly tokens?: number; readonly usdMicros?: number };
    }
  | {
      readonly decision: "DENY";
      readonly reason: DenyReason;
      /** The link that denied, root = 0. */
      readonly linkIndex: number;
      readonly linkId: string;
      /** Which limit: `usdMicros`, `providers.openai.tokens`, `rate.3600s.tokens`, … */
      readonly field: string;
      /** For budget and rate denials: what was still available (never below 0). */
      readonly available?: number;
      /** For budget and rate denials: the cap of the line that denied. */
      readonly limit?: number;
      /** For budget and rate denials: the amount the request asked of that line. */
      readonly requested?: number;
      /** For RATE_LIMITED, and DEBT_OUTSTANDING on a window: seconds until the window resets. */
      readonly retryAfter?: number;
      /** For DEBT_OUTSTANDING (§3.9): the line's outstanding debt, spent − cap − settled. */
      readonly debt?: number;
      /** For DEBT_OUTSTANDING: the most debt the overage policy lets a line of its kind carry. */
      readonly debtLimit?: number;
      /** For ARGUMENT_NOT_ALLOWED: the tool, entry pattern, argument and constraint that refused. */
      readonly argumentDenial?: ArgumentDenial;
      /** A sentence for a person: what was asked, what is left of which cap, on which link and field. */
      readonly detail: string;
    };

/**
 * What each kind could still take on every capped line the request would touch (its links, the
 * named provider's caps, the rate windows), never below 0; null where no line of that kind is capped.
 */
export type Fits = Readonly<Record<LineKind, number | null>>;

/**
 * What check() answers: reserve()'s decision without a hold, so no reservation id or expiry.
 * `fits` is present whenever the ledger was read (every answer but a denial by the grant itself).
 */
export type CheckResult =
  | {
      readonly decision: "ALLOW";
      readonly amounts: Amounts;
      readonly fits: Fits;
      /** Shadow mode only, as in a Decision. */
      readonly enforced?: false;
      readonly wouldBe?: ShadowedDecision;
    }
  | {
      readonly decision: "ALLOW_WITH_CAPS";
      readonly amounts: Amounts;
      readonly caps: { readonly tokens?: number; readonly usdMicros?: number };
      readonly fits: Fits;
    }
  | (Extract<Decision, { decision: "DENY" }> & { readonly fits?: Fits });

/** A ledger whose balances can be read without a promise (memory, SQLite): what checkSync() needs. */
interface SyncBalances {
  balancesSync(root: string, accounts: readonly AccountRef[], now?: number): BalancesOutcome;
}

export interface Usage {
  readonly tokens?: number;
  readonly usdMicros?: number;
  /** Defaults to the reserved risk. */
  readonly risk?: number;
}

export type CommitResult =
  | {
      readonly status: "committed";
      readonly already: boolean;
      readonly late: boolean;
      readonly overrun: Readonly<Partial<Record<LineKind, number>>>;
      /**
       * With `receipts` (spec/receipts.md): the commit's signed receipt. A repeated commit answers
       * the same receipt, byte for byte.
       */
      readonly receipt?: Receipt;
    }
  | { readonly status: "released" | "unknown" };

export type ReleaseResult = {
  readonly status: "released" | "committed" | "expired" | "unknown";
  readonly already: boolean;
};

export interface EnforcerEvents {
  denied: [
    {
      readonly decision: Extract<Decision, { decision: "DENY" }>;
      readonly labels: readonly string[];
      /** Shadow mode only: false, the request was let through and its amounts held (§2.3). */
      readonly enforced?: false;
    },
  ];
  /**
   * A call refused before any reservation, for a reason outside the chain's limits: the meter's
   * PROVIDER_OPEN, LOOP_DETECTED, UNKNOWN_MODEL_PRICE and the like.
   */
  refused: [
    {
      readonly reason: string;
      readonly field: string;
      readonly detail: string;
      readonly provider?: string;
      readonly model?: string;
      readonly labels: readonly string[];
    },
  ];
  /**
   * Every event of a reservation carries `eventId`, the same wherever and however often it is
   * raised: the reservation id, a colon and the effect (spec/enforcement.md §7.2). Consumers
   * drop the ids they have seen.
   */
  reserved: [
    {
      readonly reservationId: string;
      readonly eventId: string;
      readonly amounts: Amounts;
      readonly capped: boolean;
    },
  ];
  /**
   * A commit, with the context of its reservation (labels, provider, model, tool) as recorded when
   * it was reserved. The context is recorded only while the enforcer has a `committed` listener:
   * add listeners before reserving, or reservations made before carry empty labels.
   */
  committed: [
    {
      readonly reservationId: string;
      readonly eventId: string;
      readonly charged: Amounts;
      readonly late: boolean;
      /** The enforcer's clock when it raised the event, epoch ms. */ readonly at: number;
    } & ReservationContext,
  ];
  released: [{ readonly reservationId: string; readonly eventId: string }];
  expired: [{ readonly reservationId: string; readonly eventId: string }];
  overrun: [
    {
      readonly reservationId: string;
      readonly eventId: string;
      readonly kind: LineKind;
      readonly reserved: number;
      readonly actual: number;
    },
  ];
  threshold: [
    {
      readonly reservationId: string;
      readonly eventId: string;
      readonly linkId: string;
      readonly field: string;
      readonly percent: 50 | 80 | 100;
      readonly spent: number;
      readonly cap: number;
    },
  ];
  /**
   * A commit's signed receipt (spec/receipts.md), for a log a parent can audit offline. A commit
   * repeated after a lost reply raises its receipt again, the same bytes: keep one per root and
   * sequence number.
   */
  receipt: [Receipt];
  /** An operator settled a line's debt (settle(), spec/enforcement.md §3.9). */
  settled: [
    {
      readonly linkId: string;
      readonly field: string;
      readonly amount: number;
      readonly spent: number;
      readonly cap: number;
      /** When the settle ran (epoch ms, the enforcer's clock). */
      readonly at: number;
      /**
       * `settled:<linkId>:<field>:<spent>:<at>`: each settlement's own. The spent alone is not:
       * a rate window's resets with each bucket, so two settlements can share it.
       */
      readonly eventId: string;
    },
  ];
}

/** What a reservation was for, kept in this process until it closes, for attribution on commit. */
export interface ReservationContext {
  /** The labels the chain's links state, root first (links without one are skipped). */
  readonly labels: readonly string[];
  /** Each link's own label or null, index-aligned with `linkIds`. */
  readonly linkLabels: readonly (string | null)[];
  readonly linkIds: readonly string[];
  readonly provider?: string;
  readonly model?: string;
  readonly tool?: string;
}

/** Every key of EnforcerOptions: any other is refused. */
/**
 * The keys of a ReserveRequest and of ReserveOptions: any other is a misspelling (`usd`,
 * `idempotencykey`) that would hold nothing or hold twice, refused with a TypeError.
 */
const REQUEST_KEYS: ReadonlySet<string> = new Set(
  Object.keys({
    chain: 0,
    provider: 0,
    model: 0,
    tool: 0,
    arguments: 0,
    tokens: 0,
    usdMicros: 0,
    risk: 0,
    acceptCaps: 0,
  } satisfies Record<keyof ReserveRequest, 0>),
);
const RESERVE_OPTION_KEYS: ReadonlySet<string> = new Set(
  Object.keys({
    ttl: 0,
    idempotencyKey: 0,
  } satisfies Record<keyof ReserveOptions, 0>),
);

function knownKeys(value: object, known: ReadonlySet<string>, name: string): void {
  // for…in rather than Object.keys: no array per call (the value is a checked plain object).
  for (const key in value)
    if (!known.has(key))
      throw new TypeError(`"${name}" takes ${[...known].join(", ")}, got ${shown(key)}`);
}

const ENFORCER_OPTIONS = Object.keys({
  ledger: 0,
  policy: 0,
  now: 0,
  mode: 0,
  overage: 0,
  receipts: 0,
} satisfies Record<keyof EnforcerOptions, 0>);

export interface EnforcerOptions {
  /** Default: a new MemoryLedger on this enforcer's clock (`now`). */
  readonly ledger?: Ledger;
  readonly policy?: RiskPolicy;
  /**
   * The clock in epoch milliseconds: what the links' `exp` and `nbf` are checked against, and what
   * a reserve tells the ledger it read (`clientNowMs`), which refuses it when the two are further
   * apart than its bound (spec/enforcement.md §3.8). Expiry and rate windows follow the ledger's
   * clock, not this one.
   */
  readonly now?: () => number;
  /**
   * `enforce` (default): denials deny. `shadow`: decide, hold, charge and emit exactly as when
   * enforcing, but never deny or lower: every reserve holds the amounts asked and answers ALLOW
   * with `enforced: false` and, where enforcing would not have allowed them, `wouldBe`
   * (spec/enforcement.md §2.3). For switching budgets on over live traffic, observing first.
   */
  readonly mode?: EnforcerMode;
  /**
   * What follows spend past a cap, on every link (spec/enforcement.md §3.9). Spend that happened
   * is always charged; the policy decides what the excess, the debt, does to new reservations:
   * `record` (default) — nothing more than the cap itself does; `block` — a line in debt denies
   * every reservation that touches it (the link and all below it) with DEBT_OUTSTANDING until
   * settle() or, for a rate window, its next bucket; `{ overdraft: { usdMicros, … } }` — as
   * block, once a line's debt is past the limit for its kind (a kind not named: 0).
   */
  readonly overage?: OveragePolicy;
  /**
   * Sign a receipt of every commit with `key`, the enforcer's Ed25519 key (spec/receipts.md): the
   * ledger numbers each root's receipted commits in sequence, atomically with the charge, and the
   * enforcer signs each with the digest of the entry before it. Needs a ledger with `receipts`.
   */
  readonly receipts?: { readonly key: KeyPair };
}

/**
 * What follows spend past a cap (spec/enforcement.md §3.9): see EnforcerOptions.overage. Set per
 * enforcer, not in the token: it is how the one who runs the ledger treats spend that already
 * happened, not a limit on what a holder may be given.
 */
export type OveragePolicy =
  "record" | "block" | { readonly overdraft: Readonly<Partial<Record<LineKind, number>>> };

/** What settle() did (spec/enforcement.md §3.9): each line whose debt it settled, and how much. */
export interface SettleResult {
  readonly at: number;
  readonly settled: readonly {
    readonly linkIndex: number;
    readonly linkId: string;
    readonly field: string;
    readonly kind: LineKind;
    readonly cap: number;
    /** The debt settled: spent − cap − what was settled before. */
    readonly amount: number;
  }[];
}

/** Options of settle(). */
export interface SettleOptions {
  /** Settle only this link's lines (root = 0); default every link of the chain. */
  readonly linkIndex?: number;
}

const NO_OVERRUN: Readonly<Partial<Record<LineKind, number>>> = Object.freeze({});
/** Effects whose events this enforcer raised, remembered at most this many (§7.2). */
const MAX_RAISED = 10_000;
const NONE: readonly string[] = Object.freeze([]);
const NO_CONTEXT: ReservationContext = Object.freeze({ labels: [], linkLabels: [], linkIds: [] });
const MAX_CONTEXTS = 100_000;

export class Enforcer extends EventEmitter<EnforcerEvents> {
  readonly ledger: Ledger;
  /** `enforce`, or `shadow`: decisions recorded and reported, never enforced (§2.3). */
  readonly mode: EnforcerMode;
  /** What follows spend past a cap (§3.9), as given (default `record`). */
  readonly overage: OveragePolicy;
  /** The overage policy as the ledger applies it: undefined for `record`. */
  readonly #debtLimits: DebtLimits | undefined;
  /** The key that signs receipts, when the enforcer signs them. */
  readonly #receiptKey: KeyPair | undefined;
  /** The ledger, when its operations are synchronous (for the `…Sync` methods). */
  readonly #sync: SyncLedger | undefined;
  /** The ledger, when the promise-returning methods may call its `…Sync` methods: one promise fewer per call. */
  readonly #direct: SyncLedger | undefined;
  readonly #policy: RiskPolicy;
  readonly #now: () => number;
  /** Lines per chain and provider, rebuilt when a rate window's bucket changes. */
  readonly #templates = new WeakMap<VerifiedChain, Map<string, Template>>();
  /** Sources of provider health (the meter's circuit breakers), shown by remaining(). */
  readonly #providerStatus = new Set<() => Readonly<Record<string, ProviderStatus>>>();
  /** Context of open reservations, for attribution on commit. */
  readonly #contexts = new Map<string, ReservationContext>();
  /**
   * Effects (`<reservation id>:<effect>`) whose events this enforcer raised, while anyone listened:
   * a repeat the ledger answers `already` raises them only if this enforcer has not (§7.2).
   */
  readonly #raised = new Set<string>();

  constructor(options: EnforcerOptions = {}) {
    super();
    if (typeof options !== "object" || options === null)
      throw new TypeError(`"options" expected an object, got ${shown(options)}`);
    // A misspelt `ledger` would leave this enforcer on a fresh in-memory ledger of its own: budgets
    // the operator meant to share between processes would not be.
    checkKnownKeys(options, ENFORCER_OPTIONS, "");
    if (
      options.ledger !== undefined &&
      (typeof options.ledger !== "object" ||
        options.ledger === null ||
        typeof options.ledger.reserve !== "function")
    )
      throw new TypeError(`"ledger" expected a Ledger, got ${shown(options.ledger)}`);
    if (options.now !== undefined && typeof options.now !== "function")
      throw new TypeError(
        `"now" expected a function returning epoch milliseconds, got ${shown(options.now)}`,
      );
    this.ledger =
      options.ledger ?? new MemoryLedger(options.now === undefined ? {} : { now: options.now });
    this.#sync = isSyncLedger(this.ledger) ? this.ledger : undefined;
    // A ledger that groups the calls of one turn is faster through its promises under concurrency.
    this.#direct = this.ledger.groupsCalls === true ? undefined : this.#sync;
    // Parsed, not trusted: a cost of NaN or -1 would reach every reservation of that tool.
    this.#policy = options.policy === undefined ? { tools: {} } : parseRiskPolicy(options.policy);
    this.#now = options.now ?? Date.now;
    this.mode = modeOf(options.mode);
    // Only an absent policy is `record`: null is a mistake, not "no preference".
    this.overage = options.overage === undefined ? "record" : options.overage;
    this.#receiptKey = receiptKeyOf(options.receipts);
    if (this.#receiptKey !== undefined && this.ledger.receipts !== true)
      throw new TypeError(
        `receipts need a ledger that numbers them (spec/receipts.md); the ${this.ledger.name} ledger does not`,
      );
    this.#debtLimits = debtLimitsOf(this.overage);
    if (this.#debtLimits !== undefined && typeof this.ledger.settle !== "function")
      throw new TypeError(
        `the overage policy blocks on debt, which only settle() ends, and the ${this.ledger.name} ledger has no settle`,
      );
  }

  /**
   * Whether reserve(), commit(), release() and extend() run the ledger's operations synchronously
   * and only wrap the answer in a promise: then reserveSync(), commitSync(), releaseSync() and
   * extendSync() give the same answers, the same events, a few microtask turns sooner (the meter
   * uses them). False for a ledger whose operations are not synchronous, and for one that groups
   * the calls of one turn (SQLite's), which is faster through its promises under concurrency.
   */
  get synchronous(): boolean {
    return this.#direct !== undefined;
  }

  /** Checks and holds in one atomic step across every link of the chain. */
  async reserve(request: ReserveRequest, options: ReserveOptions = {}): Promise<Decision> {
    const prepared = this.#prepareReserve(request, options);
    if (!(prepared instanceof PreparedReserve)) return prepared;
    const outcome =
      this.#direct === undefined
        ? await this.ledger.reserve(prepared.op)
        : this.#direct.reserveSync(prepared.op);
    return this.#decide(request, prepared, outcome);
  }

  /**
   * reserve() without a promise, for a ledger whose operations are synchronous (MemoryLedger,
   * SqliteLedger): the same decision, returned directly. Throws a TypeError on any other ledger.
   */
  reserveSync(request: ReserveRequest, options: ReserveOptions = {}): Decision {
    const sync = this.#requireSync("reserveSync");
    const prepared = this.#prepareReserve(request, options);
    if (!(prepared instanceof PreparedReserve)) return prepared;
    return this.#decide(request, prepared, sync.reserveSync(prepared.op));
  }

  /** Charges what was really used. More than reserved is charged too, and reported as an overrun. */
  async commit(reservationId: string, usage: Usage): Promise<CommitResult> {
    assertId(reservationId);
    const actual = actualOf(usage);
    // The ledger's clock decides whether the hold had expired (§3.8): no time is passed.
    const options = this.#receiptKey === undefined ? undefined : WITH_RECEIPT;
    const outcome =
      this.#direct === undefined
        ? await this.ledger.commit(reservationId, actual, undefined, options)
        : this.#direct.commitSync(reservationId, actual, undefined, options);
    return this.#committed(reservationId, outcome);
  }

  /** commit() without a promise, for a synchronous ledger (see reserveSync). */
  commitSync(reservationId: string, usage: Usage): CommitResult {
    const sync = this.#requireSync("commitSync");
    assertId(reservationId);
    const options = this.#receiptKey === undefined ? undefined : WITH_RECEIPT;
    return this.#committed(
      reservationId,
      sync.commitSync(reservationId, actualOf(usage), undefined, options),
    );
  }

  async release(reservationId: string): Promise<ReleaseResult> {
    assertId(reservationId);
    return this.#released(
      reservationId,
      this.#direct === undefined
        ? await this.ledger.release(reservationId)
        : this.#direct.releaseSync(reservationId),
    );
  }

  /** release() without a promise, for a synchronous ledger (see reserveSync). */
  releaseSync(reservationId: string): ReleaseResult {
    const sync = this.#requireSync("releaseSync");
    assertId(reservationId);
    return this.#released(reservationId, sync.releaseSync(reservationId));
  }

  /**
   * A heartbeat for a long call (spec/enforcement.md §3.11): moves a held reservation's expiry to
   * `ttlSeconds` from now by the ledger's clock (at most MAX_TTL_SECONDS), never past the end of its
   * chain (its links' least `exp`) and never earlier than it was. A reservation the ledger does not
   * know is refused with ERR_RESERVATION_UNKNOWN, one it no longer holds (committed, released,
   * expired) with ERR_RESERVATION_CLOSED. Safe to retry.
   */
  async extend(reservationId: string, ttlSeconds: number): Promise<ExtendResult> {
    assertId(reservationId);
    const ttlMs = checkedTtl(ttlSeconds, "ttlSeconds") * 1000;
    return this.#extended(
      reservationId,
      this.#direct === undefined
        ? await this.ledger.extend(reservationId, ttlMs)
        : this.#direct.extendSync(reservationId, ttlMs),
    );
  }

  /** extend() without a promise, for a synchronous ledger (see reserveSync). */
  extendSync(reservationId: string, ttlSeconds: number): ExtendResult {
    const sync = this.#requireSync("extendSync");
    assertId(reservationId);
    const ttlMs = checkedTtl(ttlSeconds, "ttlSeconds") * 1000;
    return this.#extended(reservationId, sync.extendSync(reservationId, ttlMs));
  }

  #extended(reservationId: string, outcome: ExtendOutcome): ExtendResult {
    if (outcome.expired.length > 0) this.#expired(outcome.expired);
    if (outcome.status === "held") return { expiresAt: outcome.expiresAt };
    if (outcome.status === "unknown")
      throw new AllowanceError(
        "ERR_RESERVATION_UNKNOWN",
        `reservation ${reservationId} is not known to the ledger: never made, or forgotten after its retention`,
        { field: "reservationId" },
      );
    throw new AllowanceError(
      "ERR_RESERVATION_CLOSED",
      `reservation ${reservationId} is ${outcome.status}: only a held reservation can be extended`,
      { field: "reservationId" },
    );
  }

  /**
   * Whether to raise the events of an effect, while anyone listens (spec/enforcement.md §7.2):
   * yes for a new one, which is remembered; for one the ledger answers `already` (a retry whose
   * first answer was lost, or a repeat), only if this enforcer has not raised it. Remembered for
   * the latest MAX_RAISED effects: past that, a repeat raises again, with the same event ids.
   */
  #raise(effect: string, already: boolean): boolean {
    const raised = this.#raised;
    if (already && raised.has(effect)) return false;
    if (raised.size >= MAX_RAISED) raised.delete(raised.values().next().value as string);
    raised.add(effect);
    return true;
  }

  /** The clock's time, checked: a clock that returns NaN would make every expiry and window wrong. */
  #clock(): number {
    return checkedTime(this.#now(), "now()");
  }

  #requireSync(method: string): SyncLedger {
    if (this.#sync === undefined)
      throw new TypeError(
        `${method}() needs a synchronous ledger (memory or SQLite); the ${this.ledger.name} ledger is not: use the promise-returning method`,
      );
    return this.#sync;
  }

  /**
   * What reserve() would decide for this request now, holding nothing (spec/enforcement.md §2): the
   * same validation, grant checks and ledger rule (`decideAmounts` over the ledger's balances), in
   * the same order, with the same denial. Raises no `denied` event: a question is not a refusal.
   * Another caller may reserve between a check and a reserve: only reserve() holds.
   */
  async check(request: ReserveRequest): Promise<CheckResult> {
    const prepared = this.#prepareCheck(request);
    if (!(prepared instanceof PreparedReserve)) return prepared;
    const { op } = prepared;
    const outcome = await this.ledger.balances(op.root, op.lines);
    return this.#checked(request.chain, prepared, outcome);
  }

  /**
   * check() without a promise, for a synchronous ledger with `balancesSync` (MemoryLedger,
   * SqliteLedger): the same answer. Throws a TypeError on any other ledger.
   */
  checkSync(request: ReserveRequest): CheckResult {
    const ledger = this.ledger as Partial<SyncBalances>;
    if (typeof ledger.balancesSync !== "function")
      throw new TypeError(
        `checkSync() needs a synchronous ledger (memory or SQLite); the ${this.ledger.name} ledger is not: use check()`,
      );
    const prepared = this.#prepareCheck(request);
    if (!(prepared instanceof PreparedReserve)) return prepared;
    const { op } = prepared;
    return this.#checked(request.chain, prepared, ledger.balancesSync(op.root, op.lines));
  }

  #prepareCheck(request: ReserveRequest): CheckResult | PreparedReserve {
    checkedObject(request, "request");
    knownKeys(request, REQUEST_KEYS, "request");
    const chain = verifiedChain(request.chain);
    return this.#prepare(request, chain, undefined, false);
  }

  /** reserve()'s decision on a ledger's balances, by the ledger's own rule, holding nothing. */
  #checked(chain: VerifiedChain, prepared: PreparedReserve, outcome: BalancesOutcome): CheckResult {
    const { op, template } = prepared;
    if (outcome.expired.length > 0) this.#expired(outcome.expired);
    const lines = template.lines;
    const accounts = lines.map((line): Account => {
      const balance = outcome.balances.get(line.account);
      return {
        spent: balance?.spent ?? 0,
        held: balance?.held ?? 0,
        settled: balance?.settled ?? 0,
      };
    });
    const fits = fitsOf(lines, accounts);
    const blocked =
      op.debtLimits === undefined
        ? undefined
        : denyIfBlocked(lines, template.kinds, accounts, op.debtLimits, NONE, outcome.at);
    const decided =
      blocked ?? decide(lines, template.kinds, accounts, op.amounts, op.minimums, NONE, outcome.at);
    if (op.shadow === true) {
      // As a shadow reserve: held as asked, whatever was decided; refused only past MAX_AMOUNT.
      const held = holdAnyway(decided, lines, template.kinds, accounts, op.amounts);
      if (held instanceof RangeError) throw held;
      const wouldBe =
        prepared.denied ??
        (decided instanceof RangeError
          ? undefined
          : !decided.ok
            ? this.#budgetDenial(chain, prepared, decided)
            : cappedOf(op.amounts, decided.amounts));
      return shadowed({ decision: "ALLOW", amounts: op.amounts, fits }, wouldBe);
    }
    // As the ledgers do: a total past MAX_AMOUNT is refused, not rounded (rule.ts).
    if (decided instanceof RangeError) throw decided;
    if (!decided.ok) return { ...this.#budgetDenial(chain, prepared, decided), fits };
    const amounts = decided.amounts;
    const caps = cappedOf(op.amounts, amounts);
    if (caps === undefined) return { decision: "ALLOW", amounts, fits };
    return { ...caps, amounts, fits };
  }

  /** Validates a request and checks the grants; a denial, or the ledger operation to run. */
  #prepareReserve(request: ReserveRequest, options: ReserveOptions): Decision | PreparedReserve {
    checkedObject(request, "request");
    knownKeys(request, REQUEST_KEYS, "request");
    const chain = verifiedChain(request.chain);
    checkedObject(options, "options");
    knownKeys(options, RESERVE_OPTION_KEYS, "options");
    // Only an absent ttl takes the default: null is a mistake, not "no preference".
    const ttl = options.ttl === undefined ? 60 : checkedTtl(options.ttl, "ttl");
    const key =
      options.idempotencyKey === undefined
        ? undefined
        : checkedIdempotencyKey(options.idempotencyKey);
    return this.#prepare(request, chain, ttl, true, key);
  }

  /**
   * The part of a reservation's preparation that reserve() and check() share, after the request
   * and chain are checked: names, amounts, grant checks, then the ledger lines. With `emit`, a
   * denial raises `denied`; `ttl` undefined (a check) leaves the id unused: no counter moves.
   */
  #prepare(
    request: ReserveRequest,
    chain: VerifiedChain,
    ttl: number | undefined,
    emit: boolean,
    key?: string,
  ): Extract<Decision, { decision: "DENY" }> | PreparedReserve {
    requestName(request.provider, "provider");
    requestName(request.model, "model");
    requestName(request.tool, "tool");
    const now = this.#clock();
    const tokens = amount(request.tokens, "tokens");
    const usdMicros = amount(request.usdMicros, "usdMicros");
    const risk =
      request.risk === undefined
        ? request.tool === undefined
          ? 0
          : riskOf(this.#policy, request.tool)
        : amount(request.risk, "risk");
    const minimums = minimumsOf(request.acceptCaps);

    const denial = this.#checkGrant(chain, request, now);
    let denied: Extract<Decision, { decision: "DENY" }> | undefined;
    if (denial !== undefined) {
      denied = this.#deny(chain, denial, emit);
      // Shadow mode goes on to hold, and reports the denial as what enforcing would have said.
      if (this.mode !== "shadow") return denied;
    }

    const template = this.#template(chain, request.provider);
    const root = chain.linkIds[0] as string;
    // Unique across processes by the random prefix, and within one by a counter that every enforcer
    // of the process shares: two enforcers may use one ledger. A check holds nothing: no id.
    // A keyed reservation's id is its key's, the same in every try (§3.10).
    const id =
      ttl === undefined
        ? `${root}.check`
        : key !== undefined
          ? keyedReservationId(root, key)
          : newReservationId(root);
    // The hold ends `ttl` after the ledger's time of the reserve, by the ledger's clock (§3.8).
    const ttlMs = (ttl ?? 60) * 1000;
    const op: { -readonly [K in keyof ReserveOp]: ReserveOp[K] } = {
      id,
      root,
      lines: template.lines,
      amounts: { tokens, usdMicros, risk, requests: 1 },
      ttlMs,
      clientNowMs: now,
    };
    if (minimums !== undefined) op.minimums = minimums;
    // The hold never outlives the chain (§3.11): the effective exp is the least of its links'. A
    // chain already past it reaches here only in shadow mode, whose hold keeps its TTL (§2.3).
    const end = chain.grant.exp === undefined ? undefined : chain.grant.exp * 1000;
    if (end !== undefined && end > now) op.notAfter = end;
    if (key !== undefined)
      op.fingerprint = fingerprintOf({
        leafId: chain.linkIds[chain.linkIds.length - 1] as string,
        provider: request.provider,
        model: request.model,
        tool: request.tool,
        arguments: request.arguments,
        tokens,
        usdMicros,
        risk,
        minimums,
        ttlSeconds: ttl as number,
      });
    if (this.mode === "shadow") op.shadow = true;
    if (this.#debtLimits !== undefined) op.debtLimits = this.#debtLimits;
    return new PreparedReserve(op, template, now, denied);
  }

  /** The decision for a ledger's outcome; records the reservation's context when it holds. */
  #decide(request: ReserveRequest, prepared: PreparedReserve, outcome: ReserveOutcome): Decision {
    const { op } = prepared;
    const chain = request.chain;
    if (outcome.expired.length > 0) this.#expired(outcome.expired);
    if (!outcome.ok) return this.#budgetDenial(chain, prepared, outcome, true);
    const id = op.id;
    // The hold's end by the ledger's clock: from its time of the reserve, never past the chain's
    // end (§3.11); a repeated reserve's is the first reserve's hold's, as it is now (§3.10).
    const expiresAt = outcome.expiresAt ?? holdEnd(outcome.at, op.ttlMs, op.notAfter);
    // Only a `committed` listener reads a context; without one, keeping it would cost every
    // reservation two map operations. Bounded: contexts of reservations never closed leave oldest first.
    if (this.listenerCount("committed") > 0) {
      if (this.#contexts.size >= MAX_CONTEXTS)
        this.#contexts.delete(this.#contexts.keys().next().value as string);
      this.#contexts.set(id, contextOf(chain, request));
    }
    const amounts = outcome.amounts;
    if (op.shadow === true) {
      // Held as asked (§2.3); what enforcing would have answered is reported, never enforced.
      const w = outcome.wouldBe;
      const wouldBe =
        prepared.denied ??
        (w === undefined
          ? undefined
          : w.ok
            ? cappedOf(op.amounts, w.amounts)
            : this.#budgetDenial(chain, prepared, { ...w, expired: NONE, at: outcome.at }, true));
      if (this.#raiseReserved(op, outcome))
        this.emit("reserved", {
          reservationId: id,
          eventId: `${id}:reserved`,
          amounts,
          capped: false,
        });
      const allow = { decision: "ALLOW" as const, reservationId: id, expiresAt };
      return shadowed({ ...allow, amounts }, wouldBe);
    }
    const { tokens, usdMicros } = op.amounts;
    const capped = amounts.tokens !== tokens || amounts.usdMicros !== usdMicros;
    if (this.#raiseReserved(op, outcome))
      this.emit("reserved", { reservationId: id, eventId: `${id}:reserved`, amounts, capped });
    if (!capped) return { decision: "ALLOW", reservationId: id, expiresAt, amounts };
    const granted: { tokens?: number; usdMicros?: number } = {};
    if (amounts.tokens !== tokens) granted.tokens = amounts.tokens;
    if (amounts.usdMicros !== usdMicros) granted.usdMicros = amounts.usdMicros;
    return {
      decision: "ALLOW_WITH_CAPS",
      reservationId: id,
      expiresAt,
      amounts,
      caps: granted,
    };
  }

  /**
   * Whether to raise `reserved` (§7.2): while anyone listens, for a new hold; for a keyed reserve
   * answered `already`, only if this enforcer has not raised it. Only keyed holds are remembered:
   * no other reserve can be answered `already`.
   */
  #raiseReserved(op: ReserveOp, outcome: Extract<ReserveOutcome, { ok: true }>): boolean {
    if (this.listenerCount("reserved") === 0) return false;
    if (op.fingerprint === undefined) return true;
    return this.#raise(`${op.id}:reserved`, outcome.already === true);
  }

  /** The denial for a ledger line that does not fit, for reserve() and check() alike. */
  #budgetDenial(
    chain: VerifiedChain,
    prepared: PreparedReserve,
    outcome: Extract<ReserveOutcome, { ok: false }>,
    emit = false,
  ): Extract<Decision, { decision: "DENY" }> {
    const { op, template } = prepared;
    const line = template.lines[outcome.line] as LedgerLine;
    // A window's bucket and its end are the ledger's (§4): counted from its time of the reserve.
    const windowEndsAt =
      line.windowMs === undefined ? undefined : bucketEndsAt(line.windowMs, outcome.at);
    if (outcome.debt !== undefined) return this.#debtDenial(chain, prepared, outcome, emit);
    const reason: DenyReason =
      windowEndsAt !== undefined
        ? "RATE_LIMITED"
        : line.kind === "tokens"
          ? "BUDGET_TOKENS"
          : line.kind === "usdMicros"
            ? "BUDGET_USD"
            : "BUDGET_RISK";
    const available = Math.max(0, outcome.available);
    const requested = op.amounts[line.kind];
    const retryAfter =
      windowEndsAt === undefined
        ? undefined
        : Math.max(1, Math.ceil((windowEndsAt - outcome.at) / 1000));
    return this.#deny(
      chain,
      {
        reason,
        linkIndex: line.linkIndex,
        field: line.field,
        available,
        ...(line.cap === null ? {} : { limit: line.cap }),
        requested,
        ...(retryAfter === undefined ? {} : { retryAfter }),
        detail: describeBudgetDenial({
          kind: line.kind,
          field: line.field,
          linkIndex: line.linkIndex,
          leafIndex: chain.links.length - 1,
          requested,
          available,
          limit: line.cap,
          ...(retryAfter === undefined ? {} : { retryAfter }),
        }),
      },
      emit,
    );
  }

  /** The overage policy's denial (§3.9): a line whose debt is past the policy's limit. */
  #debtDenial(
    chain: VerifiedChain,
    prepared: PreparedReserve,
    outcome: Extract<ReserveOutcome, { ok: false }>,
    emit: boolean,
  ): Extract<Decision, { decision: "DENY" }> {
    const { op, template } = prepared;
    const line = template.lines[outcome.line] as LedgerLine;
    const windowEndsAt =
      line.windowMs === undefined ? undefined : bucketEndsAt(line.windowMs, outcome.at);
    const debt = outcome.debt as number;
    const debtLimit = this.#debtLimits?.[line.kind] ?? 0;
    const retryAfter =
      windowEndsAt === undefined
        ? undefined
        : Math.max(1, Math.ceil((windowEndsAt - outcome.at) / 1000));
    const cap = line.cap as number;
    const window = /^rate\.(\d+)s\./.exec(line.field)?.[1];
    const whose =
      line.linkIndex === chain.links.length - 1
        ? "its grant allows"
        : `link ${line.linkIndex}'s grant allows it and every other agent under link ${line.linkIndex}`;
    const capText = `${line.kind === "usdMicros" ? formatUsdMicros(cap) : grouped(cap)}${window === undefined ? "" : ` per ${window}s window`}`;
    const past =
      debtLimit === 0 ? "" : `, more than the overage policy's ${quantity(line.kind, debtLimit)}`;
    const until =
      retryAfter === undefined ? "settled" : `settled or the window resets in ${retryAfter}s`;
    return this.#deny(
      chain,
      {
        reason: "DEBT_OUTSTANDING",
        linkIndex: line.linkIndex,
        field: line.field,
        available: Math.max(0, outcome.available),
        limit: cap,
        requested: op.amounts[line.kind],
        debt,
        debtLimit,
        ...(retryAfter === undefined ? {} : { retryAfter }),
        detail: `this agent's spend is ${quantity(line.kind, debt)} past the ${capText} ${whose}${past}: nothing more is allowed until that debt is ${until} (link ${line.linkIndex}, ${line.field})`,
      },
      emit,
    );
  }

  /**
   * Settles the debt of a chain's links (spec/enforcement.md §3.9): an operator's call, after
   * looking at why a link overran. On every capped line of the chain (or of one link), the debt
   * outstanding is marked settled in the ledger, so that the overage policy no longer blocks on it;
   * spent stays, and so does the cap: the link can spend again only where its cap has room. Raises
   * one `settled` event per line.
   */
  async settle(chain: VerifiedChain, options: SettleOptions = {}): Promise<SettleResult> {
    verifiedChain(chain);
    checkedObject(options, "options");
    for (const key of Object.keys(options))
      if (key !== "linkIndex") throw new TypeError(`"options" takes linkIndex, got ${shown(key)}`);
    const { linkIndex } = options;
    if (linkIndex !== undefined) {
      if (typeof linkIndex !== "number")
        throw new TypeError(`"linkIndex" expected a link index, got ${shown(linkIndex)}`);
      if (!Number.isSafeInteger(linkIndex) || linkIndex < 0 || linkIndex >= chain.links.length)
        throw new RangeError(
          `"linkIndex" expected an integer from 0 to ${chain.links.length - 1}, got ${shown(linkIndex)}`,
        );
    }
    if (typeof this.ledger.settle !== "function")
      throw new TypeError(
        `settle() needs a ledger with settle; the ${this.ledger.name} ledger has none`,
      );
    const now = this.#clock();
    // Every capped line the chain can touch now: each link's own, those of every provider any
    // link names (a sibling may have spent on it), and each window (its bucket at the ledger's time).
    const providers = new Set<string>();
    for (const link of chain.links)
      for (const provider of link.effective.providers ?? []) providers.add(provider.name);
    const seen = new Set<string>();
    const lines: LedgerLine[] = [];
    for (const provider of [undefined, ...providers])
      for (const line of linesFor(chain, provider, false))
        if (
          line.cap !== null &&
          !seen.has(line.account) &&
          (linkIndex === undefined || line.linkIndex === linkIndex)
        ) {
          seen.add(line.account);
          lines.push(line);
        }
    // Frozen: a ledger then checks the lines once (ledger.ts checkedLines).
    for (const line of lines) Object.freeze(line);
    const outcome = await this.ledger.settle(chain.linkIds[0] as string, Object.freeze(lines));
    this.#expired(outcome.expired);
    const settled = outcome.settled.map((line) => {
      const cap = line.cap as number;
      this.emit("settled", {
        linkId: line.linkId,
        field: line.field,
        amount: line.amount,
        spent: line.spent,
        cap,
        at: now,
        eventId: `settled:${line.linkId}:${line.field}:${line.spent}:${now}`,
      });
      return {
        linkIndex: line.linkIndex,
        linkId: line.linkId,
        field: line.field,
        kind: line.kind,
        cap,
        amount: line.amount,
      };
    });
    return { at: now, settled };
  }

  #committed(reservationId: string, outcome: CommitOutcome): CommitResult {
    if (outcome.expired.length > 0) this.#expired(outcome.expired);
    if (outcome.status !== "committed") return { status: outcome.status };
    let context = NO_CONTEXT;
    if (this.#contexts.size > 0) {
      context = this.#contexts.get(reservationId) ?? NO_CONTEXT;
      this.#contexts.delete(reservationId);
    }
    // After a hold expired nothing is reserved any more, so a late commit is an overrun in full.
    const { charged, reserved, late } = outcome;
    let overrun: Partial<Record<LineKind, number>> = NO_OVERRUN;
    // Field by field: a loop over kind names would load each by a varying key, several times slower.
    if (
      charged.tokens > (late ? 0 : reserved.tokens) ||
      charged.usdMicros > (late ? 0 : reserved.usdMicros) ||
      charged.risk > (late ? 0 : reserved.risk) ||
      charged.requests > (late ? 0 : reserved.requests)
    ) {
      overrun = {};
      for (const kind of LINE_KINDS) {
        const extra = charged[kind] - (late ? 0 : reserved[kind]);
        if (extra > 0) overrun[kind] = extra;
      }
    }
    // A repeated commit answers the first one's outcome, its crossed lines included: its events
    // are raised here if this enforcer has not raised them, as when the first answer was lost.
    if (
      (this.listenerCount("committed") > 0 ||
        this.listenerCount("overrun") > 0 ||
        this.listenerCount("threshold") > 0) &&
      this.#raise(`${reservationId}:committed`, outcome.already)
    ) {
      if (this.listenerCount("committed") > 0)
        this.emit("committed", {
          reservationId,
          eventId: `${reservationId}:committed`,
          charged: outcome.charged,
          late: outcome.late,
          // Read only for the event: a commit needs no time of the enforcer's (the ledger's
          // clock decides, §3.8), and a clock read on every commit costs the sync path ~2 %.
          at: this.#clock(),
          ...context,
        });
      if (overrun !== NO_OVERRUN) {
        for (const kind of LINE_KINDS) {
          const extra = overrun[kind];
          if (extra === undefined) continue;
          const reserved = outcome.late ? 0 : outcome.reserved[kind];
          const eventId = `${reservationId}:overrun:${kind}`;
          this.emit("overrun", {
            reservationId,
            eventId,
            kind,
            reserved,
            actual: reserved + extra,
          });
        }
      }
      for (const line of outcome.lines) this.#thresholds(reservationId, line);
    }
    const receipt = this.#receipt(outcome);
    const result = { status: "committed" as const, already: outcome.already, late, overrun };
    return receipt === undefined ? result : { ...result, receipt };
  }

  /** A receipted commit's signed receipt, raised as a `receipt` event (spec/receipts.md §4). */
  #receipt(outcome: Extract<CommitOutcome, { status: "committed" }>): Receipt | undefined {
    if (this.#receiptKey === undefined || outcome.receipt === undefined) return undefined;
    const receipt = signReceipt(outcome.receipt.entry, outcome.receipt.prev, this.#receiptKey);
    this.emit("receipt", receipt);
    return receipt;
  }

  #released(reservationId: string, outcome: ReleaseOutcome): ReleaseResult {
    this.#expired(outcome.expired);
    if (this.#contexts.size > 0) this.#contexts.delete(reservationId);
    // A release answered `already` raises `released` if this enforcer has not (§7.2).
    if (
      outcome.status === "released" &&
      this.listenerCount("released") > 0 &&
      this.#raise(`${reservationId}:released`, outcome.already)
    )
      this.emit("released", { reservationId, eventId: `${reservationId}:released` });
    return { status: outcome.status, already: outcome.already };
  }

  /**
   * Registers a source of provider health (the meter does, for its circuit breakers), so that
   * remaining() reports it. Returns a function that unregisters it.
   */
  reportProviderStatus(source: () => Readonly<Record<string, ProviderStatus>>): () => void {
    if (typeof source !== "function")
      throw new TypeError(
        `"source" expected a function returning provider statuses, got ${shown(source)}`,
      );
    this.#providerStatus.add(source);
    return () => this.#providerStatus.delete(source);
  }

  /** Spent, held and left per link and field. Reserves nothing. */
  async remaining(chain: VerifiedChain): Promise<RemainingReport> {
    verifiedChain(chain);
    const providers = chain.grant.providers?.map((p) => p.name) ?? [];
    const all = [undefined, ...providers].flatMap((provider) => linesFor(chain, provider, false));
    // Each account once (the provider-less lines repeat in every provider's), as a line: a
    // window's is read at the ledger's current bucket (§4).
    const lines = [...new Map(all.map((line) => [line.account, line])).values()];
    const { balances, expired, at } = await this.ledger.balances(chain.linkIds[0] as string, lines);
    this.#expired(expired);
    const limits: LimitRemaining[][] = chain.links.map(() => []);
    for (const line of lines) {
      const balance: Balance = balances.get(line.account) ?? { spent: 0, held: 0 };
      const resetsAt = line.windowMs === undefined ? undefined : bucketEndsAt(line.windowMs, at);
      const settled = balance.settled ?? 0;
      const limit = this.#debtLimits?.[line.kind];
      const blocked =
        limit !== undefined &&
        debtOf(line, { spent: balance.spent, held: balance.held, settled }) > limit;
      (limits[line.linkIndex] as LimitRemaining[]).push({
        field: line.field,
        kind: line.kind,
        cap: line.cap,
        spent: balance.spent,
        held: balance.held,
        remaining: line.cap === null ? null : Math.max(0, line.cap - balance.spent - balance.held),
        ...(line.cap !== null && balance.spent > line.cap
          ? { overBy: balance.spent - line.cap }
          : {}),
        ...(settled > 0 ? { settled } : {}),
        ...(blocked ? { blocked: true as const } : {}),
        ...(resetsAt === undefined ? {} : { resetsAt }),
      });
    }
    const links: LinkRemaining[] = chain.links.map((link) => ({
      index: link.index,
      id: link.id,
      ...(link.effective.label === undefined ? {} : { label: link.effective.label }),
      limits: limits[link.index] as LimitRemaining[],
    }));
    const leaf: Partial<Record<LineKind, number | null>> = {};
    for (const kind of LINE_KINDS) {
      const left = links.flatMap((l) =>
        l.limits
          .filter(
            (x) => x.kind === kind && x.remaining !== null && !x.field.startsWith("providers."),
          )
          .map((x) => x.remaining as number),
      );
      leaf[kind] = left.length === 0 ? null : Math.min(...left);
    }
    const providerStatus: Record<string, ProviderStatus> = {};
    for (const source of this.#providerStatus) Object.assign(providerStatus, source());
    return { at, links, leaf, providers: providerStatus };
  }

  #template(chain: VerifiedChain, provider: string | undefined): Template {
    let byProvider = this.#templates.get(chain);
    if (byProvider === undefined) this.#templates.set(chain, (byProvider = new Map()));
    const key = provider ?? "";
    let template = byProvider.get(key);
    if (template === undefined) {
      const lines = linesFor(chain, provider, true);
      // Frozen: a ledger then checks a template's lines once, not on every call (ledger.ts checkedLines).
      for (const line of lines) Object.freeze(line);
      Object.freeze(lines);
      template = { lines, kinds: kindsOf(lines) };
      byProvider.set(key, template);
    }
    return template;
  }

  #checkGrant(
    chain: VerifiedChain,
    request: ReserveRequest,
    now: number,
  ): Omit<Extract<Decision, { decision: "DENY" }>, "decision" | "linkId"> | undefined {
    const seconds = Math.floor(now / 1000);
    for (const link of chain.links) {
      const g = link.grant;
      if (g.exp !== undefined && seconds >= g.exp)
        return {
          reason: "EXPIRED",
          linkIndex: link.index,
          field: "exp",
          detail: `link ${link.index}'s grant expired at ${instant(g.exp)} (link ${link.index}, exp)`,
        };
      if (g.nbf !== undefined && seconds < g.nbf)
        return {
          reason: "NOT_YET_VALID",
          linkIndex: link.index,
          field: "nbf",
          detail: `link ${link.index}'s grant is not valid until ${instant(g.nbf)} (link ${link.index}, nbf)`,
        };
    }
    // Plain loops, no closures: this runs on every reservation. Each check passes over the links
    // by itself, so the reported link is the first that fails that check (spec §2.1).
    const { provider, model, tool } = request;
    if (provider !== undefined) {
      for (const link of chain.links) {
        const allowed = link.effective.providers;
        if (allowed !== undefined && !allowed.some((p) => p.name === provider)) {
          return {
            reason: "PROVIDER_NOT_ALLOWED",
            linkIndex: link.index,
            field: "providers",
            detail: `provider ${named(provider)} is not allowed by link ${link.index}'s grant (providers: ${listed(allowed.map((p) => p.name))})`,
          };
        }
      }
    }
    if (model !== undefined) {
      for (const link of chain.links) {
        const allowed = link.effective.models;
        if (allowed !== undefined && !allowed.includes(model)) {
          return {
            reason: "MODEL_NOT_ALLOWED",
            linkIndex: link.index,
            field: "models",
            detail: `model ${named(model)} is not allowed by link ${link.index}'s grant (models: ${listed(allowed)})`,
          };
        }
      }
    }
    if (tool !== undefined) {
      for (const link of chain.links) {
        if (!toolAllowed(link.effective.tools, tool)) {
          return {
            reason: "TOOL_NOT_ALLOWED",
            linkIndex: link.index,
            field: "tools",
            detail: `tool ${named(tool)} is not allowed by link ${link.index}'s grant (tools: ${listed(link.effective.tools ?? [])})`,
          };
        }
      }
    }
    if (request.arguments !== undefined && tool === undefined)
      throw new TypeError(`"arguments" needs the "tool" they are for`);
    if (tool !== undefined && chain.grant.args !== undefined)
      return argumentDenial(chain, tool, request.arguments);
    return undefined;
  }

  #deny(
    chain: VerifiedChain,
    denial: Omit<Extract<Decision, { decision: "DENY" }>, "decision" | "linkId">,
    emit: boolean,
  ): Extract<Decision, { decision: "DENY" }> {
    const decision = {
      decision: "DENY" as const,
      ...denial,
      linkId: (chain.links[denial.linkIndex] as VerifiedLink).id,
    };
    if (emit)
      this.emit(
        "denied",
        this.mode === "shadow"
          ? { decision, labels: labelsOf(chain), enforced: false }
          : { decision, labels: labelsOf(chain) },
      );
    return decision;
  }

  #expired(ids: readonly string[]): void {
    for (const reservationId of ids) {
      // The context stays: a late commit after expiry is still attributed.
      this.emit("expired", { reservationId, eventId: `${reservationId}:expired` });
    }
  }

  #thresholds(reservationId: string, line: ChargedLine): void {
    if (line.cap === null) return;
    for (const percent of thresholdsCrossed(line.cap, line.before, line.after))
      this.emit("threshold", {
        reservationId,
        // The line's account names it among the reservation's lines: each is there once.
        eventId: `${reservationId}:threshold:${line.account}:${percent}`,
        linkId: line.linkId,
        field: line.field,
        percent,
        spent: line.after,
        cap: line.cap,
      });
  }
}

export interface LimitRemaining {
  readonly field: string;
  readonly kind: LineKind;
  readonly cap: number | null;
  readonly spent: number;
  readonly held: number;
  /** cap − spent − held, never below 0; null without a cap. */
  readonly remaining: number | null;
  /**
   * How far spent went past the cap (through overruns and late commits, spec §3.4): present only
   * on a capped line whose spent exceeds its cap, where `remaining` is 0.
   */
  readonly overBy?: number;
  /** Of the debt (spent past the cap), how much an operator settled (§3.9), when any was. */
  readonly settled?: number;
  /**
   * True when the enforcer's overage policy denies every reservation touching this line, for its
   * debt (§3.9): until settle(), or for a window, until it resets.
   */
  readonly blocked?: true;
  /** For rate windows: when the current window ends (epoch ms). */
  readonly resetsAt?: number;
}

export interface LinkRemaining {
  readonly index: number;
  readonly id: string;
  readonly label?: string;
  readonly limits: readonly LimitRemaining[];
}

export interface RemainingReport {
  readonly at: number;
  readonly links: readonly LinkRemaining[];
  /** What the leaf can still spend per kind: the least remaining over every link (null: no cap). */
  readonly leaf: Readonly<Partial<Record<LineKind, number | null>>>;
  /** Provider health reported to this enforcer (circuit breakers), by provider; empty if none. */
  readonly providers: Readonly<Record<string, ProviderStatus>>;
}

/** A provider's circuit: `open` means calls to it are denied fast (PROVIDER_OPEN) for now. */
export interface ProviderStatus {
  readonly breaker: "closed" | "open" | "half-open";
  /** While open: when a probe will be let through (epoch ms). */
  readonly openUntil?: number;
}

interface Template {
  readonly lines: readonly LedgerLine[];
  /** The lines' kinds (rule.ts `kindsOf`), for check(). */
  readonly kinds: readonly number[];
}

class PreparedReserve {
  constructor(
    readonly op: ReserveOp,
    readonly template: Template,
    readonly now: number,
    /** In shadow mode: the grant's denial (§2.1), which the reservation goes ahead despite. */
    readonly denied: Extract<Decision, { decision: "DENY" }> | undefined = undefined,
  ) {}
}

/** The caps of an ALLOW_WITH_CAPS when `held` is less than `asked`, else undefined. */
function cappedOf(
  asked: Amounts,
  held: Amounts,
): Extract<ShadowedDecision, { decision: "ALLOW_WITH_CAPS" }> | undefined {
  if (held.tokens === asked.tokens && held.usdMicros === asked.usdMicros) return undefined;
  const caps: { tokens?: number; usdMicros?: number } = {};
  if (held.tokens !== asked.tokens) caps.tokens = held.tokens;
  if (held.usdMicros !== asked.usdMicros) caps.usdMicros = held.usdMicros;
  return { decision: "ALLOW_WITH_CAPS", caps };
}

/** A shadow-mode ALLOW (§2.3): not enforced, and what enforcing would have answered if not ALLOW. */
function shadowed<T extends object>(
  allow: T,
  wouldBe: ShadowedDecision | undefined,
): T & { readonly enforced: false; readonly wouldBe?: ShadowedDecision } {
  return { ...allow, enforced: false as const, ...(wouldBe === undefined ? {} : { wouldBe }) };
}

/**
 * The overage policy as debt limits for the ledger (rule.ts DebtLimits), checked: undefined for
 * `record`; 0 on every kind for `block`; the limits named, 0 for the others, for `overdraft`.
 */
function debtLimitsOf(policy: OveragePolicy): DebtLimits | undefined {
  if (policy === "record") return undefined;
  const none = { tokens: 0, usdMicros: 0, risk: 0, requests: 0 };
  if (policy === "block") return Object.freeze(none);
  if (typeof policy === "string")
    throw new RangeError(
      `"overage" expected "record", "block" or { overdraft }, got ${shown(policy)}`,
    );
  checkedObject(policy, "overage");
  const keys = Object.keys(policy);
  if (keys.length !== 1 || keys[0] !== "overdraft")
    throw new TypeError(
      `"overage" expected "record", "block" or { overdraft }, got keys ${keys.join(", ")}`,
    );
  const limits = checkedDebtLimits(policy.overdraft, "overage.overdraft");
  return Object.freeze({ ...none, ...limits });
}

/** A commit's ledger options when the enforcer signs receipts. */
const WITH_RECEIPT = Object.freeze({ receipt: true });

/**
 * The receipts option, checked: the key must be an Ed25519 key pair whose public key and kid are
 * its private key's, or receipts would name a key that did not sign them. Read once and kept as
 * copies: the caller's arrays changed in place later would sign receipts no one can check.
 */
function receiptKeyOf(option: EnforcerOptions["receipts"]): KeyPair | undefined {
  if (option === undefined) return undefined;
  checkedObject(option, "receipts");
  for (const key of Object.keys(option))
    if (key !== "key") throw new TypeError(`"receipts" takes key, got ${shown(key)}`);
  const key = signingKeyOf(option.key, "receipts.key", true);
  // A copy of its own: the signer's copy is shared with every later use of the same key pair.
  return Object.freeze({
    kid: key.kid,
    publicKey: key.publicKey,
    privateKey: Uint8Array.from(key.privateKey),
  });
}

/** The enforcer's mode, checked: absent is `enforce`, the strict one. */
function modeOf(mode: EnforcerMode | undefined): EnforcerMode {
  if (mode === undefined) return "enforce";
  if (typeof mode !== "string")
    throw new TypeError(`"mode" expected "enforce" or "shadow", got ${shown(mode)}`);
  if (!(ENFORCER_MODES as readonly string[]).includes(mode))
    throw new RangeError(`"mode" expected "enforce" or "shadow", got ${shown(mode)}`);
  return mode;
}

/**
 * The ledger lines of a request (spec/enforcement.md §3.1), in check order: for each link from the
 * root, its tokens, micro-dollars and risk, then the provider's caps, then the link's own rate
 * windows (each on the link that states it, so a window bounds all of that link's descendants).
 * Each line carries its link and field as data; its account name is only a storage key, built
 * here and never parsed.
 */
function linesFor(
  chain: VerifiedChain,
  provider: string | undefined,
  withRequests: boolean,
): LedgerLine[] {
  const lines: LedgerLine[] = [];
  const add = (
    link: VerifiedLink,
    name: string,
    kind: LineKind,
    cap: number | undefined | null,
    field: string,
    windowMs?: number,
  ) => {
    lines.push({
      account: `${link.id}|${name}`,
      kind,
      cap: cap ?? null,
      linkIndex: link.index,
      linkId: link.id,
      field,
      ...(windowMs === undefined ? {} : { windowMs }),
    });
  };
  for (const link of chain.links) {
    const e = link.effective;
    add(link, "tokens", "tokens", e.tokens, "tokens");
    add(link, "usdMicros", "usdMicros", e.usdMicros, "usdMicros");
    add(link, "risk", "risk", e.risk, "risk");
    if (withRequests) add(link, "requests", "requests", null, "requests");
    if (provider !== undefined) {
      const caps = e.providers?.find((p) => p.name === provider);
      add(link, `p:${provider}:tokens`, "tokens", caps?.tokens, `providers.${provider}.tokens`);
      add(
        link,
        `p:${provider}:usdMicros`,
        "usdMicros",
        caps?.usdMicros,
        `providers.${provider}.usdMicros`,
      );
    }
    // The window, not its bucket: the ledger keys the account by the bucket of its own clock (§4).
    (link.grant.rate ?? []).forEach((window, j) => {
      for (const kind of ["tokens", "usdMicros", "requests"] as const) {
        const cap = window[kind];
        if (cap !== undefined)
          add(
            link,
            `w${j}:${window.seconds}:${kind}`,
            kind,
            cap,
            `rate.${window.seconds}s.${kind}`,
            window.seconds * 1000,
          );
      }
    });
  }
  return lines;
}

function fitsOf(lines: readonly LedgerLine[], accounts: readonly Account[]): Fits {
  const fits: Record<LineKind, number | null> = {
    tokens: null,
    usdMicros: null,
    risk: null,
    requests: null,
  };
  lines.forEach((line, i) => {
    if (line.cap === null) return;
    const left = Math.max(0, availableOf(line, accounts[i] as Account));
    const known = fits[line.kind];
    fits[line.kind] = known === null ? left : Math.min(known, left);
  });
  return fits;
}

const labelCache = new WeakMap<VerifiedChain, readonly string[]>();
function labelsOf(chain: VerifiedChain): readonly string[] {
  let labels = labelCache.get(chain);
  if (labels === undefined) {
    labels = Object.freeze(
      chain.links.flatMap((l) => (l.grant.label === undefined ? [] : [l.grant.label])),
    );
    labelCache.set(chain, labels);
  }
  return labels;
}

/** The chain's labels, root first, for events raised outside the enforcer (the meter's refusals). */
export function chainLabels(chain: VerifiedChain): readonly string[] {
  return labelsOf(chain);
}

/** Contexts are immutable and shared by every reservation of the same chain and request kind. */
const contextCache = new WeakMap<VerifiedChain, Map<string, ReservationContext>>();
function contextOf(chain: VerifiedChain, request: ReserveRequest): ReservationContext {
  let byKind = contextCache.get(chain);
  if (byKind === undefined) contextCache.set(chain, (byKind = new Map()));
  const { provider, model, tool } = request;
  const key =
    provider === undefined && model === undefined && tool === undefined
      ? ""
      : `${provider ?? ""}\u0000${model ?? ""}\u0000${tool ?? ""}`;
  let context = byKind.get(key);
  if (context === undefined) {
    if (byKind.size >= 1024) byKind.clear();
    context = Object.freeze({
      labels: labelsOf(chain),
      linkLabels: chain.links.map((l) => l.grant.label ?? null),
      linkIds: chain.linkIds,
      ...(request.provider === undefined ? {} : { provider: request.provider }),
      ...(request.model === undefined ? {} : { model: request.model }),
      ...(request.tool === undefined ? {} : { tool: request.tool }),
    });
    byKind.set(key, context);
  }
  return context;
}

/** The ledger's `actual` for a usage. Risk and requests default to what was reserved: the ledger knows it, so ask with a marker. */
function actualOf(usage: Usage): Amounts {
  checkedObject(usage, "usage");
  for (const key of Object.keys(usage))
    if (key !== "tokens" && key !== "usdMicros" && key !== "risk")
      throw new TypeError(`"usage" takes tokens, usdMicros and risk, got ${shown(key)}`);
  return {
    tokens: amount(usage.tokens, "tokens"),
    usdMicros: amount(usage.usdMicros, "usdMicros"),
    risk: usage.risk === undefined ? -1 : amount(usage.risk, "risk"),
    requests: -1,
  };
}

function amount(value: number | undefined, name: string): number {
  return value === undefined ? 0 : checkedAmount(value, name, false);
}

/** A TTL in seconds, checked: more than 0, at most MAX_TTL_SECONDS (fractions allowed). */
function checkedTtl(ttl: number, name: string): number {
  if (typeof ttl !== "number")
    throw new TypeError(`"${name}" expected a number of seconds, got ${shown(ttl)}`);
  if (!(ttl > 0 && ttl <= MAX_TTL_SECONDS))
    throw new RangeError(
      `"${name}" expected more than 0 and at most ${MAX_TTL_SECONDS} seconds (7 days), got ${shown(ttl)}`,
    );
  return ttl;
}

function assertId(id: string): void {
  if (typeof id !== "string")
    throw new TypeError(`"reservationId" expected the id string from reserve(), got ${shown(id)}`);
  if (id.length === 0 || id.length > 200 || !id.isWellFormed())
    throw new RangeError(`"reservationId" expected the id from reserve(), got ${shown(id)}`);
}

/**
 * The chain, if `verify` produced it (spec/enforcement.md §2.2): the `VerifiedChain` type holds only
 * for the type checker, and a copy of a real chain with its caps raised would otherwise be spent
 * against the real root's accounts.
 */
function verifiedChain(chain: unknown): VerifiedChain {
  if (!isVerifiedChain(chain))
    throw new TypeError(
      `"chain" expected a VerifiedChain returned by verify(), got ${chain === null || typeof chain !== "object" ? shown(chain) : "an object verify() did not return (a copy or a hand-built chain)"}`,
    );
  return chain;
}

/** A provider, model or tool name, if given: a well-formed string of at most MAX_REQUEST_NAME_LENGTH. */
function requestName(value: string | undefined, name: string): void {
  if (value === undefined) return;
  if (typeof value !== "string")
    throw new TypeError(`"${name}" expected a string, got ${shown(value)}`);
  if (value.length === 0 || value.length > MAX_REQUEST_NAME_LENGTH || !value.isWellFormed())
    throw new RangeError(
      `"${name}" expected a well-formed string of 1 to ${MAX_REQUEST_NAME_LENGTH} characters, got ${shown(value)}`,
    );
}

/** The ledger's minimums for `acceptCaps`, checked: true means 1 of each; an object may set either. */
function minimumsOf(
  caps: ReserveRequest["acceptCaps"],
): { tokens: number; usdMicros: number } | undefined {
  if (caps === undefined || caps === false) return undefined;
  if (caps === true) return { tokens: 1, usdMicros: 1 };
  checkedObject(caps, "acceptCaps");
  for (const key of Object.keys(caps))
    if (key !== "minTokens" && key !== "minUsdMicros")
      throw new TypeError(`"acceptCaps" takes minTokens and minUsdMicros, got ${shown(key)}`);
  return {
    tokens:
      caps.minTokens === undefined
        ? 1
        : checkedAmount(caps.minTokens, "acceptCaps.minTokens", false),
    usdMicros:
      caps.minUsdMicros === undefined
        ? 1
        : checkedAmount(caps.minUsdMicros, "acceptCaps.minUsdMicros", false),
  };
}

// Denials in words (spec/enforcement.md §2): the codes are for programs, `detail` for a person.

/** Micro-dollars as dollars: two decimals from $0.01 on, more only when the amount needs them. */
export function formatUsdMicros(micros: number): string {
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  const whole = Math.floor(abs / 1_000_000);
  const fraction = String(abs % 1_000_000)
    .padStart(6, "0")
    .replace(/0+$/, "")
    .padEnd(2, "0");
  return `${sign}$${grouped(whole)}.${fraction}`;
}

function grouped(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function quantity(kind: LineKind, n: number): string {
  if (kind === "usdMicros") return formatUsdMicros(n);
  const unit = kind === "tokens" ? "token" : kind === "risk" ? "risk point" : "request";
  return `${grouped(n)} ${unit}${n === 1 ? "" : "s"}`;
}

/** What a budget or rate denial's sentence is made of (see describeBudgetDenial). */
export interface BudgetDenialFacts {
  readonly kind: LineKind;
  /** The line's field: `usdMicros`, `providers.openai.tokens`, `rate.60s.requests`, … */
  readonly field: string;
  readonly linkIndex: number;
  /** The index of the chain's last link (the agent's own). */
  readonly leafIndex: number;
  readonly requested: number;
  readonly available: number;
  readonly limit: number | null;
  readonly retryAfter?: number;
}

/**
 * The `detail` of a budget or rate denial (spec/enforcement.md §2): the one sentence reserve()
 * and check() give a person. Not public: a caller that wants the answer asks check().
 */
export function describeBudgetDenial(facts: BudgetDenialFacts): string {
  const { kind, field, linkIndex, requested, available, limit, retryAfter } = facts;
  const where = `(link ${linkIndex}, ${field})`;
  const retry = retryAfter === undefined ? "" : `; retry in ${retryAfter}s`;
  const has = `this request needs ${quantity(kind, requested)}, but this agent has ${quantity(kind, Math.max(0, available))} left`;
  // Lines always have a cap when they deny; the sentence without one is only a fallback.
  if (limit === null) return `${has} ${where}${retry}`;
  const provider = /^providers\.(.+)\.(?:tokens|usdMicros)$/.exec(field)?.[1];
  const window = /^rate\.(\d+)s\./.exec(field)?.[1];
  const cap = `${kind === "usdMicros" ? formatUsdMicros(limit) : grouped(limit)}${window === undefined ? "" : ` per ${window}s window`}`;
  const whose =
    linkIndex === facts.leafIndex
      ? "its grant allows"
      : `link ${linkIndex}'s grant allows it and every other agent under link ${linkIndex}`;
  return `${has} of the ${cap} ${whose}${provider === undefined ? "" : ` for provider ${named(provider)}`} ${where}${retry}`;
}

/** A name from a request or grant, as is when plain, quoted when it holds anything else. */
function named(name: string): string {
  return /^[\w.:*/@+-]{1,100}$/.test(name)
    ? name
    : JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}…` : name);
}

function listed(names: readonly string[]): string {
  if (names.length === 0) return "none";
  const shownNames = names.slice(0, 10).map(named).join(", ");
  return names.length > 10 ? `${shownNames}, and ${names.length - 10} more` : shownNames;
}

/**
 * The tool call's arguments against the chain's effective `args` (spec/arguments.md §6), blaming
 * the last link that states `args`: the one whose constraints are in force (§3.5, §6.3).
 */
function argumentDenial(
  chain: VerifiedChain,
  tool: string,
  callArguments: unknown,
): Omit<Extract<Decision, { decision: "DENY" }>, "decision" | "linkId"> | undefined {
  const refused = checkArguments(chain.grant.args, tool, callArguments);
  if (refused === null) return undefined;
  let index = chain.links.length - 1;
  while (index > 0 && (chain.links[index] as VerifiedLink).grant.args === undefined) index--;
  const { pattern, argument, constraint, message } = refused;
  // An unnamed argument's name is the caller's agent's choice, of any length: `*` stands for one
  // that is not a valid name, as the narrowing rule names the unnamed-argument rule (§4).
  const field =
    pattern === null
      ? "args"
      : argument === null
        ? `args.${pattern}`
        : `args.${pattern}.${ARGUMENT_NAME.test(argument) ? argument : "*"}`;
  const why =
    message.length > 200 ? `${message.slice(0, 200).replace(/[\ud800-\udbff]$/, "")}…` : message;
  return {
    reason: "ARGUMENT_NOT_ALLOWED",
    linkIndex: index,
    field,
    argumentDenial: refused,
    detail: `the arguments of tool ${named(tool)} are not allowed by link ${index}'s grant: ${why} (${named(field)}${constraint === null ? "" : `: ${constraintText(constraint)}`})`,
  };
}

/** A constraint in a few words: its kind and parameters (`emailDomain example.com`). */
function constraintText(c: ArgumentConstraint): string {
  const value = (v: ArgumentScalar) => {
    const text = JSON.stringify(v);
    return text.length > 100 ? `${text.slice(0, 100)}…` : text;
  };
  switch (c.kind) {
    case "exact":
      return `exact ${value(c.value)}`;
    case "oneOf":
      return `oneOf ${c.values.slice(0, 10).map(value).join(", ")}${c.values.length > 10 ? ", …" : ""}`;
    case "range":
      return `range ${c.min} to ${c.max}`;
    case "prefix":
      return `prefix ${value(c.prefix)}`;
    case "glob":
      return `glob ${named(c.glob)}`;
    case "url":
      return `url ${listed(c.urls)}`;
    case "emailDomain":
      return `emailDomain ${listed(c.domains)}`;
    case "maxLength":
      return `maxLength ${c.max}`;
    case "forbidden":
      return "forbidden";
  }
}

/** Epoch seconds as ISO 8601 (UTC), or the number when outside Date's range. */
function instant(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString().replace(".000Z", "Z");
}

export function createEnforcer(options: EnforcerOptions = {}): Enforcer {
  return new Enforcer(options);
}

export type { Balance };
