/**
 * @allowance/enforcer/rule: what a ledger of your own is built from (spec/enforcement.md §3). The
 * rule (rule.ts) decides, charges, sweeps and judges thresholds without I/O; the checks refuse bad
 * arguments as every ledger must, before anything is read or changed (§3.6). Store what the rule
 * reads and writes, make each operation one atomic step, and prove it with the ledger vectors
 * (@allowance/enforcer/testing).
 */
export {
  DEFAULT_RETENTION_MS,
  KIND_INDEX,
  RESERVATION_STATUSES,
  accountKey,
  amountOf,
  answerRepeatedReserve,
  answerWithoutCharge,
  answerWithoutExtend,
  answerWithoutRelease,
  availableOf,
  bucketEndsAt,
  bucketOf,
  charge,
  clockSkewOf,
  forgetBefore,
  debtOf,
  decide,
  denyIfBlocked,
  due,
  expiresBefore,
  extended,
  extendedExpiry,
  hold,
  holdAnyway,
  holdEnd,
  isDue,
  kindsOf,
  nextReceipt,
  released,
  reservationConflict,
  settleDebt,
  thresholdsCrossed,
  totalTooLarge,
  unhold,
} from "./rule.js";
export type { Account, ReservationState, ReservationStatus, WouldBe } from "./rule.js";
export type { DebtLimits, SettleOutcome, SettledLine } from "./rule.js";
export type { ReceiptEntry, ReceiptFacts } from "./rule.js";
export type { ExtendOutcome, ReserveRecord } from "./rule.js";
export {
  balanceOf,
  checkBalancesArgs,
  checkCommitArgs,
  checkExtendArgs,
  checkReleaseArgs,
  checkReserveOp,
  checkedClockOptions,
  checkSettleArgs,
  nameOf,
  rootOfReservation,
  timeOf,
} from "./ledger.js";
