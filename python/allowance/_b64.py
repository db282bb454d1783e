"""Canonical unpadded base64url (spec/format.md §1): exactly one text for every byte string."""

from __future__ import annotations

import base64
import re

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes | None:
    """The bytes of a canonical base64url text, or None: any other character (``=`` included), a
    length of 1 mod 4, or non-zero unused bits in the last character (RFC 4648 §3.5)."""
    if not isinstance(text, str) or _ALPHABET.fullmatch(text) is None or len(text) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # Non-zero unused bits decode to the same bytes as zero ones: only the re-encoding tells.
    return data if b64encode(data) == text else None
