/** Grants, narrowings and violations in the units people typed, for human output. */
import { printable, quoted } from "@allowance/meter/printable";
import type {
  ArgumentConstraint,
  EffectiveGrant,
  GrantFields,
  RateWindow,
  ToolArguments,
  Violation,
} from "@allowance/core";
import {
  formatCount,
  formatDuration,
  formatInstant,
  formatProvider,
  formatRate,
  formatUsd,
} from "./units.js";

type Fields = GrantFields | EffectiveGrant;

/** The fields a grant states, one `name value` entry each, in a fixed order. */
export function describeGrant(grant: Fields, nowSeconds?: number): string[] {
  const out: string[] = [];
  if (grant.exp !== undefined)
    out.push(
      `expires ${formatInstant(grant.exp)}${nowSeconds === undefined ? "" : ` (${relative(grant.exp - nowSeconds)})`}`,
    );
  if (grant.nbf !== undefined) out.push(`not before ${formatInstant(grant.nbf)}`);
  if (grant.tokens !== undefined) out.push(`tokens ${formatCount(grant.tokens)}`);
  if (grant.usdMicros !== undefined) out.push(`usd ${formatUsd(grant.usdMicros)}`);
  if (grant.providers !== undefined)
    out.push(`providers ${grant.providers.map(formatProvider).join(", ") || "(none)"}`);
  if (grant.models !== undefined) out.push(`models ${grant.models.join(", ") || "(none)"}`);
  if (grant.tools !== undefined) out.push(`tools ${grant.tools.join(", ") || "(none)"}`);
  if (grant.risk !== undefined) out.push(`risk ${formatCount(grant.risk)}`);
  if (grant.rate !== undefined && grant.rate.length > 0)
    out.push(`rate ${grant.rate.map(formatRate).join(", ")}`);
  if (grant.aud !== undefined) out.push(`aud ${printable(grant.aud.join(", ")) || "(none)"}`);
  if (grant.depth !== undefined) out.push(`depth ${grant.depth}`);
  if (grant.label !== undefined) out.push(`label ${quoted(grant.label)}`);
  if (grant.args !== undefined)
    for (const entry of grant.args) out.push(`args ${formatToolArguments(entry)}`);
  return out;
}

/**
 * One `args` entry (spec/arguments.md §2) as a line: `send_mail: to an address at example.com;
 * subject at most 200 bytes or items; no other arguments`.
 */
export function formatToolArguments(entry: ToolArguments): string {
  const parts = entry.constraints.map(
    (c) => `${formatConstraint(c)}${c.optional === true ? " (optional)" : ""}`,
  );
  parts.push(entry.allowUnnamed === true ? "other arguments allowed" : "no other arguments");
  return `${entry.tool}: ${parts.join("; ")}`;
}

function formatConstraint(c: ArgumentConstraint): string {
  const scalar = (v: string | number | boolean) =>
    typeof v === "string" ? quoted(v) : JSON.stringify(v);
  switch (c.kind) {
    case "exact":
      return `${c.name} = ${scalar(c.value)}`;
    case "oneOf":
      return `${c.name} one of ${c.values.map(scalar).join(", ")}`;
    case "range":
      return `${c.name} from ${c.min} to ${c.max}`;
    case "prefix":
      return `${c.name} starting with ${quoted(c.prefix)}`;
    case "glob":
      return `${c.name} a path matching ${quoted(c.glob)}`;
    case "url":
      return `${c.name} a URL within ${c.urls.join(", ")}`;
    case "emailDomain":
      return `${c.name} an address at ${c.domains.join(", ")}`;
    case "maxLength":
      return `${c.name} at most ${c.max} bytes or items`;
    case "forbidden":
      return `${c.name} absent`;
  }
}

/** A grant's `args` as one text, or `any` without them. */
function formatArgs(args: readonly ToolArguments[] | undefined): string {
  return args === undefined ? "any" : args.map(formatToolArguments).join(" | ") || "(none)";
}

/** Every budget field an effective grant leaves unrestricted, so "absent" is never misread. */
export function unrestricted(grant: EffectiveGrant): string[] {
  const fields = [
    "tokens",
    "usdMicros",
    "providers",
    "models",
    "tools",
    "risk",
    "aud",
    "depth",
    "args",
  ] as const;
  return fields
    .filter((field) => grant[field] === undefined)
    .map((field) => (field === "usdMicros" ? "usd" : field));
}

/**
 * How far away an expiry is, as a person reads it: seconds under a minute, hours and minutes under
 * two days, days and hours under a thousand days, then years (rounded down, "about").
 */
export function relative(seconds: number): string {
  if (seconds <= 0) return `expired ${formatDuration(Math.max(1, -seconds))} ago`;
  if (seconds < 60) return `in ${seconds}s`;
  const days = Math.floor(seconds / 86_400);
  if (days >= 1000)
    return `in about ${Math.floor(seconds / 31_557_600).toLocaleString("en-US")} years`;
  const hours = Math.floor(seconds / 3600);
  if (days >= 2) {
    const left = hours - days * 24;
    return `in ${days}d${left > 0 ? ` ${left}h` : ""}`;
  }
  const minutes = Math.floor((seconds % 3600) / 60);
  return `in ${hours > 0 ? `${hours}h ` : ""}${minutes}m`.replace(/ 0m$/, "");
}

export interface Narrowing {
  readonly field: string;
  /** What the link would have inherited, in human units ("unlimited" when unrestricted). */
  readonly parent: string;
  readonly child: string;
}

/**
 * What a link narrows relative to its parent's effective grant: every field the link states with a
 * value other than the one it would have inherited.
 */
export function narrowings(parent: EffectiveGrant, child: GrantFields): Narrowing[] {
  const out: Narrowing[] = [];
  const add = (field: string, p: string, c: string) => {
    if (p !== c) out.push({ field, parent: p, child: c });
  };
  const list = (items: readonly string[] | undefined) =>
    items === undefined ? "any" : items.join(", ") || "(none)";
  if (child.exp !== undefined) add("exp", formatInstant(parent.exp), formatInstant(child.exp));
  if (child.nbf !== undefined)
    add(
      "nbf",
      parent.nbf === undefined ? "none" : formatInstant(parent.nbf),
      formatInstant(child.nbf),
    );
  if (child.depth !== undefined)
    add(
      "depth",
      parent.depth === undefined ? "unlimited" : String(parent.depth - 1),
      String(child.depth),
    );
  if (child.tokens !== undefined)
    add(
      "tokens",
      parent.tokens === undefined ? "unlimited" : formatCount(parent.tokens),
      formatCount(child.tokens),
    );
  if (child.usdMicros !== undefined)
    add(
      "usd",
      parent.usdMicros === undefined ? "unlimited" : formatUsd(parent.usdMicros),
      formatUsd(child.usdMicros),
    );
  if (child.risk !== undefined)
    add(
      "risk",
      parent.risk === undefined ? "unlimited" : formatCount(parent.risk),
      formatCount(child.risk),
    );
  if (child.providers !== undefined)
    add(
      "providers",
      parent.providers === undefined ? "any" : parent.providers.map(formatProvider).join(", "),
      child.providers.map(formatProvider).join(", "),
    );
  if (child.models !== undefined) add("models", list(parent.models), list(child.models));
  if (child.tools !== undefined) add("tools", list(parent.tools), list(child.tools));
  if (child.aud !== undefined) add("aud", list(parent.aud), list(child.aud));
  if (child.args !== undefined) add("args", formatArgs(parent.args), formatArgs(child.args));
  if (child.rate !== undefined) {
    const known = new Set(parent.rate.map(formatRate));
    const added = child.rate.map(formatRate).filter((rate) => !known.has(rate));
    if (added.length > 0)
      out.push({
        field: "rate",
        parent: parent.rate.map(formatRate).join(", ") || "none",
        child: `+ ${added.join(", ")}`,
      });
  }
  return out;
}

/** One violation in the units of its field: `usd: asks $60, parent has $50`. */
export function describeViolation(violation: Violation): string {
  const { field } = violation;
  if (violation.reason === "exhausted")
    return "depth: the parent may not be delegated any further (depth 0)";
  const name = field === "usdMicros" ? "usd" : field.replace(/\.usdMicros$/, ".usd");
  const value = (v: unknown): string => {
    if (typeof v === "number") {
      if (field.endsWith("usdMicros")) return formatUsd(v);
      if (field === "exp" || field === "nbf") return formatInstant(v);
      if (field === "depth") return String(v);
      return formatCount(v);
    }
    if (Array.isArray(v)) return v.map(String).join(", ");
    return String(v);
  };
  switch (field) {
    case "tools":
      return `tools: ${value(violation.child)} not covered by the parent's ${value(violation.parent)}`;
    case "providers":
    case "models":
    case "aud":
      return `${name}: ${value(violation.child)} not in the parent's ${value(violation.parent)}`;
    case "exp":
      return `exp: ${value(violation.child)} is after the parent's ${value(violation.parent)}`;
    case "nbf":
      return `nbf: ${value(violation.child)} is before the parent's ${value(violation.parent)}`;
    case "depth":
      return `depth: asks ${value(violation.child)}, the parent allows at most ${value(violation.parent)}`;
    default:
      return `${name}: asks ${value(violation.child)}, the parent has ${value(violation.parent)}`;
  }
}

/** A violation as the CLI's `--json` and the MCP server's errors give it: the library's, and in words. */
export interface ViolationJSON extends Violation {
  readonly text: string;
}

/**
 * What a token error adds to the one error shape `{ ok: false, code, message, … }`, in the CLI's
 * `--json` and the MCP server's results alike (packages/cli/README.md): only the fields the error
 * has — the link and field it names, a format limit and the actual size, every widened field.
 */
export function errorDetails(error: {
  readonly linkIndex: number | undefined;
  readonly field: string | undefined;
  readonly limit: number | undefined;
  readonly actual: number | undefined;
  readonly violations: readonly Violation[];
}): {
  linkIndex?: number;
  field?: string;
  limit?: number;
  actual?: number;
  violations?: ViolationJSON[];
} {
  return {
    ...(error.linkIndex === undefined ? {} : { linkIndex: error.linkIndex }),
    ...(error.field === undefined ? {} : { field: error.field }),
    ...(error.limit === undefined ? {} : { limit: error.limit }),
    ...(error.actual === undefined ? {} : { actual: error.actual }),
    ...(error.violations.length === 0
      ? {}
      : { violations: error.violations.map((v) => ({ ...v, text: describeViolation(v) })) }),
  };
}

/** Rate windows in JSON: the window as typed plus its exact integers. */
export function rateJSON(
  rate: readonly RateWindow[],
): { window: string; seconds: number; tokens?: number; usdMicros?: number; requests?: number }[] {
  return rate.map((w) => ({ window: formatRate(w), ...w }));
}

export { printable, quoted };
