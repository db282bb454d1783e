/**
 * The grant model (spec/format.md §4): the fields a link may state, the rules of their values,
 * and the mapping to and from the canonical CBOR payload with small integer keys.
 */
import { compareBytes, utf8, utf8Length } from "./bytes.js";
import { decodeCanonical, encodeCanonical, type CborMap, type CborValue } from "./cbor.js";
import { AllowanceError } from "./errors.js";
import { resolveLimits, type Limits } from "./limits.js";
import { decodePayloadFast } from "./fast-decode.js";
import {
  argumentsFromCbor,
  argumentsLimitIssue,
  argumentsToCbor,
  readArguments,
  type ToolArguments,
} from "./arguments.js";
import {
  AUDIENCE,
  MAX_DEPTH,
  MAX_RATE_SECONDS,
  MODEL_ID,
  PROVIDER_NAME,
  TOOL_PATTERN,
} from "./patterns.js";
import { kindOf } from "./kind.js";

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
  /** Constraints on tool-call arguments, per tool pattern (spec/arguments.md). */
  readonly args?: readonly ToolArguments[];
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
  readonly args?: readonly ToolArguments[];
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
  args: 15,
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

/** The fields of a grant, in spec/format.md §4.1 key order (the order of every output object). */
const GRANT_FIELDS = [
  "exp",
  "nbf",
  "depth",
  "tokens",
  "usdMicros",
  "providers",
  "models",
  "tools",
  "risk",
  "rate",
  "aud",
  "label",
  "args",
] as const;
const GRANT_FIELD_SET: ReadonlySet<string> = new Set(GRANT_FIELDS);
const LINK_FIELD_SET: ReadonlySet<string> = new Set([...GRANT_FIELDS, "sub", "nonce"]);
const PROVIDER_FIELDS: ReadonlySet<string> = new Set(["name", "tokens", "usdMicros"]);
const RATE_FIELDS: ReadonlySet<string> = new Set(["seconds", "tokens", "usdMicros", "requests"]);

/** The first thing wrong with a grant: where (a dotted path) and what. Caught in this module. */
class Invalid {
  constructor(
    readonly path: string,
    readonly message: string,
  ) {}
}

function invalid(path: string, message: string): never {
  throw new Invalid(path, message);
}

function amount(value: unknown, path: string, max = Number.MAX_SAFE_INTEGER, min = 0): number {
  if (typeof value !== "number") invalid(path, `expected an integer, got ${kindOf(value)}`);
  if (!Number.isSafeInteger(value) || value < min || value > max)
    invalid(path, `expected an integer from ${min} to ${max}, got ${value}`);
  return value;
}

/** A non-array object whose own keys are all in `known`. */
function record(value: unknown, path: string, known: ReadonlySet<string>): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    invalid(path, `expected an object, got ${kindOf(value)}`);
  for (const key of Object.keys(value))
    if (!known.has(key)) invalid(path, `has no field ${JSON.stringify(key)}`);
  return value as Record<string, unknown>;
}

function list(value: unknown, path: string): readonly unknown[] {
  if (!Array.isArray(value)) invalid(path, `expected an array, got ${kindOf(value)}`);
  return value;
}

function stringSet(value: unknown, path: string, pattern: RegExp, what: string): string[] {
  const items = list(value, path);
  const out: string[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (typeof item !== "string" || !pattern.test(item))
      invalid(`${path}.${i}`, `is not a valid ${what}`);
    if (out.includes(item)) invalid(path, "has duplicates");
    out.push(item);
  }
  return out;
}

function bytes(value: unknown, path: string, min: number, max: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length < min || value.length > max)
    invalid(path, `must be ${min === max ? min : `${min} to ${max}`} bytes`);
  return Uint8Array.from(value);
}

function providers(value: unknown): ProviderGrant[] {
  const items = list(value, "providers");
  const out: ProviderGrant[] = [];
  for (let i = 0; i < items.length; i++) {
    const path = `providers.${i}`;
    const raw = record(items[i], path, PROVIDER_FIELDS);
    if (typeof raw["name"] !== "string" || !PROVIDER_NAME.test(raw["name"]))
      invalid(`${path}.name`, "must match [a-z0-9][a-z0-9_.-]{0,63}");
    const provider: { name: string; tokens?: number; usdMicros?: number } = { name: raw["name"] };
    if (raw["tokens"] !== undefined) provider.tokens = amount(raw["tokens"], `${path}.tokens`);
    if (raw["usdMicros"] !== undefined)
      provider.usdMicros = amount(raw["usdMicros"], `${path}.usdMicros`);
    if (out.some((p) => p.name === provider.name)) invalid("providers", "has duplicate names");
    out.push(provider);
  }
  return out;
}

function rate(value: unknown): RateWindow[] {
  const items = list(value, "rate");
  const out: RateWindow[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < items.length; i++) {
    const path = `rate.${i}`;
    const raw = record(items[i], path, RATE_FIELDS);
    const window: { seconds: number; tokens?: number; usdMicros?: number; requests?: number } = {
      seconds: amount(raw["seconds"], `${path}.seconds`, MAX_RATE_SECONDS, 1),
    };
    for (const name of ["tokens", "usdMicros", "requests"] as const)
      if (raw[name] !== undefined) window[name] = amount(raw[name], `${path}.${name}`);
    if (
      window.tokens === undefined &&
      window.usdMicros === undefined &&
      window.requests === undefined
    )
      invalid(path, "a rate window needs tokens, usdMicros or requests");
    const key = [window.seconds, window.tokens, window.usdMicros, window.requests].join("/");
    if (seen.has(key)) invalid("rate", "has duplicate windows");
    seen.add(key);
    out.push(window);
  }
  return out;
}

/**
 * The one reading of a grant's fields (spec/format.md §4.1), for caller input and decoded payloads
 * alike: every field by its rule, no other key; a member set to `undefined` is absent. Returns new
 * objects and arrays (never the caller's), with the fields in key order.
 */
function readFields(input: unknown, holder: boolean): Record<string, unknown> {
  const raw = record(input, "", holder ? LINK_FIELD_SET : GRANT_FIELD_SET);
  const out: Record<string, unknown> = {};
  for (const name of GRANT_FIELDS) {
    const value = raw[name];
    if (value === undefined) continue;
    switch (name) {
      case "depth":
        out[name] = amount(value, name, MAX_DEPTH);
        break;
      case "providers":
        out[name] = providers(value);
        break;
      case "models":
        out[name] = stringSet(value, name, MODEL_ID, "model id");
        break;
      case "tools":
        out[name] = stringSet(value, name, TOOL_PATTERN, "tool pattern");
        break;
      case "rate":
        out[name] = rate(value);
        break;
      case "aud":
        out[name] = stringSet(value, name, AUDIENCE, "audience");
        break;
      case "label":
        // String sizes are bounded in UTF-8 bytes by the limits (checkGrantLimits), not here.
        // A lone surrogate has no UTF-8 encoding: such a label could be minted but never verified.
        if (typeof value !== "string") invalid(name, `expected a string, got ${kindOf(value)}`);
        if (!value.isWellFormed())
          invalid(name, "must be well-formed Unicode (no lone surrogates)");
        out[name] = value;
        break;
      case "args":
        out[name] = readArguments(value, invalid);
        break;
      default:
        out[name] = amount(value, name);
    }
  }
  if (holder) {
    out["sub"] = bytes(raw["sub"], "sub", 32, 32);
    out["nonce"] = bytes(raw["nonce"], "nonce", 8, 32);
  }
  return out;
}

/** Parses caller-supplied grant fields, throwing a TypeError that names the field. */
export function parseGrantFields(input: unknown): GrantFields {
  try {
    return readFields(input, false) as GrantFields;
  } catch (error) {
    if (error instanceof Invalid)
      throw new TypeError(`invalid grant: ${error.path || "grant"} ${error.message}`);
    throw error;
  }
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
  if (grant.args !== undefined) {
    const issue = argumentsLimitIssue(grant.args, limits);
    if (issue !== undefined) {
      const what = issue.kind === "list" ? "list with" : "string of";
      throw new AllowanceError(
        "ERR_LIMIT",
        `args has a ${what} ${issue.actual} ${issue.kind === "list" ? "entries" : "bytes"}, the limit is ${issue.limit}`,
        {
          ...(linkIndex === undefined ? {} : { linkIndex }),
          field: "args",
          limit: issue.limit,
          actual: issue.actual,
        },
      );
    }
  }
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
  if (grant.args !== undefined) map.set(k.args, argumentsToCbor(grant.args));
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
  for (const key of (value as Map<unknown, unknown>).keys()) {
    if (typeof key !== "number" || !FIELD_BY_KEY.has(key))
      throw new AllowanceError("ERR_MALFORMED", `unknown payload key ${String(key)}`, where);
  }
  let grant: LinkGrant;
  try {
    const raw: Record<string, unknown> = {};
    for (const [key, item] of value as Map<number, unknown>) {
      const field = FIELD_BY_KEY.get(key) as keyof typeof PAYLOAD_KEYS;
      raw[field] = fromCbor(field, item);
    }
    grant = readFields(raw, true) as unknown as LinkGrant;
  } catch (error) {
    if (!(error instanceof Invalid)) throw error;
    throw new AllowanceError("ERR_MALFORMED", `payload field ${error.path}: ${error.message}`, {
      ...where,
      field: error.path.split(".")[0] ?? error.path,
    });
  }
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
    case "args":
      return argumentsFromCbor(item, invalid);
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
