/**
 * The small grammars of tool-argument constraints (spec/arguments.md §5): hosts, URLs, e-mail
 * addresses and slash-separated paths, each parsed by hand over ASCII, with ASCII case folding
 * only. No platform URL parser is used: WHATWG parsers repair input (backslashes, IPv4 shorthand,
 * percent-encoded hosts), and every repair is a way for one string to mean two things.
 *
 * Every parser returns `undefined` (or a reason string) for anything outside its grammar; callers
 * deny. Every function here runs in time linear in its input.
 */

const enum C {
  Space = 0x20,
  Percent = 0x25,
  Dot = 0x2e,
  Slash = 0x2f,
  Colon = 0x3a,
  At = 0x40,
  Star = 0x2a,
  Hyphen = 0x2d,
  Question = 0x3f,
  Hash = 0x23,
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** ASCII lower case; other characters unchanged (spec/arguments.md §5.1: no Unicode folding). */
export function asciiLower(text: string): string {
  // Fast path: most hosts are already lower case.
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return text.replace(/[A-Z]+/g, (s) => s.toLowerCase());
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Hosts (§5.2)

/** A host after normalisation: ASCII lower case, and whether it is a dotted-quad IPv4 address. */
export interface Host {
  readonly name: string;
  readonly ipv4: boolean;
}

/**
 * A host: LDH labels of 1 to 63 characters, at most 253 in all, no leading or trailing hyphen, no
 * trailing dot. If the last label is all digits or starts with "0x", the host is an IPv4 address
 * and must be the canonical dotted quad (four decimal labels 0–255, no leading zeros), so that
 * `0x7f.1`, `127.1`, `2130706433` and `0177.0.0.1` are refused rather than read as 127.0.0.1.
 */
export function parseHost(text: string): Host | undefined {
  const length = text.length;
  if (length < 1 || length > 253) return undefined;
  let labelStart = 0;
  let labels = 0;
  let lastAllDigits = true;
  for (let i = 0; i <= length; i++) {
    const c = i < length ? text.charCodeAt(i) : C.Dot;
    if (c === C.Dot) {
      const size = i - labelStart;
      if (size < 1 || size > 63) return undefined;
      if (text.charCodeAt(labelStart) === C.Hyphen || text.charCodeAt(i - 1) === C.Hyphen)
        return undefined;
      labels++;
      if (i < length) {
        labelStart = i + 1;
        lastAllDigits = true;
      }
      continue;
    }
    if (isDigit(c)) continue;
    if (isAlpha(c) || c === C.Hyphen) {
      lastAllDigits = false;
      continue;
    }
    return undefined;
  }
  const last = text.slice(labelStart);
  const lastHex = last.length >= 2 && last[0] === "0" && (last[1] === "x" || last[1] === "X");
  if (!lastAllDigits && !lastHex) return { name: asciiLower(text), ipv4: false };
  // Ends in a number: an IPv4 address, accepted only as the canonical dotted quad.
  if (labels !== 4) return undefined;
  for (const label of text.split(".")) {
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(label) || Number(label) > 255) return undefined;
  }
  return { name: text, ipv4: true };
}

/** A host pattern: an exact host, or `*.` and a host name meaning "any name below it". */
export interface HostPattern {
  readonly host: string;
  readonly wildcard: boolean;
}

/** A host pattern in canonical form (lower case); `undefined` if not one. */
export function parseHostPattern(text: string, allowIpv4: boolean): HostPattern | undefined {
  const wildcard = text.startsWith("*.");
  const host = parseHost(wildcard ? text.slice(2) : text);
  if (host === undefined || host.name !== (wildcard ? text.slice(2) : text)) return undefined;
  if (host.ipv4 && (wildcard || !allowIpv4)) return undefined;
  return { host: host.name, wildcard };
}

/** Does the pattern admit this (normalised) host? Suffixes only on label boundaries. */
export function hostMatches(pattern: HostPattern, host: Host): boolean {
  if (!pattern.wildcard) return host.name === pattern.host;
  const name = host.name;
  const suffix = pattern.host;
  return (
    !host.ipv4 &&
    name.length > suffix.length + 1 &&
    name.endsWith(suffix) &&
    name.charCodeAt(name.length - suffix.length - 1) === C.Dot
  );
}

/** Is every host the child pattern admits also admitted by the parent pattern? */
export function hostPatternWithin(child: HostPattern, parent: HostPattern): boolean {
  if (!parent.wildcard) return !child.wildcard && child.host === parent.host;
  const name = child.host;
  const suffix = parent.host;
  if (child.wildcard && name === suffix) return true;
  return (
    name.length > suffix.length + 1 &&
    name.endsWith(suffix) &&
    name.charCodeAt(name.length - suffix.length - 1) === C.Dot
  );
}

// ---------------------------------------------------------------------------------------------
// URLs (§5.3)

/** Default ports, removed by normalisation: `https://h:443/` is `https://h/`. */
const DEFAULT_PORTS: ReadonlyMap<string, number> = new Map([
  ["http", 80],
  ["https", 443],
  ["ws", 80],
  ["wss", 443],
]);

export interface ParsedUrl {
  readonly scheme: string;
  readonly host: Host;
  /** The port, or 0 when absent or the scheme's default. */
  readonly port: number;
  /** The path, percent-escapes in upper case; "/" when the URL has none. */
  readonly path: string;
}

export interface UrlPrefix {
  readonly scheme: string;
  readonly host: HostPattern;
  readonly port: number;
  readonly path: string;
}

// RFC 3986 pchar without "%": unreserved, sub-delims, ":" and "@".
const PCHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@")
  PCHAR[c.charCodeAt(0)] = 1;
const UNRESERVED = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
  UNRESERVED[c.charCodeAt(0)] = 1;

/**
 * Reads `scheme "://" authority` and returns the scheme (lower case), the authority and where the
 * rest starts; or a reason. Shared by URLs and URL prefixes.
 */
function readHead(
  text: string,
): { scheme: string; authority: string; rest: number } | string | undefined {
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    // Printable ASCII only: no space, no control, nothing above 0x7e; and no backslash, which
    // WHATWG parsers read as "/" in http(s) URLs and RFC 3986 ones do not.
    if (c < 0x21 || c > 0x7e || c === 0x5c) return "not printable ASCII without backslash";
  }
  let i = 0;
  if (!isAlpha(text.charCodeAt(0))) return "no scheme";
  while (i < length) {
    const c = text.charCodeAt(i);
    if (isAlpha(c) || isDigit(c) || c === 0x2b || c === C.Hyphen || c === C.Dot) i++;
    else break;
  }
  if (!text.startsWith("://", i)) return "no scheme";
  const scheme = asciiLower(text.slice(0, i));
  const start = i + 3;
  let end = start;
  while (end < length) {
    const c = text.charCodeAt(end);
    if (c === C.Slash || c === C.Question || c === C.Hash) break;
    end++;
  }
  return { scheme, authority: text.slice(start, end), rest: end };
}

/** `host [":" port]`, the port without leading zeros, 1–65535; default ports become 0. */
function readAuthority(
  authority: string,
  scheme: string,
  readHostPart: (text: string) => Host | HostPattern | undefined,
): { host: Host | HostPattern; port: number } | string {
  // "@" would start userinfo (`https://trusted@evil/`); "[" an IPv6 literal; "%" an escape in a
  // host. None is in the host grammar: refused here with a reason of its own.
  if (authority.includes("@")) return "userinfo (@) in the authority";
  const colon = authority.indexOf(":");
  const hostText = colon < 0 ? authority : authority.slice(0, colon);
  const host = readHostPart(hostText);
  if (host === undefined) return "not a host";
  let port = 0;
  if (colon >= 0) {
    const digits = authority.slice(colon + 1);
    if (!/^[1-9][0-9]{0,4}$/.test(digits) || Number(digits) > 65535) return "not a port";
    port = Number(digits);
    if (DEFAULT_PORTS.get(scheme) === port) port = 0;
  }
  return { host, port };
}

/**
 * Reads a path from `start` up to "?", "#" or the end, and returns it with escapes in upper case
 * and where it ends; or a reason. Refused: characters outside pchar, malformed escapes, escapes of
 * unreserved characters (`%2e` is ".", `%41` is "A": each would give one path two spellings), of
 * "/" and "\" and of controls, of "%" (decoded twice, `%252e` is "."); runs of escapes that are not
 * well-formed UTF-8 (`%C0%AE` is "." to a lenient decoder); empty segments other than the last
 * (doubled slashes); segments made only of dots ("." and ".." and the "..." some servers trim to
 * "..").
 */
function readPath(text: string, start: number): { path: string; end: number } | string {
  const length = text.length;
  if (start >= length || text.charCodeAt(start) !== C.Slash)
    return start >= length || text.charCodeAt(start) === C.Question || text[start] === "#"
      ? { path: "/", end: start }
      : "path does not start with /";
  let out = "";
  let copied = start;
  let segmentStart = start + 1;
  let onlyDots = true;
  /** The bytes ≥ 0x80 of the run of escapes being read, which must be well-formed UTF-8. */
  let high: number[] | undefined;
  let i = start + 1;
  for (; i <= length; i++) {
    const c = i < length ? text.charCodeAt(i) : -1;
    if (high !== undefined && c !== C.Percent) {
      if (!wellFormedUtf8(high)) return "percent-escapes that are not well-formed UTF-8";
      high = undefined;
    }
    if (c === -1 || c === C.Slash || c === C.Question || c === C.Hash) {
      const size = i - segmentStart;
      const last = c !== C.Slash;
      if (size === 0 && !last) return "empty path segment (doubled slash)";
      if (size > 0 && onlyDots) return "dot segment";
      if (last) break;
      segmentStart = i + 1;
      onlyDots = true;
      continue;
    }
    if (c === C.Percent) {
      const h1 = text.charCodeAt(i + 1);
      const h2 = text.charCodeAt(i + 2);
      if (!(isHex(h1) && isHex(h2))) return "malformed percent-escape";
      const byte = parseInt(text.slice(i + 1, i + 3), 16);
      if (byte < 0x80 && UNRESERVED[byte] === 1) return "percent-escape of an unreserved character";
      if (byte === C.Slash || byte === 0x5c || byte < 0x20 || byte === 0x7f)
        return "percent-escape of a separator or control";
      // `%25` is `%` itself: a server that decodes twice reads `%252e%252e` as `..`.
      if (byte === C.Percent) return "percent-escape of %";
      if (byte >= 0x80) (high ??= []).push(byte);
      else if (high !== undefined) {
        if (!wellFormedUtf8(high)) return "percent-escapes that are not well-formed UTF-8";
        high = undefined;
      }
      const upper = text.slice(i, i + 3).toUpperCase();
      if (upper !== text.slice(i, i + 3)) {
        out += text.slice(copied, i) + upper;
        copied = i + 3;
      }
      onlyDots = false;
      i += 2;
      continue;
    }
    if (PCHAR[c] !== 1) return "character not allowed in a path";
    if (c !== C.Dot) onlyDots = false;
  }
  return { path: out + text.slice(copied, i), end: i };
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Whether escaped bytes are well-formed UTF-8 (Unicode's Table 3-7): no overlong form (`%C0%AE`
 * is "." to a lenient decoder, `%C0%AF` "/"), no surrogate, nothing past U+10FFFF, no lead byte
 * without its continuation bytes or continuation byte without its lead.
 */
function wellFormedUtf8(bytes: readonly number[]): boolean {
  try {
    UTF8.decode(Uint8Array.from(bytes));
    return true;
  } catch {
    return false;
  }
}

/** The query or fragment after the path: pchar, "/", "?" and well-formed escapes only. */
function restIsValid(text: string, start: number): boolean {
  let inFragment = false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === C.Hash) {
      if (inFragment) return false;
      inFragment = true;
      continue;
    }
    if (c === C.Percent) {
      if (!isHex(text.charCodeAt(i + 1)) || !isHex(text.charCodeAt(i + 2))) return false;
      i += 2;
      continue;
    }
    if (PCHAR[c] !== 1 && c !== C.Slash && c !== C.Question) return false;
  }
  return true;
}

/** A URL argument, normalised by spec/arguments.md §5.3; a reason string if it is refused. */
export function parseUrl(text: string): ParsedUrl | string {
  const head = readHead(text);
  if (head === undefined || typeof head === "string") return head ?? "not a URL";
  const authority = readAuthority(head.authority, head.scheme, parseHost);
  if (typeof authority === "string") return authority;
  const path = readPath(text, head.rest);
  if (typeof path === "string") return path;
  if (path.end < text.length && !restIsValid(text, path.end))
    return "character not allowed in the query or fragment";
  return {
    scheme: head.scheme,
    host: authority.host as Host,
    port: authority.port,
    path: path.path,
  };
}

/**
 * A URL prefix of a constraint: `scheme "://" host-pattern [":" port] path`, the path starting
 * with "/", no query or fragment, and already in normal form (so that it has one spelling).
 */
export function parseUrlPrefix(text: string): UrlPrefix | undefined {
  const head = readHead(text);
  if (head === undefined || typeof head === "string") return undefined;
  const authority = readAuthority(head.authority, head.scheme, (h) => parseHostPattern(h, true));
  if (typeof authority === "string") return undefined;
  if (head.rest >= text.length || text.charCodeAt(head.rest) !== C.Slash) return undefined;
  const path = readPath(text, head.rest);
  if (typeof path === "string" || path.end !== text.length) return undefined;
  const prefix: UrlPrefix = {
    scheme: head.scheme,
    host: authority.host as HostPattern,
    port: authority.port,
    path: path.path,
  };
  return formatUrlPrefix(prefix) === text ? prefix : undefined;
}

function formatUrlPrefix(prefix: UrlPrefix): string {
  const host = (prefix.host.wildcard ? "*." : "") + prefix.host.host;
  return `${prefix.scheme}://${host}${prefix.port === 0 ? "" : `:${prefix.port}`}${prefix.path}`;
}

/** Path containment on segment boundaries: `/v1` admits `/v1` and `/v1/x`, not `/v10`. */
export function pathWithin(prefix: string, path: string): boolean {
  if (path === prefix) return true;
  if (!path.startsWith(prefix)) return false;
  return (
    prefix.charCodeAt(prefix.length - 1) === C.Slash || path.charCodeAt(prefix.length) === C.Slash
  );
}

export function urlMatches(prefix: UrlPrefix, url: ParsedUrl): boolean {
  return (
    url.scheme === prefix.scheme &&
    url.port === prefix.port &&
    hostMatches(prefix.host, url.host) &&
    pathWithin(prefix.path, url.path)
  );
}

export function urlPrefixWithin(child: UrlPrefix, parent: UrlPrefix): boolean {
  return (
    child.scheme === parent.scheme &&
    child.port === parent.port &&
    hostPatternWithin(child.host, parent.host) &&
    pathWithin(parent.path, child.path)
  );
}

// ---------------------------------------------------------------------------------------------
// E-mail addresses (§5.4)

// RFC 5322 atext without "%" and "!", which old mail routing reads as "relay via" (user%evil@host).
const ATEXT = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789#$&'*+-/=?^_`{|}~")
  ATEXT[c.charCodeAt(0)] = 1;

/**
 * The domain of an address `local@domain`: one "@", a dot-atom local part of 1 to 64 characters,
 * a host name (not an address literal, not an IPv4 address), at most 254 characters in all. No
 * display names, comments, quoted local parts or lists. Returns the domain in lower case.
 */
export function parseEmailDomain(text: string): Host | string {
  if (text.length > 254) return "longer than 254 characters";
  const at = text.indexOf("@");
  if (at < 1 || at > 64 || text.indexOf("@", at + 1) >= 0) return "not local@domain";
  let previousDot = true;
  for (let i = 0; i < at; i++) {
    const c = text.charCodeAt(i);
    if (c === C.Dot) {
      if (previousDot) return "dot at the start of, or doubled in, the local part";
      previousDot = true;
      continue;
    }
    if (c >= 128 || ATEXT[c] !== 1) return "character not allowed in the local part";
    previousDot = false;
  }
  if (previousDot) return "dot at the end of the local part";
  const host = parseHost(text.slice(at + 1));
  if (host === undefined || host.ipv4) return "the domain is not a host name";
  return host;
}

// ---------------------------------------------------------------------------------------------
// Paths and path globs (§5.5)

const SEGMENT_CHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._+,=@ ")
  SEGMENT_CHAR[c.charCodeAt(0)] = 1;

/** A path: absolute or relative, and its segments. */
export interface ParsedPath {
  readonly absolute: boolean;
  readonly segments: readonly string[];
}

/** Is this a valid segment: 1–255 segment characters, no leading space, no trailing dot or space? */
function validSegment(segment: string): boolean {
  const n = segment.length;
  if (n < 1 || n > 255) return false;
  for (let i = 0; i < n; i++) {
    const c = segment.charCodeAt(i);
    if (c >= 128 || SEGMENT_CHAR[c] !== 1) return false;
  }
  const last = segment.charCodeAt(n - 1);
  return segment.charCodeAt(0) !== C.Space && last !== C.Dot && last !== C.Space;
}

/**
 * A path argument: optional leading "/", then segments separated by single "/", no trailing "/"
 * ("/" alone is the root). Segment characters: ASCII letters, digits and `- . _ + , = @` and space.
 * So no "\", "%", "~", "*", "?", ":" and nothing non-ASCII; a segment may not start with a space
 * or end with a dot or space, which also refuses ".", ".." and "...".
 */
export function parsePath(text: string): ParsedPath | undefined {
  if (text === "/") return { absolute: true, segments: [] };
  const absolute = text.startsWith("/");
  const body = absolute ? text.slice(1) : text;
  if (body.length === 0) return undefined;
  const segments = body.split("/");
  for (const segment of segments) if (!validSegment(segment)) return undefined;
  return { absolute, segments };
}

/** One segment of a glob: a literal, or `prefix*suffix` (one star, matching 0+ characters). */
export interface SegmentPattern {
  readonly literal: string | undefined;
  readonly prefix: string;
  readonly suffix: string;
}

export interface PathGlob {
  readonly absolute: boolean;
  readonly segments: readonly SegmentPattern[];
  /** Ends in `**`: one or more further segments. */
  readonly deep: boolean;
}

/**
 * A glob: a path whose segments may hold one `*` (any characters within the segment, possibly
 * none) and whose last segment may be `**` (one or more further segments, anything below).
 */
export function parseGlob(text: string): PathGlob | undefined {
  if (text === "/") return { absolute: true, segments: [], deep: false };
  const absolute = text.startsWith("/");
  const body = absolute ? text.slice(1) : text;
  if (body.length === 0) return undefined;
  const parts = body.split("/");
  const deep = parts[parts.length - 1] === "**";
  if (deep) parts.pop();
  const segments: SegmentPattern[] = [];
  for (const part of parts) {
    const star = part.indexOf("*");
    if (star < 0) {
      if (!validSegment(part)) return undefined;
      segments.push({ literal: part, prefix: "", suffix: "" });
      continue;
    }
    if (part.indexOf("*", star + 1) >= 0 || part.length > 255) return undefined;
    const prefix = part.slice(0, star);
    const suffix = part.slice(star + 1);
    for (let i = 0; i < part.length; i++) {
      const c = part.charCodeAt(i);
      if (i !== star && (c >= 128 || SEGMENT_CHAR[c] !== 1)) return undefined;
    }
    segments.push({ literal: undefined, prefix, suffix });
  }
  return { absolute, segments, deep };
}

function segmentMatches(pattern: SegmentPattern, segment: string): boolean {
  if (pattern.literal !== undefined) return segment === pattern.literal;
  return (
    segment.length >= pattern.prefix.length + pattern.suffix.length &&
    segment.startsWith(pattern.prefix) &&
    segment.endsWith(pattern.suffix)
  );
}

export function globMatches(glob: PathGlob, path: ParsedPath): boolean {
  if (glob.absolute !== path.absolute) return false;
  const fixed = glob.segments.length;
  const n = path.segments.length;
  if (glob.deep ? n < fixed + 1 : n !== fixed) return false;
  for (let i = 0; i < fixed; i++)
    if (!segmentMatches(glob.segments[i] as SegmentPattern, path.segments[i] as string))
      return false;
  return true;
}

function segmentPatternWithin(child: SegmentPattern, parent: SegmentPattern): boolean {
  if (parent.literal !== undefined) return child.literal === parent.literal;
  if (child.literal !== undefined) return segmentMatches(parent, child.literal);
  return child.prefix.startsWith(parent.prefix) && child.suffix.endsWith(parent.suffix);
}

/** Is every path the child glob admits also admitted by the parent glob? (Exact.) */
export function globWithin(child: PathGlob, parent: PathGlob): boolean {
  if (child.absolute !== parent.absolute) return false;
  const c = child.segments.length;
  const p = parent.segments.length;
  if (!parent.deep) {
    if (child.deep || c !== p) return false;
  } else if (child.deep ? c < p : c < p + 1) {
    return false;
  }
  for (let i = 0; i < p; i++)
    if (
      !segmentPatternWithin(
        child.segments[i] as SegmentPattern,
        parent.segments[i] as SegmentPattern,
      )
    )
      return false;
  return true;
}
