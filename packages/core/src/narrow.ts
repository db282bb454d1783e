/**
 * The narrowing rules (spec/format.md §6), in one function used by `attenuate` and by `verify`.
 * It checks a child link against its parent's effective grant, reports every violation by field,
 * and folds the two into the child's effective grant.
 */
import { narrowArguments } from "./arguments.js";
import type { Violation } from "./errors.js";
import type { EffectiveGrant, LinkGrant, ProviderGrant, RateWindow } from "./grant.js";
import { toolCovered } from "./patterns.js";

export { toolCovered };

export type NarrowResult =
  | { readonly ok: true; readonly effective: EffectiveGrant }
  | { readonly ok: false; readonly violations: readonly Violation[] };

/**
 * A grant number, checked: every comparison with NaN is false, so a NaN cap in a hand-built grant
 * would never be "widened" and would become the effective cap. Decoded and minted grants passed
 * their schema already (spec/format.md §4.1); this guards direct callers, at a few checks per link.
 */
function checkedNumber(value: unknown, name: string, max = Number.MAX_SAFE_INTEGER, min = 0): void {
  if (value === undefined) return;
  if (typeof value !== "number")
    throw new TypeError(`"${name}" expected an integer, got ${typeof value}`);
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new RangeError(`"${name}" expected an integer from ${min} to ${max}, got ${value}`);
}

/** Whether `checkedNumber` would pass `value`: the same test, without naming anything. */
function isGrantNumber(value: unknown, min = 0): boolean {
  return (
    value === undefined ||
    (typeof value === "number" && Number.isSafeInteger(value) && value >= min)
  );
}

/**
 * A set (`models`, `tools`, `aud`) is absent or an array of strings: a string in its place would
 * be searched by `includes` for substrings, so that parent "gpt-4o-mini" would cover child "gpt-4".
 */
function isStringList(value: unknown): boolean {
  if (value === undefined) return true;
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) if (typeof value[i] !== "string") return false;
  return true;
}

/**
 * Every number of the grant passes `checkedNumber`, and every set is a list of strings. Tested
 * first without building a name per field (which cost as much as all the rest of narrowing); only
 * a grant with a bad value is walked again, by `checkGrantNumbersNamed`, to name the first bad one.
 */
function checkGrantNumbers(grant: EffectiveGrant | LinkGrant, name: string): void {
  let ok =
    isGrantNumber(grant.exp) &&
    isGrantNumber(grant.nbf) &&
    isGrantNumber(grant.depth) &&
    isGrantNumber(grant.tokens) &&
    isGrantNumber(grant.usdMicros) &&
    isGrantNumber(grant.risk) &&
    isStringList(grant.models) &&
    isStringList(grant.tools) &&
    isStringList(grant.aud);
  // Anything but an array is left to the named walk, which refuses it.
  const { providers, rate } = grant;
  if (ok && providers !== undefined) {
    ok = Array.isArray(providers);
    for (let i = 0; ok && i < providers.length; i++) {
      const provider = providers[i] as ProviderGrant;
      ok = isGrantNumber(provider.tokens) && isGrantNumber(provider.usdMicros);
    }
  }
  if (ok && rate !== undefined) {
    ok = Array.isArray(rate);
    for (let i = 0; ok && i < rate.length; i++) {
      const window = rate[i] as RateWindow;
      ok =
        isGrantNumber(window.seconds, 1) &&
        isGrantNumber(window.tokens) &&
        isGrantNumber(window.usdMicros) &&
        isGrantNumber(window.requests);
    }
  }
  if (!ok) checkGrantNumbersNamed(grant, name);
}

function checkGrantNumbersNamed(grant: EffectiveGrant | LinkGrant, name: string): void {
  checkedNumber(grant.exp, `${name}.exp`);
  checkedNumber(grant.nbf, `${name}.nbf`);
  checkedNumber(grant.depth, `${name}.depth`);
  checkedNumber(grant.tokens, `${name}.tokens`);
  checkedNumber(grant.usdMicros, `${name}.usdMicros`);
  checkedNumber(grant.risk, `${name}.risk`);
  for (const set of ["models", "tools", "aud"] as const) {
    const value: unknown = grant[set];
    if (!isStringList(value))
      throw new TypeError(
        `"${name}.${set}" expected an array of strings, got ${Array.isArray(value) ? "an array with a non-string" : typeof value}`,
      );
  }
  for (const list of ["providers", "rate"] as const) {
    const value: unknown = grant[list];
    if (value !== undefined && !Array.isArray(value))
      throw new TypeError(`"${name}.${list}" expected an array, got ${typeof value}`);
  }
  if (grant.providers !== undefined) {
    for (const [i, provider] of grant.providers.entries()) {
      checkedNumber(provider.tokens, `${name}.providers.${i}.tokens`);
      checkedNumber(provider.usdMicros, `${name}.providers.${i}.usdMicros`);
    }
  }
  if (grant.rate !== undefined) {
    for (const [i, window] of grant.rate.entries()) {
      checkedNumber(window.seconds, `${name}.rate.${i}.seconds`, Number.MAX_SAFE_INTEGER, 1);
      checkedNumber(window.tokens, `${name}.rate.${i}.tokens`);
      checkedNumber(window.usdMicros, `${name}.rate.${i}.usdMicros`);
      checkedNumber(window.requests, `${name}.rate.${i}.requests`);
    }
  }
}

/** The effective grant of a root link. The root must state `exp`; `undefined` if it does not. */
export function rootEffective(root: LinkGrant): EffectiveGrant | undefined {
  checkGrantNumbers(root, "root");
  if (root.exp === undefined) return undefined;
  return effectiveGrant({
    holder: root.sub,
    exp: root.exp,
    nbf: root.nbf,
    depth: root.depth,
    tokens: root.tokens,
    usdMicros: root.usdMicros,
    providers: root.providers,
    models: root.models,
    tools: root.tools,
    risk: root.risk,
    rate: root.rate ?? [],
    aud: root.aud,
    label: root.label,
    args: root.args,
  });
}

type EffectiveFields = { -readonly [K in keyof EffectiveGrant]: EffectiveGrant[K] | undefined };

/**
 * An effective grant with only its defined fields, always in one property order (the holder,
 * then spec/format.md §4.1 key order), so its JSON form does not depend on how it was folded.
 */
function effectiveGrant(fields: EffectiveFields): EffectiveGrant {
  const out: { -readonly [K in keyof EffectiveGrant]?: EffectiveGrant[K] } = {
    holder: fields.holder as Uint8Array,
    exp: fields.exp as number,
  };
  if (fields.nbf !== undefined) out.nbf = fields.nbf;
  if (fields.depth !== undefined) out.depth = fields.depth;
  if (fields.tokens !== undefined) out.tokens = fields.tokens;
  if (fields.usdMicros !== undefined) out.usdMicros = fields.usdMicros;
  if (fields.providers !== undefined) out.providers = fields.providers;
  if (fields.models !== undefined) out.models = fields.models;
  if (fields.tools !== undefined) out.tools = fields.tools;
  if (fields.risk !== undefined) out.risk = fields.risk;
  out.rate = fields.rate as readonly RateWindow[];
  if (fields.aud !== undefined) out.aud = fields.aud;
  if (fields.label !== undefined) out.label = fields.label;
  if (fields.args !== undefined) out.args = fields.args;
  return out as EffectiveGrant;
}

export function toolAllowed(patterns: readonly string[] | undefined, tool: string): boolean {
  return patterns === undefined || patterns.some((pattern) => toolCovered(pattern, tool));
}

export function narrow(parent: EffectiveGrant, child: LinkGrant): NarrowResult {
  checkGrantNumbers(parent, "parent");
  // An effective grant always has an expiry: without one, no child exp could be "later".
  if (parent.exp === undefined)
    throw new TypeError('"parent.exp" expected an integer, got undefined');
  checkGrantNumbers(child, "child");
  const violations: Violation[] = [];
  const widened = (field: string, parentValue: unknown, childValue: unknown) =>
    violations.push({ field, reason: "widened", parent: parentValue, child: childValue });

  if (parent.depth === 0) {
    violations.push({ field: "depth", reason: "exhausted", parent: 0, child: child.depth ?? null });
  } else if (
    child.depth !== undefined &&
    parent.depth !== undefined &&
    child.depth > parent.depth - 1
  ) {
    widened("depth", parent.depth - 1, child.depth);
  }
  if (child.exp !== undefined && child.exp > parent.exp) widened("exp", parent.exp, child.exp);
  if (child.nbf !== undefined && parent.nbf !== undefined && child.nbf < parent.nbf)
    widened("nbf", parent.nbf, child.nbf);
  // Each field by name, not in a loop over names: a load by a varying key costs more per link.
  if (child.tokens !== undefined && parent.tokens !== undefined && child.tokens > parent.tokens)
    widened("tokens", parent.tokens, child.tokens);
  if (
    child.usdMicros !== undefined &&
    parent.usdMicros !== undefined &&
    child.usdMicros > parent.usdMicros
  )
    widened("usdMicros", parent.usdMicros, child.usdMicros);
  if (child.risk !== undefined && parent.risk !== undefined && child.risk > parent.risk)
    widened("risk", parent.risk, child.risk);
  const providers =
    child.providers === undefined
      ? parent.providers
      : narrowProviders(parent.providers, child.providers, widened);
  narrowSet("models", parent.models, child.models, widened);
  narrowSet("aud", parent.aud, child.aud, widened);
  if (child.tools !== undefined && parent.tools !== undefined) {
    const parentTools = parent.tools;
    const extra = child.tools.filter(
      (tool) => !parentTools.some((pattern) => toolCovered(pattern, tool)),
    );
    if (extra.length > 0) widened("tools", parentTools, extra);
  }
  narrowArguments(parent.args, child.args, widened);
  if (violations.length > 0) return { ok: false, violations };

  return {
    ok: true,
    effective: effectiveGrant({
      holder: child.sub,
      exp: child.exp ?? parent.exp,
      nbf: child.nbf ?? parent.nbf,
      depth: child.depth ?? (parent.depth === undefined ? undefined : parent.depth - 1),
      tokens: child.tokens ?? parent.tokens,
      usdMicros: child.usdMicros ?? parent.usdMicros,
      providers,
      models: child.models ?? parent.models,
      tools: child.tools ?? parent.tools,
      risk: child.risk ?? parent.risk,
      rate: mergeRate(parent.rate, child.rate),
      aud: child.aud ?? parent.aud,
      // The label is the child's own, or the nearest ancestor's: attribution, not a constraint.
      label: child.label ?? parent.label,
      args: child.args ?? parent.args,
    }),
  };
}

/** A set the child may only shrink: every item it lists must be in the parent's. */
function narrowSet(
  field: "models" | "aud",
  parent: readonly string[] | undefined,
  child: readonly string[] | undefined,
  widened: (field: string, parentValue: unknown, childValue: unknown) => void,
): void {
  if (child === undefined || parent === undefined) return;
  const extra = child.filter((item) => !parent.includes(item));
  if (extra.length > 0) widened(field, parent, extra);
}

function narrowProviders(
  parent: readonly ProviderGrant[] | undefined,
  child: readonly ProviderGrant[],
  widened: (field: string, parentValue: unknown, childValue: unknown) => void,
): readonly ProviderGrant[] {
  // As for models, tools and aud: a list the parent does not restrict is the child's own list.
  if (parent === undefined) return child;
  // Lists are short (64 at most): scans are cheaper than building a Map. Plain loops: callbacks
  // here cost 4% of a verification's work besides the signatures.
  const matches: (ProviderGrant | undefined)[] = [];
  let unmatched = false;
  for (const c of child) {
    let match: ProviderGrant | undefined;
    for (const p of parent) {
      if (p.name === c.name) {
        match = p;
        break;
      }
    }
    matches.push(match);
    if (match === undefined) unmatched = true;
  }
  if (unmatched)
    widened(
      "providers",
      parent.map((p) => p.name),
      child.filter((_, i) => matches[i] === undefined).map((c) => c.name),
    );
  const merged: ProviderGrant[] = [];
  let inherited = false;
  for (let i = 0; i < child.length; i++) {
    const c = child[i] as ProviderGrant;
    const p = matches[i];
    if (p === undefined) continue;
    if (p.tokens !== undefined && c.tokens !== undefined && c.tokens > p.tokens)
      widened(`providers.${c.name}.tokens`, p.tokens, c.tokens);
    if (p.usdMicros !== undefined && c.usdMicros !== undefined && c.usdMicros > p.usdMicros) {
      widened(`providers.${c.name}.usdMicros`, p.usdMicros, c.usdMicros);
    }
    // Within a provider entry too, an absent cap inherits the parent's.
    const tokens = c.tokens ?? p.tokens;
    const usdMicros = c.usdMicros ?? p.usdMicros;
    if (tokens === c.tokens && usdMicros === c.usdMicros) {
      // Nothing inherited: the child's own entry is the effective one, as a child's own list of
      // models is. Fewer objects to build, and for a verifier to freeze.
      merged.push(c);
      continue;
    }
    inherited = true;
    const entry: { name: string; tokens?: number; usdMicros?: number } = { name: c.name };
    if (tokens !== undefined) entry.tokens = tokens;
    if (usdMicros !== undefined) entry.usdMicros = usdMicros;
    merged.push(entry);
  }
  // Every entry the child's own: the child's list itself. (An entry the parent does not list was
  // reported as widened above, and a narrowing with a violation has no effective grant.)
  return inherited ? merged : child;
}

function mergeRate(
  parent: readonly RateWindow[],
  child: readonly RateWindow[] | undefined,
): readonly RateWindow[] {
  if (child === undefined || child.length === 0) return parent;
  const seen = new Set(parent.map(rateKey));
  return [...parent, ...child.filter((w) => !seen.has(rateKey(w)))];
}

function rateKey(window: RateWindow): string {
  return `${window.seconds}/${window.tokens ?? ""}/${window.usdMicros ?? ""}/${window.requests ?? ""}`;
}
