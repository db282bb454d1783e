"""Checks of the caller's inputs (spec/format.md §8 input rules): a wrong type is a TypeError, a
value out of range a ValueError, naming the input; nothing invalid is ever replaced by a default.
A float NaN fails every comparison, so an unchecked NaN ``now`` would make expired tokens valid."""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Container, Mapping

MAX_SAFE_INTEGER = 2**53 - 1
MAX_SKEW_SECONDS = 3600
MAX_AGE_SECONDS = 3600


#: The smallest clock answer accepted: 10^11 ms is 1973. A smaller one is most likely seconds.
MIN_CLOCK_MS = 10**11


def system_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def checked_clock(now: Any, name: str = "now") -> Callable[[], Any]:
    """A clock option (house convention): a function returning epoch **milliseconds**."""
    if now is None:
        return system_clock_ms
    if not callable(now):
        raise TypeError(
            f"{name!r} expected a clock, a function returning epoch milliseconds, got {now!r}"
        )
    return now


def read_clock(clock: Callable[[], Any], name: str = "now") -> int:
    """Reads ``clock`` once and returns whole seconds, rounded down (what tokens state). Its answer
    must be an integer number of milliseconds from 10^11 to 2^53 − 1: a bool or non-number is a
    TypeError; NaN, ±inf, a fraction, or anything out of range a ValueError. A NaN time would fail
    every comparison, and so pass every validity check."""
    ms = clock()
    if isinstance(ms, bool) or not isinstance(ms, (int, float)):
        raise TypeError(f"{name!r} returned {ms!r}, expected epoch milliseconds (a number)")
    if isinstance(ms, float):
        if not math.isfinite(ms) or not ms.is_integer():
            raise ValueError(f"{name!r} returned {ms!r}, expected an integer of epoch milliseconds")
        ms = int(ms)
    if not MIN_CLOCK_MS <= ms <= MAX_SAFE_INTEGER:
        hint = " (is it a clock in seconds?)" if 0 <= ms < MIN_CLOCK_MS else ""
        raise ValueError(
            f"{name!r} returned {ms!r}, expected epoch milliseconds from 10^11 to 2^53 - 1{hint}"
        )
    return ms // 1000


def checked_now(now: Any, name: str = "now") -> int:
    """The clock option ``now`` read once, in whole seconds."""
    return read_clock(checked_clock(now, name), name)


def checked_integer(value: Any, name: str, default: int, maximum: int, minimum: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name!r} expected an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name!r} expected an integer from {minimum} to {maximum}, got {value}")
    return value


def checked_audience(value: Any, required: bool) -> str | None:
    """An audience is a non-empty string: no token can list "" (spec/format.md §8.4)."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise TypeError(f'"audience" expected a string, got {value!r}')
    if value == "":
        raise ValueError('"audience" must not be empty: no token can name the empty audience')
    return value


def checked_optional_string(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name!r} expected a string, got {value!r}")
    return value


def checked_revocations(value: Any) -> Container[str] | None:
    """Any container of revoked link ids (a set, say). A string is refused:
    ``in`` on a string is a substring test."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, bytearray)) or not hasattr(value, "__contains__"):
        raise TypeError(
            f'"revocations" expected a container of link ids, got {type(value).__name__}'
        )
    return value


def checked_roots(value: Any) -> Mapping[str, bytes]:
    if not isinstance(value, Mapping):
        raise TypeError('"roots" expected a mapping of kid to key (import_jwks or trusted_roots)')
    return value
