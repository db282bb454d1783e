/**
 * Idempotent reserve (spec/enforcement.md §3.9): the reservation id an idempotency key names, and
 * the fingerprint of a request, which the ledger stores with the reservation and compares when the
 * same id is reserved again (rule.ts `answerRepeatedReserve`).
 */
import { createHash, randomBytes } from "node:crypto";
import { shown } from "./ledger.js";

/** The longest idempotency key, in UTF-16 units. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 128;

/**
 * Between the root and the key in a keyed reservation id. The enforcer's own ids are the root, a
 * dot and base64url characters, never a colon: no key names one of them.
 */
const KEY_MARK = ".key:";

/** An idempotency key, checked: a well-formed string of 1 to MAX_IDEMPOTENCY_KEY_LENGTH units. */
export function checkedIdempotencyKey(key: unknown): string {
  if (typeof key !== "string" || !key.isWellFormed())
    throw new TypeError(`"idempotencyKey" expected a well-formed string, got ${shown(key)}`);
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH)
    throw new RangeError(
      `"idempotencyKey" expected a string of 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters, got ${shown(key)}`,
    );
  return key;
}

/**
 * The enforcer's own reservation ids are `root.` + this process's prefix + a counter in base 36
 * that every enforcer of the process shares (newReservationId): unique across processes by the
 * random prefix, and within one by the counter, so that two enforcers may use one ledger.
 */
export const ID_PREFIX = randomBytes(9).toString("base64url");

let reservationCounter = 0;
/** `root.` + ID_PREFIX per root, kept as one flat string: an id is then one join, hashed quickly. */
const idPrefixes = new Map<string, string>();

/** A reservation id no enforcer of any process has made before, on `root`. */
export function newReservationId(root: string): string {
  let prefix = idPrefixes.get(root);
  if (prefix === undefined) {
    if (idPrefixes.size >= 1024) idPrefixes.clear();
    // Stored flat (one buffer, not a tree of joined parts): later joins and hashing walk no tree.
    prefix = Buffer.from(`${root}.${ID_PREFIX}`, "latin1").toString("latin1");
    idPrefixes.set(root, prefix);
  }
  return prefix + (reservationCounter++).toString(36);
}

/**
 * The counter of an id of that form on `root` (base 36, 1 to 10 digits), or -1 for any other id.
 * A function of the string alone: two ids with different counters are different ids, which lets a
 * ledger that has seen no greater counter know an id is new without looking it up (memory-ledger.ts).
 */
export function counterOf(id: string, root: string): number {
  const start = root.length + 1 + ID_PREFIX.length;
  const digits = id.length - start;
  if (
    digits < 1 ||
    digits > 10 ||
    id.charCodeAt(root.length) !== 46 ||
    !id.startsWith(ID_PREFIX, root.length + 1) ||
    !id.startsWith(root)
  )
    return -1;
  let counter = 0;
  for (let i = start; i < id.length; i++) {
    const c = id.charCodeAt(i);
    const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 122 ? c - 87 : -1;
    if (digit < 0) return -1;
    counter = counter * 36 + digit;
  }
  return counter;
}

/** The id of the reservation a key names, on the chain's root: the same in every try and process. */
export function keyedReservationId(root: string, key: string): string {
  return `${root}${KEY_MARK}${key}`;
}

/** What a reserve asks, as far as two tries of it must agree. */
export interface FingerprintedRequest {
  /** The chain's last link id, which names every link above it (spec/format.md §5.3). */
  readonly leafId: string;
  readonly provider: string | undefined;
  readonly model: string | undefined;
  readonly tool: string | undefined;
  /** The tool call's arguments, as given (absent: undefined). */
  readonly arguments: unknown;
  readonly tokens: number;
  readonly usdMicros: number;
  /** After the policy's default. */
  readonly risk: number;
  readonly minimums: { readonly tokens: number; readonly usdMicros: number } | undefined;
  readonly ttlSeconds: number;
}

/**
 * The request's fingerprint: SHA-256, base64url, of a canonical JSON array of every field (object
 * keys of the arguments sorted, absent fields as null and absent arguments as an empty list), so
 * that two tries of one request give one fingerprint and any other request another.
 */
export function fingerprintOf(request: FingerprintedRequest): string {
  const { minimums } = request;
  const json = JSON.stringify([
    "allowance.reserve.v1",
    request.leafId,
    request.provider ?? null,
    request.model ?? null,
    request.tool ?? null,
    request.arguments === undefined ? [] : [canonical(request.arguments, 0)],
    request.tokens,
    request.usdMicros,
    request.risk,
    minimums === undefined ? null : [minimums.tokens, minimums.usdMicros],
    request.ttlSeconds,
  ]);
  return createHash("sha256").update(json).digest("base64url");
}

/** Deeper arguments than this are not JSON a tool takes (and a cycle never ends): refused. */
const MAX_DEPTH = 64;

/** A JSON value with its objects' keys sorted; anything else is refused with a TypeError. */
function canonical(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH)
    throw new TypeError(`"arguments" nest deeper than ${MAX_DEPTH}: not fingerprinted`);
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value))
      throw new TypeError(`"arguments" expected JSON, got the number ${String(value)}`);
    return value;
  }
  if (Array.isArray(value)) return value.map((item) => canonical(item, depth + 1));
  const proto = typeof value === "object" ? (Object.getPrototypeOf(value) as unknown) : undefined;
  if (proto !== Object.prototype && proto !== null)
    throw new TypeError(`"arguments" expected JSON, got ${shown(value)}`);
  const object = value as Record<string, unknown>;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(object).sort()) sorted[key] = canonical(object[key], depth + 1);
  return sorted;
}
