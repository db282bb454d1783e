/**
 * The grant model (spec/format.md §4): the fields a link may state, their zod schemas, and the
 * mapping to and from the canonical CBOR payload with small integer keys.
 */
import { z } from "zod";
import { compareBytes, utf8, utf8Length } from "./bytes.js";
import { decodeCanonical, encodeCanonical, type CborMap, type CborValue } from "./cbor.js";
import { AllowanceError } from "./errors.js";
import { resolveLimits, type Limits } from "./limits.js";
import { decodePayloadFast } from "./fast-decode.js";
import {
  AUDIENCE,
  MAX_DEPTH,
  MAX_RATE_SECONDS,
  MODEL_ID,
  PROVIDER_NAME,
  TOOL_PATTERN,
} from "./patterns.js";

/** A provider on the allow-list, with optional caps of its own. */
export interface ProviderGrant {
  readonly name: string;
  readonly tokens?: number;
  readonly usdMicros?: number;
}

/** A rate window: at most this much per `seconds`. At least one of the three amounts is set. */
export interface RateWindow {
  readonly seconds: number;
  readonly tokens?: number;
  readonly usdMicros?: number;
  readonly requests?: number;
}

/**
 * The constraints a link states. Every field is optional in a child, where absence means "as the
 * parent"; on the root, absence means "unrestricted", except `exp`, which the root must state.
 */
export interface GrantFields {
  /** Not valid at or after this time, seconds since the Unix epoch. */
  readonly exp?: number;
  /** Not valid before this time, seconds since the Unix epoch. */
  readonly nbf?: number;
  /** How many further links may follow this one. */
  readonly depth?: number;
  /** Total LLM tokens (input + output) over the grant's lifetime. */
  readonly tokens?: number;
  /** Total spend in micro-dollars (1 USD = 1,000,000). */
  readonly usdMicros?: number;
  readonly providers?: readonly ProviderGrant[];
  readonly models?: readonly string[];
  /** Tool names and patterns: `*`, `name`, `prefix.*`. */
  readonly tools?: readonly string[];
  /** Risk points for consequential tool actions. */
  readonly risk?: number;
  /** Windows this link adds; every window anywhere on the chain is enforced. */
  readonly rate?: readonly RateWindow[];
  /** Endpoints that may accept the token. */
  readonly aud?: readonly string[];
  /** Free text for cost attribution; not a constraint. */
  readonly label?: string;
}

/** One link's payload: its fields, the holder key that may sign the next link, and a nonce. */
export interface LinkGrant extends GrantFields {
  /** The holder's Ed25519 public key (32 bytes). */
  readonly sub: Uint8Array;
  /** Random bytes that keep link ids unique (8 to 32 bytes). */
  readonly nonce: Uint8Array;
}

/** The grant in force at a link: every field folded from the root down (spec/format.md §6). */
export interface EffectiveGrant {
  readonly holder: Uint8Array;
  readonly exp: number;
  readonly nbf?: number;
  readonly depth?: number;
  readonly tokens?: number;
  readonly usdMicros?: number;
  readonly providers?: readonly ProviderGrant[];
  readonly models?: readonly string[];
  readonly tools?: readonly string[];
  readonly risk?: number;
  readonly rate: readonly RateWindow[];
  readonly aud?: readonly string[];
  readonly label?: string;
}

/** The integer key of each payload field (spec/format.md §4.1). */
export const PAYLOAD_KEYS = Object.freeze({
  sub: 1,
  nonce: 2,
  exp: 3,
  nbf: 4,
  depth: 5,
  tokens: 6,
  usdMicros: 7,
  providers: 8,
  models: 9,
  tools: 10,
  risk: 11,
  rate: 12,
  aud: 13,
  label: 14,
} as const);

const PROVIDER_KEYS = Object.freeze({ tokens: 1, usdMicros: 2 } as const);
const RATE_KEYS = Object.freeze({ seconds: 1, tokens: 2, usdMicros: 3, requests: 4 } as const);

export {
  AUDIENCE,
  MAX_DEPTH,
  MAX_RATE_SECONDS,
  MODEL_ID,
  PROVIDER_NAME,
  TOOL_PATTERN,
} from "./patterns.js";

const amount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const bytes = (min: number, max: number) =>
  z
    .instanceof(Uint8Array)
    .refine(
      (b) => b.length >= min && b.length <= max,
      `must be ${min === max ? min : `${min} to ${max}`} bytes`,
    );

function uniqueBy<T>(key: (item: T) => string) {
  return (items: readonly T[]) => new Set(items.map(key)).size === items.length;
}

const providerSchema = z.strictObject({
  name: z.string().regex(PROVIDER_NAME, "must match [a-z0-9][a-z0-9_.-]{0,63}"),
  tokens: amount.optional(),
  usdMicros: amount.optional(),
});

const rateSchema = z
  .strictObject({
    seconds: z.number().int().min(1).max(MAX_RATE_SECONDS),
    tokens: amount.optional(),
    usdMicros: amount.optional(),
    requests: amount.optional(),
  })
  .refine((w) => w.tokens !== undefined || w.usdMicros !== undefined || w.requests !== undefined, {
    message: "a rate window needs tokens, usdMicros or requests",
  });

const stringSet = (pattern: RegExp, what: string) =>
  z.array(z.string().regex(pattern, `is not a valid ${what}`)).refine(
    uniqueBy<string>((s) => s),
    "has duplicates",
  );

export const grantFieldsSchema = z.strictObject({
  exp: amount.optional(),
  nbf: amount.optional(),
  depth: z.number().int().min(0).max(MAX_DEPTH).optional(),
  tokens: amount.optional(),
  usdMicros: amount.optional(),
  providers: z
    .array(providerSchema)
    .refine(
      uniqueBy<{ name: string }>((p) => p.name),
      "has duplicate names",
    )
    .optional(),
  models: stringSet(MODEL_ID, "model id").optional(),
  tools: stringSet(TOOL_PATTERN, "tool pattern").optional(),
  risk: amount.optional(),
  rate: z
    .array(rateSchema)
    .refine(
      uniqueBy<object>((w) => JSON.stringify(w)),
      "has duplicate windows",
    )
    .optional(),
  aud: stringSet(AUDIENCE, "audience").optional(),
  // String sizes are bounded in UTF-8 bytes by the limits (checkGrantLimits), not here.
  // A lone surrogate has no UTF-8 encoding: such a label could be minted but never verified.
  label: z
    .string()
    .refine(
      (text) => !/\p{Surrogate}/u.test(text),
      "must be well-formed Unicode (no lone surrogates)",
    )
    .optional(),
});

export const linkGrantSchema = grantFieldsSchema.extend({
  sub: bytes(32, 32),
  nonce: bytes(8, 32),
});

/** Parses caller-supplied grant fields, throwing a TypeError that names the field. */
export function parseGrantFields(input: unknown): GrantFields {
  const parsed = grantFieldsSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TypeError(
      `invalid grant: ${issue?.path.join(".") || "grant"} ${issue?.message ?? ""}`.trim(),
    );
  }
  return stripUndefined(parsed.data) as GrantFields;
}

/** Checks a parsed grant against the limits on list lengths and string sizes. */
export function checkGrantLimits(grant: GrantFields, limits: Limits, linkIndex?: number): void {
  limits = resolveLimits(limits);
  checkList(
    "providers",
    grant.providers?.map((p) => p.name),
    limits,
    linkIndex,
  );
  checkList("models", grant.models, limits, linkIndex);
  checkList("tools", grant.tools, limits, linkIndex);
  if (grant.rate !== undefined) checkList("rate", [], limits, linkIndex, grant.rate.length);
  checkList("aud", grant.aud, limits, linkIndex);
  if (grant.label !== undefined) checkString("label", grant.label, limits, linkIndex);
}

function checkList(
  field: string,
  items: readonly string[] | undefined,
  limits: Limits,
  linkIndex?: number,
  count = items?.length ?? 0,
): void {
  if (items === undefined) return;
  if (count > limits.maxListLength) {
    throw new AllowanceError(
      "ERR_LIMIT",
      `${field} has ${count} entries, the limit is ${limits.maxListLength}`,
      {
        ...(linkIndex === undefined ? {} : { linkIndex }),
        field,
        limit: limits.maxListLength,
        actual: count,
      },
    );
  }
  for (const item of items) checkString(field, item, limits, linkIndex);
}

function checkString(field: string, text: string, limits: Limits, linkIndex?: number): void {
  // Byte length is never below the UTF-16 length, and equal to it for ASCII.
  if (text.length <= limits.maxStringBytes / 3) return;
  const size = utf8Length(text);
  if (size > limits.maxStringBytes) {
    throw new AllowanceError(
      "ERR_LIMIT",
      `a ${field} string has ${size} bytes, the limit is ${limits.maxStringBytes}`,
      {
        ...(linkIndex === undefined ? {} : { linkIndex }),
        field,
        limit: limits.maxStringBytes,
        actual: size,
      },
    );
  }
}

/** Canonical order of text in sets and map keys: shorter first, then bytewise (RFC 8949 §4.2.1). */
export function compareText(a: string, b: string): number {
  const la = utf8Length(a);
  const lb = utf8Length(b);
  if (la !== lb) return la - lb;
  // For ASCII, UTF-16 code units are the bytes; otherwise compare the encodings.
  if (la === a.length && lb === b.length) return a < b ? -1 : a > b ? 1 : 0;
  return compareBytes(utf8(a), utf8(b));
}

function sortedText(items: readonly string[]): string[] {
  return [...items].sort(compareText);
}

function rateToCbor(window: RateWindow): CborMap {
  const map = new Map<number, CborValue>([[RATE_KEYS.seconds, window.seconds]]);
  if (window.tokens !== undefined) map.set(RATE_KEYS.tokens, window.tokens);
  if (window.usdMicros !== undefined) map.set(RATE_KEYS.usdMicros, window.usdMicros);
  if (window.requests !== undefined) map.set(RATE_KEYS.requests, window.requests);
  return map;
}

/** The canonical payload bytes of a link grant (spec/format.md §4). */
export function encodePayload(grant: LinkGrant): Uint8Array {
  const map = new Map<number, CborValue>();
  const k = PAYLOAD_KEYS;
  map.set(k.sub, grant.sub);
  map.set(k.nonce, grant.nonce);
  if (grant.exp !== undefined) map.set(k.exp, grant.exp);
  if (grant.nbf !== undefined) map.set(k.nbf, grant.nbf);
  if (grant.depth !== undefined) map.set(k.depth, grant.depth);
  if (grant.tokens !== undefined) map.set(k.tokens, grant.tokens);
  if (grant.usdMicros !== undefined) map.set(k.usdMicros, grant.usdMicros);
  if (grant.providers !== undefined) {
    const providers = new Map<string, CborValue>();
    for (const p of grant.providers) {
      const caps = new Map<number, CborValue>();
      if (p.tokens !== undefined) caps.set(PROVIDER_KEYS.tokens, p.tokens);
      if (p.usdMicros !== undefined) caps.set(PROVIDER_KEYS.usdMicros, p.usdMicros);
      providers.set(p.name, caps);
    }
    map.set(k.providers, providers);
  }
  if (grant.models !== undefined) map.set(k.models, sortedText(grant.models));
  if (grant.tools !== undefined) map.set(k.tools, sortedText(grant.tools));
  if (grant.risk !== undefined) map.set(k.risk, grant.risk);
  if (grant.rate !== undefined) {
    const windows = grant.rate.map((w) => ({
      map: rateToCbor(w),
      bytes: encodeCanonical(rateToCbor(w)),
    }));
    windows.sort((a, b) => compareBytes(a.bytes, b.bytes));
    map.set(
      k.rate,
      windows.map((w) => w.map),
    );
  }
  if (grant.aud !== undefined) map.set(k.aud, sortedText(grant.aud));
  if (grant.label !== undefined) map.set(k.label, grant.label);
  return encodeCanonical(map);
}

const FIELD_BY_KEY = new Map<number, keyof typeof PAYLOAD_KEYS>(
  Object.entries(PAYLOAD_KEYS).map(([name, key]) => [key, name as keyof typeof PAYLOAD_KEYS]),
);

/**
 * Decodes and validates one payload: canonical CBOR, known keys only, every field by its schema,
 * within the limits, and re-encoding to the identical bytes (so each grant has one encoding).
 * A one-pass fast path (fast-decode.ts) answers for the payloads it can vouch for; every other
 * payload gets the reference decoder below, which accepts or names the error.
 */
export function decodePayload(payload: Uint8Array, limits: Limits, linkIndex?: number): LinkGrant {
  limits = resolveLimits(limits);
  return decodePayloadFast(payload, limits) ?? decodePayloadReference(payload, limits, linkIndex);
}

/** The reference decoder: the definition the fast path is tested against. */
export function decodePayloadReference(
  payload: Uint8Array,
  limits: Limits,
  linkIndex?: number,
): LinkGrant {
  const where = linkIndex === undefined ? {} : { linkIndex };
  const value = decodeCanonical(payload, linkIndex);
  if (!(value instanceof Map))
    throw new AllowanceError("ERR_MALFORMED", "a payload must be a CBOR map", where);
  const raw: Record<string, unknown> = {};
  for (const [key, item] of value as Map<unknown, unknown>) {
    const field = typeof key === "number" ? FIELD_BY_KEY.get(key) : undefined;
    if (field === undefined) {
      throw new AllowanceError("ERR_MALFORMED", `unknown payload key ${String(key)}`, where);
    }
    raw[field] = fromCbor(field, item);
  }
  const parsed = linkGrantSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.map(String).join(".") ?? "";
    throw new AllowanceError(
      "ERR_MALFORMED",
      `payload field ${field || "?"}: ${issue?.message ?? "invalid"}`,
      {
        ...where,
        field: field.split(".")[0] ?? field,
      },
    );
  }
  const grant = parsed.data as LinkGrant;
  checkGrantLimits(grant, limits, linkIndex);
  const again = encodePayload(grant);
  if (compareBytes(again, payload) !== 0) {
    throw new AllowanceError(
      "ERR_NON_CANONICAL",
      "payload is not in its canonical encoding",
      where,
    );
  }
  return grant;
}

/** Turns the decoded CBOR of one field into the shape its schema expects; the schema judges it. */
function fromCbor(field: keyof typeof PAYLOAD_KEYS, item: unknown): unknown {
  switch (field) {
    case "sub":
    case "nonce":
      return item instanceof Uint8Array ? Uint8Array.from(item) : item;
    case "providers": {
      // Anything but a map (even an empty array) is not a providers field.
      if (!(item instanceof Map)) return { notAMap: item };
      return [...item].map(([name, caps]) => ({ name, ...fromKeyed(caps, PROVIDER_KEYS) }));
    }
    case "rate":
      return Array.isArray(item) ? item.map((w) => fromKeyed(w, RATE_KEYS)) : item;
    default:
      return item;
  }
}

function fromKeyed(item: unknown, keys: Readonly<Record<string, number>>): Record<string, unknown> {
  if (!(item instanceof Map)) return { invalid: item };
  const out: Record<string, unknown> = {};
  const names = new Map(Object.entries(keys).map(([name, key]) => [key, name]));
  for (const [key, value] of item as Map<unknown, unknown>) {
    const name = typeof key === "number" ? names.get(key) : undefined;
    out[name ?? `unknown key ${String(key)}`] = value;
  }
  return out;
}

function stripUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[])
    if (value[key] === undefined) delete value[key];
  return value;
}
