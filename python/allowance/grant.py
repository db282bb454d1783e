"""The grant: what a link states (spec/format.md §4), how a payload is decoded (§4.5) and encoded
(§4.6), and the JSON form of the vectors (§11)."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any, Iterable, Mapping

from . import _cbor
from ._b64 import b64encode
from .arguments import (
    Args,
    Invalid,
    ToolArguments,
    args_from_cbor,
    args_limit_issue,
    args_to_cbor,
    read_args,
)
from .errors import ERR_LIMIT, ERR_MALFORMED, ERR_NON_CANONICAL, AllowanceError
from .limits import MAX_SAFE_INTEGER, Limits

# §4.1 grammars; fullmatch, so that "$" cannot match before a final newline.
PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
MODEL_ID = re.compile(r"[\x21-\x7e]{1,128}")
TOOL_PATTERN = re.compile(r"\*|[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*(?:\.\*)?")
AUDIENCE = re.compile(r"[\x21-\x7e]{1,256}")
MAX_DEPTH = 255
MAX_RATE_SECONDS = 31_622_400  # 366 days

# §4.1 payload keys.
(
    SUB,
    NONCE,
    EXP,
    NBF,
    DEPTH,
    TOKENS,
    USD,
    PROVIDERS,
    MODELS,
    TOOLS,
    RISK,
    RATE,
    AUD,
    LABEL,
    ARGS,
) = range(1, 16)
LAST_KEY = ARGS


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider allowed by a grant, with optional caps of its own (§4.2)."""

    name: str
    tokens: int | None = None
    usd_micros: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.tokens is not None:
            out["tokens"] = self.tokens
        if self.usd_micros is not None:
            out["usdMicros"] = self.usd_micros
        return out


@dataclass(frozen=True, slots=True)
class RateWindow:
    """A rate window (§4.3): amounts per ``seconds``; an absent amount is unlimited."""

    seconds: int
    tokens: int | None = None
    usd_micros: int | None = None
    requests: int | None = None

    def to_cbor(self) -> dict[int, int]:
        out = {1: self.seconds}
        for key, value in ((2, self.tokens), (3, self.usd_micros), (4, self.requests)):
            if value is not None:
                out[key] = value
        return out

    def encoded(self) -> bytes:
        """The canonical encoding: windows sort, and are equal, by it (§4.3)."""
        return _cbor.encode(self.to_cbor())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seconds": self.seconds}
        for name, value in (
            ("tokens", self.tokens),
            ("usdMicros", self.usd_micros),
            ("requests", self.requests),
        ):
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class Grant:
    """The fields a link may state (§4.1), all optional. Sets are tuples in canonical order."""

    exp: int | None = None
    nbf: int | None = None
    depth: int | None = None
    tokens: int | None = None
    usd_micros: int | None = None
    providers: tuple[Provider, ...] | None = None
    models: tuple[str, ...] | None = None
    tools: tuple[str, ...] | None = None
    risk: int | None = None
    rate: tuple[RateWindow, ...] | None = None
    aud: tuple[str, ...] | None = None
    label: str | None = None
    #: Tool-argument constraints (spec/arguments.md), entries in text order of their patterns.
    args: Args | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Grant":
        """A grant from its JSON form (the names of §4.1: ``usdMicros``, providers as objects)."""
        return parse_grant(data)

    def to_json(self) -> dict[str, Any]:
        return _fields_to_json(self)


@dataclass(frozen=True, slots=True)
class LinkGrant:
    """A decoded payload: the holder key, the nonce and the stated fields."""

    sub: bytes
    nonce: bytes
    fields: Grant


@dataclass(frozen=True, slots=True)
class EffectiveGrant:
    """What is in force at a link (§6.2): ``exp`` and ``rate`` always, the rest when restricted."""

    holder: bytes
    exp: int
    rate: tuple[RateWindow, ...] = ()
    nbf: int | None = None
    depth: int | None = None
    tokens: int | None = None
    usd_micros: int | None = None
    providers: tuple[Provider, ...] | None = None
    models: tuple[str, ...] | None = None
    tools: tuple[str, ...] | None = None
    risk: int | None = None
    aud: tuple[str, ...] | None = None
    label: str | None = None
    args: Args | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``grant`` of a vector (§11): holder base64url, exp and rate always, others if set."""
        out = _fields_to_json(self)
        out["holder"] = b64encode(self.holder)
        out["exp"] = self.exp
        out["rate"] = [window.to_json() for window in self.rate]
        return out


_JSON_NAMES = {"usd_micros": "usdMicros"}


def _fields_to_json(grant: Grant | EffectiveGrant) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(grant):
        value = getattr(grant, f.name)
        if value is None or f.name == "holder":
            continue
        if f.name in ("providers", "args"):
            value = [p.to_json() for p in value]
        elif f.name == "rate":
            value = [w.to_json() for w in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[_JSON_NAMES.get(f.name, f.name)] = value
    return out


# ---- decoding a payload (§4.5) ----


def decode_payload(payload: bytes, limits: Limits, link_index: int) -> LinkGrant:
    """Decodes payload ``link_index`` in the order of §4.5; the first failure decides the error."""
    value = _cbor.decode(payload, link_index)  # step 1

    def malformed(message: str, field: str | None = None) -> AllowanceError:
        return AllowanceError(ERR_MALFORMED, message, link_index=link_index, field=field)

    if not isinstance(value, dict):  # step 2
        raise malformed("a payload is a map")
    for key in value:  # step 3
        if not isinstance(key, int) or not 1 <= key <= LAST_KEY:
            raise malformed(f"unknown payload key {key!r}")

    # Step 4: types, ranges and grammars; sub and nonce present; no duplicate set element or window.
    def uint(key: int, name: str, maximum: int = MAX_SAFE_INTEGER) -> int | None:
        item = value.get(key)
        if item is None:
            return None
        if not isinstance(item, int) or item > maximum:
            raise malformed(f"{name} must be an integer from 0 to {maximum}", name)
        return item

    def text_set(key: int, name: str, grammar: re.Pattern[str]) -> tuple[str, ...] | None:
        item = value.get(key)
        if item is None:
            return None
        if not isinstance(item, list):
            raise malformed(f"{name} must be an array of text", name)
        for element in item:
            if not isinstance(element, str) or grammar.fullmatch(element) is None:
                raise malformed(f"{name} has an entry outside its grammar", name)
        if len(set(item)) != len(item):
            raise malformed(f"{name} has a duplicate entry", name)
        return tuple(item)

    sub = value.get(SUB)
    if not isinstance(sub, bytes) or len(sub) != 32:
        raise malformed("sub must be a 32-byte key", "sub")
    nonce = value.get(NONCE)
    if not isinstance(nonce, bytes) or not 8 <= len(nonce) <= 32:
        raise malformed("nonce must be 8 to 32 bytes", "nonce")

    providers: tuple[Provider, ...] | None = None
    if PROVIDERS in value:
        item = value[PROVIDERS]
        if not isinstance(item, dict):
            raise malformed("providers must be a map", "providers")
        entries = []
        for name, caps in item.items():
            if not isinstance(name, str) or PROVIDER_NAME.fullmatch(name) is None:
                raise malformed("provider name outside its grammar", "providers")
            if not isinstance(caps, dict) or any(k not in (1, 2) for k in caps):
                raise malformed("provider caps must be a map of keys 1 and 2", f"providers.{name}")
            if any(not isinstance(v, int) for v in caps.values()):
                raise malformed("provider caps must be integers", f"providers.{name}")
            entries.append(Provider(name, caps.get(1), caps.get(2)))
        providers = tuple(entries)

    rate: tuple[RateWindow, ...] | None = None
    if RATE in value:
        item = value[RATE]
        if not isinstance(item, list):
            raise malformed("rate must be an array of windows", "rate")
        windows = []
        for window in item:
            if not isinstance(window, dict) or any(k not in (1, 2, 3, 4) for k in window):
                raise malformed("a rate window is a map of keys 1 to 4", "rate")
            if any(not isinstance(v, int) for v in window.values()):
                raise malformed("rate window values must be integers", "rate")
            seconds = window.get(1)
            if seconds is None or not 1 <= seconds <= MAX_RATE_SECONDS:
                raise malformed("a rate window needs seconds from 1 to 31,622,400", "rate")
            if len(window) < 2:
                raise malformed("a rate window needs tokens, usdMicros or requests", "rate")
            windows.append(RateWindow(seconds, window.get(2), window.get(3), window.get(4)))
        if len(set(windows)) != len(windows):
            raise malformed("rate has a repeated window", "rate")
        rate = tuple(windows)

    label = value.get(LABEL)
    if label is not None and not isinstance(label, str):
        raise malformed("label must be text", "label")

    args = None
    if ARGS in value:
        try:
            args = args_from_cbor(value[ARGS])
        except Invalid as error:
            raise malformed(str(error), "args") from None

    fields_ = Grant(
        exp=uint(EXP, "exp"),
        nbf=uint(NBF, "nbf"),
        depth=uint(DEPTH, "depth", MAX_DEPTH),
        tokens=uint(TOKENS, "tokens"),
        usd_micros=uint(USD, "usdMicros"),
        providers=providers,
        models=text_set(MODELS, "models", MODEL_ID),
        tools=text_set(TOOLS, "tools", TOOL_PATTERN),
        risk=uint(RISK, "risk"),
        rate=rate,
        aud=text_set(AUD, "aud", AUDIENCE),
        label=label,
        args=args,
    )
    grant = LinkGrant(sub, nonce, fields_)

    check_grant_limits(fields_, limits, link_index)  # step 5
    if encode_payload(grant) != bytes(payload):  # step 6
        raise AllowanceError(
            ERR_NON_CANONICAL,
            "payload does not re-encode to the same bytes (a set or the rate out of order)",
            link_index=link_index,
        )
    return grant


def check_grant_limits(grant: Grant, limits: Limits, link_index: int | None) -> None:
    """§4.5 step 5: per field in the order providers, models, tools, rate, aud, label, the entry
    count against ``max_list_length``, then each string against ``max_string_bytes``."""

    def count(name: str, n: int) -> None:
        if n > limits.max_list_length:
            raise AllowanceError(
                ERR_LIMIT,
                f"{name} has {n} entries, the limit is {limits.max_list_length}",
                link_index=link_index,
                field=name,
                limit=limits.max_list_length,
                actual=n,
            )

    def size(name: str, text: str) -> None:
        n = len(text.encode("utf-8"))
        if n > limits.max_string_bytes:
            raise AllowanceError(
                ERR_LIMIT,
                f"a {name} string has {n} UTF-8 bytes, the limit is {limits.max_string_bytes}",
                link_index=link_index,
                field=name,
                limit=limits.max_string_bytes,
                actual=n,
            )

    if grant.providers is not None:
        count("providers", len(grant.providers))
        for provider in grant.providers:
            size("providers", provider.name)
    for name in ("models", "tools"):
        values = getattr(grant, name)
        if values is not None:
            count(name, len(values))
            for text in values:
                size(name, text)
    if grant.rate is not None:
        count("rate", len(grant.rate))
    if grant.aud is not None:
        count("aud", len(grant.aud))
        for text in grant.aud:
            size("aud", text)
    if grant.label is not None:
        size("label", grant.label)
    if grant.args is not None:
        issue = args_limit_issue(grant.args, limits.max_list_length, limits.max_string_bytes)
        if issue is not None:
            what, limit, actual = issue
            raise AllowanceError(
                ERR_LIMIT,
                f"args has a {what} of {actual}, the limit is {limit}",
                link_index=link_index,
                field="args",
                limit=limit,
                actual=actual,
            )


# ---- encoding a payload (§4.6) ----


def encode_payload(grant: LinkGrant) -> bytes:
    """The one encoding §4.5 accepts: present fields only, sets in canonical text order, windows
    by their encodings, provider names in canonical text order, all heads shortest."""
    g = grant.fields
    out: dict[int, Any] = {SUB: grant.sub, NONCE: grant.nonce}
    for key, item in (
        (EXP, g.exp),
        (NBF, g.nbf),
        (DEPTH, g.depth),
        (TOKENS, g.tokens),
        (USD, g.usd_micros),
        (RISK, g.risk),
        (LABEL, g.label),
    ):
        if item is not None:
            out[key] = item
    if g.providers is not None:
        out[PROVIDERS] = {
            p.name: {k: v for k, v in ((1, p.tokens), (2, p.usd_micros)) if v is not None}
            for p in g.providers
        }
    for key, items in ((MODELS, g.models), (TOOLS, g.tools), (AUD, g.aud)):
        if items is not None:
            out[key] = sorted(items, key=_cbor.text_order_key)
    if g.rate is not None:
        out[RATE] = [w.to_cbor() for w in sorted(g.rate, key=RateWindow.encoded)]
    if g.args is not None:
        out[ARGS] = args_to_cbor(g.args)
    return _cbor.encode(out)


# ---- grants given by a caller (mint, attenuate) ----

_GRANT_NAMES = {
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
}


def parse_grant(data: Grant | Mapping[str, Any]) -> Grant:
    """Checks a caller's grant (a :class:`Grant`, or its JSON form) against §4.1-§4.4 and returns
    it with sets and windows in canonical order. A wrong type is a ``TypeError``; a value out of
    range or grammar, or a duplicate, a ``ValueError``."""
    if isinstance(data, Grant):
        source: dict[str, Any] = {
            _JSON_NAMES.get(f.name, f.name): getattr(data, f.name)
            for f in fields(data)
            if getattr(data, f.name) is not None
        }
    elif isinstance(data, Mapping):
        source = dict(data)
        unknown = set(source) - _GRANT_NAMES
        if unknown:
            raise TypeError(f"unknown grant field {sorted(unknown)[0]!r}")
    else:
        raise TypeError(f'"grant" expected a Grant or a mapping, got {type(data).__name__}')

    def integer(name: str, value: Any, minimum: int = 0, maximum: int = MAX_SAFE_INTEGER) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"grant field {name!r} expected an integer, got {value!r}")
        if not minimum <= value <= maximum:
            raise ValueError(f"grant field {name!r} expected {minimum} to {maximum}, got {value}")
        return value

    def text_set(name: str, value: Any, grammar: re.Pattern[str]) -> tuple[str, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise TypeError(f"grant field {name!r} expected a list of strings")
        items = list(value)
        for item in items:
            if not isinstance(item, str):
                raise TypeError(f"grant field {name!r} expected strings, got {item!r}")
            if grammar.fullmatch(item) is None:
                raise ValueError(f"grant field {name!r}: {item!r} is outside its grammar")
        if len(set(items)) != len(items):
            raise ValueError(f"grant field {name!r} has a duplicate entry")
        return tuple(sorted(items, key=_cbor.text_order_key))

    def optional_int(entry: Any, name: str, where: str) -> int | None:
        value = entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)
        return None if value is None else integer(f"{where}.{name}", value)

    out: dict[str, Any] = {}
    for name in ("exp", "nbf", "tokens", "risk"):
        if source.get(name) is not None:
            out[name] = integer(name, source[name])
    if source.get("usdMicros") is not None:
        out["usd_micros"] = integer("usdMicros", source["usdMicros"])
    if source.get("depth") is not None:
        out["depth"] = integer("depth", source["depth"], 0, MAX_DEPTH)
    for name, grammar in (("models", MODEL_ID), ("tools", TOOL_PATTERN), ("aud", AUDIENCE)):
        if source.get(name) is not None:
            out[name] = text_set(name, source[name], grammar)
    if source.get("args") is not None:
        value = source["args"]
        if isinstance(value, tuple) and all(isinstance(e, ToolArguments) for e in value):
            value = [e.to_json() for e in value]
        try:
            out["args"] = read_args(value)
        except Invalid as error:
            raise (TypeError if error.wrong_type else ValueError)(str(error)) from None
    if source.get("label") is not None:
        label = source["label"]
        if not isinstance(label, str):
            raise TypeError("grant field 'label' expected a string")
        try:
            label.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("grant field 'label' must be well-formed Unicode") from None
        out["label"] = label
    if source.get("providers") is not None:
        providers = []
        for entry in _entries(source["providers"], "providers"):
            if isinstance(entry, Provider):
                name = entry.name
            elif isinstance(entry, Mapping):
                extra = set(entry) - {"name", "tokens", "usdMicros"}
                if extra:
                    raise TypeError(f"unknown provider field {sorted(extra)[0]!r}")
                name = entry.get("name")
            else:
                raise TypeError("a provider is a Provider or {name, tokens?, usdMicros?}")
            if not isinstance(name, str):
                raise TypeError("a provider name is a string")
            if PROVIDER_NAME.fullmatch(name) is None:
                raise ValueError(f"provider name {name!r} is outside its grammar")
            usd = entry.usd_micros if isinstance(entry, Provider) else entry.get("usdMicros")
            providers.append(
                Provider(
                    name,
                    optional_int(entry, "tokens", f"providers.{name}"),
                    None if usd is None else integer(f"providers.{name}.usdMicros", usd),
                )
            )
        if len({p.name for p in providers}) != len(providers):
            raise ValueError("grant field 'providers' names a provider twice")
        out["providers"] = tuple(sorted(providers, key=lambda p: _cbor.text_order_key(p.name)))
    if source.get("rate") is not None:
        windows = []
        for entry in _entries(source["rate"], "rate"):
            if isinstance(entry, RateWindow):
                values = (entry.seconds, entry.tokens, entry.usd_micros, entry.requests)
            elif isinstance(entry, Mapping):
                extra = set(entry) - {"seconds", "tokens", "usdMicros", "requests"}
                if extra:
                    raise TypeError(f"unknown rate window field {sorted(extra)[0]!r}")
                values = tuple(entry.get(n) for n in ("seconds", "tokens", "usdMicros", "requests"))
            else:
                raise TypeError("a rate window is a RateWindow or {seconds, tokens?, ...}")
            seconds = integer("rate.seconds", values[0], 1, MAX_RATE_SECONDS)
            amounts = [None if v is None else integer("rate amount", v) for v in values[1:]]
            if all(v is None for v in amounts):
                raise ValueError("a rate window needs tokens, usdMicros or requests")
            windows.append(RateWindow(seconds, *amounts))
        if len(set(windows)) != len(windows):
            raise ValueError("grant field 'rate' repeats a window")
        out["rate"] = tuple(sorted(windows, key=RateWindow.encoded))
    return Grant(**out)


def _entries(value: Any, name: str) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"grant field {name!r} expected a list")
    return list(value)


def with_fields(grant: Grant, **changes: Any) -> Grant:
    return replace(grant, **changes)
