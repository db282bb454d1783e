"""Typed errors (spec/format.md §9, spec/presentation.md §9).

A token or presentation that is refused raises :class:`AllowanceError` with a stable ``code`` and,
where a link is at fault, its ``link_index``. A caller's mistake (a wrong type or value of an
argument) is a ``TypeError`` or ``ValueError`` instead, never an ``AllowanceError``.
"""

from __future__ import annotations

from typing import Any, Final

ERR_MALFORMED: Final = "ERR_MALFORMED"
ERR_NON_CANONICAL: Final = "ERR_NON_CANONICAL"
ERR_LIMIT: Final = "ERR_LIMIT"
ERR_UNKNOWN_ROOT: Final = "ERR_UNKNOWN_ROOT"
ERR_KEY: Final = "ERR_KEY"
ERR_SIGNATURE: Final = "ERR_SIGNATURE"
ERR_WIDENED: Final = "ERR_WIDENED"
ERR_DEPTH: Final = "ERR_DEPTH"
ERR_EXPIRED: Final = "ERR_EXPIRED"
ERR_NOT_YET_VALID: Final = "ERR_NOT_YET_VALID"
ERR_AUDIENCE: Final = "ERR_AUDIENCE"
ERR_REVOKED: Final = "ERR_REVOKED"
ERR_PRESENTATION: Final = "ERR_PRESENTATION"
ERR_STALE: Final = "ERR_STALE"
ERR_REPLAY: Final = "ERR_REPLAY"
ERR_NO_CREDENTIALS: Final = "ERR_NO_CREDENTIALS"
ERR_REVOCATION_UNAVAILABLE: Final = "ERR_REVOCATION_UNAVAILABLE"

#: Every code of spec/format.md §9 and spec/presentation.md §9 that verification can end in, in
#: that order. The package raises all but the last: ERR_REVOCATION_UNAVAILABLE is for a caller's
#: revocation container that cannot answer (presentation spec §6.1), which raises it from
#: ``__contains__`` rather than answer "not revoked"; verification lets it through.
ERROR_CODES: Final = (
    ERR_MALFORMED,
    ERR_NON_CANONICAL,
    ERR_LIMIT,
    ERR_UNKNOWN_ROOT,
    ERR_KEY,
    ERR_SIGNATURE,
    ERR_WIDENED,
    ERR_DEPTH,
    ERR_EXPIRED,
    ERR_NOT_YET_VALID,
    ERR_AUDIENCE,
    ERR_REVOKED,
    ERR_PRESENTATION,
    ERR_STALE,
    ERR_REPLAY,
    ERR_NO_CREDENTIALS,
    ERR_REVOCATION_UNAVAILABLE,
)


class Violation:
    """One narrowing violation (spec/format.md §6.3): the field, the parent's and child's values."""

    __slots__ = ("field", "kind", "parent", "child")

    def __init__(self, field: str, kind: str, parent: Any, child: Any) -> None:
        self.field = field
        self.kind = kind  # "widened" or "exhausted"
        self.parent = parent
        self.child = child

    def __repr__(self) -> str:
        return f"Violation({self.field!r}, {self.kind!r}, {self.parent!r}, {self.child!r})"


class AllowanceError(Exception):
    """A refused token or presentation. Only ``code`` and ``link_index`` are normative."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        link_index: int | None = None,
        field: str | None = None,
        limit: int | None = None,
        actual: int | None = None,
        violations: tuple[Violation, ...] = (),
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.link_index = link_index
        self.field = field
        self.limit = limit
        self.actual = actual
        self.violations = violations

    def __repr__(self) -> str:
        return f"AllowanceError({self.code}, link_index={self.link_index}, {self.message!r})"
