/**
 * Signed receipts (spec/receipts.md): on a commit, the enforcer signs what the ledger decided — the
 * root, the per-root sequence number the ledger assigned with the commit, the reservation, the
 * links charged, the amounts, whether late, the ledger's time — together with the SHA-256 of the
 * previous sequence number's entry, so that a parent can audit its children offline: every
 * receipt is authentic, and a receipt left out, reordered, substituted or forked shows.
 *
 * The ledger assigns the sequence numbers and keeps the previous entry (it cannot hash: the Redis
 * script has no SHA-256); the enforcer, which holds the key, encodes, hashes and signs.
 */
import {
  AllowanceError,
  getDefaultBackend,
  type KeyPair,
  type TrustedRoots,
} from "@allowance/core";
import {
  concatBytes,
  decodeCanonical,
  encodeCanonical,
  equalBytes,
  fromBase64url,
  sha256,
  toBase64url,
  utf8,
  verifySignature,
  type CborValue,
} from "@allowance/core/format";
import { LINE_KINDS, MAX_AMOUNT, type Amounts, type LineKind, type ReceiptEntry } from "./rule.js";

export type { ReceiptEntry } from "./rule.js";

/** The receipt format's version: map key 1 of every body (spec/receipts.md §3). */
export const RECEIPT_VERSION = 1;

/** What a receipt's signature covers: this context, then the body (spec/receipts.md §4). */
export const RECEIPT_SIGNATURE_CONTEXT = utf8("allowance-receipt-v1\0");

/** What a receipt's `prev` hashes: this context, then the previous entry's encoding (§4). */
export const RECEIPT_ENTRY_CONTEXT = utf8("allowance-receipt-entry-v1\0");

/** The bounds a receipt must keep (spec/receipts.md §3): checked before anything is trusted. */
export const RECEIPT_LIMITS = Object.freeze({
  maxBodyBytes: 65_536,
  maxLinks: 1_024,
  maxNameLength: 512,
});

/** A receipt: its entry, the previous entry's digest and the signer, and the signed bytes. */
export interface Receipt extends ReceiptEntry {
  /** SHA-256 of the previous sequence number's entry (spec/receipts.md §4), base64url; absent for 1. */
  readonly prev?: string;
  /** The signing key's id (RFC 7638 thumbprint). */
  readonly kid: string;
  /** The canonical CBOR body, base64url: what is signed and what a verifier reads. */
  readonly body: string;
  /** The Ed25519 signature, base64url. */
  readonly sig: string;
}

/** A receipt as it travels (one JSON object, one line of a receipts file): exactly these two. */
export interface ReceiptJSON {
  readonly body: string;
  readonly sig: string;
}

// Map keys of a body (spec/receipts.md §3).
const VERSION = 1;
const ROOT = 2;
const SEQ = 3;
const RESERVATION = 4;
const LINKS = 5;
const CHARGED = 6;
const LATE = 7;
const AT = 8;
const PREV = 9;
const KID = 10;

/** An entry as its map (keys 2–8): what `prev` hashes and every body holds. */
function entryMap(entry: ReceiptEntry): Map<number, CborValue> {
  const { tokens, usdMicros, risk, requests } = entry.charged;
  return new Map<number, CborValue>([
    [ROOT, entry.root],
    [SEQ, entry.seq],
    [RESERVATION, entry.reservationId],
    [LINKS, [...entry.linkIds]],
    [CHARGED, [tokens, usdMicros, risk, requests]],
    [LATE, entry.late ? 1 : 0],
    [AT, entry.atMs],
  ]);
}

/** The digest a following receipt names as `prev`: SHA-256 over the context and the entry's encoding. */
export function entryDigest(entry: ReceiptEntry): Uint8Array {
  return sha256(RECEIPT_ENTRY_CONTEXT, encodeCanonical(entryMap(checkedEntry(entry, "entry"))));
}

/**
 * Signs the receipt of `entry` (spec/receipts.md §4), naming `prev`, the entry of the previous
 * sequence number of its root (null for sequence number 1, or when the ledger no longer has it).
 */
export function signReceipt(entry: ReceiptEntry, prev: ReceiptEntry | null, key: KeyPair): Receipt {
  checkedEntry(entry, "entry");
  if (prev !== null) {
    checkedEntry(prev, "prev");
    if (prev.root !== entry.root || prev.seq !== entry.seq - 1)
      throw new RangeError(
        `"prev" expected the entry of sequence number ${entry.seq - 1} of root ${entry.root}, got ${prev.seq} of ${prev.root}`,
      );
  }
  const map = entryMap(entry);
  map.set(VERSION, RECEIPT_VERSION);
  const prevDigest = prev === null ? undefined : entryDigest(prev);
  if (prevDigest !== undefined) map.set(PREV, prevDigest);
  map.set(KID, key.kid);
  const body = encodeCanonical(map);
  const sig = getDefaultBackend().sign(
    key.privateKey,
    concatBytes(RECEIPT_SIGNATURE_CONTEXT, body),
  );
  return Object.freeze({
    ...entry,
    linkIds: Object.freeze([...entry.linkIds]),
    charged: Object.freeze({ ...entry.charged }),
    ...(prevDigest === undefined ? {} : { prev: toBase64url(prevDigest) }),
    kid: key.kid,
    body: toBase64url(body),
    sig: toBase64url(sig),
  });
}

/** A receipt's travelling form (spec/receipts.md §5). */
export function receiptToJSON(receipt: Pick<Receipt, "body" | "sig">): ReceiptJSON {
  const { body, sig } = (receipt ?? {}) as Partial<Record<"body" | "sig", unknown>>;
  if (typeof body !== "string" || typeof sig !== "string")
    throw new TypeError(
      `"receipt" expected a receipt with "body" and "sig", got ${kindOf(receipt)}`,
    );
  return { body, sig };
}

/**
 * Reads a receipt's travelling form, `{ body, sig }`, WITHOUT checking its signature (verifyReceipts
 * does): the body must be canonical CBOR with exactly the keys of spec/receipts.md §3, each well
 * formed. A wrong input is an AllowanceError ERR_MALFORMED (or ERR_NON_CANONICAL), never a
 * partially read receipt.
 */
export function decodeReceipt(value: unknown): Receipt {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw malformed(`a receipt is a JSON object {"body", "sig"}, got ${kindOf(value)}`);
  const keys = Object.keys(value).sort();
  if (keys.length !== 2 || keys[0] !== "body" || keys[1] !== "sig")
    throw malformed(
      `a receipt has exactly "body" and "sig", got ${keys.map((k) => JSON.stringify(k)).join(", ")}`,
    );
  const { body, sig } = value as { body: unknown; sig: unknown };
  if (typeof body !== "string" || typeof sig !== "string")
    throw malformed(`"body" and "sig" are base64url strings`);
  if (body.length > Math.ceil((RECEIPT_LIMITS.maxBodyBytes * 4) / 3))
    throw malformed(`the body is longer than ${RECEIPT_LIMITS.maxBodyBytes} bytes`);
  const bytes = fromBase64url(body);
  const signature = fromBase64url(sig);
  if (bytes === undefined || toBase64url(bytes) !== body)
    throw malformed(`"body" is not canonical base64url`);
  if (signature === undefined || signature.length !== 64 || toBase64url(signature) !== sig)
    throw malformed(`"sig" is not 64 bytes of canonical base64url`);
  const decoded = decodeCanonical(bytes);
  if (!(decoded instanceof Map)) throw malformed("the body is not a CBOR map");
  const map = decoded as Map<unknown, unknown>;
  for (const key of map.keys())
    if (typeof key !== "number" || key < VERSION || key > KID)
      throw malformed(`the body has an unknown key ${String(key)}`);
  if (map.get(VERSION) !== RECEIPT_VERSION)
    throw malformed(`the body's version is ${String(map.get(VERSION))}, not ${RECEIPT_VERSION}`);
  const root = name(map.get(ROOT), "root");
  if (/[.{}]/.test(root)) throw malformed(`"root" is not a root link id`);
  const seq = uint(map.get(SEQ), "seq");
  if (seq < 1) throw malformed(`"seq" starts at 1`);
  const reservationId = name(map.get(RESERVATION), "reservation");
  if (!reservationId.startsWith(`${root}.`))
    throw malformed(`"reservation" does not start with its root and a dot`);
  const links = map.get(LINKS);
  if (!Array.isArray(links) || links.length === 0 || links.length > RECEIPT_LIMITS.maxLinks)
    throw malformed(`"links" is 1 to ${RECEIPT_LIMITS.maxLinks} link ids`);
  const linkIds = links.map((id) => name(id, "links"));
  if (new Set(linkIds).size !== linkIds.length) throw malformed(`"links" names a link twice`);
  const amounts = map.get(CHARGED);
  if (!Array.isArray(amounts) || amounts.length !== LINE_KINDS.length)
    throw malformed(`"charged" is ${LINE_KINDS.length} amounts`);
  const charged = Object.fromEntries(
    LINE_KINDS.map((kind, i) => [kind, uint(amounts[i], `charged.${kind}`)]),
  ) as Record<LineKind, number>;
  const late = map.get(LATE);
  if (late !== 0 && late !== 1) throw malformed(`"late" is 0 or 1`);
  const atMs = uint(map.get(AT), "at");
  const prev = map.get(PREV);
  if (seq === 1 ? prev !== undefined : !(prev instanceof Uint8Array && prev.length === 32))
    throw malformed(
      seq === 1 ? `the first receipt of a root names no "prev"` : `"prev" is a 32-byte digest`,
    );
  const kid = name(map.get(KID), "kid");
  return Object.freeze({
    root,
    seq,
    reservationId,
    linkIds: Object.freeze(linkIds),
    charged: Object.freeze(charged),
    late: late === 1,
    atMs,
    ...(prev instanceof Uint8Array ? { prev: toBase64url(prev) } : {}),
    kid,
    body,
    sig,
  });
}

/** The kinds of problem verifyReceipts reports (spec/receipts.md §6). */
export const RECEIPT_PROBLEMS = Object.freeze([
  "malformed",
  "unknown-key",
  "bad-signature",
  "fork",
  "gap",
  "broken-link",
  "overflow",
] as const);
export type ReceiptProblemKind = (typeof RECEIPT_PROBLEMS)[number];

export interface ReceiptProblem {
  readonly kind: ReceiptProblemKind;
  /** The position of the receipt in the input (malformed, unknown-key, bad-signature, fork). */
  readonly index?: number;
  readonly root?: string;
  /** The sequence number concerned; for a gap, the first missing one. */
  readonly seq?: number;
  /** For a gap: the last missing sequence number. */
  readonly to?: number;
  /** A sentence for a person. */
  readonly detail: string;
}

/** What the receipts of one root add up to. */
export interface RootReceipts {
  readonly root: string;
  /** The lowest and highest sequence numbers present, and how many distinct receipts. */
  readonly first: number;
  readonly last: number;
  readonly count: number;
  /**
   * Charged per link id, over every receipt naming the link. A sum past MAX_AMOUNT (2^53 − 1),
   * which no ledger records, is an `overflow` problem and shown as MAX_AMOUNT, never rounded.
   */
  readonly links: Readonly<Record<string, Amounts>>;
}

export interface ReceiptsReport {
  /** True when every receipt verified and every root's chain is whole and unforked. */
  readonly ok: boolean;
  /** Distinct receipts that decoded and verified. */
  readonly verified: number;
  readonly problems: readonly ReceiptProblem[];
  /** By root id, in string order. */
  readonly roots: readonly RootReceipts[];
}

export interface VerifyReceiptsOptions {
  /** The enforcers' public keys, by kid (importJwks, trustedRoots). */
  readonly keys: TrustedRoots;
  /**
   * The receipts are a window of each root's: missing sequence numbers before the first one
   * given are not a gap. Default false: a root's receipts start at 1.
   */
  readonly partial?: boolean;
}

/**
 * Verifies receipts offline (spec/receipts.md §6): each must decode and carry a valid signature
 * of a key in `keys`; then, per root, sequence numbers must run without a gap (from 1 unless
 * `partial`), each number must have one receipt (two different ones are a fork: lost ledger state,
 * or a ledger shared wrongly), and each receipt's `prev` must be the digest of the entry before it.
 * Never throws for a bad receipt: every problem is reported, and `ok` is false.
 */
export function verifyReceipts(
  receipts: readonly unknown[],
  options: VerifyReceiptsOptions,
): ReceiptsReport {
  if (!Array.isArray(receipts))
    throw new TypeError(`"receipts" expected an array, got ${kindOf(receipts)}`);
  if (typeof options !== "object" || options === null || !(options.keys instanceof Map))
    throw new TypeError(`"options.keys" expected the enforcers' keys (importJwks or trustedRoots)`);
  // Each a public key: a map of key pairs, or of anything else, would fail inside the first check.
  for (const [kid, key] of options.keys as ReadonlyMap<unknown, unknown>) {
    const bytes = (key as { bytes?: unknown } | null)?.bytes;
    if (typeof kid !== "string" || !(bytes instanceof Uint8Array) || bytes.length !== 32)
      throw new TypeError(
        `"options.keys" expected public keys by kid (importJwks or trustedRoots), got another entry`,
      );
  }
  // A misspelt `partial` would leave the check it loosens on without a word; refused instead.
  for (const name of Object.keys(options))
    if (name !== "keys" && name !== "partial")
      throw new TypeError(
        `"options" has no option named ${JSON.stringify(name)} (known: keys, partial)`,
      );
  if (options.partial !== undefined && typeof options.partial !== "boolean")
    throw new TypeError(`"options.partial" expected a boolean, got ${kindOf(options.partial)}`);
  const problems: ReceiptProblem[] = [];
  const byRoot = new Map<string, Map<number, { receipt: Receipt; index: number }>>();
  let verified = 0;
  receipts.forEach((value, index) => {
    let receipt: Receipt;
    try {
      receipt = decodeReceipt(value);
    } catch (error) {
      if (!(error instanceof AllowanceError)) throw error;
      problems.push({ kind: "malformed", index, detail: error.message });
      return;
    }
    const key = options.keys.get(receipt.kid);
    if (key === undefined) {
      problems.push({
        kind: "unknown-key",
        index,
        root: receipt.root,
        seq: receipt.seq,
        detail: `signed by key ${receipt.kid}, which is not one of the keys given`,
      });
      return;
    }
    const body = fromBase64url(receipt.body) as Uint8Array;
    const signature = fromBase64url(receipt.sig) as Uint8Array;
    if (
      verifySignature(key.bytes, concatBytes(RECEIPT_SIGNATURE_CONTEXT, body), signature) !== "ok"
    ) {
      problems.push({
        kind: "bad-signature",
        index,
        root: receipt.root,
        seq: receipt.seq,
        detail: `the signature of receipt ${receipt.seq} of root ${receipt.root} does not verify`,
      });
      return;
    }
    let chain = byRoot.get(receipt.root);
    if (chain === undefined) byRoot.set(receipt.root, (chain = new Map()));
    const seen = chain.get(receipt.seq);
    if (seen === undefined) {
      chain.set(receipt.seq, { receipt, index });
      verified++;
    } else if (seen.receipt.body !== receipt.body) {
      problems.push({
        kind: "fork",
        index,
        root: receipt.root,
        seq: receipt.seq,
        detail: `two different receipts have sequence number ${receipt.seq} of root ${receipt.root} (inputs ${seen.index} and ${index}): the ledger's state was lost or rolled back, or two ledgers share a root`,
      });
    }
  });
  const roots: RootReceipts[] = [];
  for (const root of [...byRoot.keys()].sort()) {
    const chain = byRoot.get(root) as Map<number, { receipt: Receipt; index: number }>;
    const seqs = [...chain.keys()].sort((a, b) => a - b);
    const first = seqs[0] as number;
    if (first > 1 && options.partial !== true) problems.push(gap(root, 1, first - 1));
    // No prototype: a link named "__proto__" is a total of its own, never Object.prototype's.
    const links: Record<string, Record<LineKind, number>> = Object.create(null) as Record<
      string,
      Record<LineKind, number>
    >;
    /** `${linkId} ${kind}` of each total that overflowed, reported once. */
    const overflowed = new Set<string>();
    seqs.forEach((seq, i) => {
      const { receipt } = chain.get(seq) as { receipt: Receipt };
      for (const linkId of receipt.linkIds) {
        const total = (links[linkId] ??= { tokens: 0, usdMicros: 0, risk: 0, requests: 0 });
        for (const kind of LINE_KINDS) {
          // Both at most MAX_AMOUNT: a sum past it is compared before it could be rounded.
          if (receipt.charged[kind] <= MAX_AMOUNT - total[kind]) {
            total[kind] += receipt.charged[kind];
            continue;
          }
          total[kind] = MAX_AMOUNT;
          if (overflowed.has(`${linkId} ${kind}`)) continue;
          overflowed.add(`${linkId} ${kind}`);
          problems.push({
            kind: "overflow",
            root,
            seq,
            detail: `the ${kind} charged to link ${linkId} over the receipts of root ${root} pass 2^53 - 1 at receipt ${seq}, more than any ledger records: these receipts are not one ledger's`,
          });
        }
      }
      if (i === 0) return;
      const before = seqs[i - 1] as number;
      if (seq > before + 1) {
        problems.push(gap(root, before + 1, seq - 1));
        return;
      }
      const previous = (chain.get(before) as { receipt: Receipt }).receipt;
      const named = fromBase64url(receipt.prev ?? "") as Uint8Array;
      if (!equalBytes(named, entryDigest(previous)))
        problems.push({
          kind: "broken-link",
          root,
          seq,
          detail: `receipt ${seq} of root ${root} does not name receipt ${before}'s entry as the one before it`,
        });
    });
    roots.push({ root, first, last: seqs[seqs.length - 1] as number, count: seqs.length, links });
  }
  return { ok: problems.length === 0, verified, problems, roots };
}

function gap(root: string, seq: number, to: number): ReceiptProblem {
  return {
    kind: "gap",
    root,
    seq,
    to,
    detail:
      seq === to
        ? `receipt ${seq} of root ${root} is missing`
        : `receipts ${seq} to ${to} of root ${root} are missing`,
  };
}

/** An entry, checked as a ledger must give it: a TypeError or RangeError naming what is wrong. */
function checkedEntry(entry: ReceiptEntry, argument: string): ReceiptEntry {
  if (typeof entry !== "object" || entry === null)
    throw new TypeError(`"${argument}" expected a receipt entry, got ${kindOf(entry)}`);
  const { root, seq, reservationId, linkIds, charged, late, atMs } = entry;
  const text = (value: unknown, field: string) => {
    if (typeof value !== "string" || !value.isWellFormed())
      throw new TypeError(
        `"${argument}.${field}" expected a well-formed string, got ${kindOf(value)}`,
      );
    if (value.length === 0 || value.length > RECEIPT_LIMITS.maxNameLength)
      throw new RangeError(
        `"${argument}.${field}" expected 1 to ${RECEIPT_LIMITS.maxNameLength} characters`,
      );
  };
  const integer = (value: unknown, field: string, least: number) => {
    if (typeof value !== "number")
      throw new TypeError(`"${argument}.${field}" expected an integer, got ${kindOf(value)}`);
    if (!Number.isSafeInteger(value) || value < least)
      throw new RangeError(
        `"${argument}.${field}" expected an integer from ${least} to 2^53 - 1, got ${value}`,
      );
  };
  text(root, "root");
  integer(seq, "seq", 1);
  text(reservationId, "reservationId");
  if (!Array.isArray(linkIds) || linkIds.length === 0 || linkIds.length > RECEIPT_LIMITS.maxLinks)
    throw new TypeError(`"${argument}.linkIds" expected 1 to ${RECEIPT_LIMITS.maxLinks} link ids`);
  linkIds.forEach((id, i) => text(id, `linkIds[${i}]`));
  if (new Set(linkIds).size !== linkIds.length)
    throw new TypeError(`"${argument}.linkIds" names a link twice`);
  if (typeof charged !== "object" || charged === null)
    throw new TypeError(`"${argument}.charged" expected amounts, got ${kindOf(charged)}`);
  for (const kind of LINE_KINDS) integer(charged[kind], `charged.${kind}`, 0);
  if (typeof late !== "boolean")
    throw new TypeError(`"${argument}.late" expected a boolean, got ${kindOf(late)}`);
  integer(atMs, "atMs", 0);
  return entry;
}

function uint(value: unknown, field: string): number {
  if (typeof value !== "number") throw malformed(`"${field}" is not an unsigned integer`);
  return value;
}

function name(value: unknown, field: string): string {
  if (
    typeof value !== "string" ||
    value.length === 0 ||
    value.length > RECEIPT_LIMITS.maxNameLength
  )
    throw malformed(
      `"${field}" is not a string of 1 to ${RECEIPT_LIMITS.maxNameLength} characters`,
    );
  return value;
}

function malformed(message: string): AllowanceError {
  return new AllowanceError("ERR_MALFORMED", `receipt: ${message}`);
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : typeof value;
}
