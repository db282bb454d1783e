/**
 * `denialOf`: the typed denial inside whatever a caller caught. The official SDKs wrap a denial's
 * body differently (docs/metering.md "Denials"):
 *   - openai: `APIError.error` is the body's `error` object;
 *   - @anthropic-ai/sdk: `APIError.error` is the whole body, so the denial is `error.error`;
 *   - ai (AI SDK): `APICallError.responseBody` is the body's text and `data` its parsed form, and a
 *     `RetryError` keeps the attempts in `errors` / `lastError`;
 * and a raw body (text or parsed JSON) is accepted too.
 */
import { METER_DENY_REASONS, type MeterDenial, type MeterDenyReason } from "./wrap-fetch.js";

const REASONS: ReadonlySet<string> = new Set(METER_DENY_REASONS);
const MAX_DEPTH = 6;

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => value !== null && typeof value === "object";

/** The denial an SDK error, a RetryError, an error's `cause`, or a denial body holds; undefined for anything else. */
export function denialOf(error: unknown): MeterDenial | undefined {
  return find(error, 0, new Set());
}

function find(value: unknown, depth: number, seen: Set<unknown>): MeterDenial | undefined {
  if (depth > MAX_DEPTH) return undefined;
  if (typeof value === "string") {
    // Only text that looks like a JSON body is parsed (a responseBody), and only a bounded amount.
    const text = value.trimStart();
    if (text.charCodeAt(0) !== 123 || text.length > 65_536 || !text.includes("allowance_denied"))
      return undefined;
    try {
      return find(JSON.parse(text) as unknown, depth + 1, seen);
    } catch {
      return undefined;
    }
  }
  if (!isObject(value) || seen.has(value)) return undefined;
  seen.add(value);
  // Called in a catch block: a getter or proxy that throws must not replace the caller's error.
  let own: MeterDenial | undefined;
  try {
    own = typed(value);
  } catch {
    return undefined;
  }
  if (own !== undefined) return own;
  // Where the SDKs keep the body, the parsed data, the attempts and the cause, in that order.
  const errors = read(value, "errors");
  let attempts: unknown[] = [];
  try {
    if (Array.isArray(errors)) attempts = [...errors].reverse().slice(0, 8);
  } catch {
    // A revoked proxy, or an iterator that throws: no attempts to search.
  }
  const candidates: unknown[] = [
    read(value, "error"),
    read(value, "responseBody"),
    read(value, "data"),
    read(value, "lastError"),
    ...attempts,
    read(value, "cause"),
  ];
  for (const candidate of candidates) {
    const found = find(candidate, depth + 1, seen);
    if (found !== undefined) return found;
  }
  return undefined;
}

function read(value: Json, key: string): unknown {
  try {
    return value[key];
  } catch {
    return undefined;
  }
}

/** The denial when `value` is the `error` object of a denial body. */
function typed(value: Json): MeterDenial | undefined {
  if (value.type !== "allowance_denied") return undefined;
  const reason = value.reason;
  if (typeof reason !== "string" || !REASONS.has(reason)) return undefined;
  const linkIndex = value.linkIndex;
  if (
    linkIndex !== null &&
    !(typeof linkIndex === "number" && Number.isSafeInteger(linkIndex) && linkIndex >= 0)
  )
    return undefined;
  const count = (x: unknown): x is number =>
    typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  const text = (x: unknown): x is string => typeof x === "string";
  return {
    reason: reason as MeterDenyReason,
    linkIndex: linkIndex as number | null,
    field: text(value.field) ? value.field : "",
    message: text(value.message) ? value.message : reason,
    ...(text(value.linkId) ? { linkId: value.linkId } : {}),
    ...(count(value.retryAfter) ? { retryAfter: value.retryAfter } : {}),
    ...(count(value.available) ? { available: value.available } : {}),
    ...(count(value.limit) ? { limit: value.limit } : {}),
    ...(text(value.provider) ? { provider: value.provider } : {}),
    ...(text(value.model) ? { model: value.model } : {}),
  };
}
