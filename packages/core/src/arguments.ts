/**
 * Tool-argument constraints: the grant field `args` (spec/arguments.md). Its model and the one
 * reading of it (caller input and decoded payloads alike), its canonical CBOR form, its limits,
 * the narrowing rule (§4) and the check of a tool call's arguments (§6).
 */
import { compareBytes, utf8, utf8Length } from "./bytes.js";
import type { CborMap, CborValue } from "./cbor.js";
import type { Limits } from "./limits.js";
import { TOOL_PATTERN, toolCovered } from "./patterns.js";
import {
  asciiLower,
  globMatches,
  globWithin,
  hostMatches,
  hostPatternWithin,
  parseEmailDomain,
  parseGlob,
  parseHostPattern,
  parsePath,
  parseUrl,
  parseUrlPrefix,
  urlMatches,
  urlPrefixWithin,
  type HostPattern,
  type PathGlob,
  type UrlPrefix,
} from "./argument-syntax.js";
import { parseStrictJson } from "./strict-json.js";
import { kindOf } from "./kind.js";

/** The constraint kinds, in the order of their CBOR numbers (1 to 9, spec/arguments.md §3.3). */
export const ARGUMENT_KINDS = [
  "exact",
  "oneOf",
  "range",
  "prefix",
  "glob",
  "url",
  "emailDomain",
  "maxLength",
  "forbidden",
] as const;
export type ArgumentKind = (typeof ARGUMENT_KINDS)[number];

/** A value an `exact` or `oneOf` constraint names: text, an integer from 0 to 2^53 − 1, a boolean. */
export type ArgumentScalar = string | number | boolean;

/** Argument names: 1–64 ASCII letters, digits, `_` and `-`. */
export const ARGUMENT_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** A tool name as called: a tool pattern without wildcards. */
export const TOOL_NAME = /^[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*$/;

interface Named {
  /** The argument's name in the call's arguments object. */
  readonly name: string;
  /** The argument may be absent; by default a constrained argument must be present. */
  readonly optional?: true;
}

/** One argument's constraint. */
export type ArgumentConstraint = Named &
  (
    | { readonly kind: "exact"; readonly value: ArgumentScalar }
    | { readonly kind: "oneOf"; readonly values: readonly ArgumentScalar[] }
    | { readonly kind: "range"; readonly min: number; readonly max: number }
    | { readonly kind: "prefix"; readonly prefix: string }
    | { readonly kind: "glob"; readonly glob: string }
    | { readonly kind: "url"; readonly urls: readonly string[] }
    | { readonly kind: "emailDomain"; readonly domains: readonly string[] }
    | { readonly kind: "maxLength"; readonly max: number }
    | { readonly kind: "forbidden" }
  );

/** The constraints on the arguments of the tools a pattern covers. */
export interface ToolArguments {
  /** A tool pattern (`*`, `name`, `prefix.*`); the most specific entry covering a tool applies. */
  readonly tool: string;
  /** At most one per argument name. */
  readonly constraints: readonly ArgumentConstraint[];
  /** Arguments no constraint names are allowed; by default they are refused. */
  readonly allowUnnamed?: true;
}

/** Why a call's arguments were refused (spec/arguments.md §6.3). */
export const ARGUMENT_DENIAL_REASONS = [
  "tool",
  "json",
  "arguments",
  "missing",
  "forbidden",
  "value",
  "unnamed",
] as const;
export type ArgumentDenialReason = (typeof ARGUMENT_DENIAL_REASONS)[number];

export interface ArgumentDenial {
  /** The tool called. */
  readonly tool: string;
  /** The pattern of the entry that applied; null when the tool name itself is refused. */
  readonly pattern: string | null;
  /** The argument refused; null for the tool name, the body or the arguments as a whole. */
  readonly argument: string | null;
  /** The constraint that refused it; null for an unnamed argument and the cases above. */
  readonly constraint: ArgumentConstraint | null;
  readonly reason: ArgumentDenialReason;
  /** For people; its wording is not part of the format. */
  readonly message: string;
}

// ---------------------------------------------------------------------------------------------
// Reading (§3.2)

type Invalid = (path: string, message: string) => never;

/** Canonical text order (RFC 8949 §4.2.1): shorter UTF-8 first, then bytewise. */
function compareText(a: string, b: string): number {
  const la = utf8Length(a);
  const lb = utf8Length(b);
  if (la !== lb) return la - lb;
  if (la === a.length && lb === b.length) return a < b ? -1 : a > b ? 1 : 0;
  return compareBytes(utf8(a), utf8(b));
}

/** The order of scalars' encodings: integers (major 0), then text (3), then booleans ([0], [1]). */
export function compareScalars(a: ArgumentScalar, b: ArgumentScalar): number {
  const rank = (v: ArgumentScalar) => (typeof v === "number" ? 0 : typeof v === "string" ? 1 : 2);
  const d = rank(a) - rank(b);
  if (d !== 0) return d;
  if (typeof a === "string") return compareText(a, b as string);
  return Number(a) - Number(b);
}

const byName = (a: ArgumentConstraint, b: ArgumentConstraint) => compareText(a.name, b.name);
const byTool = (a: ToolArguments, b: ToolArguments) => compareText(a.tool, b.tool);

/** Sorts in place, unless already in order (decoded values always are). */
function sortIfNeeded<T>(items: T[], compare: (a: T, b: T) => number): void {
  for (let i = 1; i < items.length; i++) {
    if (compare(items[i - 1] as T, items[i] as T) > 0) {
      items.sort(compare);
      return;
    }
  }
}

const ENTRY_FIELDS: ReadonlySet<string> = new Set(["tool", "constraints", "allowUnnamed"]);
const PARAMS: Readonly<Record<ArgumentKind, readonly string[]>> = {
  exact: ["value"],
  oneOf: ["values"],
  range: ["min", "max"],
  prefix: ["prefix"],
  glob: ["glob"],
  url: ["urls"],
  emailDomain: ["domains"],
  maxLength: ["max"],
  forbidden: [],
};

/** Arrays made by `readArguments`, known valid and in canonical order. */
const validated = new WeakSet<readonly ToolArguments[]>();

function record(value: unknown, path: string, invalid: Invalid): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    invalid(path, `expected an object, got ${kindOf(value)}`);
  return value as Record<string, unknown>;
}

function list(value: unknown, path: string, invalid: Invalid, min = 0): readonly unknown[] {
  if (!Array.isArray(value)) invalid(path, `expected an array, got ${kindOf(value)}`);
  if (value.length < min) invalid(path, `expected at least ${min} entries`);
  return value;
}

function integer(value: unknown, path: string, invalid: Invalid): number {
  if (typeof value !== "number") invalid(path, `expected an integer, got ${kindOf(value)}`);
  if (!Number.isSafeInteger(value) || value < 0)
    invalid(path, `expected an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${value}`);
  return value;
}

function text(value: unknown, path: string, invalid: Invalid): string {
  if (typeof value !== "string") invalid(path, `expected a string, got ${kindOf(value)}`);
  if (!value.isWellFormed()) invalid(path, "must be well-formed Unicode (no lone surrogates)");
  return value;
}

function scalar(value: unknown, path: string, invalid: Invalid): ArgumentScalar {
  if (typeof value === "boolean") return value;
  if (typeof value === "number") return integer(value, path, invalid);
  if (typeof value === "string") return text(value, path, invalid);
  return invalid(path, `expected a string, an integer or a boolean, got ${kindOf(value)}`);
}

/** A set of URL prefixes or host patterns, each by its grammar, without repeats, in text order. */
function textSet(
  value: unknown,
  path: string,
  invalid: Invalid,
  grammar: "url" | "domain",
): string[] {
  const items = list(value, path, invalid, 1);
  const out: string[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = text(items[i], `${path}.${i}`, invalid);
    if (
      grammar === "url"
        ? parseUrlPrefix(item) === undefined
        : parseHostPattern(item, false) === undefined
    )
      invalid(
        `${path}.${i}`,
        grammar === "url"
          ? "is not a URL prefix in normal form (§5.3)"
          : "is not a lower-case host name or *.name (§5.2)",
      );
    out.push(item);
  }
  sortIfNeeded(out, compareText);
  for (let i = 1; i < out.length; i++) if (out[i] === out[i - 1]) invalid(path, "has duplicates");
  return out;
}

function readConstraint(value: unknown, path: string, invalid: Invalid): ArgumentConstraint {
  const raw = record(value, path, invalid);
  const kind = raw["kind"];
  if (typeof kind !== "string" || !(ARGUMENT_KINDS as readonly string[]).includes(kind))
    invalid(`${path}.kind`, `expected one of ${ARGUMENT_KINDS.join(", ")}`);
  const params = PARAMS[kind as ArgumentKind];
  for (const key of Object.keys(raw)) {
    if (key !== "name" && key !== "kind" && key !== "optional" && !params.includes(key))
      invalid(path, `has no field ${JSON.stringify(key)} for kind ${kind}`);
  }
  const name = raw["name"];
  if (typeof name !== "string" || !ARGUMENT_NAME.test(name))
    invalid(`${path}.name`, "must match [A-Za-z0-9_-]{1,64}");
  const optional = raw["optional"];
  if (optional !== undefined && optional !== true)
    invalid(`${path}.optional`, "expected true or absent");
  if (optional === true && kind === "forbidden")
    invalid(`${path}.optional`, "a forbidden argument is absent by definition");
  const c = readParameters(kind as ArgumentKind, name, raw, path, invalid);
  // Set last, so that the property order is the same for every constraint read.
  if (optional === true) (c as { optional?: true }).optional = true;
  return c;
}

function readParameters(
  kind: ArgumentKind,
  name: string,
  raw: Record<string, unknown>,
  path: string,
  invalid: Invalid,
): ArgumentConstraint {
  switch (kind) {
    case "exact":
      return {
        name,
        kind: "exact",
        value: scalar(raw["value"], `${path}.value`, invalid),
      };
    case "oneOf": {
      const items = list(raw["values"], `${path}.values`, invalid, 1);
      const values = items.map((v, i) => scalar(v, `${path}.values.${i}`, invalid));
      sortIfNeeded(values, compareScalars);
      for (let i = 1; i < values.length; i++)
        if (values[i] === values[i - 1]) invalid(`${path}.values`, "has duplicates");
      return { name, kind: "oneOf", values };
    }
    case "range": {
      const min = integer(raw["min"], `${path}.min`, invalid);
      const max = integer(raw["max"], `${path}.max`, invalid);
      if (min > max) invalid(path, `min ${min} is above max ${max}`);
      return { name, kind: "range", min, max };
    }
    case "prefix":
      return {
        name,
        kind: "prefix",
        prefix: text(raw["prefix"], `${path}.prefix`, invalid),
      };
    case "glob": {
      const glob = text(raw["glob"], `${path}.glob`, invalid);
      if (parseGlob(glob) === undefined) invalid(`${path}.glob`, "is not a path glob (§5.5)");
      return { name, kind: "glob", glob };
    }
    case "url": {
      const urls = textSet(raw["urls"], `${path}.urls`, invalid, "url");
      return { name, kind: "url", urls };
    }
    case "emailDomain": {
      const domains = textSet(raw["domains"], `${path}.domains`, invalid, "domain");
      return { name, kind: "emailDomain", domains };
    }
    case "maxLength":
      return { name, kind: "maxLength", max: integer(raw["max"], `${path}.max`, invalid) };
    case "forbidden":
      return { name, kind: "forbidden" };
  }
}

/**
 * The one reading of an `args` value (spec/arguments.md §3.2), for caller input and decoded
 * payloads alike: every rule checked, no unknown field; entries, constraints and sets come back
 * as new objects in canonical order. `invalid` throws the caller's error for the first problem.
 */
export function readArguments(value: unknown, invalid: Invalid, path = "args"): ToolArguments[] {
  const items = list(value, path, invalid);
  const out: ToolArguments[] = [];
  for (let i = 0; i < items.length; i++) {
    const at = `${path}.${i}`;
    const raw = record(items[i], at, invalid);
    for (const key of Object.keys(raw))
      if (!ENTRY_FIELDS.has(key)) invalid(at, `has no field ${JSON.stringify(key)}`);
    const tool = raw["tool"];
    if (typeof tool !== "string" || !TOOL_PATTERN.test(tool))
      invalid(`${at}.tool`, "is not a valid tool pattern");
    const allowUnnamed = raw["allowUnnamed"];
    if (allowUnnamed !== undefined && allowUnnamed !== true)
      invalid(`${at}.allowUnnamed`, "expected true or absent");
    const constraints = list(raw["constraints"], `${at}.constraints`, invalid).map((c, j) =>
      readConstraint(c, `${at}.constraints.${j}`, invalid),
    );
    sortIfNeeded(constraints, byName);
    for (let j = 1; j < constraints.length; j++)
      if (constraints[j]?.name === constraints[j - 1]?.name)
        invalid(`${at}.constraints`, `names ${constraints[j]?.name} twice`);
    out.push(allowUnnamed === true ? { tool, constraints, allowUnnamed } : { tool, constraints });
  }
  sortIfNeeded(out, byTool);
  for (let i = 1; i < out.length; i++)
    if (out[i]?.tool === out[i - 1]?.tool) invalid(path, `names the tool ${out[i]?.tool} twice`);
  validated.add(out);
  return out;
}

/**
 * Marks rules built by the one-pass decoder, which checks every rule of §3.2 as it reads, as
 * read. Internal to the package: nothing else may vouch for rules.
 */
export function trustedArguments(rules: ToolArguments[]): ToolArguments[] {
  validated.add(rules);
  return rules;
}

/** Hand-built rules are read (and refused with a TypeError) once; decoded ones are known valid. */
function ensureValid(rules: readonly ToolArguments[], name: string): readonly ToolArguments[] {
  if (validated.has(rules)) return rules;
  const cached = readCache.get(rules);
  if (cached !== undefined) return cached;
  const read = readArguments(
    rules,
    (path, message) => {
      throw new TypeError(`"${name}" is not valid: ${path} ${message}`);
    },
    name,
  );
  readCache.set(rules, read);
  return read;
}
const readCache = new WeakMap<readonly ToolArguments[], readonly ToolArguments[]>();

// ---------------------------------------------------------------------------------------------
// CBOR (§3.1)

const KIND_NUMBER: Readonly<Record<ArgumentKind, number>> = Object.fromEntries(
  ARGUMENT_KINDS.map((kind, i) => [kind, i + 1]),
) as Record<ArgumentKind, number>;

function scalarToCbor(value: ArgumentScalar): CborValue {
  if (typeof value === "boolean") return [value ? 1 : 0];
  return value;
}

function constraintToCbor(c: ArgumentConstraint): CborValue {
  const kind = KIND_NUMBER[c.kind];
  switch (c.kind) {
    case "exact":
      return [kind, scalarToCbor(c.value)];
    case "oneOf":
      return [kind, [...c.values].sort(compareScalars).map(scalarToCbor)];
    case "range":
      return [kind, c.min, c.max];
    case "prefix":
      return [kind, c.prefix];
    case "glob":
      return [kind, c.glob];
    case "url":
      return [kind, [...c.urls].sort(compareText)];
    case "emailDomain":
      return [kind, [...c.domains].sort(compareText)];
    case "maxLength":
      return [kind, c.max];
    case "forbidden":
      return [kind];
  }
}

/** The CBOR of an `args` value: `{ tool => { ?1 => 1, ?2 => [optional names], name => constraint } }`. */
export function argumentsToCbor(rules: readonly ToolArguments[]): CborMap {
  const map = new Map<string, CborValue>();
  for (const entry of rules) {
    const inner = new Map<number | string, CborValue>();
    if (entry.allowUnnamed === true) inner.set(1, 1);
    const optional = entry.constraints
      .filter((c) => c.optional === true)
      .map((c) => c.name)
      .sort(compareText);
    if (optional.length > 0) inner.set(2, optional);
    for (const c of entry.constraints) inner.set(c.name, constraintToCbor(c));
    map.set(entry.tool, inner);
  }
  return map;
}

function scalarFromCbor(item: unknown, path: string, invalid: Invalid): unknown {
  if (typeof item === "number" || typeof item === "string") return item;
  if (Array.isArray(item) && item.length === 1 && (item[0] === 0 || item[0] === 1))
    return item[0] === 1;
  return invalid(path, "expected text, an unsigned integer, [0] or [1]");
}

function constraintFromCbor(
  name: string,
  item: unknown,
  path: string,
  invalid: Invalid,
): Record<string, unknown> {
  if (!Array.isArray(item) || item.length === 0 || typeof item[0] !== "number")
    invalid(path, "expected an array starting with a kind number");
  const kind = ARGUMENT_KINDS[(item[0] as number) - 1];
  if (kind === undefined) invalid(path, `unknown constraint kind ${String(item[0])}`);
  const arity = kind === "range" ? 3 : kind === "forbidden" ? 1 : 2;
  if (item.length !== arity) invalid(path, `a ${kind} constraint has ${arity - 1} parameters`);
  const param = item[1];
  switch (kind) {
    case "exact":
      return { name, kind, value: scalarFromCbor(param, `${path}.value`, invalid) };
    case "oneOf":
      return {
        name,
        kind,
        values: Array.isArray(param)
          ? param.map((v, i) => scalarFromCbor(v, `${path}.values.${i}`, invalid))
          : param,
      };
    case "range":
      return { name, kind, min: param, max: item[2] };
    case "prefix":
      return { name, kind, prefix: param };
    case "glob":
      return { name, kind, glob: param };
    case "url":
      return { name, kind, urls: param };
    case "emailDomain":
      return { name, kind, domains: param };
    case "maxLength":
      return { name, kind, max: param };
    case "forbidden":
      return { name, kind };
  }
}

/**
 * The decoded CBOR of an `args` field (Maps, arrays, numbers, strings) in the shape that
 * `readArguments` reads, which then judges it; CBOR of the wrong shape is refused here.
 */
export function argumentsFromCbor(item: unknown, invalid: Invalid): unknown {
  if (!(item instanceof Map)) invalid("args", "expected a map");
  const out: unknown[] = [];
  for (const [tool, value] of item as Map<unknown, unknown>) {
    const at = `args.${String(tool)}`;
    if (typeof tool !== "string") invalid("args", "a tool pattern must be text");
    if (!(value instanceof Map)) invalid(at, "expected a map");
    let allowUnnamed: unknown;
    let optional: unknown[] = [];
    const constraints: Record<string, unknown>[] = [];
    for (const [key, inner] of value as Map<unknown, unknown>) {
      if (key === 1) {
        if (inner !== 1) invalid(`${at}.allowUnnamed`, "expected 1");
        allowUnnamed = true;
      } else if (key === 2) {
        optional = [...list(inner, `${at}.optional`, invalid, 1)];
      } else if (typeof key === "string") {
        constraints.push(constraintFromCbor(key, inner, `${at}.${key}`, invalid));
      } else {
        invalid(at, `unknown key ${String(key)}`);
      }
    }
    for (let i = 0; i < optional.length; i++) {
      const target = constraints.find((c) => c["name"] === optional[i]);
      if (target === undefined)
        invalid(`${at}.optional.${i}`, "names no constrained argument of this entry");
      if (target["optional"] === true) invalid(`${at}.optional`, "has duplicates");
      target["optional"] = true;
    }
    out.push(
      allowUnnamed === true ? { tool, constraints, allowUnnamed: true } : { tool, constraints },
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Limits (§3.4)

export interface ArgumentsLimitIssue {
  readonly kind: "list" | "string";
  readonly limit: number;
  readonly actual: number;
}

/**
 * The first limit an `args` value exceeds, in the order of spec/arguments.md §3.4: the number of
 * entries; then entry by entry the tool pattern's bytes, the number of constraints, and for each
 * constraint its set's size and each of its strings' bytes.
 */
export function argumentsLimitIssue(
  rules: readonly ToolArguments[],
  limits: Limits,
): ArgumentsLimitIssue | undefined {
  const maxList = limits.maxListLength;
  if (rules.length > maxList) return { kind: "list", limit: maxList, actual: rules.length };
  for (const entry of rules) {
    let issue = stringIssue(entry.tool, limits);
    if (issue !== undefined) return issue;
    if (entry.constraints.length > maxList)
      return { kind: "list", limit: maxList, actual: entry.constraints.length };
    for (const c of entry.constraints) {
      switch (c.kind) {
        case "oneOf":
        case "url":
        case "emailDomain": {
          const set: readonly ArgumentScalar[] =
            c.kind === "oneOf" ? c.values : c.kind === "url" ? c.urls : c.domains;
          if (set.length > maxList) return { kind: "list", limit: maxList, actual: set.length };
          for (const item of set) {
            issue = typeof item === "string" ? stringIssue(item, limits) : undefined;
            if (issue !== undefined) return issue;
          }
          break;
        }
        case "exact":
          issue = typeof c.value === "string" ? stringIssue(c.value, limits) : undefined;
          break;
        case "prefix":
          issue = stringIssue(c.prefix, limits);
          break;
        case "glob":
          issue = stringIssue(c.glob, limits);
          break;
        default:
          break;
      }
      if (issue !== undefined) return issue;
    }
  }
  return undefined;
}

function stringIssue(text: string, limits: Limits): ArgumentsLimitIssue | undefined {
  // UTF-8 is never shorter than UTF-16 in code units, nor more than 3 bytes per unit.
  if (text.length * 3 <= limits.maxStringBytes) return undefined;
  const size = utf8Length(text);
  return size > limits.maxStringBytes
    ? { kind: "string", limit: limits.maxStringBytes, actual: size }
    : undefined;
}

// ---------------------------------------------------------------------------------------------
// Parameters of constraints already read (§3.2): split, not parsed again. Nothing is cached: the
// grants of each verification are new objects, and a cache write costs more than the split.

/** A host pattern known valid: `*.h` or `h`, in lower case. */
function hostPatternOf(text: string): HostPattern {
  return text.startsWith("*.")
    ? { host: text.slice(2), wildcard: true }
    : { host: text, wildcard: false };
}

/** A URL prefix known valid and in normal form (§5.3): scheme, host pattern, port, path. */
function urlPrefixOf(text: string): UrlPrefix {
  const schemeEnd = text.indexOf("://");
  const pathStart = text.indexOf("/", schemeEnd + 3);
  const authority = text.slice(schemeEnd + 3, pathStart);
  const colon = authority.indexOf(":");
  return {
    scheme: text.slice(0, schemeEnd),
    host: hostPatternOf(colon < 0 ? authority : authority.slice(0, colon)),
    port: colon < 0 ? 0 : Number(authority.slice(colon + 1)),
    path: text.slice(pathStart),
  };
}

function urlPrefixes(c: ArgumentConstraint & { kind: "url" }): UrlPrefix[] {
  const out: UrlPrefix[] = [];
  for (const url of c.urls) out.push(urlPrefixOf(url));
  return out;
}

function pathGlob(c: ArgumentConstraint & { kind: "glob" }): PathGlob {
  return parseGlob(c.glob) as PathGlob;
}

/** The constraint of `entry` for `name`; entries are short, so a scan. */
function constraintFor(entry: ToolArguments, name: string): ArgumentConstraint | undefined {
  for (const c of entry.constraints) if (c.name === name) return c;
  return undefined;
}

/**
 * How specific a covering pattern is (spec/arguments.md §2): its length without a final `*`. Length
 * alone ties a name with the wildcard of its own length (`a.b` and `a.*`, `x` and `*`), and the
 * name's own entry must win; patterns covering one name are nested, so no two tie this way.
 */
function specificity(pattern: string): number {
  return pattern.endsWith("*") ? pattern.length - 1 : pattern.length;
}

/** The entry that applies to `tool` (a name, or a pattern for §4.1): the most specific covering one. */
function applicable(rules: readonly ToolArguments[], tool: string): ToolArguments | undefined {
  let best: ToolArguments | undefined;
  for (const entry of rules)
    if (
      toolCovered(entry.tool, tool) &&
      (best === undefined || specificity(entry.tool) > specificity(best.tool))
    )
      best = entry;
  return best;
}

// ---------------------------------------------------------------------------------------------
// Values (§6.1)

/** An integer argument: a number with an integral value within ±(2^53 − 1), however it was spelt. */
function isInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value);
}

function scalarEquals(expected: ArgumentScalar, value: unknown): boolean {
  if (typeof expected === "number") return isInteger(value) && value === expected;
  return value === expected;
}

type StringConstraint = ArgumentConstraint & { kind: "prefix" | "glob" | "url" | "emailDomain" };

/** For the string kinds: a string, or a non-empty array of strings, each of them accepted. */
function eachString(c: StringConstraint, value: unknown): string | undefined {
  if (typeof value === "string") {
    if (!value.isWellFormed()) return "is not well-formed Unicode";
    return stringFault(c, value);
  }
  if (!Array.isArray(value)) return `is ${kindOf(value)}, not a string`;
  if (value.length === 0) return "is an empty array";
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (typeof item !== "string") return `element ${i} is ${kindOf(item)}, not a string`;
    if (!item.isWellFormed()) return `element ${i} is not well-formed Unicode`;
    const reason = stringFault(c, item);
    if (reason !== undefined) return `element ${i} ${reason}`;
  }
  return undefined;
}

/** Why the well-formed string `s` fails the string constraint `c`, or undefined if it passes. */
function stringFault(c: StringConstraint, s: string): string | undefined {
  switch (c.kind) {
    case "prefix":
      return s.startsWith(c.prefix) ? undefined : `does not start with ${JSON.stringify(c.prefix)}`;
    case "glob": {
      const path = parsePath(s);
      if (path === undefined) return "is not a path by §5.5";
      return globMatches(pathGlob(c), path) ? undefined : `is not within ${c.glob}`;
    }
    case "url": {
      const url = parseUrl(s);
      if (typeof url === "string") return `is not a URL by §5.3: ${url}`;
      for (const prefix of c.urls) if (urlMatches(urlPrefixOf(prefix), url)) return undefined;
      return "is not within the URLs";
    }
    case "emailDomain": {
      const domain = parseEmailDomain(s);
      if (typeof domain === "string") return `is not an address by §5.4: ${domain}`;
      for (const pattern of c.domains)
        if (hostMatches(hostPatternOf(pattern), domain)) return undefined;
      return `has domain ${domain.name}, not one allowed`;
    }
  }
}

/** Why `value` fails constraint `c` (a value constraint, not `forbidden`), or undefined if it passes. */
function valueFault(c: ArgumentConstraint, value: unknown): string | undefined {
  switch (c.kind) {
    case "exact":
      return scalarEquals(c.value, value) ? undefined : `is not ${JSON.stringify(c.value)}`;
    case "oneOf":
      for (const v of c.values) if (scalarEquals(v, value)) return undefined;
      return "is not one of the values";
    case "range":
      if (!isInteger(value))
        return typeof value === "number" ? `is ${value}, not an integer` : `is ${kindOf(value)}`;
      return value >= c.min && value <= c.max ? undefined : `is outside ${c.min} to ${c.max}`;
    case "prefix":
    case "glob":
    case "url":
    case "emailDomain":
      return eachString(c, value);
    case "maxLength":
      if (typeof value === "string") {
        if (!value.isWellFormed()) return "is not well-formed Unicode";
        const size = utf8Length(value);
        return size <= c.max ? undefined : `has ${size} UTF-8 bytes, more than ${c.max}`;
      }
      if (Array.isArray(value))
        return value.length <= c.max
          ? undefined
          : `has ${value.length} elements, more than ${c.max}`;
      return `is ${kindOf(value)}, not a string or an array`;
    case "forbidden":
      return "is forbidden";
  }
}

// ---------------------------------------------------------------------------------------------
// Checking a call (§6)

const EMPTY: Readonly<Record<string, unknown>> = Object.freeze(
  Object.create(null) as Record<string, unknown>,
);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Checks a tool call's arguments against the effective `args` of a verified grant
 * (spec/arguments.md §6). Returns null if they are allowed, else the first refusal in the order
 * of §6.3. `args` absent (undefined) constrains nothing. `callArguments` is the call's arguments
 * object as parsed JSON; undefined stands for no arguments. Never throws for any call arguments;
 * a `tool` that is not a string, or hand-built `args` that are not valid, is a TypeError.
 */
export function checkArguments(
  args: readonly ToolArguments[] | undefined,
  tool: string,
  callArguments: unknown,
): ArgumentDenial | null {
  if (typeof tool !== "string")
    throw new TypeError(`"tool" expected a string, got ${kindOf(tool)}`);
  if (args === undefined) return null;
  const rules = ensureValid(args, "args");
  if (!TOOL_NAME.test(tool))
    return deny(tool, null, null, null, "tool", "the tool name is not a valid tool name");
  const entry = applicable(rules, tool);
  if (entry === undefined) return null;
  return checkEntry(entry, tool, callArguments === undefined ? EMPTY : callArguments);
}

/**
 * `checkArguments` for a JSON text (a request body, or a tool call's raw arguments): read by the
 * strict reader of §6.4, which refuses duplicate member names, then checked. Read only when an
 * entry applies to the tool.
 */
export function checkArgumentsJson(
  args: readonly ToolArguments[] | undefined,
  tool: string,
  json: string | Uint8Array,
): ArgumentDenial | null {
  if (typeof tool !== "string")
    throw new TypeError(`"tool" expected a string, got ${kindOf(tool)}`);
  if (typeof json !== "string" && !(json instanceof Uint8Array))
    throw new TypeError(`"json" expected a string or bytes, got ${kindOf(json)}`);
  if (args === undefined) return null;
  const rules = ensureValid(args, "args");
  if (!TOOL_NAME.test(tool))
    return deny(tool, null, null, null, "tool", "the tool name is not a valid tool name");
  const entry = applicable(rules, tool);
  if (entry === undefined) return null;
  let text: string;
  if (typeof json === "string") {
    text = json;
  } else {
    try {
      text = strictUtf8.decode(json);
    } catch {
      return deny(tool, entry.tool, null, null, "json", "the body is not UTF-8");
    }
  }
  const parsed = parseStrictJson(text);
  if (!parsed.ok)
    return deny(tool, entry.tool, null, null, "json", `the body is refused: ${parsed.message}`);
  return checkEntry(entry, tool, parsed.value);
}
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function checkEntry(entry: ToolArguments, tool: string, call: unknown): ArgumentDenial | null {
  if (!isPlainObject(call))
    return deny(
      tool,
      entry.tool,
      null,
      null,
      "arguments",
      `the arguments are ${kindOf(call)}, not an object`,
    );
  // 1. Every constraint, in name order: presence, then the value.
  for (const c of entry.constraints) {
    const present = Object.hasOwn(call, c.name);
    if (c.kind === "forbidden") {
      if (present) return deny(tool, entry.tool, c.name, c, "forbidden", `${c.name} is forbidden`);
      continue;
    }
    if (!present) {
      if (c.optional === true) continue;
      return deny(tool, entry.tool, c.name, c, "missing", `${c.name} is required`);
    }
    const fault = valueFault(c, call[c.name]);
    if (fault !== undefined)
      return deny(tool, entry.tool, c.name, c, "value", `${c.name} ${fault}`);
  }
  // 2. Arguments no constraint names: the first in canonical order that is refused.
  let refused: string | undefined;
  for (const key of Object.keys(call)) {
    if (constraintFor(entry, key) !== undefined) continue;
    if (entry.allowUnnamed === true && ARGUMENT_NAME.test(key) && !foldsToNamed(entry, key))
      continue;
    if (refused === undefined || compareText(key, refused) < 0) refused = key;
  }
  if (refused !== undefined) {
    const why =
      entry.allowUnnamed !== true
        ? "is not named by any constraint"
        : ARGUMENT_NAME.test(refused)
          ? "differs only in case from a constrained argument"
          : "is not a valid argument name";
    return deny(tool, entry.tool, refused, null, "unnamed", `${JSON.stringify(refused)} ${why}`);
  }
  return null;
}

/** Does `key` equal a constrained name of the entry after ASCII lower-casing both? (§6.2) */
function foldsToNamed(entry: ToolArguments, key: string): boolean {
  const folded = asciiLower(key);
  for (const c of entry.constraints) if (asciiLower(c.name) === folded) return true;
  return false;
}

function deny(
  tool: string,
  pattern: string | null,
  argument: string | null,
  constraint: ArgumentConstraint | null,
  reason: ArgumentDenialReason,
  message: string,
): ArgumentDenial {
  return { tool, pattern, argument, constraint, reason, message };
}

// ---------------------------------------------------------------------------------------------
// Narrowing (§4)

/** What an entry says of one argument name: a constraint, or nothing at all (any value or none). */
type State = ArgumentConstraint | "unconstrained";
/** An unnamed argument under a closed entry: it must be absent. */
const IMPLICIT_FORBIDDEN = Object.freeze({ name: "", kind: "forbidden" as const });

function stateOf(entry: ToolArguments | undefined, name: string): State {
  if (entry === undefined) return "unconstrained";
  const c = constraintFor(entry, name);
  if (c !== undefined) return c;
  // An open entry still refuses a name that differs from a constrained one only in case (§6.2):
  // a child constraining `To` beside its parent's `to` would accept what the parent refuses.
  return entry.allowUnnamed === true && !foldsToNamed(entry, name)
    ? "unconstrained"
    : IMPLICIT_FORBIDDEN;
}

/** Does the parent constraint accept every value the child's finite set holds? */
function acceptsAll(parent: ArgumentConstraint, values: readonly ArgumentScalar[]): boolean {
  return values.every((v) => valueFault(parent, v) === undefined);
}

/** Is every value the child constraint accepts also accepted by the parent's? (§4.2) */
function valueWithin(child: ArgumentConstraint, parent: ArgumentConstraint): boolean {
  if (child.kind === "exact") return acceptsAll(parent, [child.value]);
  if (child.kind === "oneOf") return acceptsAll(parent, child.values);
  switch (parent.kind) {
    case "exact":
    case "oneOf": {
      // A range of at most as many integers as the parent's set names can be listed and checked.
      if (child.kind !== "range") return false;
      const set = parent.kind === "exact" ? [parent.value] : parent.values;
      if (child.max - child.min >= set.length) return false;
      const integers: number[] = [];
      for (let v = child.min; v <= child.max; v++) integers.push(v);
      return acceptsAll(parent, integers);
    }
    case "range":
      return child.kind === "range" && child.min >= parent.min && child.max <= parent.max;
    case "prefix":
      return child.kind === "prefix" && child.prefix.startsWith(parent.prefix);
    case "glob":
      return child.kind === "glob" && globWithin(pathGlob(child), pathGlob(parent));
    case "url": {
      if (child.kind !== "url") return false;
      const outer = urlPrefixes(parent);
      return urlPrefixes(child).every((c) => outer.some((p) => urlPrefixWithin(c, p)));
    }
    case "emailDomain": {
      if (child.kind !== "emailDomain") return false;
      for (const c of child.domains) {
        let covered = false;
        for (const p of parent.domains)
          if (hostPatternWithin(hostPatternOf(c), hostPatternOf(p))) {
            covered = true;
            break;
          }
        if (!covered) return false;
      }
      return true;
    }
    case "maxLength":
      return child.kind === "maxLength" && child.max <= parent.max;
    case "forbidden":
      return false;
  }
}

function within(child: State, parent: State): boolean {
  if (parent === "unconstrained") return true;
  if (child === "unconstrained") return false;
  if (parent.kind === "forbidden") return child.kind === "forbidden";
  if (child.kind === "forbidden") return parent.optional === true;
  if (child.optional === true && parent.optional !== true) return false;
  return valueWithin(child, parent);
}

function shown(state: State): unknown {
  return state === IMPLICIT_FORBIDDEN ? "unnamed (refused)" : state;
}

/**
 * The narrowing rule for `args` (spec/arguments.md §4): for every tool, the child's applicable
 * entry must accept no call its parent's would refuse. Reports each violation as
 * `args.<pattern>.<argument>` (or `args.<pattern>.*` for the unnamed-argument rule).
 */
export function narrowArguments(
  parentArgs: readonly ToolArguments[] | undefined,
  childArgs: readonly ToolArguments[] | undefined,
  widened: (field: string, parentValue: unknown, childValue: unknown) => void,
): void {
  if (parentArgs === undefined || childArgs === undefined) return;
  const parent = ensureValid(parentArgs, "parent.args");
  const child = ensureValid(childArgs, "child.args");
  // The decision changes only at patterns either side names: check each as a region (§4.1).
  // Both lists are in text order (readArguments sorts them), so a merge walks the union in order.
  const parentTools: string[] = [];
  for (const e of parent) parentTools.push(e.tool);
  const childTools: string[] = [];
  for (const e of child) childTools.push(e.tool);
  for (const region of sortedUnion(parentTools, childTools)) {
    const p = applicable(parent, region);
    if (p === undefined) continue;
    const c = applicable(child, region);
    if (p.allowUnnamed !== true && (c === undefined || c.allowUnnamed === true))
      widened(`args.${region}.*`, "unnamed arguments refused", "unnamed arguments allowed");
    const parentNames: string[] = [];
    for (const x of p.constraints) parentNames.push(x.name);
    const childNames: string[] = [];
    if (c !== undefined) for (const x of c.constraints) childNames.push(x.name);
    for (const name of sortedUnion(parentNames, childNames)) {
      const ps = stateOf(p, name);
      const cs = stateOf(c, name);
      if (!within(cs, ps)) widened(`args.${region}.${name}`, shown(ps), shown(cs));
    }
  }
}

/** The union of two lists in text order, each in text order without repeats: a merge. */
function sortedUnion(a: readonly string[], b: readonly string[]): string[] {
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    const order = x === undefined ? 1 : y === undefined ? -1 : compareText(x, y);
    out.push((order <= 0 ? x : y) as string);
    if (order <= 0) i++;
    if (order >= 0) j++;
  }
  return out;
}
