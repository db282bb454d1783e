"""Tool-argument constraints, the grant field ``args`` (payload key 15, spec/arguments.md): the
model and its one reading (§3.2) for caller input and decoded payloads alike, the CBOR form
(§3.1), the limits (§3.4), narrowing (§4) and the check of a tool call's arguments (§6)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from . import _argument_syntax as syntax
from ._cbor import text_order_key
from .errors import Violation

KINDS = (
    "exact",
    "oneOf",
    "range",
    "prefix",
    "glob",
    "url",
    "emailDomain",
    "maxLength",
    "forbidden",
)
KIND_NUMBER = {kind: number for number, kind in enumerate(KINDS, 1)}
PARAMETERS: dict[str, tuple[str, ...]] = {
    "exact": ("value",),
    "oneOf": ("values",),
    "range": ("min", "max"),
    "prefix": ("prefix",),
    "glob": ("glob",),
    "url": ("urls",),
    "emailDomain": ("domains",),
    "maxLength": ("max",),
    "forbidden": (),
}
STRING_KINDS = frozenset(("prefix", "glob", "url", "emailDomain"))
ARGUMENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOOL_NAME = re.compile(r"[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*")
TOOL_PATTERN = re.compile(r"\*|[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*(?:\.\*)?")
MAX_SAFE_INTEGER = 2**53 - 1
DENIAL_REASONS = ("tool", "json", "arguments", "missing", "forbidden", "value", "unnamed")
MAX_JSON_DEPTH = 64


class Invalid(Exception):
    """A value that is not ``args`` (§3.2). The caller decides what it becomes: a TypeError or
    ValueError for a caller's grant, ERR_MALFORMED for a decoded payload."""

    def __init__(self, path: str, message: str, wrong_type: bool = False) -> None:
        super().__init__(f"args{path}: {message}")
        self.wrong_type = wrong_type


# ---- values (§6.1) ----


def _well_formed(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False  # a lone surrogate
    return True


def as_integer(value: Any) -> int | None:
    """A JSON integer, however written (5, 5.0, 5e0), from −(2^53 − 1) to 2^53 − 1; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int) and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value
    return None


def scalar_key(value: Any) -> tuple[str, Any] | None:
    """Equality by type (§6.1): a string, an integer or a boolean; ``1`` is not ``True``."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, str):
        return ("s", value)
    integer = as_integer(value)
    return None if integer is None else ("i", integer)


def _scalar_order(value: Any) -> tuple:
    """The order of scalars' encodings: integers, then text (text order), then false, true."""
    if isinstance(value, bool):
        return (2, int(value))
    if isinstance(value, int):
        return (0, value)
    return (1, text_order_key(value))


# ---- the model ----


@dataclass(frozen=True, slots=True)
class Constraint:
    name: str
    kind: str
    #: The kind's parameters, in the order of PARAMETERS[kind]; sets as tuples in canonical order.
    parameters: tuple
    optional: bool = False
    parsed: Any = field(default=None, compare=False, repr=False)

    def parameter(self, name: str) -> Any:
        return self.parameters[PARAMETERS[self.kind].index(name)]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        for name, value in zip(PARAMETERS[self.kind], self.parameters):
            out[name] = list(value) if isinstance(value, tuple) else value
        if self.optional:
            out["optional"] = True
        return out

    def accepts(self, value: Any) -> bool:
        """Whether a present argument value is accepted (§2, §5, §6.1)."""
        kind = self.kind
        if kind == "exact":
            key = scalar_key(value)
            return key is not None and key == scalar_key(self.parameters[0])
        if kind == "oneOf":
            key = scalar_key(value)
            return key is not None and key in self.parsed
        if kind == "range":
            integer = as_integer(value)
            return integer is not None and self.parameters[0] <= integer <= self.parameters[1]
        if kind == "maxLength":
            if isinstance(value, str):
                return _well_formed(value) and len(value.encode("utf-8")) <= self.parameters[0]
            return isinstance(value, list) and len(value) <= self.parameters[0]
        if kind in STRING_KINDS:
            if isinstance(value, str):
                return self._accepts_string(value)
            return (
                isinstance(value, list)
                and len(value) > 0
                and all(isinstance(v, str) and self._accepts_string(v) for v in value)
            )
        return False  # forbidden

    def _accepts_string(self, text: str) -> bool:
        if not _well_formed(text):
            return False
        if self.kind == "prefix":
            return text.startswith(self.parameters[0])
        if self.kind == "glob":
            path = syntax.parse_path(text)
            return path is not None and self.parsed.matches(path)
        if self.kind == "url":
            url = syntax.parse_url(text)
            return url is not None and any(prefix.admits(url) for prefix in self.parsed)
        host = syntax.parse_email_domain(text)
        return host is not None and any(pattern.admits(host) for pattern in self.parsed)


@dataclass(frozen=True, slots=True)
class ToolArguments:
    """The constraints on the arguments of the tools a pattern covers."""

    tool: str
    constraints: tuple[Constraint, ...]
    allow_unnamed: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tool": self.tool,
            "constraints": [c.to_json() for c in self.constraints],
        }
        if self.allow_unnamed:
            out["allowUnnamed"] = True
        return out

    def constraint(self, name: str) -> Constraint | None:
        for c in self.constraints:
            if c.name == name:
                return c
        return None


Args = tuple[ToolArguments, ...]


# ---- reading (§3.2) ----


def read_args(value: Any) -> Args:
    """The one reading of ``args`` in its JSON shape; raises :class:`Invalid`."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise Invalid("", "expected a list of entries", wrong_type=True)
    entries = [_read_entry(entry, f"[{i}]") for i, entry in enumerate(value)]
    tools = [e.tool for e in entries]
    if len(set(tools)) != len(tools):
        raise Invalid("", "two entries have the same tool pattern")
    return tuple(sorted(entries, key=lambda e: text_order_key(e.tool)))


def _read_entry(entry: Any, path: str) -> ToolArguments:
    if not isinstance(entry, Mapping):
        raise Invalid(path, "an entry is {tool, constraints, allowUnnamed?}", wrong_type=True)
    unknown = set(entry) - {"tool", "constraints", "allowUnnamed"}
    if unknown:
        raise Invalid(path, f"unknown member {sorted(map(str, unknown))[0]!r}", wrong_type=True)
    tool = entry.get("tool")
    if not isinstance(tool, str):
        raise Invalid(f"{path}.tool", "expected a string", wrong_type=True)
    if TOOL_PATTERN.fullmatch(tool) is None:
        raise Invalid(f"{path}.tool", f"{tool!r} is not a tool pattern")
    allow = entry.get("allowUnnamed", None)
    if "allowUnnamed" in entry and allow is not True:
        raise Invalid(f"{path}.allowUnnamed", "is true or absent")
    constraints = entry.get("constraints")
    if isinstance(constraints, (str, bytes, Mapping)) or not isinstance(constraints, Iterable):
        raise Invalid(f"{path}.constraints", "expected a list", wrong_type=True)
    read = [_read_constraint(c, f"{path}.constraints[{i}]") for i, c in enumerate(constraints)]
    names = [c.name for c in read]
    if len(set(names)) != len(names):
        raise Invalid(f"{path}.constraints", "two constraints name the same argument")
    return ToolArguments(
        tool, tuple(sorted(read, key=lambda c: text_order_key(c.name))), allow is True
    )


def _read_constraint(c: Any, path: str) -> Constraint:
    if not isinstance(c, Mapping):
        raise Invalid(path, "a constraint is {name, kind, ...}", wrong_type=True)
    name, kind = c.get("name"), c.get("kind")
    if not isinstance(name, str) or not isinstance(kind, str):
        raise Invalid(path, "name and kind are strings", wrong_type=True)
    if ARGUMENT_NAME.fullmatch(name) is None:
        raise Invalid(f"{path}.name", f"{name!r} is not an argument name")
    if kind not in PARAMETERS:
        raise Invalid(f"{path}.kind", f"unknown kind {kind!r}")
    expected = set(PARAMETERS[kind]) | {"name", "kind"}
    members = set(c) - {"optional"}
    if members != expected:
        raise Invalid(path, f"a {kind} constraint has exactly {sorted(expected)}", wrong_type=True)
    optional = c.get("optional", None)
    if "optional" in c and optional is not True:
        raise Invalid(f"{path}.optional", "is true or absent")
    if kind == "forbidden" and optional:
        raise Invalid(path, "a forbidden argument cannot be optional")

    def uint(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"{path}.{where}", "expected an integer", wrong_type=True)
        if not 0 <= value <= MAX_SAFE_INTEGER:
            raise Invalid(f"{path}.{where}", "expected 0 to 2^53 - 1")
        return value

    def text(value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise Invalid(f"{path}.{where}", "expected a string", wrong_type=True)
        if not _well_formed(value):
            raise Invalid(f"{path}.{where}", "a lone surrogate has no UTF-8 encoding")
        return value

    def scalar(value: Any, where: str) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return text(value, where)
        return uint(value, where)

    def text_set(value: Any, where: str, parse) -> tuple[tuple[str, ...], tuple]:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise Invalid(f"{path}.{where}", "expected a list", wrong_type=True)
        items = [text(v, where) for v in value]
        if not items or len(set(items)) != len(items):
            raise Invalid(f"{path}.{where}", "a set of one or more, no repeats")
        ordered = tuple(sorted(items, key=text_order_key))
        parsed = tuple(parse(v) for v in ordered)
        if any(p is None for p in parsed):
            raise Invalid(
                f"{path}.{where}", "an element outside its grammar (spec/arguments.md §5)"
            )
        return ordered, parsed

    parsed: Any = None
    if kind == "exact":
        parameters: tuple = (scalar(c["value"], "value"),)
    elif kind == "oneOf":
        values = c["values"]
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
            raise Invalid(f"{path}.values", "expected a list", wrong_type=True)
        items = [scalar(v, "values") for v in values]
        keys = [scalar_key(v) for v in items]
        if not items or len(set(keys)) != len(keys):
            raise Invalid(f"{path}.values", "a set of one or more, no repeats")
        parameters = (tuple(sorted(items, key=_scalar_order)),)
        parsed = frozenset(keys)
    elif kind == "range":
        low, high = uint(c["min"], "min"), uint(c["max"], "max")
        if low > high:
            raise Invalid(path, "min must not exceed max")
        parameters = (low, high)
    elif kind == "prefix":
        parameters = (text(c["prefix"], "prefix"),)
    elif kind == "glob":
        glob = text(c["glob"], "glob")
        parsed = syntax.parse_glob(glob)
        if parsed is None:
            raise Invalid(f"{path}.glob", "not a glob (spec/arguments.md §5.5)")
        parameters = (glob,)
    elif kind == "url":
        urls, parsed = text_set(c["urls"], "urls", syntax.parse_url_prefix)
        parameters = (urls,)
    elif kind == "emailDomain":
        domains, parsed = text_set(
            c["domains"], "domains", lambda d: syntax.parse_host_pattern(d, allow_ipv4=False)
        )
        parameters = (domains,)
    elif kind == "maxLength":
        parameters = (uint(c["max"], "max"),)
    else:
        parameters = ()
    return Constraint(name, kind, parameters, optional is True, parsed)


# ---- CBOR (§3.1) ----

_ARITY = {
    "exact": 2,
    "oneOf": 2,
    "range": 3,
    "prefix": 2,
    "glob": 2,
    "url": 2,
    "emailDomain": 2,
    "maxLength": 2,
    "forbidden": 1,
}


def _scalar_to_cbor(value: Any) -> Any:
    if isinstance(value, bool):
        return [int(value)]
    return value


def _scalar_from_cbor(value: Any) -> Any:
    if isinstance(value, (int, str)):
        return value
    if (
        isinstance(value, list)
        and len(value) == 1
        and value[0] in (0, 1)
        and isinstance(value[0], int)
    ):
        return value[0] == 1
    raise Invalid("", "a scalar is an integer, text, [0] or [1]")


def args_to_cbor(args: Args) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in args:
        entry_map: dict[Any, Any] = {}
        if entry.allow_unnamed:
            entry_map[1] = 1
        optional = sorted((c.name for c in entry.constraints if c.optional), key=text_order_key)
        if optional:
            entry_map[2] = optional
        for c in entry.constraints:
            item: list[Any] = [KIND_NUMBER[c.kind]]
            for name, value in zip(PARAMETERS[c.kind], c.parameters):
                if name == "value":
                    item.append(_scalar_to_cbor(value))
                elif name == "values":
                    item.append([_scalar_to_cbor(v) for v in value])
                elif isinstance(value, tuple):
                    item.append(list(value))
                else:
                    item.append(value)
            entry_map[c.name] = item
        out[entry.tool] = entry_map
    return out


def args_from_cbor(value: Any) -> Args:
    """Decoded CBOR to the model, by §3.1 then the reading of §3.2; raises :class:`Invalid`."""
    if not isinstance(value, dict):
        raise Invalid("", "args is a map")
    entries = []
    for tool, entry_map in value.items():
        if not isinstance(tool, str) or not isinstance(entry_map, dict):
            raise Invalid("", "args maps tool patterns to entry maps")
        allow = entry_map.get(1)
        if 1 in entry_map and (allow != 1 or isinstance(allow, bool)):
            raise Invalid(f".{tool}", "key 1 (allowUnnamed) is 1 or absent")
        optional = entry_map.get(2, [])
        if 2 in entry_map and (not isinstance(optional, list) or not optional):
            raise Invalid(f".{tool}", "key 2 lists one or more argument names")
        if not all(isinstance(n, str) for n in optional) or len(set(optional)) != len(optional):
            raise Invalid(f".{tool}", "key 2 is a set of argument names")
        constraints = []
        for key, item in entry_map.items():
            if isinstance(key, int):
                if key not in (1, 2):
                    raise Invalid(f".{tool}", f"unknown entry key {key}")
                continue
            if not isinstance(item, list) or not item or not isinstance(item[0], int):
                raise Invalid(f".{tool}.{key}", "a constraint is [kind, parameters...]")
            number = item[0]
            if not 1 <= number <= len(KINDS):
                raise Invalid(f".{tool}.{key}", f"unknown kind {number}")
            kind = KINDS[number - 1]
            if len(item) != _ARITY[kind]:
                raise Invalid(
                    f".{tool}.{key}", f"a {kind} constraint has {_ARITY[kind] - 1} parameters"
                )
            constraint: dict[str, Any] = {"name": key, "kind": kind}
            for name, raw in zip(PARAMETERS[kind], item[1:]):
                if name == "value":
                    raw = _scalar_from_cbor(raw)
                elif name == "values":
                    if not isinstance(raw, list):
                        raise Invalid(f".{tool}.{key}", "oneOf takes a set")
                    raw = [_scalar_from_cbor(v) for v in raw]
                elif name in ("urls", "domains") and not isinstance(raw, list):
                    raise Invalid(f".{tool}.{key}", f"{name} is a set")
                constraint[name] = raw
            if key in optional:
                if kind == "forbidden":
                    raise Invalid(f".{tool}.{key}", "a forbidden argument cannot be optional")
                constraint["optional"] = True
            constraints.append(constraint)
        if any(name not in {c["name"] for c in constraints} for name in optional):
            raise Invalid(f".{tool}", "key 2 names an argument with no constraint")
        entry: dict[str, Any] = {"tool": tool, "constraints": constraints}
        if 1 in entry_map:
            entry["allowUnnamed"] = True
        entries.append(entry)
    return read_args(entries)


def args_limit_issue(
    args: Args, max_list_length: int, max_string_bytes: int
) -> tuple[str, int, int] | None:
    """§3.4 step 5: the first count or string over its limit, as (what, limit, actual)."""
    if len(args) > max_list_length:
        return ("list", max_list_length, len(args))

    def size(text: str) -> tuple[str, int, int] | None:
        n = len(text.encode("utf-8"))
        return ("string", max_string_bytes, n) if n > max_string_bytes else None

    for entry in args:
        issue = size(entry.tool)
        if issue:
            return issue
        if len(entry.constraints) > max_list_length:
            return ("list", max_list_length, len(entry.constraints))
        for c in entry.constraints:
            strings: list[str] = []
            if c.kind in ("oneOf", "url", "emailDomain"):
                if len(c.parameters[0]) > max_list_length:
                    return ("list", max_list_length, len(c.parameters[0]))
                strings = [v for v in c.parameters[0] if isinstance(v, str)]
            elif c.kind == "exact" and isinstance(c.parameters[0], str):
                strings = [c.parameters[0]]
            elif c.kind in ("prefix", "glob"):
                strings = [c.parameters[0]]
            for text in strings:
                issue = size(text)
                if issue:
                    return issue
    return None


# ---- which entry applies (§2) ----


def _covers(pattern: str, tool: str) -> bool:
    if pattern == "*" or pattern == tool:
        return True
    if pattern.endswith(".*"):
        stem = pattern[:-1]
        return tool.startswith(stem) and len(tool) > len(stem)
    return False


def _specificity(pattern: str) -> int:
    """§2: its length without a final ``*``: ``a.b`` beats ``a.*``, ``x`` beats ``*``."""
    return len(pattern) - 1 if pattern.endswith("*") else len(pattern)


def applying_entry(args: Args, tool: str) -> ToolArguments | None:
    """The most specific entry pattern covering ``tool`` (patterns covering one name are nested)."""
    best = None
    for entry in args:
        if _covers(entry.tool, tool) and (
            best is None or _specificity(entry.tool) > _specificity(best.tool)
        ):
            best = entry
    return best


# ---- narrowing (§4) ----

_UNCONSTRAINED = "unconstrained"
_FORBIDDEN = "forbidden"


def _state(entry: ToolArguments | None, name: str) -> Any:
    if entry is not None:
        constraint = entry.constraint(name)
        if constraint is not None:
            return _FORBIDDEN if constraint.kind == "forbidden" else constraint
    if entry is None:
        return _UNCONSTRAINED
    # §4.2: an open entry still refuses a name differing from a named one only in case (§6.2).
    if entry.allow_unnamed and syntax.ascii_lower(name) not in _folded_names(entry):
        return _UNCONSTRAINED
    return _FORBIDDEN


def _folded_names(entry: ToolArguments) -> frozenset[str]:
    """§6.2: the names the entry constrains, up to ASCII case (an argument folding to one is refused)."""
    return frozenset(syntax.ascii_lower(c.name) for c in entry.constraints)


def _state_within(c: Any, p: Any, p_optional: bool) -> bool:
    if p == _UNCONSTRAINED:
        return True
    if p == _FORBIDDEN:
        return c == _FORBIDDEN
    if c == _UNCONSTRAINED:
        return False
    if c == _FORBIDDEN:
        return p_optional
    if c.optional and not p.optional:
        return False
    return _values_within(c, p)


def _values_within(c: Constraint, p: Constraint) -> bool:
    kind, pk = c.kind, p.kind
    if kind == "exact":
        return p.accepts(c.parameters[0])
    if kind == "oneOf":
        return all(p.accepts(v) for v in c.parameters[0])
    if kind == "range":
        low, high = c.parameters
        if pk in ("exact", "oneOf"):
            count = 1 if pk == "exact" else len(p.parameters[0])
            return high - low + 1 <= count and all(p.accepts(v) for v in range(low, high + 1))
        return pk == "range" and p.parameters[0] <= low and high <= p.parameters[1]
    if kind != pk:
        return False
    if kind == "prefix":
        return c.parameters[0].startswith(p.parameters[0])
    if kind == "glob":
        return c.parsed.within(p.parsed)
    if kind in ("url", "emailDomain"):
        return all(any(ci.within(pi) for pi in p.parsed) for ci in c.parsed)
    if kind == "maxLength":
        return c.parameters[0] <= p.parameters[0]
    return False


def _applying_to_pattern(args: Args, pattern: str) -> ToolArguments | None:
    # The same rule as for a tool name: a pattern covers patterns as it covers names.
    return applying_entry(args, pattern)


def args_violations(parent: Args | None, child: Args | None) -> list[Violation]:
    """§4.1: region by region, in text order of the union of both sides' patterns."""
    if parent is None or child is None:
        return []
    found: list[Violation] = []
    regions = sorted({e.tool for e in parent} | {e.tool for e in child}, key=text_order_key)
    for region in regions:
        p = _applying_to_pattern(parent, region)
        if p is None:
            continue
        c = _applying_to_pattern(child, region)
        if not p.allow_unnamed and (c is None or c.allow_unnamed):
            found.append(Violation(f"args.{region}.*", "widened", None, None))
        names = {x.name for x in p.constraints} | ({x.name for x in c.constraints} if c else set())
        for name in sorted(names, key=text_order_key):
            p_state, c_state = _state(p, name), _state(c, name)
            p_constraint = p.constraint(name)
            p_optional = p_constraint is not None and p_constraint.optional
            if not _state_within(c_state, p_state, p_optional):
                found.append(Violation(f"args.{region}.{name}", "widened", p_state, c_state))
    return found


# ---- checking a call (§6) ----


@dataclass(frozen=True, slots=True)
class ArgumentDenial:
    tool: str
    #: The pattern of the entry that applied; None when the tool name itself is refused.
    pattern: str | None
    #: The argument refused; None for reasons tool, json and arguments.
    argument: str | None
    constraint: Constraint | None
    reason: str
    message: str

    def to_json(self) -> dict[str, Any]:
        """The ``expected`` of an argument vector (spec/arguments.md §8)."""
        return {"reason": self.reason, "argument": self.argument, "pattern": self.pattern}


class _NotJson(Exception):
    pass


def parse_strict_json(text: str | bytes) -> Any:
    """§6.4: exactly one RFC 8259 value in UTF-8; no repeated member names (after unescaping) at
    any depth, no lone surrogates, no NaN or Infinity, nesting at most 64. Raises ValueError.
    An integer too long to be safe is read as JavaScript reads it (``_json_integer``)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8") from None
    if not isinstance(text, str):
        raise TypeError("JSON text is a str or bytes")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in items:
            if name in out:
                raise _NotJson(f"repeated member name {name!r}")
            out[name] = value
        return out

    def constant(name: str) -> Any:
        raise _NotJson(f"{name} is not JSON")

    try:
        value = json.loads(
            text, object_pairs_hook=pairs, parse_constant=constant, parse_int=_json_integer
        )
    except (_NotJson, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"not strict JSON: {error}") from None

    def walk(item: Any, depth: int) -> None:
        if isinstance(item, str):
            if not _well_formed(item):
                raise ValueError("a string holds a lone surrogate")
        elif isinstance(item, (list, dict)):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH}")
            for name in item if isinstance(item, dict) else ():
                walk(name, depth)
            for element in item.values() if isinstance(item, dict) else item:
                walk(element, depth + 1)

    walk(value, 0)
    return value


#: JSON has no leading zeros, so integer text longer than this is beyond ±(2^53 − 1).
_LONGEST_SAFE_INTEGER_TEXT = len(str(-(2**53 - 1)))


def _json_integer(text: str) -> int | float:
    """An integer as JavaScript reads it, where that matters: text too long to be a safe integer
    becomes the double ``Number(text)`` gives (±inf past 1e308), which is no integer by §6.1 either
    way. ``int()`` would refuse text over CPython's int_max_str_digits (4300), and so refuse valid
    JSON that TypeScript reads, and takes quadratic time where that limit is lifted."""
    return int(text) if len(text) <= _LONGEST_SAFE_INTEGER_TEXT else float(text)


_ABSENT = object()


def check_arguments(args: Args | None, tool: str, arguments: Any = None) -> ArgumentDenial | None:
    """§6.3 for arguments already parsed (a JSON object as ``json.loads`` gives it; None: absent).
    Returns None if the call is allowed, else the one refusal."""
    return _check(args, tool, lambda: _ABSENT if arguments is None else arguments)


def check_arguments_json(
    args: Args | None, tool: str, text: str | bytes | None
) -> ArgumentDenial | None:
    """§6.3 for arguments as JSON text (a request body), read by §6.4 only if an entry applies."""
    return _check(args, tool, lambda: _ABSENT if text is None else parse_strict_json(text))


def _check(args: Args | None, tool: str, read) -> ArgumentDenial | None:
    if not isinstance(tool, str):
        raise TypeError('"tool" expected a string')
    if args is None:
        return None
    if not isinstance(args, tuple) or not all(isinstance(e, ToolArguments) for e in args):
        raise TypeError('"args" expected the args of a grant (read_args, or a verified grant)')
    if TOOL_NAME.fullmatch(tool) is None:  # 1
        return ArgumentDenial(tool, None, None, None, "tool", f"{tool!r} is not a tool name")
    entry = applying_entry(args, tool)
    if entry is None:  # 2
        return None

    def deny(reason: str, argument: str | None, constraint: Constraint | None, message: str):
        return ArgumentDenial(tool, entry.tool, argument, constraint, reason, message)

    try:
        arguments = read()  # 3
    except ValueError as error:
        return deny("json", None, None, str(error))
    if arguments is _ABSENT:
        arguments = {}
    if not isinstance(arguments, dict):  # 4 (a JSON null included)
        return deny("arguments", None, None, "the arguments are not a JSON object")
    # A JSON object's member names are strings; a dict with another key is no parsed call's
    # arguments (TypeScript refuses a non-plain object alike), and must not reach the checks.
    if not all(isinstance(name, str) for name in arguments):
        return deny("arguments", None, None, "the arguments have a member name that is no string")
    for c in entry.constraints:  # 5
        value = arguments.get(c.name, _ABSENT)
        if c.kind == "forbidden":
            if value is not _ABSENT:
                return deny("forbidden", c.name, c, f"{c.name} must be absent")
        elif value is _ABSENT:
            if not c.optional:
                return deny("missing", c.name, c, f"{c.name} is required")
        elif not c.accepts(value):
            return deny("value", c.name, c, f"{c.name} is not allowed this value")
    named = {c.name for c in entry.constraints}
    folded = _folded_names(entry)
    unnamed = sorted((n for n in arguments if n not in named), key=lambda n: text_order_key_safe(n))
    for name in unnamed:  # 6
        if (
            not entry.allow_unnamed
            or ARGUMENT_NAME.fullmatch(name) is None
            or syntax.ascii_lower(name) in folded
        ):
            return deny("unnamed", name, None, f"{name} is not an argument this grant allows")
    return None


def text_order_key_safe(text: str) -> tuple[int, bytes]:
    """Text order for a name that may hold a lone surrogate (then after every well-formed one)."""
    raw = text.encode("utf-8", "surrogatepass")
    return (len(raw), raw)
