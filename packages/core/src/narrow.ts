/**
 * The narrowing rules (spec/format.md §6), in one function used by `attenuate` and by `verify`.
 * It checks a child link against its parent's effective grant, reports every violation by field,
 * and folds the two into the child's effective grant.
 */
import type { Violation } from "./errors.js";
import type { EffectiveGrant, LinkGrant, ProviderGrant, RateWindow } from "./grant.js";

export type NarrowResult =
  | { readonly ok: true; readonly effective: EffectiveGrant }
  | { readonly ok: false; readonly violations: readonly Violation[] };

/** The effective grant of a root link. The root must state `exp`; `undefined` if it does not. */
export function rootEffective(root: LinkGrant): EffectiveGrant | undefined {
  if (root.exp === undefined) return undefined;
  const { sub, nonce: _nonce, rate, ...fields } = root;
  return { ...fields, exp: root.exp, holder: sub, rate: rate ?? [] };
}

/** Does `pattern` (`*`, `name` or `prefix.*`) cover the tool name or pattern `tool`? */
export function toolCovered(pattern: string, tool: string): boolean {
  if (pattern === "*" || pattern === tool) return true;
  if (!pattern.endsWith(".*")) return false;
  const prefix = pattern.slice(0, -1);
  return tool.length > prefix.length && tool.startsWith(prefix);
}

export function toolAllowed(patterns: readonly string[] | undefined, tool: string): boolean {
  return patterns === undefined || patterns.some((pattern) => toolCovered(pattern, tool));
}

export function narrow(parent: EffectiveGrant, child: LinkGrant): NarrowResult {
  const violations: Violation[] = [];
  const widened = (field: string, parentValue: unknown, childValue: unknown) =>
    violations.push({ field, reason: "widened", parent: parentValue, child: childValue });

  if (parent.depth === 0) {
    violations.push({ field: "depth", reason: "exhausted", parent: 0, child: child.depth ?? null });
  } else if (child.depth !== undefined && parent.depth !== undefined && child.depth > parent.depth - 1) {
    widened("depth", parent.depth - 1, child.depth);
  }
  if (child.exp !== undefined && child.exp > parent.exp) widened("exp", parent.exp, child.exp);
  if (child.nbf !== undefined && parent.nbf !== undefined && child.nbf < parent.nbf) widened("nbf", parent.nbf, child.nbf);
  for (const field of ["tokens", "usdMicros", "risk"] as const) {
    const p = parent[field];
    const c = child[field];
    if (c !== undefined && p !== undefined && c > p) widened(field, p, c);
  }
  const providers = child.providers === undefined ? parent.providers : narrowProviders(parent.providers, child.providers, widened);
  for (const field of ["models", "aud"] as const) {
    const p = parent[field];
    const c = child[field];
    if (c === undefined || p === undefined) continue;
    const extra = c.filter((item) => !p.includes(item));
    if (extra.length > 0) widened(field, p, extra);
  }
  if (child.tools !== undefined && parent.tools !== undefined) {
    const parentTools = parent.tools;
    const extra = child.tools.filter((tool) => !parentTools.some((pattern) => toolCovered(pattern, tool)));
    if (extra.length > 0) widened("tools", parentTools, extra);
  }
  if (violations.length > 0) return { ok: false, violations };

  const depth = child.depth ?? (parent.depth === undefined ? undefined : parent.depth - 1);
  const effective: EffectiveGrant = {
    ...parent,
    ...definedFields(child),
    holder: child.sub,
    exp: child.exp ?? parent.exp,
    rate: mergeRate(parent.rate, child.rate),
    ...(depth === undefined ? {} : { depth }),
    ...(providers === undefined ? {} : { providers }),
  };
  return { ok: true, effective };
}

function narrowProviders(
  parent: readonly ProviderGrant[] | undefined,
  child: readonly ProviderGrant[],
  widened: (field: string, parentValue: unknown, childValue: unknown) => void,
): ProviderGrant[] {
  if (parent === undefined) return [...child];
  const byName = new Map(parent.map((p) => [p.name, p]));
  const extra = child.filter((c) => !byName.has(c.name)).map((c) => c.name);
  if (extra.length > 0) widened("providers", parent.map((p) => p.name), extra);
  const merged: ProviderGrant[] = [];
  for (const c of child) {
    const p = byName.get(c.name);
    if (p === undefined) continue;
    for (const cap of ["tokens", "usdMicros"] as const) {
      const pc = p[cap];
      const cc = c[cap];
      if (pc !== undefined && cc !== undefined && cc > pc) widened(`providers.${c.name}.${cap}`, pc, cc);
    }
    // Within a provider entry too, an absent cap inherits the parent's.
    const tokens = c.tokens ?? p.tokens;
    const usdMicros = c.usdMicros ?? p.usdMicros;
    merged.push({
      name: c.name,
      ...(tokens === undefined ? {} : { tokens }),
      ...(usdMicros === undefined ? {} : { usdMicros }),
    });
  }
  return merged;
}

function mergeRate(parent: readonly RateWindow[], child: readonly RateWindow[] | undefined): readonly RateWindow[] {
  if (child === undefined || child.length === 0) return parent;
  const seen = new Set(parent.map(rateKey));
  return [...parent, ...child.filter((w) => !seen.has(rateKey(w)))];
}

function rateKey(window: RateWindow): string {
  return `${window.seconds}/${window.tokens ?? ""}/${window.usdMicros ?? ""}/${window.requests ?? ""}`;
}

function definedFields(child: LinkGrant): Partial<EffectiveGrant> {
  const { sub: _sub, nonce: _nonce, rate: _rate, providers: _providers, depth: _depth, ...rest } = child;
  return rest;
}
