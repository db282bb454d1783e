/**
 * Human units in, exact integers out: token counts ("1M", "100k"), money ("$50" → 50_000_000
 * micro-dollars, parsed as a decimal string so no float ever rounds a price), durations ("24h"),
 * instants ("now", "24h", ISO 8601, epoch seconds), rate windows ("100k-tokens/1h") and provider
 * lists ("openai,anthropic:usd=20"). Every parser throws a UsageError whose message names the flag.
 * Also the inverse: formatting integers back into the same units for people to read.
 */
import type { ProviderGrant, RateWindow } from "@allowance/core";
import { FAR_FUTURE_SECONDS, MAX_RATE_SECONDS, PROVIDER_NAME } from "@allowance/core/format";
import { UsageError } from "./errors.js";

const MICROS_PER_USD = 1_000_000n;
const MAX = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Whole digits, plain ("1000") or with thousands separators: `,` or `_` (one kind per number)
 * between complete groups of three after a head of one to three digits, not led by 0 ("1,000",
 * "12_345_678"; "0,500" is a decimal comma, $0.50, not 500).
 * Anywhere else a separator is refused, not dropped: "2,50" read as 250 would be a hundred times
 * the $2.50 meant (see `separators`).
 */
const DIGITS = String.raw`[1-9]\d{0,2}(?:,\d{3})+|[1-9]\d{0,2}(?:_\d{3})+|\d+`;
const GROUPED = new RegExp(`^(?:${DIGITS})$`);
const COUNT = new RegExp(`^(${DIGITS})(?:\\.(\\d+))?([kKmMbB]?)$`);
const MONEY = new RegExp(`^\\$?(${DIGITS})(?:\\.(\\d{1,6}))?$`);
const DURATION = /^(\d+)([smhd])$/;
const SUFFIX: Readonly<Record<string, number>> = { "": 0, k: 3, K: 3, m: 6, M: 6, b: 9, B: 9 };
const SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * Every amount is an exact integer up to 2^53 − 1 (tokens, seconds, micro-dollars): past it, a
 * JavaScript number rounds, so a larger value is refused, never rounded. `most` says the bound in
 * the unit the person typed.
 */
function safe(
  value: bigint,
  what: string,
  text: string,
  most = String(Number.MAX_SAFE_INTEGER),
): number {
  if (value > MAX)
    throw new UsageError(`${what}: ${JSON.stringify(text)} is too large (the most is ${most})`);
  return Number(value);
}

/** A count such as tokens or risk points: "1M", "1.5M", "100k", "250", "1_000". */
export function parseCount(text: string, what = "count"): number {
  const match = COUNT.exec(text.trim());
  if (match === null) {
    separators(text, what, parseCount);
    throw new UsageError(
      `${what}: expected a whole number such as 250, 100k or 1.5M, got ${JSON.stringify(text)}`,
    );
  }
  const [, whole = "", fraction = "", suffix = ""] = match;
  const exponent = SUFFIX[suffix] ?? 0;
  if (fraction.length > exponent)
    throw new UsageError(`${what}: ${JSON.stringify(text)} is not a whole number`);
  const digits = whole.replace(/[_,]/g, "") + fraction.padEnd(exponent, "0");
  return safe(BigInt(digits), what, text);
}

/** Dollars as a decimal string ("50", "$0.25", "12.345678") → micro-dollars, exactly. */
export function parseUsd(text: string, what = "usd"): number {
  const match = MONEY.exec(text.trim());
  if (match === null) {
    separators(text, what, parseUsd);
    throw new UsageError(
      `${what}: expected dollars such as 50, $2.50 or 0.000001 (at most 6 decimals), got ${JSON.stringify(text)}`,
    );
  }
  const [, whole = "", fraction = ""] = match;
  const micros =
    BigInt(whole.replace(/[_,]/g, "")) * MICROS_PER_USD + BigInt(fraction.padEnd(6, "0"));
  return safe(micros, what, text, formatUsd(Number.MAX_SAFE_INTEGER));
}

/**
 * Why an amount that did not parse is wrong, when the reason is a separator: its leading digits hold
 * a `,` or `_` that is not between complete groups of three ("2,50", "1,2,3", ",100", "1,,000",
 * "1_0") or mix the two. A single comma is most likely a decimal comma: the message gives the
 * amount with a point when that parses (`parse` is the caller, given text without a comma).
 * Returns when the separators are fine, so the caller's general message says what else is wrong.
 */
function separators(text: string, what: string, parse: (text: string, what: string) => number) {
  const head = /^\s*\$?([\d,_]*)/.exec(text)?.[1] ?? "";
  if (!/[,_]/.test(head) || GROUPED.test(head)) return;
  const quoted = JSON.stringify(text);
  if (head.includes(",") && head.includes("_"))
    throw new UsageError(
      `${what}: ${quoted} mixes , and _; separate thousands with one of them, e.g. 1,000,000 or 1_000_000`,
    );
  const comma = head.includes(",");
  let hint = ` in complete groups of three digits after the first one to three (${comma ? "1,000 or 12,345,678" : "1_000 or 12_345_678"})`;
  if (comma && head.split(",").length === 2) {
    const decimal = text.trim().replace(",", ".");
    try {
      parse(decimal, what);
      hint = `; write ${decimal}`;
    } catch {
      // Not an amount with a point either: the general hint stands.
    }
  }
  throw new UsageError(
    `${what}: ${quoted}: ${comma ? "a comma" : "an underscore"} only separates thousands${hint}`,
  );
}

/** A duration: "90s", "30m", "24h", "7d" → seconds. */
export function parseDuration(text: string, what = "duration"): number {
  const match = DURATION.exec(text.trim());
  if (match === null)
    throw new UsageError(
      `${what}: expected a duration such as 90s, 30m, 24h or 7d, got ${JSON.stringify(text)}`,
    );
  const seconds = BigInt(match[1] ?? "0") * BigInt(SECONDS[match[2] ?? "s"] ?? 1);
  if (seconds <= 0n)
    throw new UsageError(`${what}: ${JSON.stringify(text)} must be a positive duration`);
  return safe(seconds, what, text, `${Number.MAX_SAFE_INTEGER}s`);
}

/**
 * An instant in epoch seconds: "now", a duration from now ("24h", "+24h", "-1h"), an ISO 8601
 * date ("2030-01-01", "2030-01-01T12:00:00Z") or epoch seconds ("1893456000").
 */
export function parseInstant(text: string, nowSeconds: number, what = "time"): number {
  const trimmed = text.trim();
  if (trimmed === "now") return nowSeconds;
  if (/^\d{9,}$/.test(trimmed)) return parseEpochSeconds(trimmed, what);
  const relative = /^([+-]?)((\d+)[smhd])$/.exec(trimmed);
  if (relative !== null) {
    // 10^11 seconds or more is not a duration a person types: milliseconds (Date.now()) with an
    // "s" put after, which as a duration would make a time that never comes. A far time is
    // still reachable in hours or days, which say what they mean.
    if (trimmed.endsWith("s") && BigInt(relative[3] ?? "0") > BigInt(MAX_TYPED_EPOCH_SECONDS))
      throw new UsageError(
        `${what}: ${JSON.stringify(text)} looks like milliseconds; a duration in seconds is at most ${MAX_TYPED_EPOCH_SECONDS}s (write a far time in days, e.g. +1000000d)`,
      );
    const seconds = BigInt(parseDuration(relative[2] ?? "", what));
    const instant =
      relative[1] === "-" ? BigInt(nowSeconds) - seconds : BigInt(nowSeconds) + seconds;
    if (instant < 0n)
      throw new UsageError(`${what}: ${JSON.stringify(text)} is before 1970-01-01T00:00:00Z`);
    return safe(instant, what, text);
  }
  const iso = isoSeconds(trimmed);
  if (iso !== undefined) return iso;
  throw new UsageError(
    `${what}: expected "now", a duration such as 24h (from now), an ISO date such as 2030-01-01 or 2030-01-01T00:00:00Z (a time names its zone), or epoch seconds, got ${JSON.stringify(text)}`,
  );
}

/**
 * The most epoch seconds typed as digits: 10^11 − 1, in the year 5138. Epoch seconds are 10 digits
 * today; 13 digits are what Date.now() and most logs give, milliseconds, which read as seconds
 * would be a time some 56,000 years away, a token that never expires. A later instant is still
 * reachable as a duration from now ("+1000000d"), which says what it means.
 */
export const MAX_TYPED_EPOCH_SECONDS = FAR_FUTURE_SECONDS - 1;

/**
 * What the CLI and its MCP tools pass as mint's and attenuate's `allowFarFuture`: every time they
 * take is parsed here (parseInstant), which refuses digits that read as milliseconds, as an epoch
 * time or as a count of seconds, so a later time is one asked for as such ("+1000000000d").
 */
export const FAR_TIMES_PARSED = true;

/** Epoch seconds as digits ("1893456000"), refused from 10^11 on as milliseconds or finer. */
export function parseEpochSeconds(text: string, what = "time"): number {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed))
    throw new UsageError(`${what}: expected epoch seconds (digits), got ${JSON.stringify(text)}`);
  const value = BigInt(trimmed);
  if (value > BigInt(MAX_TYPED_EPOCH_SECONDS)) {
    const seconds = value / 1000n;
    const milliseconds = seconds <= BigInt(MAX_TYPED_EPOCH_SECONDS);
    throw new UsageError(
      `${what}: ${trimmed} looks like milliseconds${milliseconds ? "" : " or a finer unit"}; epoch seconds are 10 digits today (the most is ${MAX_TYPED_EPOCH_SECONDS})${milliseconds ? `; in seconds that is ${seconds}` : ""}`,
    );
  }
  return Number(value);
}

const ISO_DATE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/;

/**
 * An ISO 8601 date ("2030-01-01", UTC) or date and time with its zone ("2030-01-01T12:00:00Z",
 * "…+02:00") in epoch seconds, fractions dropped; undefined for anything else. Every field is
 * checked against the calendar (Date.parse reads 2030-02-31 as March 3rd), and a time must name
 * its zone: Date.parse reads one without as the machine's local time, so a token's expiry would
 * move with the machine that minted it.
 */
export function isoSeconds(text: string): number | undefined {
  const m = ISO_DATE.exec(text);
  if (m === null) return undefined;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [hour, minute, second] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  const zone = m[7];
  if (zone !== undefined && zone !== "Z") {
    const [hh, mm] = [Number(zone.slice(1, 3)), Number(zone.slice(-2))];
    if (hh > 23 || mm > 59) return undefined;
    offsetMinutes = (zone[0] === "-" ? -1 : 1) * (hh * 60 + mm);
  }
  const ms = Date.UTC(year, month - 1, day, hour, minute, second) - offsetMinutes * 60_000;
  // Date.UTC maps years 0–99 to 1900–1999; the regular expression's four digits and this check keep
  // every answer an instant from 1970 on.
  if (year < 1970 || !Number.isFinite(ms) || ms < 0) return undefined;
  return Math.floor(ms / 1000);
}

/** A rate window: "<amount>-<tokens|usd|requests>/<period>", e.g. "100k-tokens/1h", "$5-usd/1d", "60-requests/m". */
export function parseRate(text: string, what = "--rate"): RateWindow {
  const match = /^(.+)-(tokens|usd|requests)\/(\d*)([smhd])$/.exec(text.trim());
  if (match === null)
    throw new UsageError(
      `${what}: expected <amount>-<tokens|usd|requests>/<period> such as 100k-tokens/1h or 60-requests/1m, got ${JSON.stringify(text)}`,
    );
  const [, amount = "", unit = "", count = "", period = "s"] = match;
  const seconds = parseDuration(`${count === "" ? "1" : count}${period}`, what);
  if (seconds > MAX_RATE_SECONDS)
    throw new UsageError(`${what}: a window is at most 366d, got ${JSON.stringify(text)}`);
  if (unit === "usd") return { seconds, usdMicros: parseUsd(amount, what) };
  return unit === "tokens"
    ? { seconds, tokens: parseCount(amount, what) }
    : { seconds, requests: parseCount(amount, what) };
}

/** Windows with the same period are one window with several amounts; the same amount twice is an error. */
export function mergeRates(windows: readonly RateWindow[], what = "--rate"): RateWindow[] {
  const byPeriod = new Map<number, RateWindow>();
  for (const window of windows) {
    const previous = byPeriod.get(window.seconds) ?? { seconds: window.seconds };
    for (const kind of ["tokens", "usdMicros", "requests"] as const) {
      if (window[kind] !== undefined && previous[kind] !== undefined) {
        throw new UsageError(
          `${what}: two ${kind === "usdMicros" ? "usd" : kind} limits for the same ${formatDuration(window.seconds)} window; give one`,
        );
      }
    }
    byPeriod.set(window.seconds, { ...previous, ...window });
  }
  return [...byPeriod.values()];
}

/** "openai,anthropic:usd=20:tokens=100k" → providers with optional caps of their own. */
export function parseProviders(text: string, what = "--providers"): ProviderGrant[] {
  const items = splitList(text, what);
  const providers = items.map((item, index) => {
    const [name = "", ...caps] = item.split(":");
    // The list splits on commas first: "openai:usd=1,5" or "…:tokens=1,000:usd=5" would be a cap
    // of $1 (or 1 token) and a provider named "5" or "000", with or without caps of its own. A
    // name of digits after a cap is refused as that misreading.
    const previous = items[index - 1];
    if (previous?.includes("=") === true && /^\d[\d_.]*[kKmMbB]?$/.test(name))
      throw new UsageError(
        `${what}: ${JSON.stringify(`${previous},${item}`)}: a comma separates providers, so ${JSON.stringify(item)} would be a provider of its own; write the amount without a comma (1.5, 1000 or 1_000), or list a provider so named first`,
      );
    if (!PROVIDER_NAME.test(name))
      throw new UsageError(
        `${what}: ${JSON.stringify(name)} is not a provider name (lower-case letters, digits, _ . -)`,
      );
    let provider: { name: string; tokens?: number; usdMicros?: number } = { name };
    for (const cap of caps) {
      const [key, value, ...more] = cap.split("=");
      // Each cap once, as key=value: a second one would replace the first ("usd=5:usd=500" was
      // $500), and a second "=" would be dropped ("usd=5=500" was $5), both without a word.
      if (more.length > 0)
        throw new UsageError(
          `${what}: ${JSON.stringify(cap)} in ${JSON.stringify(item)} has more than one "="; give a cap as key=value, e.g. ${name}:usd=5`,
        );
      if (value === undefined || (key !== "usd" && key !== "tokens")) {
        throw new UsageError(
          `${what}: expected ${name}:usd=<dollars> or ${name}:tokens=<count>, got ${JSON.stringify(item)}`,
        );
      }
      if (provider[key === "usd" ? "usdMicros" : "tokens"] !== undefined)
        throw new UsageError(
          `${what}: ${JSON.stringify(item)} gives ${name}:${key} twice; give each cap once`,
        );
      provider =
        key === "usd"
          ? { ...provider, usdMicros: parseUsd(value, `${what} ${name}:usd`) }
          : { ...provider, tokens: parseCount(value, `${what} ${name}:tokens`) };
    }
    return provider;
  });
  assertUnique(
    providers.map((p) => p.name),
    what,
  );
  return providers;
}

/** A comma-separated list, each item checked against `pattern`. */
export function parseList(text: string, pattern: RegExp, noun: string, what: string): string[] {
  const items = splitList(text, what);
  for (const item of items)
    if (!pattern.test(item))
      throw new UsageError(`${what}: ${JSON.stringify(item)} is not a valid ${noun}`);
  assertUnique(items, what);
  return items;
}

function splitList(text: string, what: string): string[] {
  const items = text.split(",").map((item) => item.trim());
  if (items.some((item) => item === ""))
    throw new UsageError(
      `${what}: expected a comma-separated list without empty entries, got ${JSON.stringify(text)}`,
    );
  return items;
}

function assertUnique(items: readonly string[], what: string): void {
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item)) throw new UsageError(`${what}: ${JSON.stringify(item)} is listed twice`);
    seen.add(item);
  }
}

// ---- formatting: integers back into the units people typed ----

/**
 * 1234567 → "1,234,567", for integers (numbers or bigints). Not toLocaleString: its first call
 * loads the ICU locale data, about 11 ms, a sixth of a bare `node -e 0`, on every inspect and verify.
 */
export function groupDigits(value: number | bigint): string {
  return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** 1_000_000 → "1M", 100_000 → "100k", 1234 → "1,234". */
export function formatCount(value: number): string {
  if (value >= 1_000_000 && value % 100_000 === 0) return `${value / 1_000_000}M`;
  if (value >= 1_000 && value % 100 === 0) return `${value / 1_000}k`;
  return groupDigits(value);
}

/** 50_000_000 → "$50", 2_500_000 → "$2.50", 1 → "$0.000001". Exact: integer arithmetic only. */
export function formatUsd(micros: number): string {
  const sign = micros < 0 ? "-" : "";
  const abs = BigInt(Math.abs(micros));
  const whole = groupDigits(abs / MICROS_PER_USD);
  const fraction = (abs % MICROS_PER_USD).toString().padStart(6, "0").replace(/0+$/, "");
  return `${sign}$${whole}${fraction === "" ? "" : "." + fraction.padEnd(2, "0")}`;
}

/** 86_400 → "1d", 5_400 → "90m", 61 → "61s". */
export function formatDuration(seconds: number): string {
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
  ] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

/** The latest epoch second a Date holds: 8.64e15 ms, ECMA-262's time range, in the year 275760. */
const MAX_DATE_SECONDS = 8_640_000_000_000;

/**
 * Epoch seconds → "2030-01-01T00:00:00Z". A token's exp and nbf may be any integer up to 2^53 − 1
 * (spec/format.md §4.1), past what a Date holds, where toISOString throws: such an instant is given as
 * "epoch 9007199254740991 s", so a validly signed token is always shown, never an error.
 */
export function formatInstant(seconds: number): string {
  if (!Number.isInteger(seconds) || Math.abs(seconds) > MAX_DATE_SECONDS)
    return `epoch ${seconds} s`;
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

/** A rate window as typed: "100k-tokens/1h + 60-requests/1h". */
export function formatRate(window: RateWindow): string {
  const period = formatDuration(window.seconds);
  const parts: string[] = [];
  if (window.tokens !== undefined) parts.push(`${formatCount(window.tokens)}-tokens/${period}`);
  if (window.usdMicros !== undefined) parts.push(`${formatUsd(window.usdMicros)}-usd/${period}`);
  if (window.requests !== undefined)
    parts.push(`${formatCount(window.requests)}-requests/${period}`);
  return parts.join(" + ");
}

export function formatProvider(provider: ProviderGrant): string {
  const caps = [
    ...(provider.usdMicros === undefined ? [] : [`usd=${formatUsd(provider.usdMicros).slice(1)}`]),
    ...(provider.tokens === undefined ? [] : [`tokens=${formatCount(provider.tokens)}`]),
  ];
  return [provider.name, ...caps].join(":");
}

/** One amount of a ledger line or grant field in its unit, by field kind. */
export function formatAmount(kind: string, value: number): string {
  return kind === "usdMicros" || kind.endsWith(".usdMicros")
    ? formatUsd(value)
    : formatCount(value);
}
