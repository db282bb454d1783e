/**
 * The Redis ledger's wire protocol: how operations reach the Lua script (ledger.lua) and how its
 * reply comes back, both binary and big-endian (Lua's struct.pack). Every number both sides must
 * agree on — operation codes, the order and offsets of each operation's fields, reply codes,
 * record statuses, kind numbers — is written here once: `LUA_CONSTANTS` is what
 * scripts/embed-lua.ts writes as the header of the embedded script, so the Lua reads the same
 * values by name.
 *
 * An operation is its code (one byte), its numbers (big-endian doubles, in the order of its
 * FIELDS), then one text: a 32-bit length and that many bytes of UTF-8 (the reservation id, or for
 * balances the JSON array of account names); a reserve then has a second text, its fingerprint
 * (empty: none; spec/enforcement.md §3.10).
 *
 * A reply is one binary string: each operation's part in turn, ending with the ids its sweep
 * expired (a 32-bit count, then each as a 32-bit length and its bytes) and, for a reserve and a
 * balances read, the operation's time (a double).
 *
 * Times (spec/enforcement.md §3.8): an operation's `now` is the time it runs at when given (tests
 * and vectors); -1 (NO_TIME) lets the script take the server's TIME.
 */
import { createHash } from "node:crypto";
import { legacyLines } from "../legacy-lines.js";
import {
  LINE_KINDS,
  MAX_CLOCK_SKEW_MS,
  balanceOf,
  nameOf,
  totalTooLarge,
  type AccountRef,
  type Amounts,
  type Balance,
  type BalancesOutcome,
  type ChargedLine,
  type CommitOutcome,
  type ExtendOutcome,
  type LedgerLine,
  type LineKind,
  type ReleaseOutcome,
  type ReserveOp,
  type ReserveOutcome,
  type CommitOptions,
  type SettledLine,
  type SettleOutcome,
} from "../ledger.js";
import { clockSkewOf, reservationConflict, type ReceiptEntry, type ReceiptFacts } from "../rule.js";

/**
 * The numbers of each operation, in wire order. A minimum of -1 means none; lineSet is 1-based;
 * shadow is 1 for a shadow reserve (hold whatever the rule decides), else 0; clientNowMs is the
 * caller's clock (-1: not given), which the script compares with its own; a debt limit per kind
 * (spec/enforcement.md §3.9) is -1 for none. A settle's lineSet is as a reserve's.
 */
export const RESERVE_FIELDS = [
  "now",
  "ttlMs",
  "tokens",
  "usdMicros",
  "risk",
  "requests",
  "minTokens",
  "minUsdMicros",
  "lineSet",
  "shadow",
  "clientNowMs",
  "debtTokens",
  "debtUsdMicros",
  "debtRisk",
  "debtRequests",
  "notAfter",
] as const;
/** A negative amount means "as reserved"; receipt is 1 for a receipted commit, else 0. */
export const COMMIT_FIELDS = ["now", "tokens", "usdMicros", "risk", "requests", "receipt"] as const;
export const RELEASE_FIELDS = ["now"] as const;
export const BALANCES_FIELDS = ["now"] as const;
export const SETTLE_FIELDS = ["now", "lineSet"] as const;
/** An extend (spec/enforcement.md §3.11): its time and the hold's new TTL from then. */
export const EXTEND_FIELDS = ["now", "ttlMs"] as const;

/** Operation codes: the letters r, c, l, b, s, e. */
export const OP_RESERVE = 0x72;
export const OP_COMMIT = 0x63;
export const OP_RELEASE = 0x6c;
export const OP_BALANCES = 0x62;
export const OP_SETTLE = 0x73;
export const OP_EXTEND = 0x65;

/** The byte offset of each field in an operation: after the code byte, 8 bytes a number. */
function offsets<F extends string>(fields: readonly F[]): Readonly<Record<F, number>> {
  return Object.fromEntries(fields.map((field, i) => [field, 1 + 8 * i])) as Record<F, number>;
}
export const RESERVE_AT = offsets(RESERVE_FIELDS);
export const COMMIT_AT = offsets(COMMIT_FIELDS);
export const RELEASE_AT = offsets(RELEASE_FIELDS);
export const BALANCES_AT = offsets(BALANCES_FIELDS);
export const SETTLE_AT = offsets(SETTLE_FIELDS);
export const EXTEND_AT = offsets(EXTEND_FIELDS);

/**
 * A reserve's reply: its code, then (held) the amounts ×4, (denied) the 0-based line, its available
 * amount and its debt (-1 unless the overage policy denied), (too large) the line and the total.
 */
export const RESERVE_DENIED = 0;
export const RESERVE_HELD = 1;
export const RESERVE_IN_USE = 2;
export const RESERVE_TOO_LARGE = 3;
/**
 * A shadow reserve held the amounts asked where the rule would not have: then the amounts ×4, and
 * (denied) the line, its available amount and its debt (-1: none), or (lowered) the amounts the
 * rule would have held ×4.
 */
export const RESERVE_SHADOW_DENIED = 4;
export const RESERVE_SHADOW_LOWERED = 5;
/** The caller's clock is further from the ledger's than the script's bound: refused (ERR_CLOCK_SKEW). */
export const RESERVE_SKEWED = 6;
/**
 * A repeated reserve (spec/enforcement.md §3.10): the id's reservation was made with the same
 * fingerprint; then its amounts ×4 and its hold's expiry. Its id was reserved with another
 * fingerprint: RESERVE_OTHER_REQUEST (refused, as RESERVE_IN_USE is).
 */
export const RESERVE_REPEATED = 7;
export const RESERVE_OTHER_REQUEST = 8;

/** An operation's `now` that lets the script take the server's time. */
export const NO_TIME = -1;

/**
 * A reply's first byte: REPLY_OK, then the root's epoch (a 32-bit length and its bytes; empty
 * while the root has no balances) and each operation's part; or REPLY_LOST, then why (likewise),
 * when the root's state was lost (spec/enforcement.md §8.1) and the script ran nothing.
 */
export const REPLY_OK = 0;
export const REPLY_LOST = 1;
/** How an epoch marker an operator wrote (RedisLedger.reconcile) starts: every client takes it. */
export const RECONCILED = "reconciled:";
/** The accounts hash's field that holds the root's epoch marker (no account field is bare). */
export const EPOCH_FIELD = "epoch";

/** The length of a line set's digest (SHA-256, base64url, no padding), as records store it. */
export const DIGEST_LENGTH = 43;

/**
 * A commit's reply: its code; committed: already and late (bytes), reserved ×4, charged ×4, the
 * count of lines that crossed a threshold and, when not 0, the JSON of the reservation's line set
 * then each line as its 0-based index, spent before and after; too large: the account and the total.
 */
export const COMMIT_UNKNOWN = 0;
export const COMMIT_DONE = 1;
export const COMMIT_RELEASED = 2;
export const COMMIT_TOO_LARGE = 3;

/** Reservation records' statuses; a release replies with one (0: unknown) and an `already` byte. */
export const STATUS_UNKNOWN = 0;
export const STATUS_HELD = 1;
export const STATUS_COMMITTED = 2;
export const STATUS_RELEASED = 3;
export const STATUS_EXPIRED = 4;
/**
 * Added to a record's status when the record has the full form (layout 5: the reserve's
 * fingerprint, time, expiry and bound, and a commit's listed lines; ledger.lua `encodeFull`).
 */
export const RECORD_FULL = 16;

/** The numbers the script reads by name, in its generated header (scripts/embed-lua.ts). */
export const LUA_CONSTANTS: Readonly<Record<string, number | string>> = {
  OP_RESERVE,
  OP_COMMIT,
  OP_RELEASE,
  OP_BALANCES,
  RESERVE_NUMBERS: RESERVE_FIELDS.length,
  COMMIT_NUMBERS: COMMIT_FIELDS.length,
  RELEASE_NUMBERS: RELEASE_FIELDS.length,
  BALANCES_NUMBERS: BALANCES_FIELDS.length,
  OP_SETTLE,
  SETTLE_NUMBERS: SETTLE_FIELDS.length,
  OP_EXTEND,
  EXTEND_NUMBERS: EXTEND_FIELDS.length,
  RESERVE_DENIED,
  RESERVE_HELD,
  RESERVE_IN_USE,
  RESERVE_TOO_LARGE,
  RESERVE_SHADOW_DENIED,
  RESERVE_SHADOW_LOWERED,
  RESERVE_SKEWED,
  RESERVE_REPEATED,
  RESERVE_OTHER_REQUEST,
  DIGEST_LENGTH,
  REPLY_OK,
  REPLY_LOST,
  RECONCILED,
  EPOCH_FIELD,
  COMMIT_UNKNOWN,
  COMMIT_DONE,
  COMMIT_RELEASED,
  COMMIT_TOO_LARGE,
  STATUS_UNKNOWN,
  STATUS_HELD,
  STATUS_COMMITTED,
  STATUS_RELEASED,
  STATUS_EXPIRED,
  RECORD_FULL,
  // Kinds in line sets and the script's amounts tables ({tokens, usdMicros, risk, requests}) are
  // LINE_KINDS' indexes plus one; the script names the two it lowers.
  KIND_TOKENS: LINE_KINDS.indexOf("tokens") + 1,
  KIND_USD_MICROS: LINE_KINDS.indexOf("usdMicros") + 1,
};

/**
 * A lines array in the script's form: a JSON array of account, kind number, cap (-1: none) for
 * each line, then one string, the JSON of each line's [linkIndex, linkId, field] (the script
 * parses the accounts on every call that uses the set, the rest only to hand it back), then, only
 * when some line is a rate window's, an array of each line's window in ms (0: none); and that
 * JSON's digest (SHA-256, base64url), its key in the root's line sets.
 */
export interface LineSet {
  readonly digest: string;
  readonly json: string;
}

export function lineSetOf(lines: readonly LedgerLine[]): LineSet {
  const flat: (string | number)[] = [];
  for (const line of lines)
    flat.push(line.account, LINE_KINDS.indexOf(line.kind) + 1, line.cap === null ? -1 : line.cap);
  flat.push(JSON.stringify(lines.map((line) => [line.linkIndex, line.linkId, line.field])));
  if (lines.some((line) => line.windowMs !== undefined))
    flat.push(lines.map((line) => line.windowMs ?? 0) as never);
  const json = JSON.stringify(flat);
  return { digest: createHash("sha256").update(json).digest("base64url"), json };
}

/** Line sets read back from replies, by their JSON. */
const parsedLineSets = new Map<string, readonly LedgerLine[]>();
const MAX_PARSED_LINE_SETS = 256;

/**
 * The lines of a line set's JSON. A set written before the lines carried their link and field
 * (layout 2: account, kind and cap only) gets them from its account names (legacyLines).
 */
export function linesOfLineSet(json: string): readonly LedgerLine[] {
  let lines = parsedLineSets.get(json);
  if (lines !== undefined) return lines;
  const flat = JSON.parse(json) as unknown[];
  const n = Math.floor(flat.length / 3);
  const plain = Array.from({ length: n }, (_, i) => ({
    account: flat[3 * i] as string,
    kind: KIND_OF_NUMBER[flat[3 * i + 1] as number] ?? "tokens",
    cap: (flat[3 * i + 2] as number) < 0 ? null : (flat[3 * i + 2] as number),
  }));
  if (flat.length % 3 !== 0) {
    const meta = JSON.parse(flat[3 * n] as string) as [number, string, string][];
    const windows = flat[3 * n + 1] as readonly number[] | undefined;
    lines = plain.map((line, i) => {
      const [linkIndex, linkId, field] = meta[i] as [number, string, string];
      const windowMs = windows?.[i] ?? 0;
      return { ...line, linkIndex, linkId, field, ...(windowMs > 0 ? { windowMs } : {}) };
    });
  } else {
    lines = legacyLines(plain);
  }
  if (parsedLineSets.size >= MAX_PARSED_LINE_SETS) parsedLineSets.clear();
  parsedLineSets.set(json, lines);
  return lines;
}

/** Kind numbers back to kinds. */
const KIND_OF_NUMBER: readonly (LineKind | undefined)[] = [undefined, ...LINE_KINDS];

/** Release statuses by number. */
const STATUS_OF_NUMBER: readonly ReleaseOutcome["status"][] = [
  "unknown",
  "unknown",
  "committed",
  "released",
  "expired",
];

/**
 * One operation: its code, room for `numbers` doubles (written by the caller at the offsets
 * above), then `text` as a 32-bit length and its UTF-8 bytes, and `second` likewise if given.
 */
function opBuffer(code: number, numbers: number, text: string, second?: string): Buffer {
  const length = Buffer.byteLength(text);
  const at = 1 + 8 * numbers;
  const secondLength = second === undefined ? -4 : Buffer.byteLength(second);
  const buffer = Buffer.allocUnsafe(at + 4 + length + 4 + secondLength);
  buffer[0] = code;
  buffer.writeUInt32BE(length, at);
  buffer.write(text, at + 4, "utf8");
  if (second !== undefined) {
    buffer.writeUInt32BE(secondLength, at + 4 + length);
    buffer.write(second, at + 8 + length, "utf8");
  }
  return buffer;
}

/** A reserve, but for its line set's number in the call (`setLineSet`), known once it is batched. */
export function encodeReserve(op: ReserveOp): Buffer {
  const buffer = opBuffer(OP_RESERVE, RESERVE_FIELDS.length, op.id, op.fingerprint ?? "");
  const a = op.amounts;
  buffer.writeDoubleBE(op.now ?? NO_TIME, RESERVE_AT.now);
  buffer.writeDoubleBE(op.ttlMs, RESERVE_AT.ttlMs);
  buffer.writeDoubleBE(a.tokens, RESERVE_AT.tokens);
  buffer.writeDoubleBE(a.usdMicros, RESERVE_AT.usdMicros);
  buffer.writeDoubleBE(a.risk, RESERVE_AT.risk);
  buffer.writeDoubleBE(a.requests, RESERVE_AT.requests);
  buffer.writeDoubleBE(op.minimums?.tokens ?? -1, RESERVE_AT.minTokens);
  buffer.writeDoubleBE(op.minimums?.usdMicros ?? -1, RESERVE_AT.minUsdMicros);
  buffer.writeDoubleBE(op.shadow === true ? 1 : 0, RESERVE_AT.shadow);
  buffer.writeDoubleBE(op.clientNowMs ?? -1, RESERVE_AT.clientNowMs);
  const limits = op.debtLimits;
  buffer.writeDoubleBE(limits?.tokens ?? -1, RESERVE_AT.debtTokens);
  buffer.writeDoubleBE(limits?.usdMicros ?? -1, RESERVE_AT.debtUsdMicros);
  buffer.writeDoubleBE(limits?.risk ?? -1, RESERVE_AT.debtRisk);
  buffer.writeDoubleBE(limits?.requests ?? -1, RESERVE_AT.debtRequests);
  buffer.writeDoubleBE(op.notAfter ?? -1, RESERVE_AT.notAfter);
  return buffer;
}

/** Sets an encoded reserve's line set: its 1-based number among the sets sent with the call. */
export function setLineSet(reserve: Buffer, set: number): void {
  reserve.writeDoubleBE(set, RESERVE_AT.lineSet);
}

export function encodeCommit(
  id: string,
  actual: Amounts,
  now: number | undefined,
  options?: CommitOptions,
): Buffer {
  const buffer = opBuffer(OP_COMMIT, COMMIT_FIELDS.length, id);
  buffer.writeDoubleBE(now ?? NO_TIME, COMMIT_AT.now);
  buffer.writeDoubleBE(actual.tokens, COMMIT_AT.tokens);
  buffer.writeDoubleBE(actual.usdMicros, COMMIT_AT.usdMicros);
  buffer.writeDoubleBE(actual.risk, COMMIT_AT.risk);
  buffer.writeDoubleBE(actual.requests, COMMIT_AT.requests);
  buffer.writeDoubleBE(options?.receipt === true ? 1 : 0, COMMIT_AT.receipt);
  return buffer;
}

export function encodeRelease(id: string, now: number | undefined): Buffer {
  const buffer = opBuffer(OP_RELEASE, RELEASE_FIELDS.length, id);
  buffer.writeDoubleBE(now ?? NO_TIME, RELEASE_AT.now);
  return buffer;
}

export function encodeExtend(id: string, ttlMs: number, now: number | undefined): Buffer {
  const buffer = opBuffer(OP_EXTEND, EXTEND_FIELDS.length, id);
  buffer.writeDoubleBE(now ?? NO_TIME, EXTEND_AT.now);
  buffer.writeDoubleBE(ttlMs, EXTEND_AT.ttlMs);
  return buffer;
}

/** A settle, but for its line set's number in the call (`setSettleLineSet`). */
export function encodeSettle(now: number | undefined): Buffer {
  const buffer = opBuffer(OP_SETTLE, SETTLE_FIELDS.length, "");
  buffer.writeDoubleBE(now ?? NO_TIME, SETTLE_AT.now);
  return buffer;
}

/** Sets an encoded settle's line set: its 1-based number among the sets sent with the call. */
export function setSettleLineSet(settle: Buffer, set: number): void {
  settle.writeDoubleBE(set, SETTLE_AT.lineSet);
}

/** A balances read: its accounts as JSON, each a name or a rate window's [name, window ms]. */
export function encodeBalances(accounts: readonly AccountRef[], now: number | undefined): Buffer {
  const refs = accounts.map((ref) =>
    typeof ref === "string" || ref.windowMs === undefined
      ? nameOf(ref)
      : [ref.account, ref.windowMs],
  );
  const buffer = opBuffer(OP_BALANCES, BALANCES_FIELDS.length, JSON.stringify(refs));
  buffer.writeDoubleBE(now ?? NO_TIME, BALANCES_AT.now);
  return buffer;
}

/**
 * The script's keys and arguments for one call on a root: KEYS are the expiry set, the accounts
 * hash, the held records hash and the line sets hash; ARGV the closed-record key base, the retention in ms, the largest clock skew a reserve's caller may have in ms, the epoch
 * (`epochArg`), the number of line sets sent, each as digest and JSON, then the operations.
 */
export function scriptArgs(
  base: string,
  retentionMs: string,
  maxClockSkewMs: string,
  epoch: string,
  setArgs: readonly string[],
  ops: Buffer,
): (string | Buffer)[] {
  return [
    `${base}x`,
    `${base}a`,
    `${base}h`,
    `${base}l`,
    `${base}c:`,
    retentionMs,
    maxClockSkewMs,
    epoch,
    String(setArgs.length / 2),
    ...setArgs,
    ops,
  ];
}

/** The number of keys among scriptArgs. */
export const SCRIPT_KEYS = 4;

/**
 * The epoch argument of a call: the root's epoch as this client last saw it (`k:`), or, when it
 * has seen none, a new one (`n:`) for the script to write if the call makes the root's balances.
 */
export function epochArg(known: string | undefined, fresh: () => string): string {
  return known === undefined ? `n:${fresh()}` : `k:${known}`;
}

/**
 * A reply's header, read first: the root's epoch (empty while it has no balances), or why its
 * state was lost, in which case nothing ran and no operation's part follows.
 */
export function readHeader(
  reply: ReplyReader,
): { readonly epoch: string } | { readonly lost: string } {
  const code = reply.byte();
  const text = reply.text();
  if (code === REPLY_OK) return { epoch: text };
  if (code === REPLY_LOST) return { lost: text };
  throw new RangeError(`the ledger script's reply starts with ${code}, not a reply code`);
}

const NONE: readonly string[] = Object.freeze([]);
const NO_LINES: readonly ChargedLine[] = Object.freeze([]);

/** Reads the script's reply, in order. */
export class ReplyReader {
  #at = 0;
  constructor(readonly buffer: Buffer) {}
  byte(): number {
    return this.buffer.readUInt8(this.#at++);
  }
  double(): number {
    const value = this.buffer.readDoubleBE(this.#at);
    this.#at += 8;
    return value;
  }
  count(): number {
    const value = this.buffer.readUInt32BE(this.#at);
    this.#at += 4;
    return value;
  }
  /** A 32-bit length and that many bytes, as a Buffer. */
  blob(): Buffer {
    const length = this.count();
    if (this.#at + length > this.buffer.length)
      throw new RangeError("the ledger script's reply ended early");
    const blob = this.buffer.subarray(this.#at, this.#at + length);
    this.#at += length;
    return blob;
  }
  text(): string {
    const length = this.count();
    if (this.#at + length > this.buffer.length)
      throw new RangeError("the ledger script's reply ended early");
    const text = this.buffer.toString("utf8", this.#at, this.#at + length);
    this.#at += length;
    return text;
  }
  amounts(): Amounts {
    return {
      tokens: this.double(),
      usdMicros: this.double(),
      risk: this.double(),
      requests: this.double(),
    };
  }
  /** The ids a sweep expired, which end every operation's reply. */
  expired(): readonly string[] {
    const n = this.count();
    if (n === 0) return NONE;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(this.text());
    return ids;
  }
}

/**
 * A reserve's outcome, or the error to refuse it with. Every reserve's part ends with the expired
 * ids and the reserve's time (`endOfReserve`); `maxClockSkewMs` is the bound the script was given,
 * for the error of a refused caller.
 */
export function decodeReserve(
  reply: ReplyReader,
  op: ReserveOp,
  maxClockSkewMs: number = MAX_CLOCK_SKEW_MS,
): ReserveOutcome | Error {
  const code = reply.byte();
  if (code === RESERVE_SKEWED) {
    const { at } = endOfReserve(reply);
    return (
      clockSkewOf(op.clientNowMs, at, maxClockSkewMs) ??
      new RangeError("the ledger script refused a reserve whose clock was within its bound")
    );
  }
  if (code === RESERVE_IN_USE || code === RESERVE_OTHER_REQUEST) {
    endOfReserve(reply);
    return reservationConflict(op.id, code === RESERVE_OTHER_REQUEST);
  }
  if (code === RESERVE_REPEATED) {
    const amounts = reply.amounts();
    const expiresAt = reply.double();
    return { ok: true, amounts, ...endOfReserve(reply), already: true, expiresAt };
  }
  if (code === RESERVE_DENIED) {
    const line = reply.double();
    const available = reply.double();
    const debt = reply.double();
    const rest = endOfReserve(reply);
    return debt < 0
      ? { ok: false, line, available, ...rest }
      : { ok: false, line, available, ...rest, debt };
  }
  if (code === RESERVE_TOO_LARGE) {
    const line = reply.double();
    const total = reply.double();
    endOfReserve(reply);
    return totalTooLarge(op.lines[line]?.account ?? "?", total);
  }
  // A code this version does not know is never read as a hold (a script of another version, or a
  // server that answers otherwise): refused, nothing taken as held.
  if (code !== RESERVE_HELD && code !== RESERVE_SHADOW_DENIED && code !== RESERVE_SHADOW_LOWERED)
    return unknownCode("reserve", code);
  const amounts = reply.amounts();
  if (code === RESERVE_SHADOW_DENIED) {
    const line = reply.double();
    const available = reply.double();
    const debt = reply.double();
    const wouldBe =
      debt < 0
        ? ({ ok: false, line, available } as const)
        : ({ ok: false, line, available, debt } as const);
    return { ok: true, amounts, ...endOfReserve(reply), wouldBe };
  }
  if (code === RESERVE_SHADOW_LOWERED) {
    const wouldBe = { ok: true, amounts: reply.amounts() } as const;
    return { ok: true, amounts, ...endOfReserve(reply), wouldBe };
  }
  const expired = reply.expired();
  return { ok: true, amounts, expired, at: reply.double() };
}

/** The error for a reply code this version of the script never sends. */
function unknownCode(operation: string, code: number): RangeError {
  return new RangeError(
    `the ledger script answered a ${operation} with code ${code}, which this version does not send: nothing is taken as done`,
  );
}

/** The end of every reserve's part: the ids its sweep expired, then the reserve's time. */
function endOfReserve(reply: ReplyReader): { expired: readonly string[]; at: number } {
  const expired = reply.expired();
  return { expired, at: reply.double() };
}

/**
 * A commit's outcome, or the error to refuse it with. A receipted commit's entries name `root`,
 * which the script leaves out (every entry of a call is its root's).
 */
export function decodeCommit(reply: ReplyReader, root = ""): CommitOutcome | RangeError {
  const code = reply.byte();
  if (code === COMMIT_TOO_LARGE) {
    const account = reply.text();
    const total = reply.double();
    reply.expired();
    return totalTooLarge(account, total);
  }
  if (code !== COMMIT_DONE) {
    // Only the script's own codes: another is never read as "nothing to charge".
    if (code !== COMMIT_UNKNOWN && code !== COMMIT_RELEASED) return unknownCode("commit", code);
    return { status: code === COMMIT_RELEASED ? "released" : "unknown", expired: reply.expired() };
  }
  const already = reply.byte() === 1;
  const late = reply.byte() === 1;
  const reserved = reply.amounts();
  const charged = reply.amounts();
  const n = reply.count();
  let lines = NO_LINES;
  if (n > 0) {
    const set = linesOfLineSet(reply.text());
    const crossed: ChargedLine[] = [];
    for (let i = 0; i < n; i++) {
      const line = set[reply.double()];
      if (line === undefined) throw new RangeError("the ledger script's reply names no such line");
      const before = reply.double();
      crossed.push({ ...line, before, after: reply.double() });
    }
    lines = crossed;
  }
  const receipt = reply.byte() === 1 ? decodeReceiptFacts(reply, root) : undefined;
  const expired = reply.expired();
  const outcome = {
    status: "committed" as const,
    already,
    late,
    reserved,
    charged,
    lines,
    expired,
  };
  return receipt === undefined ? outcome : { ...outcome, receipt };
}

/** A receipted commit's entry and the one before (spec/receipts.md §2), as ledger.lua packs them. */
function decodeReceiptFacts(reply: ReplyReader, root: string): ReceiptFacts {
  const entry = decodeEntry(reply.blob(), root);
  const prev = reply.blob();
  return { entry, prev: prev.length === 0 ? null : decodeEntry(prev, root) };
}

function decodeEntry(blob: Buffer, root: string): ReceiptEntry {
  const reader = new ReplyReader(blob);
  const seq = reader.double();
  const atMs = reader.double();
  const charged = reader.amounts();
  const late = reader.byte() === 1;
  const reservationId = reader.text();
  const n = reader.count();
  const linkIds: string[] = [];
  for (let i = 0; i < n; i++) linkIds.push(reader.text());
  return { root, seq, reservationId, linkIds, charged, late, atMs };
}

export function decodeRelease(reply: ReplyReader): ReleaseOutcome {
  const status = STATUS_OF_NUMBER[reply.byte()] ?? "unknown";
  const already = reply.byte() === 1;
  return { status, already, expired: reply.expired() };
}

/** An extend's outcome: the status, and for a held reservation its expiry now. */
export function decodeExtend(reply: ReplyReader): ExtendOutcome {
  const code = reply.byte();
  if (code === STATUS_HELD) {
    const expiresAt = reply.double();
    return { status: "held", expiresAt, expired: reply.expired() };
  }
  return { status: STATUS_OF_NUMBER[code] ?? "unknown", expired: reply.expired() };
}

export function decodeBalances(
  reply: ReplyReader,
  accounts: readonly AccountRef[],
): BalancesOutcome {
  const n = reply.count();
  // One balance per account asked for: a shorter reply would read the rest as nothing spent.
  if (n !== accounts.length)
    throw new RangeError(
      `the ledger script answered ${n} balances for ${accounts.length} accounts`,
    );
  const balances = new Map<string, Balance>();
  for (let i = 0; i < n; i++) {
    const spent = reply.double();
    const held = reply.double();
    balances.set(
      nameOf(accounts[i] as AccountRef),
      balanceOf({ spent, held, settled: reply.double() }),
    );
  }
  const expired = reply.expired();
  return { balances, expired, at: reply.double() };
}

/** A settle's outcome: the count of lines cleared, each as its 0-based index, the amount and its spent. */
export function decodeSettle(reply: ReplyReader, lines: readonly LedgerLine[]): SettleOutcome {
  const n = reply.count();
  const settled: SettledLine[] = [];
  for (let i = 0; i < n; i++) {
    const line = lines[reply.double()];
    if (line === undefined) throw new RangeError("the ledger script's reply names no such line");
    const amount = reply.double();
    settled.push({ ...line, amount, spent: reply.double() });
  }
  return { settled, expired: reply.expired() };
}
