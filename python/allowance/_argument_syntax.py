"""The small grammars of spec/arguments.md §5: hosts and host patterns, URLs and URL prefixes,
e-mail addresses, paths and globs. ASCII only, ASCII case folding only, no platform parser."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_HEX = "0123456789ABCDEFabcdef"
_PCHAR = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@"
)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_REST = _PCHAR | frozenset("/?")
_ATOM = re.compile(r"[A-Za-z0-9#$&'*+\-/=?^_`{|}~]+")
_SEGCHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._+,=@ ")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def ascii_lower(text: str) -> str:
    """A–Z to a–z only (§5.1): never Unicode case mapping (the Kelvin sign is not k)."""
    return text.translate(_LOWER)


_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


# ---- §5.2 hosts ----


@dataclass(frozen=True, slots=True)
class Host:
    name: str  # lower case
    ipv4: bool


def parse_host(text: str) -> Host | None:
    """A host of §5.2 in lower case, or None. An IPv4 address must be four decimal octets."""
    if not 1 <= len(text) <= 253 or not text.isascii():
        return None
    labels = text.split(".")
    if any(_LABEL.fullmatch(label) is None for label in labels):
        return None
    last = labels[-1]
    if _DIGITS.fullmatch(last) or last[:2] in ("0x", "0X"):
        # Ends in a number: only the plain dotted quad, never the shorthands other parsers read.
        if len(labels) != 4 or any(
            _DECIMAL_OCTET.fullmatch(label) is None or int(label) > 255 for label in labels
        ):
            return None
        return Host(text, True)
    return Host(ascii_lower(text), False)


@dataclass(frozen=True, slots=True)
class HostPattern:
    host: Host
    wildcard: bool  # "*." host

    def admits(self, host: Host) -> bool:
        if not self.wildcard:
            return host.name == self.host.name
        return not host.ipv4 and host.name.endswith("." + self.host.name)

    def within(self, parent: "HostPattern") -> bool:
        if not parent.wildcard:
            return not self.wildcard and self.host.name == parent.host.name
        if self.wildcard and self.host.name == parent.host.name:
            return True
        return self.host.name.endswith("." + parent.host.name)


def parse_host_pattern(text: str, allow_ipv4: bool = True) -> HostPattern | None:
    """A HOST_PATTERN as a constraint states it: in lower case; ``*.h`` needs a host name ``h``."""
    wildcard = text.startswith("*.")
    host = parse_host(text[2:] if wildcard else text)
    if host is None or host.name != text[2 if wildcard else 0 :]:
        return None  # not a host, or not written in lower case
    if host.ipv4 and (wildcard or not allow_ipv4):
        return None
    return HostPattern(host, wildcard)


# ---- §5.3 URLs ----


@dataclass(frozen=True, slots=True)
class Url:
    scheme: str
    host: Host
    port: int | None  # None: the scheme's default, or none given
    path: str


@dataclass(frozen=True, slots=True)
class UrlPrefix:
    scheme: str
    host: HostPattern
    port: int | None
    path: str

    def admits(self, url: Url) -> bool:
        return (
            url.scheme == self.scheme
            and url.port == self.port
            and self.host.admits(url.host)
            and path_contains(self.path, url.path)
        )

    def within(self, parent: "UrlPrefix") -> bool:
        return (
            self.scheme == parent.scheme
            and self.port == parent.port
            and self.host.within(parent.host)
            and path_contains(parent.path, self.path)
        )


def path_contains(prefix: str, path: str) -> bool:
    """On a segment boundary: equal, or ``prefix`` ends in "/" and starts ``path``, or ``path``
    starts with ``prefix`` + "/"."""
    return (
        path == prefix
        or (prefix.endswith("/") and path.startswith(prefix))
        or path.startswith(prefix + "/")
    )


def _well_formed_utf8(data: bytes | bytearray) -> bool:
    """Unicode's Table 3-7: no overlong form ("%C0%AE" is "." to a lenient decoder), no
    surrogate, nothing past U+10FFFF, no lead byte without its continuation bytes."""
    try:
        bytes(data).decode("utf-8", "strict")
        return True
    except UnicodeDecodeError:
        return False


def _normal_path(path: str) -> str | None:
    """Rule 3 of §5.3, and upper-case escapes; None if refused."""
    out = []
    high = bytearray()  # the bytes >= 0x80 of the run of escapes being read
    i = 0
    while i < len(path):
        c = path[i]
        if high and c != "%":
            if not _well_formed_utf8(high):
                return None
            high.clear()
        if c == "%":
            pair = path[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                return None
            byte = int(pair, 16)
            # "%25" is "%" itself: a server that decodes twice reads "%252e" as ".".
            if (
                chr(byte) in _UNRESERVED
                or byte in (0x25, 0x2F, 0x5C)
                or byte < 0x20
                or byte == 0x7F
            ):
                return None
            if byte >= 0x80:
                high.append(byte)
            elif high:
                if not _well_formed_utf8(high):
                    return None
                high.clear()
            out.append("%" + pair.upper())
            i += 3
            continue
        if c != "/" and c not in _PCHAR:
            return None
        out.append(c)
        i += 1
    if high and not _well_formed_utf8(high):
        return None
    normal = "".join(out)
    segments = normal.split("/")[1:] if normal else []
    for index, segment in enumerate(segments):
        if segment == "" and index != len(segments) - 1:
            return None  # "//"
        if segment and set(segment) == {"."}:
            return None  # ".", "..", "..."
    return normal or "/"


def _authority(text: str, allow_pattern: bool) -> tuple[Host | HostPattern, int | None] | None:
    if "@" in text:
        return None  # userinfo
    host_text, colon, port_text = text.partition(":")
    port = None
    if colon:
        if _PORT.fullmatch(port_text) is None or int(port_text) > 65535:
            return None
        port = int(port_text)
    if allow_pattern:
        pattern = parse_host_pattern(host_text)
        return None if pattern is None else (pattern, port)
    host = parse_host(host_text)
    return None if host is None else (host, port)


def _printable(text: str) -> bool:
    return all("\x21" <= c <= "\x7e" for c in text) and "\\" not in text


def parse_url(text: str) -> Url | None:
    """A URL argument by the grammar of §5.3 only, normalised; None if refused."""
    if not _printable(text):
        return None
    scheme, sep, rest = text.partition("://")
    if not sep or _SCHEME.fullmatch(scheme) is None:
        return None
    end = len(rest)
    for stop in "/?#":
        at = rest.find(stop)
        if at != -1:
            end = min(end, at)
    authority = _authority(rest[:end], allow_pattern=False)
    if authority is None:
        return None
    host, port = authority
    remainder = rest[end:]
    cut = min(
        (at for at in (remainder.find("?"), remainder.find("#")) if at != -1),
        default=len(remainder),
    )
    path, query = remainder[:cut], remainder[cut:]
    normal = _normal_path(path)
    if normal is None or not _rest_ok(query):
        return None
    scheme = ascii_lower(scheme)
    if port is not None and DEFAULT_PORTS.get(scheme) == port:
        port = None
    return Url(scheme, host, port, normal)  # type: ignore[arg-type]


def _rest_ok(query: str) -> bool:
    """Query and fragment: pchar, escapes, "/" and "?", and at most one "#"."""
    if not query:
        return True
    body = query[1:]
    if query[0] == "?":
        q, _, fragment = body.partition("#")
        parts = [q, fragment] if "#" in body else [q]
    else:
        parts = [body]
    for part in parts:
        i = 0
        while i < len(part):
            c = part[i]
            if c == "%":
                pair = part[i + 1 : i + 3]
                if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                    return False
                i += 3
                continue
            if c not in _REST:
                return False  # a second "#" included
            i += 1
    return True


def parse_url_prefix(text: str) -> UrlPrefix | None:
    """A URL_PREFIX as a constraint states it: already normal, a path, no query or fragment."""
    if not _printable(text):
        return None
    scheme, sep, rest = text.partition("://")
    if not sep or _SCHEME.fullmatch(scheme) is None or scheme != ascii_lower(scheme):
        return None
    slash = rest.find("/")
    if slash == -1 or "?" in rest or "#" in rest:
        return None
    authority = _authority(rest[:slash], allow_pattern=True)
    if authority is None:
        return None
    host, port = authority
    if port is not None and DEFAULT_PORTS.get(scheme) == port:
        return None  # not in normal form
    path = rest[slash:]
    if _normal_path(path) != path:
        return None  # refused by rule 3, or escapes not in upper case
    return UrlPrefix(scheme, host, port, path)  # type: ignore[arg-type]


# ---- §5.4 e-mail addresses ----


def parse_email_domain(text: str) -> Host | None:
    """The domain of an address of §5.4, or None if the address is refused."""
    if len(text) > 254 or not text.isascii() or text.count("@") != 1:
        return None
    local, _, domain = text.partition("@")
    if not 1 <= len(local) <= 64 or any(_ATOM.fullmatch(a) is None for a in local.split(".")):
        return None
    host = parse_host(domain)
    return None if host is None or host.ipv4 else host


# ---- §5.5 paths and globs ----


def _segment_ok(segment: str) -> bool:
    return (
        1 <= len(segment) <= 255
        and all(c in _SEGCHARS for c in segment)
        and not segment.startswith(" ")
        and not segment.endswith((".", " "))
    )


@dataclass(frozen=True, slots=True)
class Path:
    absolute: bool
    segments: tuple[str, ...]


def parse_path(text: str) -> Path | None:
    if text == "/":
        return Path(True, ())
    absolute = text.startswith("/")
    body = text[1:] if absolute else text
    segments = body.split("/")
    if not all(_segment_ok(s) for s in segments):
        return None
    return Path(absolute, tuple(segments))


@dataclass(frozen=True, slots=True)
class Glob:
    absolute: bool
    fixed: tuple[str, ...]  # literal segments or "pre*suf"
    deep: bool  # a final "**"

    def matches(self, path: Path) -> bool:
        if path.absolute != self.absolute:
            return False
        n = len(self.fixed)
        if self.deep:
            if len(path.segments) <= n:
                return False
        elif len(path.segments) != n:
            return False
        return all(_segment_matches(g, s) for g, s in zip(self.fixed, path.segments))

    def within(self, parent: "Glob") -> bool:
        if self.absolute != parent.absolute:
            return False
        n = len(parent.fixed)
        if not parent.deep:
            if self.deep or len(self.fixed) != n:
                return False
        elif len(self.fixed) < (n if self.deep else n + 1):
            return False
        return all(_segment_admits(p, c) for p, c in zip(parent.fixed, self.fixed))


def _split_star(segment: str) -> tuple[str, str] | None:
    if "*" not in segment:
        return None
    pre, _, suf = segment.partition("*")
    return pre, suf


def _segment_matches(glob_segment: str, segment: str) -> bool:
    star = _split_star(glob_segment)
    if star is None:
        return glob_segment == segment
    pre, suf = star
    return segment.startswith(pre) and segment.endswith(suf) and len(segment) >= len(pre) + len(suf)


def _segment_admits(parent: str, child: str) -> bool:
    p, c = _split_star(parent), _split_star(child)
    if p is None:
        return c is None and parent == child
    if c is None:
        return _segment_matches(parent, child)
    return c[0].startswith(p[0]) and c[1].endswith(p[1])


def parse_glob(text: str) -> Glob | None:
    if text == "/":
        return Glob(True, (), False)
    absolute = text.startswith("/")
    body = text[1:] if absolute else text
    parts = body.split("/")
    deep = parts[-1] == "**"
    if deep:
        parts = parts[:-1]
    for part in parts:
        if part.count("*") > 1 or len(part) > 255:
            return None
        if "*" in part:
            if not all(c in _SEGCHARS for c in part.replace("*", "", 1)):
                return None
        elif not _segment_ok(part):
            return None
    if not deep and not parts:
        return None
    return Glob(absolute, tuple(parts), deep)
