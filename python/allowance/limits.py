"""The resource limits of spec/format.md §7, checked before the work they guard."""

from __future__ import annotations

from dataclasses import dataclass, fields

MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class Limits:
    """Every limit is an integer from 1 to 2^53 − 1; one not given keeps its default."""

    #: Length of a token's string form in UTF-8 bytes, prefix included.
    max_token_chars: int = 24_000
    #: Bytes of a token's binary form.
    max_token_bytes: int = 16_384
    #: Links of a token, root included.
    max_links: int = 32
    #: Bytes of one payload.
    max_payload_bytes: int = 4_096
    #: Entries of providers, models, tools, rate or aud in one payload.
    max_list_length: int = 64
    #: UTF-8 bytes of any provider name, model id, tool entry, audience or label.
    max_string_bytes: int = 256

    def __post_init__(self) -> None:
        # A limit is never compared unchecked: a float NaN would fail every comparison, and pass.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"limit {f.name!r} expected an integer, got {value!r}")
            if not 1 <= value <= MAX_SAFE_INTEGER:
                raise ValueError(f"limit {f.name!r} expected 1 to 2^53 - 1, got {value}")


DEFAULT_LIMITS = Limits()


def resolve_limits(limits: Limits | None) -> Limits:
    if limits is None:
        return DEFAULT_LIMITS
    if not isinstance(limits, Limits):
        raise TypeError(f'"limits" expected a Limits, got {type(limits).__name__}')
    return limits
